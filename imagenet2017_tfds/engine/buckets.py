"""Where the stream sets each image's bytes aside until its shard is written.

Each split has 2**bits bucket files; an image goes to the bucket its hashed key's top bits
name. A shard is a range of hashed keys (shards.py), so it reads a few neighbouring buckets,
and a bucket is freed as soon as every shard it serves is written: disk stays near the
archive's size. An image's place is one integer (an Entry's offset): the bucket's number in
the high bits, the offset in the bucket below.
"""

from __future__ import annotations

import math
import os
import queue
import resource
import threading
from collections.abc import Callable, Iterable, Iterator

from imagenet2017_tfds.errors import ConsistencyError
from imagenet2017_tfds.internal import faults
from imagenet2017_tfds.sources.base import Entry

OFFSET_BITS = 40  # a bucket may hold up to 1 TB
HKEY_BITS = 128  # TFDS's hashed keys
BUCKET_BYTES = 32 << 20  # the size aimed at: a few a shard, few enough to keep open
MAX_BITS = 10


def choose_bits(archive_bytes: int, bucket_bytes: int = BUCKET_BYTES) -> int:
    """Buckets a split for archives of this total size: about `bucket_bytes` each for the
    largest split, at most 2**MAX_BITS, and no more than the open-files limit allows."""
    wanted = max(0, math.ceil(math.log2(max(1, archive_bytes / bucket_bytes))))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < limit:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    while wanted > 0 and 3 * (1 << wanted) + 256 > limit:  # three splits, and room to spare
        wanted -= 1
    return min(wanted, MAX_BITS)


def bucket_of(hkey: int, bits: int) -> int:
    return hkey >> (HKEY_BITS - bits)


def pack_place(bucket_id: int, offset: int) -> int:
    return (bucket_id << OFFSET_BITS) | offset


def unpack_place(location: int) -> tuple[int, int]:
    return location >> OFFSET_BITS, location & ((1 << OFFSET_BITS) - 1)


def file_name(bucket_id: int) -> str:
    return f"bucket-{bucket_id:06d}"


class BucketWriter:
    """The writing side, used by the stream: appends an image to its bucket, returns its
    place. The writes run on a thread of their own (os.write releases the GIL), so the
    stream's thread, which every byte passes through, only hands them over."""

    def __init__(self, folder: str, splits: Iterable[str], bits: int, part_index: int = 0):
        self.folder, self.bits = folder, bits
        names = sorted(splits)  # each archive (part) its own buckets: both may hold a split
        first = part_index * len(names)
        self.base = {split: (first + k) << bits for k, split in enumerate(names)}
        self._fds: dict[int, int] = {}
        self._sizes: dict[int, int] = {}
        os.makedirs(folder, exist_ok=True)
        self._writes: queue.SimpleQueue = queue.SimpleQueue()
        self._failed: OSError | None = None
        self._writer = threading.Thread(target=self._write, name="i17-buckets", daemon=True)
        self._writer.start()

    def bucket_id(self, split: str, hkey: int) -> int:
        return self.base[split] + bucket_of(hkey, self.bits)

    def add(
        self,
        split: str,
        hkey: int,
        chunks: Iterable,
        size: int,
        hold: Callable[[], Callable[[], None]] | None = None,
    ) -> int:
        """Appends an image given as buffers of `size` bytes in all. `hold` keeps each
        buffer from being reused until it is written (the stream's tar.Walker.hold); without
        it each buffer is written before the next is taken."""
        faults.point("bucket-add")
        if self._failed is not None:
            raise self._failed
        bucket = self.bucket_id(split, hkey)
        fd = self._fds.get(bucket)
        if fd is None:
            path = os.path.join(self.folder, file_name(bucket))
            fd = self._fds[bucket] = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            self._sizes[bucket] = 0
        offset = self._sizes[bucket]
        for view in chunks:
            if hold is not None:
                self._writes.put((fd, view, hold()))
            else:
                done = threading.Event()
                self._writes.put((fd, view, done.set))
                done.wait()
        self._sizes[bucket] = offset + size
        return pack_place(bucket, offset)

    def _write(self) -> None:
        while (write := self._writes.get()) is not None:
            fd, view, release = write
            try:
                while view and self._failed is None:
                    faults.point("bucket-write")
                    view = view[os.write(fd, view) :]
            except OSError as e:  # a full disk: raised in the stream's thread
                self._failed = e
            finally:
                release()

    def close(self) -> dict[int, int]:
        """Waits for the writes and closes every bucket; returns bucket id -> size. They
        reach the disk later (fileio.make_durable), while the build goes on."""
        if self._writer.is_alive():
            self._writes.put(None)
            self._writer.join()
        try:
            if self._failed is not None:
                raise self._failed
        finally:
            for fd in self._fds.values():
                os.close(fd)
            self._fds = {}
        return dict(self._sizes)


class BucketReader:
    """The reading side, a reader of a job (jobs.Reader): entries whose offsets are places
    in the store."""

    def __init__(self, folder: str, name: str):
        self.folder, self.name = folder, name  # `name`: the archive, in messages

    def read(self, entries: Iterable[Entry]) -> Iterator[tuple[Entry, bytes]]:
        """Each entry's bytes. One bucket is open at a time (a shard's entries come bucket
        after bucket, in hashed-key order): a bucket deleted once read frees its disk space
        at once, not when the whole read ends."""
        fds: dict[int, int] = {}
        try:
            for entry in entries:
                bucket, offset = unpack_place(entry.offset)
                if bucket not in fds:
                    for fd in fds.values():
                        os.close(fd)
                    fds = {bucket: self._open(bucket, entry)}
                data = os.pread(fds[bucket], entry.size, offset)
                if len(data) != entry.size:
                    raise ConsistencyError(
                        f"{self.folder}/{file_name(bucket)}: {entry.path} of {self.name} should "
                        f"be {entry.size} bytes at offset {offset}, found {len(data)}: the build's "
                        "work folder was changed by another program. Delete it and build again."
                    )
                yield entry, data
        finally:
            for fd in fds.values():
                os.close(fd)

    def _open(self, bucket: int, entry: Entry) -> int:
        path = os.path.join(self.folder, file_name(bucket))
        try:
            return os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            raise ConsistencyError(
                f"{path}: the bucket holding {entry.path} of {self.name} is gone: the build's "
                "work folder was changed by another program. Delete it and build again."
            ) from None
