"""XML parsing on the real samples and on every dialect quirk of the CLS-LOC and DET annotations."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagenet2017_tfds import testing
from imagenet2017_tfds.errors import AnnotationError, Imagenet2017Error
from imagenet2017_tfds.ilsvrc import xml_annotations
from tests.support.noise import FAST, XMLS, mutated

SAMPLES = testing.annotation_samples()


def sample(name: str) -> xml_annotations.Annotation:
    return xml_annotations.parse(SAMPLES[name], name)


def test_clsloc_train_sample():
    ann = sample("clsloc_train__n01440764_10040.xml")
    assert (ann.width, ann.height) == (500, 375)
    assert ann.objects == (xml_annotations.Box("n01440764", 64, 103, 369, 277),)


def test_clsloc_val_sample():
    ann = sample("clsloc_val__ILSVRC2012_val_00002138.xml")
    assert ann.objects[0].name == "n01440764"
    assert (ann.objects[0].xmin, ann.objects[0].xmax) == (49, 482)


def test_det_sample_reads_xmax_before_ymin():
    ann = sample("det_val__ILSVRC2012_val_00000022.xml")
    assert (ann.width, ann.height) == (375, 500)  # DET <size> has no depth
    assert len(ann.objects) == 9
    first = ann.objects[0]
    assert (first.xmin, first.ymin, first.xmax, first.ymax) == (8, 95, 155, 498)
    assert [o.name for o in ann.objects[:3]] == ["n00007846", "n00007846", "n02084071"]


@pytest.mark.parametrize(
    "name", ["det_val__ILSVRC2012_val_00000166.xml", "det_val__ILSVRC2012_val_00003082.xml"]
)
def test_det_sample_without_object(name):
    assert sample(name).objects == ()


def test_every_real_sample_parses():
    assert len(SAMPLES) == 25
    for name, data in SAMPLES.items():
        ann = xml_annotations.parse(data, name)
        for box in ann.objects:
            assert box.name.startswith("n") and len(box.name) == 9


def xml(body: str, size="<size><width>100</width><height>50</height></size>") -> bytes:
    return f"<annotation>{size}{body}</annotation>".encode()


def test_float_coordinates_and_subcategory():
    ann = xml_annotations.parse(
        xml(
            "<object><name>n02084071</name><subcategory>n02085620</subcategory>"
            "<bndbox><xmin>12.5</xmin><xmax>30</xmax><ymin>1</ymin><ymax>2.25</ymax></bndbox></object>"
        ),
        "m",
    )
    assert ann.objects[0] == xml_annotations.Box("n02084071", 12.5, 1, 30, 2.25, "n02085620")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"<annotation><size>", "not well-formed"),
        (b"<other/>", "<annotation>"),
        (xml("", size=""), "<size>"),
        (xml("", size="<size><width>0</width><height>5</height></size>"), "positive"),
        (xml("<object><name>n1</name><bndbox><xmin>a</xmin></bndbox></object>"), "<xmin>"),
        (xml("<object><name>n1</name></object>"), "<bndbox>"),
        (xml("<object><bndbox/></object>"), "<name>"),
        (
            xml(
                "<object><name>n1</name><bndbox><xmin>nan</xmin><ymin>1</ymin><xmax>1</xmax><ymax>1</ymax></bndbox></object>"
            ),
            "finite",
        ),
    ],
)
def test_damaged_annotations_name_the_member(data, message):
    with pytest.raises(AnnotationError, match=message) as e:
        xml_annotations.parse(data, "Annotations/CLS-LOC/val/X.xml")
    assert "Annotations/CLS-LOC/val/X.xml" in str(e.value)


def test_external_entity_is_not_resolved(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET")
    data = (
        f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x SYSTEM "file://{secret}">]>'
        "<annotation><size><width>1</width><height>1</height></size>"
        "<object><name>&x;</name><bndbox><xmin>0</xmin><ymin>0</ymin><xmax>1</xmax><ymax>1</ymax></bndbox></object>"
        "</annotation>"
    ).encode()
    try:
        ann = xml_annotations.parse(data, "m")
    except AnnotationError:
        return  # refusing is as good as not resolving
    assert "TOPSECRET" not in ann.objects[0].name


def test_billion_laughs_is_not_expanded():
    lol = "".join(f'<!ENTITY l{i} "{f"&l{i - 1};" * 10}">' for i in range(1, 10))
    data = (
        f'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY l0 "lol">{lol}]>'
        "<annotation><size><width>1</width><height>1</height></size>"
        "<object><name>&l9;</name><bndbox><xmin>0</xmin><ymin>0</ymin><xmax>1</xmax><ymax>1</ymax></bndbox></object>"
        "</annotation>"
    ).encode()
    try:
        ann = xml_annotations.parse(data, "m")
    except AnnotationError:
        return
    assert len(ann.objects[0].name) < 100


def _annotation_by_elementtree(data: bytes) -> xml_annotations.Annotation | None:
    """What Python's own XML parser reads in an annotation; None where it finds no
    well-formed annotation with numbers where the package wants them."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(data)
        size = root.find("size")
        objects = tuple(
            xml_annotations.Box(
                (o.findtext("name") or "").strip(),
                *(float(o.find("bndbox").findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")),
                subcategory=(o.findtext("subcategory") or "").strip() or None,
            )
            for o in root.iterfind("object")
        )
        return xml_annotations.Annotation(
            float(size.findtext("width")), float(size.findtext("height")), objects
        )
    except (ET.ParseError, AttributeError, TypeError, ValueError):
        return None


@FAST
@given(st.one_of(st.sampled_from(XMLS), st.binary(max_size=2000), mutated(XMLS)))
def test_annotation_parser_raises_only_its_own_errors(data):
    """What it reads, when it reads anything, is what Python's own XML parser reads; a
    sample as the release has it is read."""
    try:
        ann = xml_annotations.parse(data, "member.xml")
    except Imagenet2017Error:
        assert data not in XMLS
        return
    assert ann.width > 0 and ann.height > 0
    reference = _annotation_by_elementtree(data)
    assert reference is None or ann == reference, (ann, reference)
