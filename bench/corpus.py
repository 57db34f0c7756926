"""A realistic CLS-LOC-layout .tar.gz for the benchmark: noisy JPEGs of 300-500 px at quality
90 (about 100 KB, which gzip barely compresses, like the real data), XMLs for a share of train,
val and test folders, ImageSets lists, and a scrambled member order: the order `tar` gives on
a filesystem that lists directories in hash order (ext4), i.e. each folder's members together
in random order, the folders in random order, and the annotations after the images (or, with
order="annotations_first", Annotations, ImageSets, then Data, as Kaggle's listing has them).
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import subprocess
import tarfile
from pathlib import Path

import numpy as np
from PIL import Image

from imagenet2017_tfds.testing.tarballs import ORDERS, tar_order

# Real WNIDs (the first classes in sorted order) so the builder accepts the corpus.
WNIDS = [
    "n01440764", "n01443537", "n01484850", "n01491361", "n01494475", "n01496331",
    "n01498041", "n01514668", "n01514859", "n01518878", "n01530575", "n01531178",
]  # fmt: skip
XML_SHARE = 0.45  # CLS-LOC: 544,546 of 1,281,167 train images have an XML
VAL_SHARE = TEST_SHARE = 0.05


def noisy_jpeg(rng: np.random.Generator) -> bytes:
    width, height = int(rng.integers(300, 501)), int(rng.integers(300, 501))
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack(
        [(x * 255 // width), (y * 255 // height), ((x + y) * 127 // (width + height))], -1
    )
    noise = rng.normal(0, 22, (height, width, 3))
    pixels = np.clip(base + noise, 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, "JPEG", quality=90)
    return out.getvalue()


def xml(folder: str, name: str, wnid: str, rng: random.Random) -> bytes:
    boxes = "".join(
        f"<object><name>{wnid}</name><pose>Unspecified</pose><truncated>0</truncated>"
        f"<difficult>0</difficult><bndbox><xmin>{rng.randint(0, 200)}</xmin><ymin>{rng.randint(0, 200)}</ymin>"
        f"<xmax>{rng.randint(220, 499)}</xmax><ymax>{rng.randint(220, 374)}</ymax></bndbox></object>"
        for _ in range(rng.randint(1, 3))
    )
    return (
        f"<annotation><folder>{folder}</folder><filename>{name}</filename><source><database>"
        "ILSVRC_2012</database></source><size><width>500</width><height>375</height><depth>3"
        f"</depth></size><segmented>0</segmented>{boxes}</annotation>"
    ).encode()


def write_corpus(
    folder: Path, size_mb: float, seed: int = 0, order: str = "annotations_last"
) -> Path:
    """Writes ILSVRC2017_CLS-LOC.tar.gz (about size_mb MB) and checksums.tsv into `folder`;
    the same seed gives the same members, whatever the order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng, pick = np.random.default_rng(seed), random.Random(seed)
    pool = [noisy_jpeg(rng) for _ in range(64)]  # reused bytes keep writing fast
    n_images = max(8, int(size_mb * 1e6 / (sum(map(len, pool)) / len(pool))))
    n_val, n_test = max(2, int(n_images * VAL_SHARE)), max(2, int(n_images * TEST_SHARE))
    n_train = n_images - n_val - n_test
    members: list[tuple[str, bytes | int]] = []  # bytes, or an index into the pool
    train_cls, train_loc = [], []
    for i in range(n_train):
        wnid = WNIDS[i % len(WNIDS)]
        image_id = f"{wnid}/{wnid}_{i + 1}"
        members.append((f"Data/CLS-LOC/train/{image_id}.JPEG", i % len(pool)))
        train_cls.append(image_id)
        if pick.random() < XML_SHARE:
            members.append(
                (
                    f"Annotations/CLS-LOC/train/{image_id}.xml",
                    xml(wnid, f"{wnid}_{i + 1}", wnid, pick),
                )
            )
            train_loc.append(image_id)
    val = []
    for i in range(1, n_val + 1):
        name = f"ILSVRC2012_val_{i:08d}"
        members.append((f"Data/CLS-LOC/val/{name}.JPEG", i % len(pool)))
        members.append((f"Annotations/CLS-LOC/val/{name}.xml", xml("val", name, "n01440764", pick)))
        val.append(name)
    test = [f"ILSVRC2012_test_{i:08d}" for i in range(1, n_test + 1)]
    members += [(f"Data/CLS-LOC/test/{name}.JPEG", i % len(pool)) for i, name in enumerate(test)]

    def listing(ids):
        return "".join(f"{x} {n}\n" for n, x in enumerate(sorted(ids), 1)).encode()

    members += [
        ("ImageSets/CLS-LOC/train_cls.txt", listing(train_cls)),
        ("ImageSets/CLS-LOC/train_loc.txt", listing(train_loc)),
        ("ImageSets/CLS-LOC/val.txt", "".join(f"{v} {int(v[-8:])}\n" for v in val).encode()),
        ("ImageSets/CLS-LOC/test.txt", listing(test)),
    ]
    members = tar_order(members, random.Random(seed + 1), order)
    # Validation labels come from the ground truth in the real release; the benchmark
    # corpus uses the first val indices, so its val XMLs must name the real classes.
    from imagenet2017_tfds.ilsvrc import devkit

    truth = devkit.clsloc_ground_truth()
    archive = folder / "ILSVRC2017_CLS-LOC.tar.gz"
    with open(archive, "wb") as out:
        gz = subprocess.Popen(["gzip", "-6", "-n"], stdin=subprocess.PIPE, stdout=out)
        with tarfile.open(fileobj=gz.stdin, mode="w|", format=tarfile.GNU_FORMAT) as tar:
            for name, data in members:
                if isinstance(data, int):
                    data = pool[data]
                elif name.startswith("Annotations/CLS-LOC/val/"):
                    number = int(name[-12:-4])
                    data = data.replace(b"n01440764", truth[number - 1].encode())
                info = tarfile.TarInfo(f"ILSVRC/{name}")
                info.size, info.mtime = len(data), 1500000000
                tar.addfile(info, io.BytesIO(data))
        gz.stdin.close()
        if gz.wait() != 0:
            raise RuntimeError("gzip failed")
    md5 = hashlib.md5()
    with open(archive, "rb") as f:
        while chunk := f.read(8 << 20):
            md5.update(chunk)
    counts = {"train": n_train, "validation": n_val, "test": n_test}
    (folder / "counts.json").write_text(json.dumps(counts) + "\n")
    (folder / "checksums.tsv").write_text(
        f"filename\tsize\tmd5\tsha256\n{archive.name}\t{archive.stat().st_size}\t{md5.hexdigest()}\t\n"
    )
    return archive


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--size_mb", type=float, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--order", choices=ORDERS, default="annotations_last")
    args = parser.parse_args()
    print(write_corpus(args.folder, args.size_mb, args.seed, args.order))


if __name__ == "__main__":
    main()
