"""Box normalisation rules and the feature dicts, without TensorFlow."""

import pytest

from imagenet2017_tfds.ilsvrc import classes, example_dicts
from imagenet2017_tfds.ilsvrc.xml_annotations import Annotation, Box


def norm(xmin, ymin, xmax, ymax, width=100, height=50):
    return example_dicts.normalise(Box("n", xmin, ymin, xmax, ymax), width, height)


def test_plain_box_is_divided_by_the_xml_size():
    assert norm(10, 5, 50, 25) == (0.1, 0.1, 0.5, 0.5)


def test_inverted_box_is_swapped():
    assert norm(50, 25, 10, 5) == (0.1, 0.1, 0.5, 0.5)


def test_box_past_the_image_is_clipped():
    assert norm(-10, -5, 150, 75) == (0.0, 0.0, 1.0, 1.0)


def test_float_coordinates():
    assert norm(12.5, 2.5, 25, 5) == pytest.approx((0.05, 0.125, 0.1, 0.25))


@pytest.mark.parametrize(
    "box", [(120, 10, 150, 20), (10, -30, 20, -1), (10, 10, 10, 20), (-5, 10, 0, 20)]
)
def test_box_with_nothing_left_is_dropped(box):
    assert norm(*box) is None


def item(annotation=None, **kw):
    return example_dicts.Item("k", "Data/CLS-LOC/train/n1/x.JPEG", "x.JPEG", 3, annotation, **kw)


def test_clsloc_example_without_annotation():
    ex = example_dicts.clsloc_example(item(), b"img")
    assert ex["annotated"] is False
    assert ex["objects"] == {"bbox": [], "label": []}
    assert (ex["image"], ex["label"], ex["file_name"]) == (b"img", 3, "x.JPEG")


def test_clsloc_example_drops_empty_boxes_but_stays_annotated():
    wnid = "n01443537"  # sorted index 1
    ann = Annotation(100, 50, (Box(wnid, 200, 0, 300, 10), Box(wnid, 0, 0, 50, 25)))
    ex = example_dicts.clsloc_example(item(ann), b"img")
    assert ex["annotated"] is True
    assert ex["objects"] == {"bbox": [(0.0, 0.0, 0.5, 0.5)], "label": [1]}


def test_clsloc_box_named_by_an_unknown_label_takes_the_image_class():
    ann = Annotation(100, 50, (Box("not_a_class", 0, 0, 50, 25),))
    assert example_dicts.clsloc_example(item(ann), b"img")["objects"]["label"] == [3]


def test_det_example_marks_blacklisted_classes_and_subcategories():
    a, b = "n02672831", "n02691156"  # accordion, airplane: 49 and 50 in sorted WNID order
    ann = Annotation(10, 10, (Box(a, 0, 0, 5, 5, "sub"), Box(b, 0, 0, 5, 5)))
    ex = example_dicts.det_example(item(ann, blacklisted_wnids=frozenset({b})), b"i")
    assert ex["objects"]["subcategory"] == ["sub", ""]
    assert ex["objects"]["blacklisted"] == [False, True]
    assert ex["objects"]["label"] == [classes.det().index(a), classes.det().index(b)]
    assert ex["objects"]["label"] == [49, 50]
