"""Deterministic bytes: TFDS serializes the features map in an order that changes from
process to process, so every record is written in protobuf's deterministic form, through
TFDS's documented `_example_writer` hook.
"""

from __future__ import annotations

from tensorflow_datasets.core import writer as writer_lib  # compat.py checks its shape


def canonical(serialized: bytes) -> bytes:
    """The same tf.train.Example, its map entries in protobuf's deterministic order."""
    from tensorflow.core.example import example_pb2

    return example_pb2.Example.FromString(serialized).SerializeToString(deterministic=True)


class CanonicalExampleWriter(writer_lib.ExampleWriter):
    """Every record in protobuf's deterministic form."""

    def write(self, path, examples):
        return super().write(path, ((key, canonical(ex)) for key, ex in examples))
