"""Distributed generation: each split cut into ranges of members that lie together in the
source, one Beam element per range. A worker reads only its range (seeking through the gzip
index of a tarball, or opening its files in a tree) and calls the same functions as the
single-process path. Range files hold the planned items, so no worker holds a whole split's
annotations and nothing is rebuilt per element.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from etils import epath

from imagenet2017_tfds import examples, fileio, generate
from imagenet2017_tfds.annotations import Annotation
from imagenet2017_tfds.prepare import Prepared
from imagenet2017_tfds.sources import Entry, Source, Tarball

RANGE_BYTES = 16 << 20  # small elements: DirectRunner multi_processing silently drops
# output of elements yielding hundreds of MB (seen here; the completeness check catches it)


@dataclass(frozen=True)
class RangeTask:
    config: str
    split: str
    source: Source  # picklable: paths only
    range_file: str
    count: int
    skip_bad_members: bool = False

    @property
    def skipped_file(self) -> str:
        return self.range_file + ".skipped"


def _item_json(entry: Entry, item: examples.Item) -> list:
    ann = item.annotation.to_json() if item.annotation is not None else None
    return [
        [entry.offset, entry.path, entry.size],
        [item.key, item.path, item.file_name, item.label, ann, item.blacklisted],
        sorted(item.blacklisted_wnids),
    ]


def _item_from_json(value: list) -> tuple[Entry, examples.Item]:
    (offset, path, size), (key, ipath, name, label, ann, black), wnids = value
    annotation = Annotation.from_json(ann) if ann is not None else None
    return Entry(offset, path, size), examples.Item(
        key, ipath, name, label, annotation, black, frozenset(wnids)
    )


def range_count(items: list, min_ranges: int) -> int:
    total = sum(e.size for e, _ in items)
    return max(1, min(len(items), max(min_ranges, math.ceil(total / RANGE_BYTES))))


def write_tasks(
    prepared: Prepared, config: str, work_dir, min_ranges: int = 2, skip_bad_members: bool = False
) -> dict:
    """split -> [RangeTask]; the range files go to `work_dir` (storage every worker reads)."""
    work = epath.Path(work_dir)
    tasks = {}
    for split, plan in prepared.splits.items():
        source = prepared.source(split)
        if isinstance(source, Tarball):
            source = Tarball(source.path, source.index_file, parallelization=1)
        n = range_count(plan.items, min_ranges)
        bounds = [round(i * len(plan.items) / n) for i in range(n + 1)]
        tasks[split] = []
        for k in range(n):
            chunk = plan.items[bounds[k] : bounds[k + 1]]
            path = work / f"{config}-{split}-{k:05d}.json"
            fileio.write_atomic(path, json.dumps([_item_json(e, i) for e, i in chunk]).encode())
            task = RangeTask(config, split, source, str(path), len(chunk), skip_bad_members)
            epath.Path(task.skipped_file).unlink(missing_ok=True)
            tasks[split].append(task)
    return tasks


def process(task: RangeTask):
    """One Beam element: every (key, features) of the range."""
    items = [_item_from_json(v) for v in json.loads(epath.Path(task.range_file).read_bytes())]
    skipped: list | None = [] if task.skip_bad_members else None
    yield from generate.keyed_examples(task.config, task.source, items, skipped)
    if skipped:  # read back by the launcher after the pipeline
        fileio.write_json(epath.Path(task.skipped_file), skipped)


def skipped_members(tasks: dict) -> dict[str, list]:
    """split -> what the workers skipped, from the files they left."""
    out = {}
    for split, split_tasks in tasks.items():
        out[split] = []
        for task in split_tasks:
            found = fileio.read_json(epath.Path(task.skipped_file))
            out[split].extend(tuple(s) for s in found or ())
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
