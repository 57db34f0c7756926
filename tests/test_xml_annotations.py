"""XML parsing on the real samples and on every dialect quirk of the CLS-LOC and DET annotations."""

import re
from xml.sax.saxutils import escape

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagenet2017_tfds import testing
from imagenet2017_tfds.errors import AnnotationError
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
def test_damaged_annotations_read_as_elementtree_reads_them_or_are_refused_naming_the_member(data):
    """What it reads, when it reads anything, is what Python's own XML parser reads; what it
    refuses is refused with an AnnotationError naming the member; a sample as the release
    has it is read, as Python's parser reads it."""
    reference = _annotation_by_elementtree(data)
    try:
        ann = xml_annotations.parse(data, "member.xml")
    except AnnotationError as e:
        assert data not in XMLS
        assert str(e).startswith("member.xml"), str(e)
        return
    assert ann.width > 0 and ann.height > 0
    assert reference is None or ann == reference, (ann, reference)
    if data in XMLS:
        assert ann == reference


# Elements of the release's annotations the parser does not read: their text cannot matter.
UNREAD = ("folder", "filename", "database", "depth", "segmented", "pose", "truncated", "difficult")


@st.composite
def harmless(draw) -> tuple[bytes, bytes]:
    """A sample, and a copy with changes no reader of annotations may see: whitespace,
    comments, processing instructions, elements of other names and attributes inserted
    between the root's tags; other text in the elements the parser does not read;
    whitespace around a name or a number."""
    original = draw(st.sampled_from(XMLS))
    text = original.decode()
    words = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), max_size=12).map(
        lambda t: t.replace("-", "").replace("?", "")
    )
    for _ in range(draw(st.integers(1, 6))):
        tags = [m.end() for m in re.finditer(r">\s*(?=<)", text)][:-1]
        op = draw(st.sampled_from(["insert", "unread", "pad", "attribute"]))
        if op == "insert":
            at = draw(st.sampled_from(tags))
            what = draw(
                st.sampled_from(["\n\t ", "<!--{}-->", "<?note {}?>", "<note>{}</note>", "<x/>"])
            )
            text = text[:at] + what.format(escape(draw(words))) + text[at:]
        elif op == "unread":
            tag = draw(st.sampled_from(UNREAD))
            # A function as the replacement: the drawn text is taken as it is, never as
            # re.sub's escapes (a drawn "\1" or "\0" would otherwise be a group reference).
            field = f"<{tag}>{escape(draw(words))}</{tag}>"
            text = re.sub(rf"<{tag}>[^<]*</{tag}>", lambda _, field=field: field, text)
        elif op == "pad":
            found = list(re.finditer(r"<(name|width|height|[xy]m(?:in|ax))>([^<]*)<", text))
            if found:
                m = draw(st.sampled_from(found))
                pad = draw(st.sampled_from([" ", "\n", "\t\t", " \n "]))
                text = text[: m.start(2)] + pad + m.group(2) + pad + text[m.end(2) :]
        else:
            starts = [m.end(1) for m in re.finditer(r"<(\w+)>", text)]
            at = draw(st.sampled_from(starts))
            text = text[:at] + f' note="{escape(draw(words), {chr(34): "&quot;"})}"' + text[at:]
    return original, text.encode()


@FAST
@given(harmless())
def test_changes_no_reader_may_see_read_as_the_sample_reads(pair):
    """The same objects as Python's own XML parser finds in the sample before the change."""
    original, data = pair
    assert xml_annotations.parse(data, "member.xml") == _annotation_by_elementtree(original)
