"""How examples are written: every record in protobuf's deterministic bytes whatever order
TFDS's serializer chose, whichever executor wrote them."""

from __future__ import annotations

import pytest

from tests.support import readback


@pytest.mark.parametrize("config", ["clsloc", "det"])
def test_written_records_are_protobufs_canonical_bytes(cli_builds, config):
    from tensorflow.core.example import example_pb2

    records = readback.records(cli_builds, config)
    assert sum(map(len, records.values())) > 10
    for split, recs in records.items():
        for r in recs:
            canonical = example_pb2.Example.FromString(r).SerializeToString(deterministic=True)
            assert r == canonical, split
