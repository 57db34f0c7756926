"""The shards of a split: how many, which hashed keys each holds, and their files.

The layout is TFDS's Beam writer's: the number of shards from the build's ShardConfig and
the planned bytes, shard = get_bucket_number(hashed key, shards, largest hashed key), each
shard's examples sorted by hashed key. Every path (local pool, in-process, Beam) lays out
the same shards from the plan before any example exists, so all write the same bytes.
"""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass

import google_crc32c

from imagenet2017_tfds import compat
from imagenet2017_tfds.errors import ConsistencyError
from imagenet2017_tfds.internal import fileio

# What a serialized example holds beyond its image bytes (labels, boxes, names, framing).
EXAMPLE_OVERHEAD_BYTES = 200


@dataclass(frozen=True)
class Layout:
    num_shards: int
    largest_key: int  # the largest hashed key: shard numbers scale by it

    def shard_of(self, hkey: int) -> int:
        return compat.get_bucket_number(hkey, self.num_shards, self.largest_key)


def plan_layout(hkeys: list[int], planned_bytes: int, shard_config) -> Layout:
    """The layout of a split of these hashed keys and about this many serialized bytes."""
    num_shards = shard_config.get_number_shards(
        total_size=planned_bytes, num_examples=len(hkeys), uses_precise_sharding=False
    )
    return Layout(num_shards, max(hkeys))


def planned_bytes(sizes: Iterable[int]) -> int:
    return sum(size + EXAMPLE_OVERHEAD_BYTES for size in sizes)


# ---------------------------------------------------------------- shard files


def _masked_crc(data) -> int:
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


TFRECORD_FRAMING = 16  # a TFRecord's bytes beyond its data: length and two CRCs


def tfrecord(data: bytes) -> bytes:
    """One TFRecord: length, its masked CRC-32C, the data, its masked CRC-32C (the format
    TensorFlow's TFRecordWriter writes; workers write it without loading TensorFlow)."""
    length = struct.pack("<Q", len(data))
    return b"".join(
        (length, struct.pack("<I", _masked_crc(length)), data, struct.pack("<I", _masked_crc(data)))
    )


def write(path: str, records: Iterable[bytes], file_format: str, at: int | None = None) -> None:
    """Writes a shard file of `records` in order (TFRecord here; other formats by TFDS's
    own adapter, none of which needs TensorFlow). A TFRecord file is continued from its
    first `at` bytes when given, and each record reaches the OS before the next is asked
    for (a checkpoint may flush it from another thread). WorkFolder.keep_shard flushes the whole
    file to disk, off the worker's path."""
    if file_format == "tfrecord":
        with open(path, "r+b" if at is not None else "wb", buffering=0) as f:
            if at is not None:
                f.truncate(at)
                f.seek(at)
            for data in records:
                record = memoryview(tfrecord(data))
                while record:
                    record = record[f.write(record) :]
        return
    assert at is None, "only a TFRecord file can be continued"
    compat.file_adapter(file_format).write_examples(path, ((None, data) for data in records))


def write_whole(target: str, records: Iterable[bytes], file_format: str) -> None:
    """A shard file written by `write`, appearing at `target` only when complete: written
    beside it and moved there, or, in a store, written locally and uploaded."""
    if fileio.is_local(target):
        partial = f"{target}.partial"
        write(partial, records, file_format)
        os.replace(partial, target)
        return
    folder = tempfile.mkdtemp(prefix="i17-shard-")
    try:
        local = os.path.join(folder, "shard")
        write(local, records, file_format)
        fileio.path(target).upload(local)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@dataclass
class Tally:
    """A shard's examples as they go to its file, in hashed-key order (`take`): checked for
    order and duplicate keys, counted."""

    where: str  # the shard, in messages
    num_examples: int = 0
    num_bytes: int = 0  # the serialized examples' (what TFDS's split info counts)
    file_bytes: int = 0  # the TFRecord file's
    last_hkey: int = -1

    def take(self, hkey: int, data: bytes, member: str) -> bytes:
        if hkey <= self.last_hkey:
            raise ConsistencyError(
                f"{self.where}: {member} is out of hashed-key order or a duplicate key: report "
                "this as a bug."
            )
        self.last_hkey = hkey
        self.num_examples += 1
        self.num_bytes += len(data)
        self.file_bytes += TFRECORD_FRAMING + len(data)
        return data
