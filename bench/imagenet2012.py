"""The builder a TFDS user picks today: TFDS's own `imagenet2012`, run on the benchmark
corpus's images repacked in the 2012 release's layout (`repack`), with the real `tfds build`.

That layout is uncompressed tars: ILSVRC2012_img_train.tar holding one tar a class
(`<wnid>.tar` of `<wnid>_<n>.JPEG`), ILSVRC2012_img_val.tar and ILSVRC2012_img_test.tar of
flat JPEGs. TFDS's builder reads them with no md5, no boxes and no full decode; validation
labels come from its own list, by the sorted file names (the corpus's validation images are
the release's first ones, so their names are real).
"""

from __future__ import annotations

import io
import tarfile
from collections import defaultdict
from pathlib import Path

TRAIN, VAL, TEST = "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar", "ILSVRC2012_img_test.tar"


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime = len(data), 1500000000
    tar.addfile(info, io.BytesIO(data))


def repack(archive: Path, out: Path) -> Path:
    """The images of a CLS-LOC .tar.gz (the corpus) as the 2012 release's three tars."""
    out.mkdir(parents=True, exist_ok=True)
    train: dict[str, list[tuple[str, bytes]]] = defaultdict(list)
    with (
        tarfile.open(archive, "r|gz") as src,
        tarfile.open(out / VAL, "w", format=tarfile.GNU_FORMAT) as val,
        tarfile.open(out / TEST, "w", format=tarfile.GNU_FORMAT) as test,
    ):
        for member in src:
            parts = member.name.split("/")
            if not member.isfile() or parts[1:3] != ["Data", "CLS-LOC"]:
                continue
            data = src.extractfile(member).read()
            if parts[3] == "train":
                train[parts[4]].append((parts[5], data))
            else:
                _add(val if parts[3] == "val" else test, parts[4], data)
    with tarfile.open(out / TRAIN, "w", format=tarfile.GNU_FORMAT) as outer:
        for wnid in sorted(train):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w", format=tarfile.GNU_FORMAT) as t:
                for name, data in train[wnid]:
                    _add(t, name, data)
            _add(outer, f"{wnid}.tar", inner.getvalue())
    return out
