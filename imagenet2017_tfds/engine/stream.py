"""The one read of a tarball in a build: one walk of it (sources.Tarball.walk: decompressed on
rapidgzip's threads, its tar headers walked on this one), each image's bytes written from the
walk's buffers into its bucket, annotations and lists parsed as they pass.

This thread is what every byte passes through (the serial part of a build), so it does no
more per member than a header and a hash of the key: the image's bytes go from rapidgzip's
output into the walk's buffers and from there, held (Walk.hold), to the bucket writer's
thread. The archive's md5 is taken beside it by a reader paced just behind
(checksums.DigestPace), so the disk serves one pass.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

from imagenet2017_tfds import compat
from imagenet2017_tfds.engine.buckets import BucketWriter
from imagenet2017_tfds.ilsvrc import catalog, roles
from imagenet2017_tfds.ilsvrc.tasks import Task
from imagenet2017_tfds.internal import faults
from imagenet2017_tfds.sources import Entry, Tarball

Progress = Callable[[int], None]  # compressed bytes read so far
BUFFERS = 4  # the walk's: the bucket writer writes from some while the stream fills another
TRIM_EVERY = 256 << 20  # decompressed bytes between two returns of freed memory to the OS


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    return getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc's; other C libraries: none


def release_freed_memory() -> None:
    """Returns to the OS the pages glibc's allocator holds freed. rapidgzip's threads also
    allocate through glibc, whose arenas keep what they free, more or less as the threads draw
    them; trimmed every TRIM_EVERY, a build's memory stays flat however large the archive (peak
    RSS within 3.9 % from 0.5 to 2 GB: bench/results-engine-2026-12-06b.json)."""
    if (trim := _malloc_trim()) is not None:
        trim(0)


def hashers(task: Task) -> dict[str, compat.Hasher]:
    """split -> TFDS's hasher of its keys (salted by the split's name, as TFDS's writers are)."""
    return {split: compat.Hasher(split) for split, _ in task.items.values()}


def read_once(
    source: Tarball,
    task: Task,
    store: BucketWriter,
    progress: Progress | None = None,
    on_position: Callable[[int], None] | None = None,
) -> catalog.Catalog:
    """Every member of `source` once, in one walk of it: images of `task` into `store` (their
    entries' offsets are their places there), everything else a catalog keeps parsed.
    `on_position` gets the compressed bytes read so far (the paced digest follows it)."""
    faults.point("archive-read", source)
    cat = catalog.Cataloguer(source.name)
    hasher = hashers(task)
    splits = {d: split for d, (split, _) in task.items.items()}
    trimmed = 0

    def reached(far: int) -> None:  # every tarball.TELL_EVERY bytes of the tar stream
        nonlocal trimmed
        if progress:
            progress(far)
        if on_position:
            on_position(far)
        if walk.position - trimmed >= TRIM_EVERY:
            trimmed = walk.position
            release_freed_memory()

    # No gzip index: the build reads its images from the buckets, never from the archive.
    with source.walk(buffers=BUFFERS, on_position=reached, keep_index=False) as walk:
        for member in walk:
            path = member.path
            role = roles.classify(path)
            if role is None:
                continue
            if role.kind != "image":
                cat.add(Entry(member.offset, path, member.size), walk.read(member))
                continue
            split = splits.get(role.split_dir) if role.challenge == task.challenge else None
            if split is None:  # another challenge's images: not this build's
                continue
            hkey = hasher[split].hash_key(task.key(split, path))
            place = store.add(split, hkey, walk.chunks(member), member.size, walk.hold)
            cat.add(Entry(place, path, member.size), None)
        if progress:
            progress(walk.compressed())
    return cat.so_far()
