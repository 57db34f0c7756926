"""A build on one machine: each archive read once into buckets, the plan, then every shard
built and written by the pool, resumably.

    stream (one read of each tarball, md5 beside it) -> plan -> full decodes of validation
    and test on threads here, beside the shard jobs on the workers -> each shard recorded,
    its buckets freed

The caller (the builder) links the finished shards into TFDS's folder and sets the splits.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import dataclasses
import errno
import os
import sys
import threading
from dataclasses import dataclass, field

from imagenet2017_tfds.engine import bucket_life, buckets, jobs, pool, prepare, stream
from imagenet2017_tfds.engine import plan as plan_lib
from imagenet2017_tfds.engine.work import Shard, WorkFolder
from imagenet2017_tfds.errors import DiskSpaceError
from imagenet2017_tfds.ilsvrc import catalog, checksums
from imagenet2017_tfds.ilsvrc.tasks import Task
from imagenet2017_tfds.internal import collector, faults, fileio, store
from imagenet2017_tfds.internal.problems import Recorder
from imagenet2017_tfds.report import shards as report_shards
from imagenet2017_tfds.report.numbers import SplitNumbers
from imagenet2017_tfds.sources import Source, Tarball


@dataclass
class Options:
    allow_unverified: bool = False
    decode_splits: frozenset[str] = frozenset({"validation", "test"})
    workers: int = 1
    file_format: str = "tfrecord"
    shard_config: object = None  # TFDS's ShardConfig
    data_dir: str | None = None  # where the dataset goes (its free space is checked)
    skip_space_check: bool = False
    scratch_dir: str | None = None  # local: the work folder's parent (else the cache dir)
    bucket_bytes: int = buckets.BUCKET_BYTES  # the size of bucket aimed at (buckets.choose_bits)
    digest_ahead: int = checksums.DIGEST_AHEAD  # how far a digest may read before its stream
    numbers: bool = False  # the report's numbers computed as the shards are written


@dataclass
class LocalBuild:
    prepared: prepare.Prepared
    work: WorkFolder
    shards: dict[str, list[Shard]] = field(default_factory=dict)  # split -> non-empty, in order
    numbers: dict[str, SplitNumbers] | None = None  # split -> the report's numbers (`numbers`)

    def shard_file(self, shard: Shard) -> str:
        return self.work.shard_file(shard.split, shard.shard, self.suffix)

    suffix: str = "tfrecord"


def link_into(built: LocalBuild, targets) -> dict[str, list[tuple[int, int]]]:
    """Links each split's finished shards to `targets(split, count)` (the dataset's file names),
    then removes the work folder (the dataset holds its own links to the shards now). Returns
    split -> (examples, bytes) of each shard."""
    written = {}
    for split, shards in built.shards.items():
        for shard, target in zip(
            shards, targets(split, len(shards)) if shards else [], strict=True
        ):
            fileio.link_or_copy(built.shard_file(shard), target)
            faults.point("shard-placed", target)
        written[split] = [(s.num_examples, s.num_bytes) for s in shards]
    built.work.remove()
    return written


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _identity(found, cats_of_trees: dict[str, catalog.Catalog]) -> dict:
    out = {}
    for part, source in sorted(found.parts.items()):
        if isinstance(source, Tarball):
            out[part] = fileio.stat_key(source.path)
        else:  # a tree: what it holds (its files' paths and sizes)
            entries = sorted(
                (e.path, e.size)
                for table in cats_of_trees[part].images.values()
                for e in table.values()
            )
            out[part] = {"tree": source.name, "entries": fileio.digest_json(entries)}
    return out


def _bucket_bits(found, bucket_bytes: int) -> int:
    # A test's smaller buckets, for a build it runs as a user does (faults.py).
    bucket_bytes = faults.point("bucket-bytes") or bucket_bytes
    return buckets.choose_bits(sum(p.stat().length for p in found.tarballs.values()), bucket_bytes)


def _streams(
    found,
    task: Task,
    work: WorkFolder,
    verifiers: dict,
    bits: int,
    recorder: Recorder,
    digest_ahead: int,
) -> tuple[dict[str, catalog.Catalog], dict]:
    """The catalog of every tarball part: reused from an earlier run of this build, or read
    once now (its digest beside it; a mismatch stops the build before anything is written).
    Also, for each part read now, its buckets' sizes by name (for _keep_streams)."""
    tarballs = sorted(found.tarballs)
    paces = {part: checksums.DigestPace(digest_ahead) for part in verifiers}
    with contextlib.ExitStack() as stack:
        # An archive in a store: its digest and its stream share the blocks fetched, so one
        # pass fetches it once (a local one is served twice by the page cache).
        shared = {
            part: stack.enter_context(store.shared_pass(found.tarballs.get(part))) for part in paces
        }
        return _stream_all(
            found,
            task,
            work,
            bits,
            recorder,
            tarballs,
            paces,
            shared,
            prepare.Verification(verifiers, paces),
        )


def _stream_all(found, task, work, bits, recorder, tarballs, paces, shared, verification):
    cats, fresh = {}, {}
    try:
        for index, part in enumerate(tarballs):
            source = found.parts[part]
            if (cat := work.streamed(part)) is not None:
                _say(f"{source.name}: read by an earlier run of this build; reusing it.")
                cats[part] = cat
                if part in paces:
                    if shared[part] is not None:
                        shared[part].alone()
                    paces[part].release()
                continue
            splits = [split for split, _ in task.items.values()]
            into = buckets.BucketWriter(work.buckets, splits, bits, part_index=index)
            pace = paces.get(part)
            size = source.path.stat().length
            with prepare.progress_bar(f"Reading {source.name}", size, "B") as bar:
                try:
                    cat = stream.read_once(
                        source,
                        task,
                        into,
                        lambda far, bar=bar: bar.update(far - bar.n),
                        pace.advance if pace else None,
                    )
                except BaseException:
                    if pace:
                        pace.cancel()
                    raise
                finally:
                    sizes = into.close()
                    if shared.get(part) is not None:  # the digest reads on alone
                        shared[part].alone()
            if pace:
                pace.release()
            cats[part] = cat
            fresh[part] = {buckets.file_name(b): n for b, n in sizes.items()}
    finally:
        verification.join(recorder)  # a digest mismatch outranks whatever the stream found
    return cats, fresh


def _keep_streams(work: WorkFolder, cats: dict[str, catalog.Catalog], fresh: dict) -> None:
    for part, sizes in fresh.items():  # complete: the stream and its digest are done
        fileio.make_durable(os.path.join(work.buckets, name) for name in sizes)
        work.keep_stream(part, cats[part], sizes)
    faults.point("streams-kept")


# Bytes a build writes for each byte of its inputs, at its peak: the buckets (the images,
# which gzip barely shrinks) and the shards in flight, with the buckets behind them until a
# checkpoint frees them (TFRecord) or the shard is complete (ArrayRecord cannot be continued).
# Each rounds up bench/engine.py's peak_disk_vs_archive on the 1.6 GB corpus: 1.05 with the
# checkpoints (bench/results-engine-2026-12-06b.json), 1.13 with the buckets kept until the
# shard is complete (bench/results-engine-2026-12-06.json).
DISK_PER_INPUT_BYTE = {"tfrecord": 1.1, "array_record": 1.15}


def _free(folder: str) -> tuple[str, int]:
    """The folder's nearest existing ancestor and its free bytes."""
    if (given := faults.point("disk-free", folder)) is not None:
        return given
    path = os.path.abspath(folder)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    st = os.statvfs(path)
    return path, st.f_bavail * st.f_frsize


def check_space(found, work: WorkFolder, options: Options, tree_bytes: int) -> None:
    """Stops before the first byte is read when a folder the build writes to cannot hold
    what it will write: the work folder (buckets, shards) and, on another file system, the
    dataset's folder (the shards, linked there when both are on one)."""
    inputs = sum(p.stat().length for p in found.tarballs.values()) + tree_bytes
    done = sum(  # what an earlier run of this build left (a resumed build needs less)
        os.path.getsize(os.path.join(top, f)) for top, _, files in os.walk(work.root) for f in files
    )
    per_byte = DISK_PER_INPUT_BYTE.get(options.file_format, max(DISK_PER_INPUT_BYTE.values()))
    need = {work.root: max(0, int(inputs * per_byte) - done)}
    data_dir = options.data_dir
    if data_dir and fileio.is_local(data_dir):
        here, there = _free(work.root)[0], _free(data_dir)[0]
        if os.stat(here).st_dev != os.stat(there).st_dev:
            need[data_dir] = inputs
    short = []
    for folder, wanted in need.items():
        at, free = _free(folder)
        if free < wanted:
            short.append(
                f"{folder} needs about {wanted / 1e9:.1f} GB, {at} has {free / 1e9:.1f} GB free"
            )
    if short:
        raise DiskSpaceError(
            f"imagenet2017: not enough disk space for this build ({'; '.join(short)}). Free "
            "some, or point --data_dir / --download_dir elsewhere; to go on anyway, build with "
            '--config \'{"name": "...", "skip_space_check": true}\'.'
        )


@contextlib.contextmanager
def _out_of_space(work: WorkFolder):
    """A disk that fills mid-build all the same (another program): the package's error, the
    folder named; what is complete stays for the rerun."""
    try:
        yield
    except OSError as e:
        if e.errno != errno.ENOSPC:
            raise
        where = e.filename or work.root
        raise DiskSpaceError(
            f"{where}: no space left on the device while the build wrote it. Free some space "
            "and run the same command again: what is complete is kept and reused."
        ) from None


def build(manual_dir, task: Task, cache_dir, recorder: Recorder, options: Options) -> LocalBuild:
    found = prepare.locate(manual_dir, task, cache_dir)
    scanned: dict[str, catalog.Catalog] = {}  # source name -> catalog: a tree serving
    tree_cats = {}  # several parts is walked once
    for part, source in found.parts.items():
        if not isinstance(source, Tarball):
            if source.name not in scanned:
                scanned[source.name] = catalog.scan(source)
            tree_cats[part] = scanned[source.name]
    settings = {
        "task": task.name,
        "mode": recorder.mode,
        "decode": sorted(options.decode_splits),
        "format": options.file_format,
        "shards": repr(options.shard_config),
        "numbers": options.numbers,
    }
    work = WorkFolder.for_build(
        options.scratch_dir or cache_dir, task.name, _identity(found, tree_cats), settings
    )
    if not options.skip_space_check:
        tree_bytes = sum(
            e.size
            for part, c in tree_cats.items()
            if found.archives[part].split_dirs
            for table in c.images.values()
            for e in table.values()
        )
        check_space(found, work, options, tree_bytes)
    with _out_of_space(work):
        return bucket_life.with_buckets_again(
            work,
            recorder,
            lambda: _build(found, task, cache_dir, recorder, options, work, tree_cats),
        )


def _build(found, task, cache_dir, recorder, options, work, tree_cats) -> LocalBuild:
    # The workers start now, so they are ready when the archives have been read.
    executor = pool.Pool(options.workers, (task.name,)) if options.workers > 1 else None
    try:
        if executor is not None:
            executor.start()
        return _read_plan_write(
            found, task, cache_dir, recorder, options, work, tree_cats, executor
        )
    finally:
        if executor is not None:
            executor.close()


def _read_plan_write(
    found, task, cache_dir, recorder, options, work, tree_cats, executor: pool.Pool | None
) -> LocalBuild:
    verified: dict[str, str] = {}
    todo = prepare.verifiers(found, cache_dir, options.allow_unverified, recorder, verified)
    bits = _bucket_bits(found, options.bucket_bytes)
    streamed, fresh = _streams(found, task, work, todo, bits, recorder, options.digest_ahead)
    # What reaches the disk and is recorded, in order, on a thread beside the build: the
    # streams' buckets and records (beside the plan: at the end of the stream the page cache
    # may hold all the buckets of a small archive, a second's flush), then each shard.
    keeper = cf.ThreadPoolExecutor(1, thread_name_prefix="i17-keep")
    try:
        streams_kept = keeper.submit(_keep_streams, work, streamed, fresh)
        cats = {**tree_cats, **streamed}
        collector.freeze_settled()
        prepare.record_catalog_problems(cats, found, recorder)
        prepared = prepare.plan(found, task, cats, verified, recorder, once=tuple(found.tarballs))
        the_plan = work.plan()
        if the_plan is None or not the_plan.fits(prepared):
            the_plan = plan_lib.make(prepared, task, options.shard_config)
            keeper.submit(work.keep_plan, the_plan)
        sources = {
            part: buckets.BucketReader(work.buckets, source.name)
            if isinstance(source, Tarball)
            else source
            for part, source in found.parts.items()
        }
        per_split = _shard_jobs(the_plan, prepared, task, sources, work, recorder, options)
        collector.freeze_settled()
        built = LocalBuild(prepared, work, suffix=options.file_format)
        _write_shards(built, task, per_split, recorder, options, executor, keeper, streams_kept)
        return built
    finally:
        keeper.shutdown()  # what was handed over is kept, also if the build fails


@dataclass
class _Planned:
    job: jobs.Job
    reads: bucket_life.Reads


def _shard_jobs(
    the_plan: plan_lib.Plan,
    prepared,
    task: Task,
    sources: dict[str, Source],
    work: WorkFolder,
    recorder,
    options: Options,
) -> dict[str, list[_Planned]]:
    """split -> its shards' jobs, in the plan's order."""
    parts = sorted(sources)
    index = {part: k for k, part in enumerate(parts)}
    out = {}
    for split_shards in the_plan.splits:
        split = split_shards.split
        items = [
            (part, e, it)
            for part, pairs in sorted(prepared.splits[split].parts.items())
            for e, it in pairs
        ]
        planned = []
        for sp in split_shards.shards:
            chosen = [items[k] for k in sp.items]
            job = jobs.Job(
                task=task,
                split=split,
                sources=tuple(sources[p] for p in parts),
                items=tuple((index[p], e, it) for p, e, it in chosen),
                mode=recorder.mode,
                decode=split in options.decode_splits,
                hkeys=sp.hkeys,
                output=work.shard_file(split, sp.shard, options.file_format),
                file_format=options.file_format,
                numbers=options.numbers,
            )
            in_buckets = [isinstance(sources[p], buckets.BucketReader) for p, _, _ in chosen]
            reads = bucket_life.Reads(
                split=split,
                shard=sp.shard,
                buckets=bucket_life.item_buckets((e for _, e, _ in chosen), in_buckets),
            )
            planned.append(_Planned(job, reads))
        out[split] = planned
    return out


def _write_shards(
    built: LocalBuild,
    task: Task,
    per_split: dict[str, list[_Planned]],
    recorder: Recorder,
    options: Options,
    executor: pool.Pool | None,
    keeper: cf.Executor,
    streams_kept: cf.Future,
):
    """The shards no earlier run wrote, on the workers, once `streams_kept` is done (the
    streams on disk and recorded); `keeper` then flushes and records each one and frees the
    buckets it was the last to read (bucket_life). The full decodes of the splits that ask
    for them start before, in this process: they only read the buckets, still in the page
    cache."""
    work, suffix = built.work, options.file_format
    done: dict[tuple[str, int], Shard] = {}
    fed: dict[tuple[str, int], SplitNumbers] = {}
    todo, resumed = [], []
    for split, planned in per_split.items():
        for p in planned:
            if (earlier := work.done(split, p.reads.shard, suffix)) is not None:
                done[(split, p.reads.shard)] = earlier
                continue
            if suffix == "tfrecord" and (cp := work.checkpoint(split, p.reads.shard, suffix)):
                p.job = dataclasses.replace(p.job, resume=cp)
                p.reads.start = cp.items
                resumed.append(p)
            todo.append(p)
    life = bucket_life.Lifecycle(work, [p.reads for p in todo])
    if done:
        _say(f"{len(done)} shards written by an earlier run of this build: reusing them.")
    if resumed:
        _say(
            f"{len(resumed)} shards partly written by an earlier run of this build: going on "
            f"from their {sum(p.job.resume.num_examples for p in resumed)} examples written."
        )
    life.check_present([p.reads for p in todo])
    if suffix == "tfrecord":  # a file that can be continued: its buckets freed on its way
        for p in todo:
            p.job = dataclasses.replace(p.job, frees=life.frees(p.reads))
    threads = cf.ThreadPoolExecutor(options.workers)  # full decodes (TensorFlow's, GIL-free)
    stop = threading.Event()
    checks = {
        p.job.output: threads.submit(jobs.check_decodes, p.job, stop) for p in todo if p.job.decode
    }
    kept: list[cf.Future] = []  # each shard flushed, recorded, its buckets freed: a worker
    # goes on to its next shard at once
    bars = {}
    try:
        streams_kept.result()  # the stream is on disk and recorded before any shard is written
        life.free_unread(p.reads for planned in per_split.values() for p in planned)
        bars.update(
            {
                split: prepare.progress_bar(
                    f"Generating {split} examples", len(built.prepared.splits[split]), " examples"
                )
                for split in per_split
            }
        )
        for (split, _), earlier in done.items():
            bars[split].update(earlier.num_examples)
        for p in resumed:
            bars[p.job.split].update(p.job.resume.num_examples)
        ordered = _checked_first([p.job for p in todo], checks)
        results = (
            executor.run(ordered) if executor else ((job, jobs.write_shard(job)) for job in ordered)
        )
        planned_by_output = {p.job.output: p for p in todo}
        for job, written in results:  # as the workers finish them
            p = planned_by_output[job.output]
            shard = Shard(
                split=job.split,
                shard=p.reads.shard,
                num_examples=written.num_examples,
                num_bytes=written.num_bytes,
                recorded=written.recorded,
                numbers=written.numbers.to_state(images=False) if written.numbers else None,
            )
            done[(job.split, shard.shard)] = shard
            if written.numbers is not None:  # with its sample's images, read back otherwise
                fed[(job.split, shard.shard)] = written.numbers
            before = job.resume.num_examples if job.resume else 0
            bars[job.split].update(written.num_examples - before)
            kept.append(keeper.submit(_keep_shard, work, shard, suffix, life.written(p.reads)))
        for future in kept:
            future.result()
    finally:
        for bar in bars.values():
            bar.close()
        stop.set()
        threads.shutdown(cancel_futures=True)
    for (split, _), shard in sorted(done.items()):
        recorder.merge(Recorder.from_json(shard.recorded), log=True)
        if shard.num_examples:
            built.shards.setdefault(split, []).append(shard)
    for split in per_split:
        built.shards.setdefault(split, [])
    if options.numbers:
        built.numbers = _numbers(task, per_split, done, fed, suffix)


def _numbers(task: Task, per_split, done: dict, fed: dict, suffix: str) -> dict[str, SplitNumbers]:
    """Each split's numbers: its shards' merged (the order does not change them), the
    sample's images of shards an earlier run wrote read back from their files."""
    num_classes = len(task.classes().wnids)
    out = {split: SplitNumbers(split, num_classes) for split in per_split}
    for key, shard in sorted(done.items()):
        out[shard.split].merge(fed.get(key) or SplitNumbers.from_state(shard.numbers))
    for numbers in out.values():
        report_shards.fill_sample(numbers, suffix)
    return out


def _keep_shard(work: WorkFolder, shard: Shard, suffix: str, freed: list[str]) -> None:
    if work.keep_shard(shard, suffix):
        for name in freed:  # no shard still to write reads them
            work.free_bucket(name)


def _checked_first(todo: list[jobs.Job], checks: dict[str, cf.Future]):
    """The jobs in the order the workers get them: each one whose images are decoded as soon
    as its check is done (its undecodable members left out), then the rest. A damaged
    validation or test image stops the build before train starts; a failed check raises
    here."""
    for job in todo:
        if job.output in checks:
            yield checks[job.output].result()
    yield from (job for job in todo if job.output not in checks)
