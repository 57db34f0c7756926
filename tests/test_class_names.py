"""Readable class names aligned with the labels: `imagenet2017_tfds.class_names(config)` and
the `class_names` of every build's metadata.json, in both file formats."""

from __future__ import annotations

import json

import pytest

import imagenet2017_tfds
from tests import readback
from tests.conftest import ROOT

DATA = ROOT / "imagenet2017_tfds" / "data"


def _names_by_wnid(config: str) -> dict[str, str]:
    """Read here from the data files, not through the package: LOC_synset_mapping.txt for
    CLS-LOC (`WNID name`), map_det.txt for DET (`WNID id name`)."""
    if config == "clsloc":
        lines = (DATA / "LOC_synset_mapping.txt").read_text().splitlines()
        return dict(line.split(" ", 1) for line in lines if line.strip())
    lines = (DATA / "map_det.txt").read_text().splitlines()
    return {line.split(" ", 2)[0]: line.split(" ", 2)[2] for line in lines if line.strip()}


@pytest.mark.parametrize(("config", "count"), [("clsloc", 1000), ("det", 200)])
def test_class_names_are_the_readable_names_in_label_order(config, count):
    by_wnid = _names_by_wnid(config)
    names = imagenet2017_tfds.class_names(config)
    assert len(names) == count == len(by_wnid)
    assert names == [by_wnid[wnid] for wnid in sorted(by_wnid)]  # labels index sorted WNIDs
    assert names == [imagenet2017_tfds.readable_name(config, i) for i in range(count)]
    assert "class_names" in imagenet2017_tfds.__all__


@pytest.mark.parametrize("config", ["clsloc", "det"])
def test_every_build_publishes_class_names_aligned_with_its_labels(
    cli_builds, array_record_builds, config
):
    import tensorflow_datasets as tfds

    by_wnid = _names_by_wnid(config)
    for data_dir in (cli_builds, array_record_builds):
        folder = data_dir / "imagenet2017" / config / readback.VERSION
        published = json.loads((folder / "metadata.json").read_text())["class_names"]
        info = tfds.builder(f"imagenet2017/{config}", data_dir=str(data_dir)).info
        assert info.metadata["class_names"] == published
        wnids = info.features["objects"]["label"].names  # the ClassLabel names stay WNIDs
        assert all(w.startswith("n") and w in by_wnid for w in wnids)
        assert published == [by_wnid[w] for w in wnids]
    # What a JAX / PyTorch reader sees, without the package's builder class.
    source = tfds.data_source(f"imagenet2017/{config}", split="validation",
                              data_dir=str(array_record_builds))  # fmt: skip
    assert source.dataset_info.metadata["class_names"] == published


def test_class_names_name_each_validation_image_as_the_release_does(cli_builds, tarball_release):
    from tests import readback

    by_wnid = _names_by_wnid("clsloc")
    names = imagenet2017_tfds.class_names("clsloc")
    expected = tarball_release.expected["clsloc"]["validation"]
    built = readback.examples(cli_builds, "clsloc", "validation")
    assert set(built) == set(expected)
    for file_name, ex in built.items():
        assert names[ex["label"]] == by_wnid[expected[file_name].label], file_name
