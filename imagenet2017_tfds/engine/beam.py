"""Distributed generation: each split cut into ranges of members that lie together in the
source, one Beam element per range. A worker reads only its range (seeking through the gzip
index of a tarball, or opening its files in a tree) and calls the same functions as the
single-process path. Range files hold the planned items and their hashed keys, so no worker
holds a whole split's annotations and nothing is rebuilt per element.

The examples then reach their shards through files, not through the runner: each bundle's
serialized examples go to one spill file in the build's folder, and only (shard, file,
offsets) records are grouped by the runner. Each shard is then written by the engine's shard
writer (engine/shards.py, as the local build writes it) under TFDS's file name, in the layout
the plan gives (engine/plan.py); what each shard holds comes back through a file.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import apache_beam
from apache_beam.options.pipeline_options import PipelineOptions, TypeOptions
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from imagenet2017_tfds.engine import jobs, plan, prepare, ranges, shards
from imagenet2017_tfds.engine.prepare import Prepared
from imagenet2017_tfds.errors import ConsistencyError
from imagenet2017_tfds.ilsvrc.tasks import Task
from imagenet2017_tfds.internal import collector, fileio
from imagenet2017_tfds.internal.problems import Recorder
from imagenet2017_tfds.report.numbers import SplitNumbers
from imagenet2017_tfds.sources import Tarball


@dataclass(frozen=True)
class Output:
    """Where and how a split's shards are written (pickled to every worker)."""

    split: str
    layout: shards.Layout | None  # None: nothing planned
    template: object  # TFDS's ShardedFileTemplate: the shard files' names, in the build folder
    file_format: str
    results: str  # the file the shards' examples and bytes come back through

    @property
    def spill_dir(self) -> fileio.Path:
        """Where the split's serialized examples wait for their shard: in the build's folder
        (storage every worker reads)."""
        return fileio.path(os.fspath(self.template.data_dir)) / f".spill-{self.split}"

    def shard_file(self, index: int, count: int) -> str:
        return os.fspath(self.template.sharded_filepath(shard_index=index, num_shards=count))


def problems_file(job: jobs.Job) -> str:
    """What a Beam job recorded (a member skipped, an image re-encoded), read back after the
    pipeline."""
    return job.items_file + ".problems"


def numbers_file(job: jobs.Job) -> str:
    """The report's numbers of a Beam job's examples (`numbers`), read back after the
    pipeline. Written when the range is done, whole, under one name: a retried range writes
    the same numbers again, so each range counts once."""
    return job.items_file + ".numbers"


def range_jobs(
    prepared: Prepared,
    task: Task,
    work_dir,
    decode_splits: set[str],
    the_plan: plan.Plan,
    min_ranges: int = 2,
    numbers: bool = False,
) -> dict:
    """split -> [jobs.Job], one a range of the plan's items, each with its range file (the
    items and their hashed keys) in `work_dir` (storage every worker reads)."""
    work = fileio.path(work_dir)
    out = {}
    for split, split_plan in prepared.splits.items():
        hkeys = the_plan.split(split).hkeys_in_item_order()
        out[split], first = [], 0
        for part, items in sorted(split_plan.parts.items()):
            source = prepared.source(part)
            if isinstance(source, Tarball):
                source = Tarball(source.path, source.index_file, parallelization=1, keep_open=True)
            for k, chunk in enumerate(ranges.cut(items, min_ranges)):
                path = work / f"{task.name}-{split}-{part}-{k:05d}.json"
                jobs.write_items(
                    path,
                    tuple((0, e, it) for e, it in chunk),
                    tuple(hkeys[first : first + len(chunk)]),
                )
                first += len(chunk)
                job = jobs.Job(
                    task=task,
                    split=split,
                    sources=(source,),
                    items=(),
                    mode=prepared.recorder.mode,
                    decode=split in decode_splits,
                    items_file=str(path),
                    numbers=numbers,
                )
                fileio.path(problems_file(job)).unlink(missing_ok=True)
                fileio.path(numbers_file(job)).unlink(missing_ok=True)
                out[split].append(job)
    return out


def process(job: jobs.Job):
    """One Beam element: every (hashed key, serialized example) of the range, by the engine's
    job function (the local pool runs the same)."""
    ready = jobs.loaded(job)
    recorder = Recorder(job.mode)
    feeding = jobs.numbers_for(ready)
    for ex in jobs.run(ready, recorder):
        if feeding is not None:
            feeding[0].add(ex.fields, feeding[1])
        yield ready.hkeys[ex.index], ex.data
    if recorder.problems or recorder.notices:  # read back by the launcher after the pipeline
        fileio.write_json(fileio.path(problems_file(job)), recorder.to_json())
    if feeding is not None:  # its sample's images with it: a range's place in a shard is
        # not known here
        fileio.write_json(fileio.path(numbers_file(job)), feeding[0].to_state(images=True))


def recorded(tasks: dict) -> Recorder:
    """What the workers recorded, from the files they left."""
    out = Recorder()
    for split_jobs in tasks.values():
        for job in split_jobs:
            found = fileio.read_json(fileio.path(problems_file(job)))
            if found:
                out.merge(Recorder.from_json(found))
    return out


def merged_numbers(tasks: dict, task: Task) -> dict[str, SplitNumbers]:
    """Each split's report numbers, from the files its ranges left."""
    num_classes = len(task.classes().wnids)
    out = {}
    for split, split_jobs in tasks.items():
        out[split] = SplitNumbers(split, num_classes)
        for job in split_jobs:
            found = fileio.read_json(fileio.path(numbers_file(job)))
            if found is None:
                raise ConsistencyError(
                    f"{numbers_file(job)}: missing or unreadable after the pipeline ended, "
                    f"though its range of {split} was written. Build again; report this if "
                    "it recurs."
                )
            out[split].merge(SplitNumbers.from_state(found))
            fileio.path(numbers_file(job)).unlink(missing_ok=True)
    return out


# ---------------------------------------------------------------- examples to shards, through files

SPILL = ".spill"  # a finished bundle's examples, named by their digest
PARTIAL = ".spill-partial"  # a bundle's examples while it runs, named by its attempt


class SpillExamples(apache_beam.DoFn):
    """Writes a bundle's (hashed key, serialized example) pairs into one spill file and
    yields, per shard, where its records lie: (shard, (file, [(hashed key, offset, length)])).

    Safe under retries: the file is written under a name of its own attempt and, when the
    bundle finishes, renamed to the digest of what it holds. A retried bundle (its worker lost,
    its stage restarted) writes the same examples, so it replaces the failed attempt's file
    with the same bytes instead of adding a second copy; only the records of the attempt that
    finished reach the shards. A killed attempt's partial file is read by nothing and goes with
    the folder when the split is written."""

    def __init__(self, output: Output):
        self.output = output

    def start_bundle(self):
        self.partial, self.file, self.offset, self.records = None, None, 0, defaultdict(list)
        self.digest = hashlib.sha256()

    def process(self, hkey_data):
        hkey, data = hkey_data
        if self.file is None:
            self.output.spill_dir.mkdir(parents=True, exist_ok=True)
            self.partial = self.output.spill_dir / f"{uuid.uuid4().hex}{PARTIAL}"
            self.file = self.partial.open("wb")
        self.file.write(data)
        self.digest.update(data)
        self.records[self.output.layout.shard_of(hkey)].append((hkey, self.offset, len(data)))
        self.offset += len(data)

    def finish_bundle(self):
        if self.file is None:
            return
        self.file.close()
        path = self.output.spill_dir / f"{self.digest.hexdigest()}{SPILL}"
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


def write_shard(shard_spills, output: Output, shard_ids: list[int]) -> tuple[int, int, int]:
    """One shard's examples, in hashed-key order, written by the engine's shard writer under
    TFDS's name, numbered among the shards that got examples (`shard_ids`, sorted): (shard,
    examples, bytes)."""
    shard, spills = shard_spills
    examples = sorted(read_spilled(spills), key=lambda e: e[0])
    target = output.shard_file(shard_ids.index(shard), len(shard_ids))
    tally = shards.Tally(f"{output.split} shard {target}")
    records = (
        tally.take(hkey, data, f"the example of hashed key {hkey}") for hkey, data in examples
    )
    shards.write_whole(target, records, output.file_format)
    return shard, tally.num_examples, tally.num_bytes


def keep_results(written: list, output: Output) -> None:
    fileio.write_json(output.results, sorted(written))


def write_split(examples, output: Output):
    """The split's (hashed key, serialized example) pairs, through spill files, into its
    shards; what each shard holds goes to `output.results`."""
    beam, split = apache_beam, output.split
    grouped = (
        examples
        | f"{split}_spill" >> beam.ParDo(SpillExamples(output))
        | f"{split}_group_spills" >> beam.GroupByKey()
    )
    # The shards that got examples (a skipped member may leave a planned one empty): small.
    shard_ids = (
        grouped
        | f"{split}_shard_ids" >> beam.Keys()
        | f"{split}_list_shard_ids" >> beam.combiners.ToList()
        | f"{split}_sort_shard_ids" >> beam.Map(sorted)
    )
    return (
        grouped
        | f"{split}_write_shards"
        >> beam.Map(write_shard, output, beam.pvalue.AsSingleton(shard_ids))
        | f"{split}_collect" >> beam.combiners.ToList()
        | f"{split}_keep" >> beam.Map(keep_results, output)
    )


def read_results(output: Output) -> list[tuple[int, int]]:
    """(examples, bytes) of each shard written, in order; the spill files and the results
    file go."""
    found = fileio.read_json(output.results)
    if found is None:
        raise ConsistencyError(
            f"{output.results}: missing or unreadable after the pipeline ended: the shards of "
            f"{output.split} were not all written. Build again; report this if it recurs."
        )
    fileio.path(output.results).unlink(missing_ok=True)
    if output.spill_dir.exists():
        output.spill_dir.rmtree()
    return [(n, size) for _, n, size in found]


def build(
    manual_dir,
    task: Task,
    cache_dir: str,
    recorder: Recorder,
    allow_unverified: bool,
    decoded: Callable[[Iterable[str]], frozenset[str]],
    template: Callable,
    file_format: str,
    download_config,
    numbers: bool = False,
) -> tuple[Prepared, dict, dict[str, SplitNumbers] | None]:
    """A Beam build: the inputs prepared (located, verified, planned), then the pipeline of
    the plan, on the download config's runner and options: each split's ranges read, their
    examples written into the split's shards under TFDS's names (`template(split)`: TFDS's
    ShardedFileTemplate). Returns what was prepared and split -> [(examples, bytes)] of each
    shard written, and with `numbers` each split's report numbers (report/numbers.py,
    computed as the ranges run); what the workers recorded goes to `recorder`."""
    prepared = prepare.run(manual_dir, task, cache_dir, allow_unverified, recorder)
    collector.freeze_settled()
    the_plan = plan.make(prepared, task, download_config.get_shard_config())
    work = fileio.path(cache_dir) / "ranges"  # in a store too: every worker reads it
    outputs = {}
    for split in prepared.splits:
        outputs[split] = Output(
            split=split,
            layout=the_plan.split(split).layout,
            template=template(split),
            file_format=file_format,
            results=str(work / f"{task.name}-{split}-shards.json"),
        )
        fileio.path(outputs[split].results).unlink(missing_ok=True)
    tasks = range_jobs(prepared, task, work, decoded(prepared.splits), the_plan, numbers=numbers)
    options = download_config.beam_options or PipelineOptions()
    # Beam's type checks cannot follow a DoFn that yields windowed values (as TFDS says too).
    options.view_as(TypeOptions).pipeline_type_check = False
    beam = apache_beam
    with beam.Pipeline(runner=download_config.beam_runner, options=options) as root:
        for split, output in outputs.items():
            # Create spreads its elements over the workers itself (a Reshuffle when there are
            # two or more): a second one here would only shuffle the ranges again.
            examples = (
                root
                | f"{split}_ranges" >> beam.Create(tasks[split])
                | f"{split}_examples" >> beam.FlatMap(process)
            )
            write_split(examples, output)
    written = {split: read_results(o) for split, o in outputs.items()}
    recorder.merge(recorded(tasks))
    return prepared, written, merged_numbers(tasks, task) if numbers else None
