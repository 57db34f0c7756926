"""Distributed generation: each split cut into ranges of members that lie together in the
source, one Beam element per range. A worker reads only its range (seeking through the gzip
index of a tarball, or opening its files in a tree) and calls the same functions as the
single-process path. Range files hold the planned items, so no worker holds a whole split's
annotations and nothing is rebuilt per element.

The examples then reach their shards through files, not through the runner
(`write_through_files`): each bundle's serialized examples go to one spill file in the build's
folder, and only (shard, file, offsets) records are grouped by the runner.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections import defaultdict
from dataclasses import dataclass

import apache_beam
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from imagenet2017_tfds import codec, fileio, ranges
from imagenet2017_tfds.engine import jobs, shards
from imagenet2017_tfds.errors import ConsistencyError
from imagenet2017_tfds.example_dicts import Item
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
    mode: str  # the Recorder mode of the build
    decode: bool = False  # decode every image fully (validation, test; train when asked)

    @property
    def problems_file(self) -> str:
        return self.range_file + ".problems"


def write_tasks(prepared: Prepared, task: Task, work_dir, decode_splits: set[str],
                min_ranges: int = 2) -> dict:  # fmt: skip
    """split -> [RangeTask]; the range files go to `work_dir` (storage every worker reads)."""
    work = fileio.path(work_dir)
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
                rt = RangeTask(task, split, source, str(path), prepared.recorder.mode,
                               split in decode_splits)  # fmt: skip
                fileio.path(rt.problems_file).unlink(missing_ok=True)
                tasks[split].append(rt)
    return tasks


def writer_plans(prepared: Prepared) -> dict[str, tuple[list[str], int]]:
    """split -> (the key of every planned example, its estimated serialized bytes): what TFDS's
    Beam writer needs to lay out the shards before any example exists (compat)."""
    return {
        split: ([item.key for _, item in plan.items],
                shards.planned_bytes(entry.size for entry, _ in plan.items))
        for split, plan in prepared.splits.items()
    }  # fmt: skip


def process(rt: RangeTask):
    """One Beam element: every (key, serialized example) of the range, by the engine's job
    function (the local pool runs the same)."""
    chunk = json.loads(fileio.path(rt.range_file).read_bytes())
    items = codec.decode(list[tuple[Entry, Item]], chunk)
    recorder = Recorder(rt.mode)
    job = jobs.Job(rt.task, rt.split, (rt.source,), tuple((0, e, it) for e, it in items),
                   rt.mode, rt.decode)  # fmt: skip
    for ex in jobs.run(job, recorder):
        yield ex.key, jobs.Serialized(ex.data)
    if recorder.problems:  # read back by the launcher after the pipeline
        fileio.write_json(fileio.path(rt.problems_file), recorder.to_json())


def recorded(tasks: dict) -> Recorder:
    """What the workers recorded, from the files they left."""
    out = Recorder()
    for split_tasks in tasks.values():
        for rt in split_tasks:
            found = fileio.read_json(fileio.path(rt.problems_file))
            if found:
                out.merge(Recorder.from_json(found))
    return out


# ---------------------------------------------------------------- examples to shards, through files

SPILL = ".spill"  # a finished bundle's examples, named by their digest
PARTIAL = ".spill-partial"  # a bundle's examples while it runs, named by its attempt


def spill_dir(writer) -> fileio.Path:
    """Where a split's serialized examples wait for their shard: in the build's folder."""
    return writer.data_dir / f".spill-{writer.split}"


def remove_spill_dir(writer) -> None:
    """Once the split's shards are written (compat.PlannedBeamWriter.finalize)."""
    folder = spill_dir(writer)
    if folder.exists():
        folder.rmtree()


class SpillExamples(apache_beam.DoFn):
    """Serializes a bundle's examples into one spill file and yields, per shard, where its
    records lie: (shard, (file, [(hashed key, offset, length)])).

    Safe under retries: the file is written under a name of its own attempt and, when the
    bundle finishes, renamed to the digest of what it holds. A retried bundle (its worker lost,
    its stage restarted) writes the same examples, so it replaces the failed attempt's file
    with the same bytes instead of adding a second copy; only the records of the attempt that
    finished reach the shards. A killed attempt's partial file is read by nothing and goes with
    the folder when the split is written."""

    def __init__(self, writer):
        self.writer = writer  # compat.PlannedBeamWriter

    def start_bundle(self):
        self.partial, self.file, self.offset, self.records = None, None, 0, defaultdict(list)
        self.digest = hashlib.sha256()

    def process(self, key_example):
        hkey, data = self.writer.serialize(key_example)
        if self.file is None:
            spill_dir(self.writer).mkdir(parents=True, exist_ok=True)
            self.partial = spill_dir(self.writer) / f"{uuid.uuid4().hex}{PARTIAL}"
            self.file = self.partial.open("wb")
        self.file.write(data)
        self.digest.update(data)
        self.records[self.writer.shard_of(hkey)].append((hkey, self.offset, len(data)))
        self.offset += len(data)

    def finish_bundle(self):
        if self.file is None:
            return
        self.file.close()
        path = spill_dir(self.writer) / f"{self.digest.hexdigest()}{SPILL}"
        self.partial.replace(path)
        for shard, records in self.records.items():
            value = (shard, (str(path), records))
            yield WindowedValue(value, MIN_TIMESTAMP, [GlobalWindow()])


def read_spilled(spills) -> list[tuple[int, bytes]]:
    """A shard's (hashed key, serialized example) pairs, read back from the spill files."""
    examples = []
    for path, records in spills:
        with fileio.path(path).open("rb") as f:
            for hkey, offset, length in sorted(records, key=lambda r: r[1]):
                f.seek(offset)
                data = f.read(length)
                if len(data) != length:
                    raise ConsistencyError(
                        f"{path}: expected {length} bytes at offset {offset}, found {len(data)}: "
                        "a spill file of this build was truncated or replaced; build again."
                    )
                examples.append((hkey, data))
    return examples


def write_through_files(writer, examples):
    """TFDS's writer (compat.PlannedBeamWriter) with its examples going through files."""
    beam = apache_beam

    def write_shard(shard_spills, shard_ids):
        shard, spills = shard_spills
        return writer.write_shard(shard, read_spilled(spills), shard_ids)

    grouped = (
        examples
        | "SpillExamples" >> beam.ParDo(SpillExamples(writer))
        | "GroupSpills" >> beam.GroupByKey()
    )
    # The shards that got examples (a skipped member may leave a planned one empty): small.
    shard_ids = (
        grouped
        | "ShardIds" >> beam.Keys()
        | "ListShardIds" >> beam.combiners.ToList()
        | "SortShardIds" >> beam.Map(sorted)
    )
    return (
        grouped
        | "WriteShards" >> beam.Map(write_shard, beam.pvalue.AsSingleton(shard_ids))
        | "CollectShardInfo" >> beam.combiners.ToList()
        | "StoreSplitInfo" >> beam.Map(writer.store_split_info)
    )


def split_transform(split: str, tasks: list[RangeTask]):
    beam = apache_beam

    @beam.ptransform_fn
    def _ranges(root):
        return (
            root
            | f"{split}_ranges" >> beam.Create(tasks)
            | f"{split}_spread" >> beam.Reshuffle()
            | f"{split}_examples" >> beam.FlatMap(process)
        )

    return _ranges()
