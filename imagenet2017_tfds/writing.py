"""How TFDS writes our examples: serialized by wire.py (TFDS's checks, protobuf's
deterministic bytes, a fraction of the time) and shuffled in bounded memory.

TFDS offers no hook for either: its writers build their serializer from
`example_serializer.ExampleSerializer` and its shuffler keeps up to
`shuffle.MAX_MEM_BUFFER_SIZE` (1 GB) in memory before it spills to bucket files (through
TF's GFile, three calls an example). `tuned()` sets the serializer, the buffer size and a
bucket class with plain file I/O for the duration of one build. Spilling early changes no
byte of the output (both ways sort by the same hashed keys) and keeps memory flat: the real
release spills anyway.
Determinism itself does not rest on these: `CanonicalExampleWriter`, through TFDS's
documented `_example_writer` hook, writes every record in protobuf's deterministic form
whatever made it (a parse, about 8 µs an example, when the bytes are already ours).
"""

from __future__ import annotations

import contextlib
import errno
import os
import struct

import numpy as np
from tensorflow_datasets.core import example_serializer as tfds_serializer
from tensorflow_datasets.core import shuffle, utils
from tensorflow_datasets.core import writer as writer_lib

from imagenet2017_tfds import fileio, wire

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


def _feature(value, info) -> wire.Message:
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


class LocalBucket(shuffle._Bucket):
    """TFDS's spill bucket, same file format, written and read with plain buffered I/O when
    the build folder is local (remote folders keep TFDS's GFile)."""

    def add(self, key, data: bytes) -> None:
        if not fileio.is_local(self._path):
            return super().add(key, data)
        if self._fobj is None:
            os.makedirs(os.path.dirname(self._path), exist_ok=True)
            try:
                self._fobj = open(self._path, "wb")  # noqa: SIM115  (closed by flush)
            except OSError as e:  # 1000 buckets may pass a low open-files limit
                if e.errno != errno.EMFILE:
                    raise
                shuffle._increase_open_files_limit()
                self._fobj = open(self._path, "wb")  # noqa: SIM115
        self._fobj.write(shuffle._hkey_to_bytes(key) + struct.pack("=Q", len(data)))
        self._fobj.write(data)
        self._length += 1
        self._size += len(data)

    def read_values(self):
        if not fileio.is_local(self._path):
            yield from super().read_values()
            return
        self.flush()
        if not os.path.exists(self._path):  # nothing was added
            return
        head_size = shuffle.HKEY_SIZE_BYTES + 8
        with open(self._path, "rb") as f:
            while head := f.read(head_size):
                (size,) = struct.unpack("=Q", head[shuffle.HKEY_SIZE_BYTES :])
                yield shuffle._read_hkey(head[: shuffle.HKEY_SIZE_BYTES]), f.read(size)


@contextlib.contextmanager
def tuned(shuffle_buffer_bytes: int | None = None):
    """TFDS writers built inside this block (plain and Beam) serialize with WireSerializer;
    the plain writer's shuffler spills past `shuffle_buffer_bytes` into LocalBuckets."""
    saved = tfds_serializer.ExampleSerializer, shuffle.MAX_MEM_BUFFER_SIZE, shuffle._Bucket
    tfds_serializer.ExampleSerializer = WireSerializer
    shuffle.MAX_MEM_BUFFER_SIZE = shuffle_buffer_bytes or SHUFFLE_BUFFER_BYTES
    shuffle._Bucket = LocalBucket
    try:
        yield
    finally:
        tfds_serializer.ExampleSerializer, shuffle.MAX_MEM_BUFFER_SIZE, shuffle._Bucket = saved


class CanonicalExampleWriter(writer_lib.ExampleWriter):
    """Every record in protobuf's deterministic form, through TFDS's `_example_writer` hook."""

    def write(self, path, examples):
        from tensorflow.core.example import example_pb2

        def canonical(serialized: bytes) -> bytes:
            return example_pb2.Example.FromString(serialized).SerializeToString(deterministic=True)

        return super().write(path, ((key, canonical(ex)) for key, ex in examples))
