"""Property-based: random and mutated XML, tar and image bytes give only the package's own
errors, and nothing hangs."""

from __future__ import annotations

import contextlib
import gzip
import io
import tarfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagenet2017_tfds import images, testing, xml_annotations
from imagenet2017_tfds.errors import Imagenet2017Error
from imagenet2017_tfds.sources import Tarball, tar

FAST = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def mutated(draw, originals: list[bytes]):
    data = bytearray(draw(st.sampled_from(originals)))
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[pos : pos + draw(st.integers(1, 32))]
    return bytes(data)


XMLS = list(testing.annotation_samples().values())


@FAST
@given(st.one_of(st.binary(max_size=2000), mutated(XMLS)))
def test_annotation_parser_raises_only_its_own_errors(data):
    try:
        ann = xml_annotations.parse(data, "member.xml")
    except Imagenet2017Error:
        return
    assert ann.width > 0 and ann.height > 0


def _tar(members, fmt=tarfile.GNU_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


TARS = [
    _tar(
        [
            ("ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG", b"x" * 700),
            ("ILSVRC/a.xml", XMLS[0]),
        ]
    ),
    _tar([("ILSVRC/" + "d" * 120 + "/long.xml", b"y" * 10)]),
    _tar([("ILSVRC/" + "p" * 120 + "/pax.xml", b"z" * 10)], tarfile.PAX_FORMAT),
]


def _walk(data: bytes) -> None:
    f = io.BytesIO(data)
    for header in tar.headers(f, "t"):
        if header.regular:
            tar.read_data(f, header, "t")


@FAST
@given(st.one_of(st.binary(max_size=3000), mutated(TARS)))
def test_tar_reader_raises_only_its_own_errors(data):
    with contextlib.suppress(Imagenet2017Error):
        _walk(data)


@settings(max_examples=40, deadline=5000)
@given(mutated([gzip.compress(t, mtime=0) for t in TARS]))
def test_tarball_source_raises_only_its_own_errors(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("gz") / "a.tar.gz"
    path.write_bytes(data)
    with contextlib.suppress(Imagenet2017Error):
        list(Tarball(path).scan(lambda p: True))


def _jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


@FAST
@given(st.one_of(st.binary(max_size=500), mutated([_jpeg()])))
def test_image_handling_raises_only_its_own_errors(data):
    try:
        out = images.storable_jpeg(data, "member.JPEG")
    except Imagenet2017Error:
        return
    assert out[:3] == b"\xff\xd8\xff"
