"""The one read of a tarball: decompressed on rapidgzip's threads, its tar headers walked
here, each image's bytes set aside in its bucket, annotations and lists parsed as they pass.

This thread is what every byte passes through (the serial part of a build), so it does no
more per member than a header, a hash of the key and one write. The archive's md5 is taken
beside it by a reader paced just behind (checksums.Pace), so the disk serves one pass.
"""

from __future__ import annotations

from collections.abc import Callable

from tensorflow_datasets.core import hashing  # no TensorFlow behind it

from imagenet2017_tfds import catalog, layout
from imagenet2017_tfds.engine.buckets import Store
from imagenet2017_tfds.sources import Entry, Tarball, tar
from imagenet2017_tfds.sources.base import release_path
from imagenet2017_tfds.tasks import Task

Progress = Callable[[int], None]  # compressed bytes read since the last call


def hashers(task: Task) -> dict[str, hashing.Hasher]:
    """split -> TFDS's hasher of its keys (salted by the split's name, as TFDS's writers are)."""
    return {split: hashing.Hasher(split) for split, _ in task.items.values()}


def read_once(
    source: Tarball, task: Task, store: Store, progress: Progress | None = None,
    on_position: Callable[[int], None] | None = None,
) -> catalog.Catalog:  # fmt: skip
    """Every member of `source` once: images of `task` into `store` (their entries' offsets
    are their places there), everything else a catalog keeps parsed. `on_position` gets the
    compressed bytes read so far (the paced digest follows it)."""
    cat = catalog.Cataloguer(source.name)
    hasher = hashers(task)
    splits = {d: split for d, (split, _) in task.items.items()}
    with source.stream(progress, on_position) as f:
        for header in tar.headers(f, source.name):
            path = release_path(header.name) if header.regular else None
            role = layout.classify(path) if path is not None else None
            if role is None:
                continue
            if role.kind != "image":
                cat.add(
                    Entry(header.offset, path, header.size), tar.read_data(f, header, source.name)
                )
                continue
            split = splits.get(role.split_dir) if role.challenge == task.challenge else None
            if split is None:  # another challenge's images: not this build's
                continue
            data = tar.read_data(f, header, source.name)
            hkey = hasher[split].hash_key(task.key(split, path))
            cat.add(Entry(store.add(split, hkey, data), path, header.size), None)
    return cat.so_far()
