"""roles: which member of the release is which split's image, annotation or list, read off
every member of the miniature release and off paths the release does not hold."""

from __future__ import annotations

import pytest

from imagenet2017_tfds import testing
from imagenet2017_tfds.errors import ConsistencyError
from imagenet2017_tfds.ilsvrc import roles
from imagenet2017_tfds.ilsvrc.roles import Role


@pytest.fixture(scope="module")
def members(tmp_path_factory) -> dict[str, list[str]]:
    release = testing.write_release(tmp_path_factory.mktemp("m"), form="tree")
    return {part: sorted(m) for part, m in release.members.items()}


def test_every_member_of_the_release_has_its_role(members):
    found = {path: roles.classify(path) for part in members.values() for path in part}
    assert found["Data/CLS-LOC/train/n01440764/n01440764_10040.JPEG"] == Role(
        "image", "CLS-LOC", "train", "n01440764/n01440764_10040"
    )
    assert found["Annotations/CLS-LOC/val/ILSVRC2012_val_00000001.xml"] == Role(
        "annotation", "CLS-LOC", "val", "ILSVRC2012_val_00000001"
    )
    assert found["Data/DET/train/ILSVRC2013_train/n02691156/n02691156_1.JPEG"] == Role(
        "image", "DET", "train", "ILSVRC2013_train/n02691156/n02691156_1"
    )
    assert found["ImageSets/DET/train_1.txt"] == Role("imageset", "DET", "", "train_1")
    assert found["ImageSets/CLS-LOC/train_loc.txt"] == Role("imageset", "CLS-LOC", "", "train_loc")
    assert found["devkit/data/map_det.txt"] == Role("devkit", "", "", "map_det.txt")
    # The devkit's readme, licence, MATLAB files are none of the build's business.
    assert found["devkit/COPYING"] is None and found["devkit/evaluation/eval_clsloc.m"] is None
    for part in ("clsloc", "det", "det_test"):
        for path in members[part]:
            kind = {"Data": "image", "Annotations": "annotation", "ImageSets": "imageset"}
            assert found[path].kind == kind[path.split("/")[0]], path
            assert found[path].challenge in roles.CHALLENGES, path


def test_only_images_are_not_metadata(members):
    for path in members["clsloc"] + members["devkit"]:
        role = roles.classify(path)
        assert roles.is_metadata(path) == (role is not None and role.kind != "image"), path
    assert not roles.is_metadata("Data/DET/test/ILSVRC2017_test_00000001.JPEG")
    assert roles.is_metadata("Annotations/DET/val/ILSVRC2012_val_00000006.xml")


@pytest.mark.parametrize(
    "path",
    [
        "Data/VID/train/a/b.JPEG",  # another challenge's folder
        "Data/CLS-LOC/training/n1/n1_1.JPEG",  # not a split folder of the release
        "Data/CLS-LOC/train",  # a folder, not a member
        "Annotations/CLS-LOC/val/ILSVRC2012_val_00000001.txt",  # an annotation is XML
        "ImageSets/CLS-LOC/sub/train_cls.txt",
        "ImageSets/CLS-LOC/train_cls.csv",
        "devkit/data/sub/map_det.txt",
        "LOC_synset_mapping.txt",
    ],
)
def test_paths_the_release_does_not_name_have_no_role(path):
    assert roles.classify(path) is None


def test_an_annotation_extension_in_capitals_is_still_an_annotation():
    role = roles.classify("Annotations/DET/train/ILSVRC2014_train_0000/x_1.XML")
    assert role == Role("annotation", "DET", "train", "ILSVRC2014_train_0000/x_1")


@pytest.mark.parametrize(
    ("rest", "image_id"),
    [
        ("n01440764/n01440764_10026.JPEG", "n01440764/n01440764_10026"),
        ("ILSVRC2012_val_00000001.JPEG", "ILSVRC2012_val_00000001"),
        ("ILSVRC2013_train/n02691156/n02691156_1.JPEG", "ILSVRC2013_train/n02691156/n02691156_1"),
        ("n01440764/no_extension", "n01440764/no_extension"),
    ],
)
def test_image_id_is_the_path_below_the_split_without_its_extension(rest, image_id):
    assert roles.image_id(rest) == image_id


def test_imageset_lines_are_read_in_order_blank_lines_skipped(tmp_path):
    release = testing.write_release(tmp_path / "m", form="tree", parts=("clsloc",))
    text = release.members["clsloc"]["ImageSets/CLS-LOC/val.txt"].decode()
    rows = roles.parse_imageset(text + "\n\n", "val.txt")
    assert rows[0] == ("ILSVRC2012_val_00000001", "1")
    assert len(rows) == 10 and [r[0] for r in rows] == sorted(r[0] for r in rows)
    assert roles.parse_imageset("a\nb 2\n", "x.txt") == [("a", ""), ("b", "2")]


def test_an_imageset_line_of_three_fields_names_the_file_and_line():
    with pytest.raises(ConsistencyError, match=r"val\.txt line 2: expected `<image id> <number>`"):
        roles.parse_imageset("a 1\nb 2 3\n", "val.txt")
