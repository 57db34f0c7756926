"""Distributed generation: each split cut into ranges of members that lie together in the
source, one Beam element per range. A worker reads only its range (seeking through the gzip
index of a tarball, or opening its files in a tree) and calls the same functions as the
single-process path. Range files hold the planned items, so no worker holds a whole split's
annotations and nothing is rebuilt per element.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from etils import epath

from imagenet2017_tfds import codec, fileio, generate, ranges
from imagenet2017_tfds.examples import Item
from imagenet2017_tfds.prepare import Prepared
from imagenet2017_tfds.problems import Recorder
from imagenet2017_tfds.sources import Entry, Source, Tarball
from imagenet2017_tfds.tasks import Task


@dataclass(frozen=True)
class RangeTask:
    task: Task  # pickled by name
    split: str
    source: Source  # picklable: paths only
    range_file: str
    count: int
    mode: str  # the Recorder mode of the build
    decode: bool = False  # decode every image fully (validation, test; train when asked)

    @property
    def problems_file(self) -> str:
        return self.range_file + ".problems"


def write_tasks(prepared: Prepared, task: Task, work_dir, decode_splits: set[str],
                min_ranges: int = 2) -> dict:  # fmt: skip
    """split -> [RangeTask]; the range files go to `work_dir` (storage every worker reads)."""
    work = epath.Path(work_dir)
    tasks = {}
    for split, plan in prepared.splits.items():
        tasks[split] = []
        for part, items in sorted(plan.parts.items()):
            source = prepared.source(part)
            if isinstance(source, Tarball):
                source = Tarball(source.path, source.index_file, parallelization=1, keep_open=True)
            for k, chunk in enumerate(ranges.cut(items, min_ranges)):
                path = work / f"{task.name}-{split}-{part}-{k:05d}.json"
                fileio.write_atomic(path, json.dumps(codec.encode(chunk)).encode())
                rt = RangeTask(task, split, source, str(path), len(chunk),
                               prepared.recorder.mode, split in decode_splits)  # fmt: skip
                epath.Path(rt.problems_file).unlink(missing_ok=True)
                tasks[split].append(rt)
    return tasks


def process(rt: RangeTask):
    """One Beam element: every (key, features) of the range."""
    chunk = json.loads(epath.Path(rt.range_file).read_bytes())
    items = codec.decode(list[tuple[Entry, Item]], chunk)
    recorder = Recorder(rt.mode)
    yield from generate.keyed_examples(rt.task, rt.source, items, recorder, rt.decode)
    if recorder.skipped:  # read back by the launcher after the pipeline
        fileio.write_json(epath.Path(rt.problems_file), recorder.to_json())


def recorded(tasks: dict) -> Recorder:
    """What the workers recorded, from the files they left."""
    out = Recorder()
    for split_tasks in tasks.values():
        for rt in split_tasks:
            found = fileio.read_json(epath.Path(rt.problems_file))
            if found:
                out.merge(Recorder.from_json(found))
    return out


def split_transform(split: str, tasks: list[RangeTask]):
    import apache_beam as beam

    @beam.ptransform_fn
    def _ranges(root):
        return (
            root
            | f"{split}_ranges" >> beam.Create(tasks)
            | f"{split}_spread" >> beam.Reshuffle()
            | f"{split}_examples" >> beam.FlatMap(process)
        )

    return _ranges()
