"""How TFDS writes our examples: serialized by wire.py (TFDS's checks, protobuf's
deterministic bytes, a fraction of the time) and shuffled in bounded memory.

TFDS offers no hook for either: its writers build their serializer from
`example_serializer.ExampleSerializer` and its shuffler keeps up to
`shuffle.MAX_MEM_BUFFER_SIZE` (1 GB) in memory before it spills to bucket files. `tuned()`
sets both for the duration of one build. Spilling early changes no byte of the output (both
ways sort by the same hashed keys) and keeps memory flat: the real release spills anyway.
"""

from __future__ import annotations

import contextlib

import numpy as np
from tensorflow_datasets.core import example_serializer as tfds_serializer
from tensorflow_datasets.core import shuffle, utils

from imagenet2017_tfds import wire

SHUFFLE_BUFFER_BYTES = 64 << 20


def _kind(info) -> int:
    dtype = np.dtype(info.np_dtype)
    if dtype.kind in "biu":
        return wire.INT64
    if dtype.kind == "f":
        return wire.FLOAT
    return wire.BYTES


def _as_bytes(value) -> bytes:
    if isinstance(value, np.ndarray) and value.ndim == 0:  # an encoded Text item
        value = value.item()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    raise TypeError(f"expected bytes or str, got {value!r}")


def _feature(value, info) -> bytes:
    kind = _kind(info)
    if not info.shape and not isinstance(value, (list, tuple, np.ndarray)):
        # Scalars (most features) skip numpy: checked and converted one by one.
        if kind == wire.BYTES:
            return wire.feature(kind, [_as_bytes(value)])
        if isinstance(value, (bytes, str)):
            raise TypeError(f"expected a number, got {value!r}")
        return wire.feature(kind, [int(value) if kind == wire.INT64 else float(value)])
    if info.sequence_rank == 1 and isinstance(value, (list, np.ndarray)):  # stack it here
        if len(value):
            array = np.asarray(value, dtype=info.np_dtype)
        else:
            array = np.empty((0, *info.shape[1:]), info.np_dtype)
        utils.assert_shape_match(array.shape, info.shape)
    else:
        value, info = tfds_serializer._add_ragged_fields(value, info)  # stacks a sequence
        array = tfds_serializer._item_to_np_array(value, info.np_dtype, info.shape)
    if kind == wire.BYTES:
        return wire.feature(kind, [_as_bytes(v) for v in array.flat])
    if array.dtype == np.uint64:  # stored bit-cast, as TFDS does
        array = array.view(np.int64)
    return wire.feature(kind, array.flat)


class WireSerializer(tfds_serializer.ExampleSerializer):
    """Features it does not cover (nested sequences, absent optional values) go through
    TFDS's own path, serialized deterministically."""

    def serialize_example(self, example) -> bytes:
        flat = utils.flatten_nest_dict(example)
        features = {}
        for name, info in self._flat_example_specs.items():
            value = flat[name]
            if info.sequence_rank > 1 or (value is None and info.optional):
                return self.get_tf_example(example).SerializeToString(deterministic=True)
            try:
                features[name] = _feature(value, info)
            except Exception as e:
                raise ValueError(f"Error while serializing feature `{name}`: `{info}`: {e}") from e
        return wire.example(features)


@contextlib.contextmanager
def tuned(shuffle_buffer_bytes: int | None = None):
    """TFDS writers built inside this block (plain and Beam) serialize with WireSerializer;
    the plain writer's shuffler spills past `shuffle_buffer_bytes`."""
    saved = tfds_serializer.ExampleSerializer, shuffle.MAX_MEM_BUFFER_SIZE
    tfds_serializer.ExampleSerializer = WireSerializer
    shuffle.MAX_MEM_BUFFER_SIZE = shuffle_buffer_bytes or SHUFFLE_BUFFER_BYTES
    try:
        yield
    finally:
        tfds_serializer.ExampleSerializer, shuffle.MAX_MEM_BUFFER_SIZE = saved
