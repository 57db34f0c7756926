"""Random damage to bytes, as hypothesis strategies, and the small archives the fuzz tests
damage: a flip, a cut, an insertion or a deletion, a few at a time."""

from __future__ import annotations

import gzip
import io
import tarfile

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from imagenet2017_tfds import testing

FAST = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def damaged(draw, originals: list[bytes]) -> tuple[bytes, bytes]:
    """One of `originals` and a copy of it with a few random changes."""
    original = draw(st.sampled_from(originals))
    data = bytearray(original)
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
    return original, bytes(data)


def mutated(originals: list[bytes]):
    return damaged(originals).map(lambda pair: pair[1])


XMLS = list(testing.annotation_samples().values())


def tar_bytes(members, fmt=tarfile.GNU_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


TARS = [
    tar_bytes(
        [
            ("ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG", b"x" * 700),
            ("ILSVRC/a.xml", XMLS[0]),
        ]
    ),
    tar_bytes([("ILSVRC/" + "d" * 120 + "/long.xml", b"y" * 10)]),
    tar_bytes([("ILSVRC/" + "p" * 120 + "/pax.xml", b"z" * 10)], tarfile.PAX_FORMAT),
]


GZIPPED = [gzip.compress(t, mtime=0) for t in TARS]
