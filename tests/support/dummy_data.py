"""Writes `imagenet2017/dummy_data/`, the miniature release TFDS's dataset-folder test builds
(`imagenet2017/imagenet2017_dataset_builder_test.py`), as the tree `tar xzf` leaves. Trees are
not digest-verified, so it needs no checksums file. The devkit is left out: it is optional,
and its data files would be most of the bytes. Run it after changing imagenet2017_tfds/testing/:

    PYTHONPATH=. python -m tests.support.dummy_data

tests/test_dataset_folder.py fails while the committed folder differs from what this writes.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from imagenet2017_tfds import testing

FOLDER = Path(__file__).resolve().parents[2] / "imagenet2017" / "dummy_data"
PARTS = ("clsloc", "det", "det_test")


def write(folder: Path = FOLDER) -> testing.Release:
    shutil.rmtree(folder, ignore_errors=True)
    return testing.write_release(folder, form="tree", parts=PARTS)


def split_sizes(release: testing.Release) -> dict[str, dict[str, int]]:
    """config -> split -> examples."""
    return {
        config: {split: len(examples) for split, examples in splits.items()}
        for config, splits in release.expected.items()
    }


if __name__ == "__main__":
    release = write()
    files = [p for p in FOLDER.rglob("*") if p.is_file()]
    print(f"Wrote {len(files)} files, {sum(p.stat().st_size for p in files):,d} bytes, to {FOLDER}")
    print(split_sizes(release))
