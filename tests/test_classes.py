"""Class lists: sorted WNID order (imagenet2012/Keras indices) and the devkit's own ids; the
readable class names aligned with the labels, from `imagenet2017_tfds.class_names(config)` and
from the `class_names` of every build's metadata.json, in both file formats."""

from __future__ import annotations

import json

import pytest

import imagenet2017_tfds
from imagenet2017_tfds import readable_name
from imagenet2017_tfds.ilsvrc import classes, devkit
from tests.conftest import ROOT
from tests.support import readback


def test_clsloc_has_1000_sorted_wnids():
    lst = classes.clsloc()
    assert len(lst.wnids) == 1000 == len(set(lst.wnids))
    assert list(lst.wnids) == sorted(lst.wnids)
    assert lst.wnids[0] == "n01440764"


def test_first_validation_image_is_sea_snake_at_sorted_index_65():
    truth = devkit.clsloc_ground_truth()
    assert len(truth) == 50_000
    assert truth[0] == "n01751748"
    assert classes.clsloc().index("n01751748") == 65
    assert classes.clsloc().devkit_ids["n01751748"] == 490


def test_readable_names_for_both_configs():
    assert readable_name("clsloc", 0) == "tench, Tinca tinca"
    det = classes.det()
    assert len(det.wnids) == 200 and list(det.wnids) == sorted(det.wnids)
    assert readable_name("det", det.index("n02672831")) == "accordion"


def test_readable_labels_resolve_to_wnids():
    by_name = classes.clsloc().by_name
    assert by_name["scottish_deerhound"] == ("n02092002",)
    assert by_name["scottish deerhound"] == ("n02092002",)
    assert by_name["scottish deerhound, deerhound"] == ("n02092002",)
    # The labels map_clsloc.txt gives two classes each (case folded for the last).
    ambiguous = {alias: w for alias, w in by_name.items() if len(w) > 1}
    assert ambiguous == {
        "crane": ("n02012849", "n03126707"),
        "maillot": ("n03710637", "n03710721"),
        "cardigan": ("n02113186", "n02963159"),
    }


@pytest.mark.parametrize(
    "name, image_wnid, expected",
    [
        ("Scottish_deerhound", "n01440764", "n02092002"),  # a label naming one class wins
        ("n02092002", "n01440764", "n02092002"),  # so does a WNID
        ("crane", "n02012849", "n02012849"),  # the bird on a bird image
        ("crane", "n03126707", "n03126707"),  # the machine on a machine image
        (
            "Cardigan",
            "n02963159",
            "n02963159",
        ),  # the sweater, though the corgi's label is "Cardigan"
        ("cardigan", "n02113186", "n02113186"),  # the corgi
        ("maillot", "n03710721", "n03710721"),
        ("crane", "n01440764", "n01440764"),  # several classes, none the image's: the image's
        ("no such label", "n01440764", "n01440764"),
    ],
)
def test_a_box_label_naming_several_classes_takes_the_image_class(name, image_wnid, expected):
    lst = classes.clsloc()
    assert lst.wnids[classes.clsloc_object_label(name, lst.index(image_wnid))] == expected


def test_blacklists_have_the_published_sizes():
    assert len(devkit.clsloc_blacklist()) == 1762
    assert sum(len(v) for v in devkit.det_blacklist().values()) == 409


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
    source = tfds.data_source(
        f"imagenet2017/{config}", split="validation", data_dir=str(array_record_builds)
    )
    assert source.dataset_info.metadata["class_names"] == published


def test_class_names_name_each_validation_image_as_the_release_does(cli_builds, tarball_release):
    by_wnid = _names_by_wnid("clsloc")
    names = imagenet2017_tfds.class_names("clsloc")
    expected = tarball_release.expected["clsloc"]["validation"]
    built = readback.examples(cli_builds, "clsloc", "validation")
    assert set(built) == set(expected)
    for file_name, ex in built.items():
        assert names[ex["label"]] == by_wnid[expected[file_name].label], file_name
