"""How examples are written: every record in protobuf's deterministic bytes whatever order
TFDS's serializer chose, whichever writer wrote them."""

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


def test_example_writer_puts_any_record_in_canonical_form(tmp_path):
    import tensorflow as tf
    from tensorflow.core.example import example_pb2
    from tensorflow_datasets.core import file_adapters

    from imagenet2017_tfds.writing import CanonicalExampleWriter

    def field(number: int, payload: bytes) -> bytes:  # length-delimited, payload < 128 bytes
        return bytes([number << 3 | 2, len(payload)]) + payload

    features = {
        "b": field(3, field(1, bytes([7]))),  # int64_list [7]
        "a": field(1, field(1, b"x")),  # bytes_list [b"x"]
    }
    entries = [field(1, field(1, k.encode()) + field(2, v)) for k, v in features.items()]
    reordered = field(1, b"".join(entries))  # valid protobuf, map entries not in key order
    canonical = example_pb2.Example.FromString(reordered).SerializeToString(deterministic=True)
    assert reordered != canonical and len(reordered) == len(canonical)
    path = tmp_path / "x.tfrecord"
    writer = CanonicalExampleWriter(file_format=file_adapters.FileFormat.TFRECORD)
    writer.write(path, [(1, reordered)])
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == [canonical]
