"""The one job type and the one function that runs it, wherever it runs: a worker process
of the local pool, the build's own process, or a Beam worker.

A job is a list of planned items (or, for a Beam range, the file holding them) and the
readers of their bytes (a source, or the buckets the stream filled). Running it reads each
item's bytes, checks and fixes the image, builds the features and serializes the example
(TFDS's encoder and serializer, map entries in deterministic order), and records what it
left out. A job with an output writes its examples, in hashed-key order, as a shard file.
No TensorFlow is loaded here unless a job decodes its images (`decode`, or `check_decodes`,
which the local build runs on its own threads before handing the job to a worker).
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import json
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from imagenet2017_tfds import compat
from imagenet2017_tfds.engine import bucket_life, shards
from imagenet2017_tfds.engine.work import Checkpoint, Frees, WorkFolder, partial_path
from imagenet2017_tfds.errors import ImageError
from imagenet2017_tfds.ilsvrc import images
from imagenet2017_tfds.ilsvrc.example_dicts import Item
from imagenet2017_tfds.ilsvrc.tasks import Task
from imagenet2017_tfds.internal import codec, faults, fileio
from imagenet2017_tfds.internal.problems import Recorder
from imagenet2017_tfds.report import shards as report_shards
from imagenet2017_tfds.report.numbers import SplitNumbers
from imagenet2017_tfds.sources import Entry


class Reader(Protocol):
    """What a job reads its items' bytes from: a source (an archive, a tree) or the buckets
    the stream filled (buckets.BucketReader). Picklable: paths only."""

    name: str  # in messages

    def read(self, entries: Iterable[Entry]) -> Iterator[tuple[Entry, bytes]]:
        """The bytes of `entries`, in the order given."""


@dataclass(frozen=True)
class Job:
    task: Task  # pickled by name
    split: str
    sources: tuple[Reader, ...]
    items: tuple[tuple[int, Entry, Item], ...]  # (source index, entry, item), in output order
    mode: str  # the build's Recorder mode
    decode: bool = False  # decode every stored image fully (validation, test; train if asked)
    hkeys: tuple[int, ...] = ()  # the items' hashed keys, for a shard (checked, in order)
    output: str | None = None  # the shard file to write; None: the examples are returned
    file_format: str = "tfrecord"
    exclude: frozenset[str] = field(default_factory=frozenset)  # members left out (a rerun)
    recorded: dict = field(default_factory=dict)  # what was recorded of it before (its check)
    resume: Checkpoint | None = None  # how far an earlier run wrote its shard
    frees: Frees | None = None  # the buckets it frees on its way (TFRecord shards)
    # Where its items and their hashed keys are, read where it runs (`loaded`): a Beam job
    # (its range file), so that no pipeline holds a split's annotations.
    items_file: str | None = None
    numbers: bool = False  # feed the report's numbers (report/numbers.py) as it runs

    @property
    def start(self) -> int:
        return self.resume.items if self.resume else 0


_ITEMS_FILE = tuple[tuple[tuple[int, Entry, Item], ...], tuple[int, ...]]


def write_items(path, items: tuple, hkeys: tuple[int, ...]) -> None:
    """A job's items and their hashed keys, in a file any worker reads (`items_file`)."""
    fileio.write_atomic(path, json.dumps(codec.encode((items, hkeys))).encode())


def loaded(job: Job) -> Job:
    """The job with its items read from its `items_file` (if it has one)."""
    if job.items_file is None:
        return job
    items, hkeys = codec.decode(_ITEMS_FILE, json.loads(fileio.path(job.items_file).read_bytes()))
    return dataclasses.replace(job, items=items, hkeys=hkeys, items_file=None)


@dataclass
class Example:
    key: str
    path: str  # the member, in messages
    data: bytes  # the serialized tf.train.Example
    index: int  # its item's place in the job
    fields: dict | None = None  # its feature dict (a job that feeds the report's numbers)


@dataclass
class Written:
    """A shard a job wrote: what the split's info needs, and what the caller must still do."""

    output: str
    num_examples: int
    num_bytes: int
    recorded: dict  # Recorder.to_json() of the job
    numbers: SplitNumbers | None = None  # the report's numbers of its examples (`numbers`)


_FEATURES: dict = {}  # task name -> (features, serializer), made once a process


def _serializer(task: Task):
    if task.name not in _FEATURES:
        features = task.make_features()
        _FEATURES[task.name] = (
            features,
            compat.ExampleSerializer(features.get_serialized_info()),
        )
    return _FEATURES[task.name]


def load_features(task: Task) -> None:
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


def _read(job: Job) -> Iterator[tuple[int, int, Entry, Item, bytes]]:
    """Each item still to run (from `job.start`, not excluded) with its place in the job and
    its bytes, in the job's order; consecutive items of one source are read in one call (one
    open reader, one forward pass for a range of a tarball)."""
    items = [
        (k, i, e, it)
        for k, (i, e, it) in enumerate(job.items)
        if k >= job.start and it.path not in job.exclude
    ]
    start = 0
    while start < len(items):
        source = items[start][1]
        end = start
        while end < len(items) and items[end][1] == source:
            end += 1
        run = items[start:end]
        by_entry = {e: (k, it) for k, _, e, it in run}
        for entry, data in job.sources[source].read([e for _, _, e, _ in run]):
            k, item = by_entry[entry]
            yield k, source, entry, item, data
        start = end


def run(job: Job, recorder: Recorder) -> Iterator[Example]:
    """The job's examples, serialized, in its order; a bad image goes to `recorder` (it
    raises, or the member is skipped and recorded). With `decode` the stored images are
    decoded fully first."""
    for k, source, _entry, item, data in _read(job):
        name = job.sources[source].name
        try:
            ex = features(job.task, item, data, name, job.decode)
        except ImageError as e:
            recorder.problem("image", item.path, e)
            continue
        if ex["image"] is not data:  # re-encoded (images.storable_jpeg): metadata.json lists it
            recorder.notice("reencoded", item.path, images.stored_from(data))
        if faults.point("example-serialized", item.key):
            continue
        yield Example(
            key=item.key,
            path=item.path,
            data=serialize(job.task, ex),
            index=k,
            fields=ex if job.numbers else None,
        )


def numbers_for(job: Job) -> tuple[SplitNumbers, tuple[int, ...] | None] | None:
    """The report's numbers a job feeds (empty), and the devkit's labels they check its
    split against; None: the job feeds none."""
    if not job.numbers:
        return None
    return (
        SplitNumbers(job.split, len(job.task.classes().wnids)),
        report_shards.ground_truth_of(job.split),
    )


def check_decodes(job: Job, stop: threading.Event | None = None) -> Job:
    """Decodes each stored image of a `decode` job fully, as training will; one that does
    not is recorded (raised, unless skip_bad_members). Returns the job left to write: no
    decode, those members excluded, what was recorded in its `recorded`. A set `stop` ends
    it early (the build failed)."""
    recorder = Recorder.from_json(job.recorded, job.mode)
    recorder.quiet = True
    bad = set()
    for _k, source, _entry, item, data in _read(job):
        if stop is not None and stop.is_set():
            break
        where = f"{job.sources[source].name}: {item.path}"
        try:
            images.check_decodes(images.storable_jpeg(data, where), where)
        except ImageError as e:
            recorder.problem("image", item.path, e)
            bad.add(item.path)
    return dataclasses.replace(
        job, decode=False, exclude=job.exclude | bad, recorded=recorder.to_json()
    )


def write_shard(job: Job) -> Written:
    """Runs a shard's job into its file (written beside, then moved into place), from where
    an earlier run's checkpoint says it stopped (`resume`); on the way, checkpoints and
    frees the buckets of `frees`."""
    faults.point("shard-started", job)
    recorder = Recorder.from_json(job.recorded, job.mode)
    recorder.quiet = True
    tally, at = shards.Tally(f"{job.split} shard {job.output}"), None
    if (resume := job.resume) is not None:
        recorder.merge(Recorder.from_json(resume.recorded))
        tally.num_examples, tally.num_bytes = resume.num_examples, resume.num_bytes
        tally.last_hkey, at = resume.last_hkey, resume.file_bytes
        tally.file_bytes = at
    due = bucket_life.Due(job.frees)
    checkpoints = _Checkpoints(job) if due else None
    partial = partial_path(job.output)
    if (feeding := numbers_for(job)) is not None and resume is not None:
        # What an earlier run wrote is read back from the file, up to its checkpoint: the
        # same numbers as if fed then, and no sample image kept in every checkpoint.
        report_shards.feed_from(feeding, partial, job.split, resume.file_bytes, job.output)

    def records():
        for ex in run(job, recorder):
            if names := due.at(ex.index):
                checkpoints.take(
                    Checkpoint(
                        items=ex.index,
                        file_bytes=tally.file_bytes,
                        num_examples=tally.num_examples,
                        num_bytes=tally.num_bytes,
                        last_hkey=tally.last_hkey,
                        recorded=recorder.to_json(),
                    ),
                    names,
                )
            if feeding is not None:
                feeding[0].add(ex.fields, feeding[1], (job.output, tally.num_examples))
            yield tally.take(job.hkeys[ex.index], ex.data, ex.path)

    try:
        shards.write(partial, records(), job.file_format, at)
    except BaseException:
        kept = checkpoints.close(raise_errors=False) if checkpoints else 0
        if not kept and resume is None:  # nothing recorded of it: a rerun writes it anew
            with contextlib.suppress(FileNotFoundError):
                os.unlink(partial)
        raise
    if checkpoints is not None:
        checkpoints.close()
    os.replace(partial, job.output)
    return Written(
        output=job.output,
        num_examples=tally.num_examples,
        num_bytes=tally.num_bytes,
        recorded=recorder.to_json(),
        numbers=feeding[0] if feeding is not None else None,
    )


class _Checkpoints:
    """A thread of the job's process that, for each checkpoint, makes the shard's file
    durable up to it, records it, and only then frees the buckets it covers; the job goes
    on writing meanwhile."""

    def __init__(self, job: Job):
        self.job, self.partial = job, partial_path(job.output)
        self.work = WorkFolder(job.frees.work)
        self._thread = cf.ThreadPoolExecutor(1, thread_name_prefix="i17-checkpoint")
        self._kept: list[cf.Future] = []

    def take(self, checkpoint: Checkpoint, names: list[str]) -> None:
        self._kept.append(
            self._thread.submit(
                keep_checkpoint,
                self.work,
                self.job.split,
                self.job.frees.shard,
                self.partial,
                checkpoint,
                tuple(names),
            )
        )

    def close(self, raise_errors: bool = True) -> int:
        """Waits for the checkpoints; returns how many were recorded. An error is raised,
        unless the job is failing already (its own error is the one to see)."""
        self._thread.shutdown()
        if raise_errors:
            return sum(future.result() for future in self._kept)
        return sum(not f.exception() and f.result() for f in self._kept)


def keep_checkpoint(
    work: WorkFolder,
    split: str,
    shard: int,
    partial: str,
    checkpoint: Checkpoint,
    names: tuple[str, ...],
) -> bool:
    """The file on disk, then its checkpoint, then (once it is recorded) the buckets it
    covers freed."""
    fileio.make_durable([partial])
    if not work.keep_checkpoint(split, shard, checkpoint):
        return False
    for name in names:
        work.free_bucket(name)
    faults.point("checkpoint-kept")
    return True
