"""A miniature ILSVRC2017 release for tests, in the spirit of `tfds.testing`.

`write_release(folder)` writes the release's archives (or the tree `tar xzf` leaves) in the
exact real layout, with a few dozen small images, real annotations and the release's quirks,
in well under a second, and returns what a correct build holds. A training input pipeline
can then be tested end to end without the 160 GB download:

    from imagenet2017_tfds import testing

    release = testing.write_release(tmp_path / "manual")
    os.environ["IMAGENET2017_CHECKSUMS"] = str(release.checksums)
    ds = tfds.load("imagenet2017/clsloc", split="train", data_dir=tmp_path / "data",
                   download_and_prepare_kwargs={"download_config": tfds.download.DownloadConfig(
                       manual_dir=str(release.manual_dir))})

Nothing here imports TensorFlow or TFDS.
"""

from __future__ import annotations

from imagenet2017_tfds.testing.release import (
    ARCHIVES,
    CLSLOC,
    DATA,
    DET,
    DET_TEST,
    DEVKIT,
    KAGGLE,
    KAGGLE_VAL_SOLUTION,
    Expected,
    ExpectedObject,
    Release,
    clsloc_xml,
    det_xml,
    expected_box,
    write_release,
)
from imagenet2017_tfds.testing.tarballs import (
    ORDERS,
    member_order,
    tar_gz,
    tar_order,
    tarball_bytes,
    write_checksums,
)

__all__ = [
    "ARCHIVES",
    "CLSLOC",
    "DET",
    "DET_TEST",
    "DEVKIT",
    "KAGGLE",
    "KAGGLE_VAL_SOLUTION",
    "ORDERS",
    "Expected",
    "ExpectedObject",
    "Release",
    "annotation_samples",
    "clsloc_xml",
    "det_xml",
    "expected_box",
    "member_order",
    "tar_gz",
    "tar_order",
    "tarball_bytes",
    "write_checksums",
    "write_release",
]


def annotation_samples() -> dict[str, bytes]:
    """Real annotations of the release, shipped with the package: {file name: XML bytes},
    named `<part>_<split>__<image>.xml` (e.g. `det_val__ILSVRC2012_val_00000022.xml`)."""
    return {
        f.name: f.read_bytes()
        for f in sorted(DATA.iterdir(), key=lambda f: f.name)
        if f.name.endswith(".xml")
    }
