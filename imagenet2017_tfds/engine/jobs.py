"""The one job type and the one function that runs it, wherever it runs: a worker process
of the local pool, the build's own process, or a Beam worker.

A job is a list of planned items and the sources holding their bytes. Running it reads each
item's bytes, checks and fixes the image, builds the features and serializes the example
(TFDS's encoder and serializer, map entries in deterministic order), and records what it
left out. A job with an output writes its examples, in hashed-key order, as a shard file.
No TensorFlow is loaded here unless a job decodes its images (`decode`, or `check_decodes`,
which the local build runs on its own threads before handing the job to a worker).
"""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from imagenet2017_tfds import images
from imagenet2017_tfds.engine import shards
from imagenet2017_tfds.errors import ConsistencyError, ImageError
from imagenet2017_tfds.example_dicts import Item
from imagenet2017_tfds.problems import Recorder
from imagenet2017_tfds.sources import Entry, Source
from imagenet2017_tfds.tasks import Task


class Serialized(bytes):
    """An example serialized by `run`: TFDS's encoder and serializer pass it unchanged in a
    Beam build (compat.preserialized)."""


@dataclass(frozen=True)
class Job:
    task: Task  # pickled by name
    split: str
    sources: tuple[Source, ...]  # paths only
    items: tuple[tuple[int, Entry, Item], ...]  # (source index, entry, item), in output order
    mode: str  # the build's Recorder mode
    decode: bool = False  # decode every stored image fully (validation, test; train if asked)
    hkeys: tuple[int, ...] = ()  # the items' hashed keys, for a shard (checked, in order)
    output: str | None = None  # the shard file to write; None: the examples are returned
    file_format: str = "tfrecord"
    exclude: frozenset[str] = field(default_factory=frozenset)  # members left out (a rerun)


@dataclass
class Example:
    key: str
    path: str  # the member, in messages
    data: bytes  # the serialized tf.train.Example


@dataclass
class Written:
    """A shard a job wrote: what the split's info needs, and what the caller must still do."""

    output: str
    num_examples: int
    num_bytes: int
    recorded: dict  # Recorder.to_json() of the job


_FEATURES: dict = {}  # task name -> (features, serializer), made once a process


def _serializer(task: Task):
    if task.name not in _FEATURES:
        from tensorflow_datasets.core import example_serializer

        features = task.make_features()
        _FEATURES[task.name] = (
            features,
            example_serializer.ExampleSerializer(features.get_serialized_info()),
        )
    return _FEATURES[task.name]


def prepare(task: Task) -> None:
    """Loads the task's features and serializer (once a process)."""
    _serializer(task)


def serialize(task: Task, example: dict) -> bytes:
    """One example's tf.train.Example bytes, its feature map in sorted order (TFDS's own
    serializer orders it by the process's hash seed)."""
    features, serializer = _serializer(task)
    proto = serializer.get_tf_example(features.encode_example(example))
    return proto.SerializeToString(deterministic=True)


def features(task: Task, item: Item, data: bytes, source_name: str, decode: bool) -> dict:
    where = f"{source_name}: {item.path}"
    image = images.storable_jpeg(data, where)
    if decode:
        images.check_decodes(image, where)
    ex = task.example(item, image)
    # BBoxFeature wants arrays (or its own BBox type) rather than plain tuples.
    ex["objects"]["bbox"] = [np.asarray(b, np.float64) for b in ex["objects"]["bbox"]]
    return ex


def _read(job: Job) -> Iterator[tuple[int, Entry, Item, bytes]]:
    """Each item with its bytes, in the job's order; consecutive items of one source are
    read in one call (one open reader, one forward pass for a range of a tarball)."""
    items = [(i, e, it) for i, e, it in job.items if it.path not in job.exclude]
    start = 0
    while start < len(items):
        source = items[start][0]
        end = start
        while end < len(items) and items[end][0] == source:
            end += 1
        run = items[start:end]
        by_entry = {e: (k, it) for k, (_, e, it) in enumerate(run)}
        for entry, data in job.sources[source].read([e for _, e, _ in run]):
            k, item = by_entry[entry]
            yield run[k][0], entry, item, data
        start = end


def run(job: Job, recorder: Recorder) -> Iterator[Example]:
    """The job's examples, serialized, in its order; a bad image goes to `recorder` (it
    raises, or the member is skipped and recorded). With `decode` the stored images are
    decoded fully first."""
    for source, _entry, item, data in _read(job):
        name = job.sources[source].name
        try:
            ex = features(job.task, item, data, name, job.decode)
        except ImageError as e:
            recorder.problem("image", item.path, e)
            continue
        yield Example(item.key, item.path, serialize(job.task, ex))


def check_decodes(job: Job, recorder: Recorder, stop: threading.Event | None = None) -> Job:
    """Decodes each stored image of a `decode` job fully, as training will; one that does
    not is recorded in `recorder` (raised, unless skip_bad_members). Returns the job left to
    write: no decode, those members excluded. A set `stop` ends it early (the build failed)."""
    bad = set()
    for source, _entry, item, data in _read(job):
        if stop is not None and stop.is_set():
            break
        where = f"{job.sources[source].name}: {item.path}"
        try:
            images.check_decodes(images.storable_jpeg(data, where), where)
        except ImageError as e:
            recorder.problem("image", item.path, e)
            bad.add(item.path)
    return dataclasses.replace(job, decode=False, exclude=job.exclude | bad)


def write_shard(job: Job) -> Written:
    """Runs a shard's job into its file (written beside, then moved into place)."""
    recorder = Recorder(job.mode, quiet=True)
    written = Written(job.output, 0, 0, {})
    order = dict(zip((it.key for _, _, it in job.items), job.hkeys, strict=True))
    last = [-1]

    def records():
        for ex in run(job, recorder):
            hkey = order[ex.key]
            if hkey <= last[0]:
                raise ConsistencyError(
                    f"{job.split} shard {job.output}: {ex.path} is out of hashed-key order or "
                    "a duplicate key: report this as a bug."
                )
            last[0] = hkey
            written.num_examples += 1
            written.num_bytes += len(ex.data)
            yield ex.data

    partial = f"{job.output}.partial"
    try:
        shards.write(partial, records(), job.file_format)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    os.replace(partial, job.output)
    written.recorded = recorder.to_json()
    return written
