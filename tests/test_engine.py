"""The engine: one read of each archive whatever its order, shards written by the workers,
the same bytes for any number of workers, shard layout or bucket count, a worker count
that fits the process (a build killed and resumed: tests/test_resume.py)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import rapidgzip
import tensorflow_datasets as tfds

import imagenet2017_tfds
from imagenet2017_tfds import testing
from imagenet2017_tfds.engine import buckets, jobs, local, pool, shards
from imagenet2017_tfds.errors import DiskSpaceError, Imagenet2017Error
from imagenet2017_tfds.internal import faults
from tests.conftest import ROOT, TFDS, api_build, build_env, tfds_build
from tests.support import procfs, readback


@pytest.mark.parametrize("config", ["clsloc", "det"])
@pytest.mark.parametrize("count", [1, 3])
def test_any_number_of_workers_writes_the_same_bytes(
    config, count, cli_builds, tarball_release, tmp_path, monkeypatch
):
    api_build(
        tarball_release.manual_dir,
        tmp_path,
        config,
        tarball_release.checksums,
        monkeypatch,
        workers=count,
    )
    assert readback.shard_bytes(tmp_path, config) == readback.shard_bytes(cli_builds, config)


@pytest.mark.parametrize("order", ["annotations_first", "annotations_last"])
def test_each_archive_is_read_once_whatever_the_order_of_its_members(
    order, cli_builds, tmp_path, monkeypatch
):
    """Every archive the config reads, the devkit too, is read once: counted where its bytes
    are read (every decompressing reader this process opens, rapidgzip's, whatever part of the
    build opens it; the workers read buckets, not archives) and where the engine streams it
    (its `archive-read` point); the metadata's `passes` says the same."""
    release = testing.write_release(tmp_path / "manual", order=order)
    opened: list[str] = []
    reader = rapidgzip.RapidgzipFile

    def counted(target, *args, **kwargs):
        opened.append(os.path.basename(getattr(target, "name", target)))
        return reader(target, *args, **kwargs)

    monkeypatch.setattr(rapidgzip, "RapidgzipFile", counted)
    streamed: list[str] = []
    for config in ("clsloc", "det"):
        opened.clear()
        streamed.clear()
        with faults.armed("archive-read", lambda source: streamed.append(source.name)):
            api_build(release.manual_dir, tmp_path / "data", config, release.checksums, monkeypatch)
        data = tmp_path / "data"
        assert readback.shard_bytes(data, config) == readback.shard_bytes(cli_builds, config)
        once = [testing.CLSLOC] if config == "clsloc" else [testing.DET, testing.DET_TEST]
        once.append(testing.ARCHIVES["devkit"])
        assert sorted(opened) == sorted(streamed) == sorted(once), (opened, streamed)
        meta = json.loads(
            (data / "imagenet2017" / config / readback.VERSION / "metadata.json").read_text()
        )
        assert {p: v["passes"] for p, v in meta["inputs"].items() if "passes" in v} == (
            {"clsloc": 1} if config == "clsloc" else {"det": 1, "det_test": 1}
        )
    # Nothing is left beside the datasets: the work folder goes with a finished build.
    assert not list((tmp_path / "data" / "downloads" / "imagenet2017").glob("work/*"))


def test_many_shards_and_buckets_give_the_same_examples_for_any_workers(
    tarball_release, tmp_path, monkeypatch
):
    """Shards are ranges of hashed keys, buckets the top bits of the same keys: with many of
    both (and buckets that straddle shards) the layout and bytes do not depend on either."""
    from imagenet2017_tfds.ilsvrc import tasks
    from imagenet2017_tfds.internal.problems import Recorder

    manual = tarball_release.manual_dir
    read = sum(os.path.getsize(manual / n) for n in (testing.CLSLOC, testing.ARCHIVES["devkit"]))
    assert buckets.choose_bits(read, 2_000) == 7  # 2**7 buckets a split, against 3 shards
    monkeypatch.setenv("IMAGENET2017_CHECKSUMS", str(tarball_release.checksums))
    out = {}
    for count in (1, 2):
        options = local.Options(
            workers=count,
            shard_config=tfds.download.DownloadConfig(num_shards=3).get_shard_config(),
            bucket_bytes=2_000,
        )
        cache = tmp_path / f"w{count}"
        built = local.build(manual, tasks.CLSLOC, cache, Recorder.for_build(False), options)
        assert {split: len(s) for split, s in built.shards.items()} == dict.fromkeys(
            ("train", "validation", "test"), 3
        )
        assert sum(s.num_examples for s in built.shards["train"]) == 14
        out[count] = {
            (s.split, s.shard): Path(built.shard_file(s)).read_bytes()
            for shards in built.shards.values()
            for s in shards
        }
        built.work.remove()
    assert out[1] == out[2]


def test_a_tfrecord_written_without_tensorflow_is_tensorflows_own(tmp_path):
    import tensorflow as tf

    records = [b"", b"x", bytes(range(256)) * 300]
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    shards.write(str(ours), records, "tfrecord")
    with tf.io.TFRecordWriter(str(theirs)) as w:
        for r in records:
            w.write(r)
    assert ours.read_bytes() == theirs.read_bytes()
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(ours))] == records


def empty_job(tmp_path) -> jobs.Job:
    """A job of no item: what a worker does with it does not matter to these tests."""
    output = str(tmp_path / "train.tfrecord")
    return jobs.Job(task=None, split="train", sources=(), items=(), mode="strict", output=output)


def test_a_worker_killed_mid_job_is_named_with_its_signal(tmp_path):
    job = empty_job(tmp_path)
    p = pool.Pool(2)
    try:
        procs = p.start()
        procs[0].send_signal(signal.SIGKILL)
        with pytest.raises(pool.WorkerError, match=r"pid \d+\) was killed by signal SIGKILL"):
            list(p.run([job, job, job]))
    finally:
        p.close()


# Put ahead on PYTHONPATH, it records every process a Python process starts (its audit
# event), whatever starts it: what a build started, not what it says it started.
RECORD_STARTS = """
import os, sys

def _started(event, args):
    if event == "subprocess.Popen":
        with open(os.environ["STARTS_RECORD"], "a") as f:
            f.write(" ".join(map(str, args[1])) + "\\n")

sys.addaudithook(_started)
"""


def test_a_worker_that_exits_is_named_with_its_exit_status(tmp_path):
    """A worker that cannot start (a config no build has: its start-up raises) exits with
    status 1; the build's error names it, its status and what to do."""
    job = empty_job(tmp_path)
    p = pool.Pool(1, ("no-such-config",))
    try:
        p.start()
        with pytest.raises(pool.WorkerError) as e:
            list(p.run([job]))
    finally:
        p.close()
    assert re.fullmatch(
        r"a worker process \(pid \d+\) exited with status 1 before it finished its shard; its "
        r"messages are above\. Build again with the same command: the shards already written "
        r"are kept\. If it was the out-of-memory killer, build with fewer workers "
        r"\(--config '\{\"name\": \"\.\.\.\", \"workers\": 1\}'\)\.",
        str(e.value),
    ), str(e.value)


def test_the_worker_count_fits_the_cpus_the_build_may_use(tarball_release, tmp_path):
    """`taskset` leaves the build one CPU of the machine's: the shards are written in the
    build's own process, no worker is started, and the log says so."""
    command = ["taskset", "-c", "0", TFDS, "build", "imagenet2017", "--imports"]
    command += ["imagenet2017_tfds", "--config", "clsloc", "--manual_dir"]
    command += [str(tarball_release.manual_dir), "--data_dir", str(tmp_path / "data")]
    (tmp_path / "hook").mkdir()
    (tmp_path / "hook" / "sitecustomize.py").write_text(RECORD_STARTS)
    env = build_env(tarball_release.checksums)
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path / "hook"), env["PYTHONPATH"]])
    env["STARTS_RECORD"] = str(tmp_path / "started.txt")
    (tmp_path / "started.txt").touch()
    result = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "imagenet2017: 1 worker process (1 CPU usable (affinity 1" in result.stderr
    started = (tmp_path / "started.txt").read_text().splitlines()
    assert not [c for c in started if "imagenet2017_tfds.engine.pool" in c], started
    assert readback.splits(tmp_path / "data", "clsloc")["train"] == 14
    # The same build with both CPUs starts two workers: the record sees them.
    command[:3] = ["taskset", "-c", "0,1"]
    result = subprocess.run(
        command + ["--overwrite"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    started = (tmp_path / "started.txt").read_text().splitlines()
    assert len([c for c in started if "imagenet2017_tfds.engine.pool" in c]) == 2, started


def test_a_bucket_write_that_fails_is_raised_in_the_streams_thread(tmp_path):
    """The disk fills under the writer's thread: the stream's thread raises its error."""
    import errno

    def full():
        raise OSError(errno.ENOSPC, "No space left on device")

    store = buckets.BucketWriter(str(tmp_path), ["train"], 0)
    with faults.armed("bucket-write", full):
        store.add("train", 5, [memoryview(b"abc")], 3, hold=lambda: lambda: None)
        with pytest.raises(OSError) as raised:
            store.add("train", 6, [b"def"], 3)  # the writer's failure, once it is known
            store.close()
    assert raised.value.errno == errno.ENOSPC
    assert (tmp_path / buckets.file_name(0)).read_bytes() == b""  # nothing was written


def test_a_bucket_changed_under_a_build_is_named(tmp_path):
    store = buckets.BucketWriter(str(tmp_path), ["train"], 0)
    place = store.add("train", 5, [b"abc", memoryview(b"def")], 6)
    store.close()
    (tmp_path / buckets.file_name(0)).write_bytes(b"abc")
    from imagenet2017_tfds.sources import Entry

    reader = buckets.BucketReader(str(tmp_path), "ILSVRC2017_CLS-LOC.tar.gz")
    with pytest.raises(Imagenet2017Error, match="bucket-000000: Data/x.JPEG of ILSVRC2017"):
        list(reader.read([Entry(place, "Data/x.JPEG", 6)]))


def test_a_bucket_read_is_closed_when_the_read_moves_to_the_next(tmp_path):
    """A shard reads its buckets one after another; one freed on the way (a checkpoint past
    it) must not stay open, or its disk space is not free until the shard is complete."""
    from imagenet2017_tfds.sources import Entry

    # 2 buckets: by the top bit of the key
    store = buckets.BucketWriter(str(tmp_path), ["train"], 1)
    first = store.add("train", 5, [b"abc"], 3)
    second = store.add("train", 1 << 127, [b"defg"], 4)
    store.close()
    reader = buckets.BucketReader(str(tmp_path), "ILSVRC2017_CLS-LOC.tar.gz")

    def open_buckets() -> list[str]:
        names = [os.path.basename(path) for path in procfs.open_paths()]
        return sorted(n for n in names if n.startswith("bucket-"))

    read = reader.read([Entry(first, "Data/a.JPEG", 3), Entry(second, "Data/b.JPEG", 4)])
    assert next(read)[1] == b"abc"
    assert open_buckets() == [buckets.file_name(0)]
    assert next(read)[1] == b"defg"
    assert open_buckets() == [buckets.file_name(1)]
    assert list(read) == []
    assert open_buckets() == []


def test_tfds_build_cli_from_annotations_last_equals_the_default(cli_builds, tmp_path):
    release = testing.write_release(tmp_path / "manual", order="annotations_last")
    tfds_build("clsloc", release.manual_dir, tmp_path / "d", release.checksums)
    assert readback.shard_bytes(tmp_path / "d", "clsloc") == readback.shard_bytes(
        cli_builds, "clsloc"
    )
    assert Path(tmp_path / "d").exists()


class _Reached(Exception):
    """The build went past its space check to its first read of an archive."""


def _reached(source):
    raise _Reached(source.name)


@pytest.mark.parametrize("file_format", ["tfrecord", "array_record"])
def test_the_space_a_build_needs_is_reckoned_from_its_archives(
    file_format, tarball_release, tmp_path
):
    """The release's CLS-LOC archive and devkit made 6.0 and 2.3 GB (sparse: nothing is read
    before the check): the build needs their sum times DISK_PER_INPUT_BYTE of its format. With
    a byte less free it stops before the first read, naming that number; with exactly that
    much it goes on to read the archives."""
    manual = tmp_path / "manual"
    shutil.copytree(tarball_release.manual_dir, manual)
    os.truncate(manual / testing.CLSLOC, 6_000_000_000)
    os.truncate(manual / testing.ARCHIVES["devkit"], 2_345_678_901)
    inputs = 6_000_000_000 + 2_345_678_901  # the two archives clsloc reads, the devkit counted
    need = int(inputs * local.DISK_PER_INPUT_BYTE[file_format])
    assert round(need / 1e9, 1) == {"tfrecord": 9.2, "array_record": 9.6}[file_format]
    work = tmp_path / "data" / "downloads" / "imagenet2017" / "work"

    def build(free: int):
        config = imagenet2017_tfds.Imagenet2017Config(name="clsloc", allow_unverified=True)
        builder = tfds.builder(
            "imagenet2017", config=config, data_dir=str(tmp_path / "data"), file_format=file_format
        )
        with faults.armed("disk-free", lambda folder: (str(tmp_path), free)):
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=str(manual))
            )

    with faults.armed("archive-read", _refuse_to_read), pytest.raises(DiskSpaceError) as e:
        build(need - 1)
    assert re.fullmatch(
        rf"imagenet2017: not enough disk space for this build \({re.escape(str(work))}/\S+ "
        rf"needs about {need / 1e9:.1f} GB, {re.escape(str(tmp_path))} has "
        rf"{(need - 1) / 1e9:.1f} GB free\)\. Free some, or point --data_dir / "
        r"--download_dir elsewhere; to go on anyway, build with --config "
        r"'\{\"name\": \"\.\.\.\", \"skip_space_check\": true\}'\.",
        str(e.value),
    ), str(e.value)
    with faults.armed("archive-read", _reached), pytest.raises(_Reached):
        build(need)


def _refuse_to_read(source):
    pytest.fail(f"{source.name} was read")


def test_a_data_dir_too_small_is_refused_before_anything_is_read(
    tarball_release, tmp_path, monkeypatch
):
    with (
        faults.armed("disk-free", lambda folder: ("/", 50_000)),
        faults.armed("archive-read", _refuse_to_read),
        pytest.raises(DiskSpaceError, match=r"not enough disk space .*skip_space_check"),
    ):
        api_build(
            tarball_release.manual_dir, tmp_path, "clsloc", tarball_release.checksums, monkeypatch
        )
    assert not list((tmp_path / "imagenet2017" / "clsloc").glob("*/dataset_info.json"))
    # The option goes on anyway (the check's estimate is not the disk's last word).
    with faults.armed("disk-free", lambda folder: ("/", 50_000)):
        api_build(
            tarball_release.manual_dir,
            tmp_path,
            "clsloc",
            tarball_release.checksums,
            monkeypatch,
            skip_space_check=True,
        )
    assert readback.splits(tmp_path, "clsloc")["train"] == 14


def test_a_disk_that_fills_mid_build_is_named_and_the_rerun_continues(
    tarball_release, cli_builds, tmp_path, monkeypatch
):
    import errno
    import os

    count = [0]
    release = (tarball_release.manual_dir, tmp_path, "clsloc", tarball_release.checksums)
    release += (monkeypatch,)

    def full():  # the 20th image appended to a bucket finds the disk full
        count[0] += 1
        if count[0] == 20:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/some/bucket-000002")

    with (
        faults.armed("bucket-add", full),
        pytest.raises(Imagenet2017Error, match=r"/some/bucket-000002: no space left .* same"),
    ):
        api_build(*release, workers=1)
    assert not list((tmp_path / "imagenet2017" / "clsloc").glob("*/dataset_info.json"))
    api_build(*release, workers=1)
    assert readback.shard_bytes(tmp_path, "clsloc") == readback.shard_bytes(cli_builds, "clsloc")


FREED_IN_AN_ARENA = """
import ctypes, threading
from imagenet2017_tfds.engine import stream
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def anon_mb():
    status = open("/proc/self/status").read()
    return int(status.split("RssAnon:")[1].split()[0]) // 1024

def fragment():  # a thread's own arena, as rapidgzip's threads have: 120 MB freed in it, a
    blocks = [libc.malloc(60_000) for _ in range(2_000)]  # block in every 50 still held
    for k, block in enumerate(blocks):
        ctypes.memset(block, 1, 60_000)
        if k % 50:
            libc.free(block)

thread = threading.Thread(target=fragment)
thread.start()
thread.join()
before = anon_mb()
stream.release_freed_memory()
print(before, anon_mb())
"""


def test_memory_freed_in_a_threads_arena_goes_back_to_the_os():
    """What the stream calls every TRIM_EVERY bytes returns what glibc's arenas keep freed."""
    out = subprocess.run(
        [sys.executable, "-c", FREED_IN_AN_ARENA],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    before, after = int(out[0]), int(out[1])
    assert before - after > 80, (before, after)
