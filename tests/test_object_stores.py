"""Builds whose folders are in object stores, against real servers: fake-gcs-server for gs://
and moto's server for s3://, on the loopback of a network namespace of their own
(imagenet2017_tfds.launch.stores). Every build runs inside it, as a user's `tfds build` does,
with the package's default settings and with EPATH_USE_TF=false (etils then sends TFDS's own
gs:// files to gcsfs instead of TensorFlow): the shards must be the local build's, byte for
byte, and `tfds.load` must read them where they are."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imagenet2017_tfds.internal import locking
from tests.conftest import CLI, ROOT, TFDS, build_env
from tests.support import readback

pytestmark = pytest.mark.stores

DIRECT = "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"
ETILS = {"default": {}, "fsspec": {"EPATH_USE_TF": "false"}}
CLIENT = str(ROOT / "tests" / "support" / "store_client.py")
BUCKET = "i2017-test"  # GCS wants 3 characters at least


@pytest.fixture(scope="module")
def bed(tarball_release):
    from imagenet2017_tfds.launch.stores import StoreBed

    with StoreBed() as bed:
        for store in ("gcs", "s3"):
            bed.make_bucket(store, BUCKET)
        archives = Path(tarball_release.manual_dir)
        for scheme in ("gs", "s3"):
            for archive in sorted(archives.glob("*.tar.gz")):
                bed.upload(archive, f"{scheme}://{BUCKET}/raw/")
        yield bed


def tfds_build(bed, config, manual_dir, data_dir, checksums, *extra, scratch, env=None, check=True):
    """The real `tfds build`, inside the bed; `scratch`: the local folder it works in when its
    data and download dirs are in a store."""
    command = build_command(config, manual_dir, data_dir, None) + list(extra)
    env = {**build_env(checksums), **(env or {})}
    if scratch is not None:
        env["IMAGENET2017_SCRATCH"] = str(scratch)
    result = bed.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stderr[-6000:]}")
    return result


def task_archives(config) -> tuple[str, ...]:
    from imagenet2017_tfds.ilsvrc import tasks

    return tuple(next(iter(archive.files)) for archive in tasks.task(config).parts)


def loaded(bed, data_dir, config, env=None) -> dict:
    """What tfds.load reads of each split, inside the bed (tests/support/store_client.py)."""
    return summary(bed.run, data_dir, config, {**build_env(None), **(env or {})})


def local_loaded(data_dir, config) -> dict:
    """The same summary of a local build, read the same way."""
    return summary(subprocess.run, data_dir, config, build_env(None))


def summary(run, data_dir, config, env) -> dict:
    result = run(
        [sys.executable, CLIENT, str(data_dir), config],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def version_dir(data_dir, config) -> str:
    return f"{data_dir}/imagenet2017/{config}/{readback.VERSION}"


@pytest.mark.tfds_write
@pytest.mark.parametrize("etils", sorted(ETILS))
@pytest.mark.parametrize("engine", ["local", "direct"])
@pytest.mark.parametrize("config", ["clsloc", "det"])
def test_every_folder_on_gs_gives_the_local_build(
    bed, cli_builds, tarball_release, tmp_path, config, engine, etils
):
    """--manual_dir, --download_dir and --data_dir on gs://: the same examples as the local
    build (the same shard bytes on the local engine), read back by tfds.load from gs://."""
    run = f"gs://{BUCKET}/{config}-{engine}-{etils}"
    extra = ["--download_dir", f"{run}/downloads"]
    if engine == "direct":
        extra.append(f"--beam_pipeline_options={DIRECT}")
    bed.reset_counts()
    tfds_build(
        bed,
        config,
        f"gs://{BUCKET}/raw",
        f"{run}/data",
        tarball_release.checksums,
        *extra,
        scratch=tmp_path / "scratch",
        env=ETILS[etils],
    )
    counts = bed.counts()
    if engine == "local":  # one pass over each archive: its stream and its digest share it
        for archive in Path(tarball_release.manual_dir).glob("*.tar.gz"):
            fetched = counts.total("read", url=f"gs://{BUCKET}/raw/{archive.name}")
            needed = archive.name in ("ILSVRC2017_devkit.tar.gz", *task_archives(config))
            assert fetched <= 1.05 * archive.stat().st_size, (archive.name, fetched)
            assert fetched >= archive.stat().st_size or not needed, (archive.name, fetched)
    got = tmp_path / "data"
    bed.download(version_dir(f"{run}/data", config), version_dir(got, config))
    if engine == "local":
        assert readback.shard_bytes(got, config) == readback.shard_bytes(cli_builds, config)
    else:
        assert readback.records(got, config) == readback.records(cli_builds, config)
    assert loaded(bed, f"{run}/data", config, ETILS[etils]) == local_loaded(cli_builds, config)
    # The build's report is in the store beside dataset_info.json, with the local build's numbers.
    report = json.loads((Path(version_dir(got, config)) / "report.json").read_text())
    local = json.loads((Path(version_dir(cli_builds, config)) / "report.json").read_text())
    assert report["splits"] == local["splits"]
    # Nothing was written to a folder named after the URL, here or anywhere below.
    assert not list(ROOT.glob("gs:*")) and not list(Path.cwd().glob("gs:*"))


@pytest.mark.parametrize("etils", sorted(ETILS))
def test_archives_and_caches_on_s3(bed, cli_builds, tarball_release, tmp_path, etils):
    """--manual_dir and --download_dir on s3:// (the [s3] extra), the data dir local."""
    run = f"s3://{BUCKET}/caches-{etils}"
    tfds_build(
        bed,
        "clsloc",
        f"s3://{BUCKET}/raw",
        tmp_path,
        tarball_release.checksums,
        "--download_dir",
        f"{run}/downloads",
        scratch=tmp_path / "scratch",
        env=ETILS[etils],
    )
    assert readback.shard_bytes(tmp_path, "clsloc") == readback.shard_bytes(cli_builds, "clsloc")
    # The caches are in the store: the archive's verdict, under its ETag.
    listing = bed.run(
        [
            sys.executable,
            "-c",
            f"import s3fs; print(s3fs.S3FileSystem().find('{BUCKET}/caches-{etils}/downloads'))",
        ],
        capture_output=True,
        text=True,
    )
    assert "verdict-ILSVRC2017_CLS-LOC.tar.gz.json" in listing.stdout, listing.stderr


@pytest.mark.parametrize("etils", sorted(ETILS))
def test_a_data_dir_on_s3_is_refused_before_anything_is_read(bed, tarball_release, etils):
    bed.reset_counts()
    result = tfds_build(
        bed,
        "clsloc",
        f"s3://{BUCKET}/raw",
        f"s3://{BUCKET}/data",
        tarball_release.checksums,
        scratch=None,
        env=ETILS[etils],
        check=False,
    )
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"imagenet2017_tfds.errors.StorageError: data dir s3://{BUCKET}/data"), (
        last
    )
    assert "TensorFlow has no S3 file system" in last and "local or gs:// data dir" in last
    assert bed.counts().total("read", prefix=f"s3://{BUCKET}/raw") == 0


@pytest.mark.parametrize("etils", sorted(ETILS))
@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_an_archive_replaced_by_one_of_the_same_size_is_verified_again(
    bed, tarball_release, tmp_path, scheme, etils
):
    """The verdict cached for the archive is keyed by the store's version of it (generation,
    ETag): a same-size replacement is read again and refused, with the same download dir."""
    raw = f"{scheme}://{BUCKET}/swap-raw-{etils}"
    cache = f"{scheme}://{BUCKET}/swap-downloads-{etils}"
    archives = Path(tarball_release.manual_dir)
    for archive in sorted(archives.glob("*.tar.gz")):
        bed.upload(archive, f"{raw}/")
    tfds_build(
        bed,
        "clsloc",
        raw,
        tmp_path / "first",
        tarball_release.checksums,
        "--download_dir",
        cache,
        scratch=tmp_path / "scratch",
        env=ETILS[etils],
    )
    bad = tmp_path / "ILSVRC2017_CLS-LOC.tar.gz"
    data = bytearray((archives / bad.name).read_bytes())
    data[-100] ^= 1  # another md5, the same size
    bad.write_bytes(bytes(data))
    assert bad.stat().st_size == (archives / bad.name).stat().st_size
    bed.upload(bad, f"{raw}/")
    result = tfds_build(
        bed,
        "clsloc",
        raw,
        tmp_path / "second",
        tarball_release.checksums,
        "--download_dir",
        cache,
        scratch=tmp_path / "scratch",
        env=ETILS[etils],
        check=False,
    )
    assert result.returncode != 0
    assert "ChecksumError" in result.stderr and "md5 mismatch" in result.stderr, result.stderr[
        -2000:
    ]
    readback.assert_nothing_loads(tmp_path / "second")


def test_a_missing_client_is_named_with_its_extra(bed, tmp_path):
    """Without s3fs (hidden by a module that fails to import), s3:// is named with the extra
    that brings it, never 'not a folder'."""
    hide = tmp_path / "hide"
    (hide / "s3fs").mkdir(parents=True)
    (hide / "s3fs" / "__init__.py").write_text("raise ImportError('s3fs is hidden')\n")
    env = build_env(None)
    env["PYTHONPATH"] = os.pathsep.join([str(hide), env["PYTHONPATH"]])
    result = bed.run(
        [*CLI, "verify", f"s3://{BUCKET}/raw"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode != 0
    assert "s3:// paths need s3fs, which is not installed: pip install 'imagenet2017-tfds[s3]'" in (
        result.stderr
    ), result.stderr
    assert "not a folder" not in result.stderr


@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_the_commands_read_archives_in_a_store(bed, tarball_release, scheme):
    env = build_env(tarball_release.checksums)
    result = bed.run(
        [*CLI, "verify", f"{scheme}://{BUCKET}/raw"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [line.split() for line in result.stdout.splitlines() if ".tar.gz" in line]
    assert len(rows) == 4 and all(row[-1] == "OK" for row in rows), result.stdout
    written = bed.run(
        [
            *CLI,
            "checksums",
            f"{scheme}://{BUCKET}/raw",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert written.returncode == 0, written.stderr[-3000:]
    shipped = Path(tarball_release.checksums).read_text().splitlines()
    assert sorted(line for line in written.stdout.splitlines() if ".tar.gz" in line) == sorted(
        line for line in shipped if ".tar.gz" in line
    )


@pytest.mark.engines
@pytest.mark.parametrize(
    ("runner", "etils"),
    [("flink", "default"), ("flink", "fsspec"), ("spark", "default"), ("prism", "default")],
)
def test_beam_engines_build_from_gs_into_gs(
    bed, cli_builds, tarball_release, tmp_path, runner, etils
):
    """Beam's Flink and Spark job servers and Prism, with their SDK workers (the package's
    boot), read the archives and write the shards in the store: the local build's examples."""
    # What the engine needs comes from Maven Central or the Go proxy, which the bed's
    # namespace cannot reach: fetched first, outside it.
    fetched = subprocess.run(
        [
            *CLI,
            "beam-build",
            "--runner",
            runner,
            "--fetch_only",
        ],
        env=build_env(None),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert fetched.returncode == 0, fetched.stderr[-3000:]
    run = f"gs://{BUCKET}/{runner}-{etils}"
    command = [
        *CLI,
        "beam-build",
        "--runner",
        runner,
        "--config",
        "clsloc",
        "--manual_dir",
        f"gs://{BUCKET}/raw",
        "--data_dir",
        f"{run}/data",
        "--download_dir",
        f"{run}/downloads",
        "--workers",
        "2",
        "--timeout",
        "900",
        "--work_dir",
        str(tmp_path / "work"),
    ]
    result = bed.run(
        command,
        env={**build_env(tarball_release.checksums), **ETILS[etils]},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert result.returncode == 0, result.stderr[-6000:]
    got = tmp_path / "data"
    bed.download(version_dir(f"{run}/data", "clsloc"), version_dir(got, "clsloc"))
    assert readback.records(got, "clsloc") == readback.records(cli_builds, "clsloc")
    assert loaded(bed, f"{run}/data", "clsloc", ETILS[etils]) == local_loaded(cli_builds, "clsloc")


def build_command(config, manual_dir, data_dir, download_dir) -> list[str]:
    """`tfds build` of this package; `download_dir` None leaves TFDS's default."""
    command = [TFDS, "build", "imagenet2017", "--imports", "imagenet2017_tfds", "--config", config]
    command += ["--manual_dir", str(manual_dir), "--data_dir", str(data_dir)]
    if download_dir is not None:
        command += ["--download_dir", str(download_dir)]
    return command


def wait_for(condition, what: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"{what}: not seen within {timeout} s")


def listing(bed, prefix: str) -> list[str]:
    found = bed.run(
        [
            sys.executable,
            "-c",
            "import sys, gcsfs; print('\\n'.join(gcsfs.GCSFileSystem().find(sys.argv[1])))",
            prefix,
        ],
        capture_output=True,
        text=True,
    )
    assert found.returncode == 0, found.stderr[-2000:]
    return found.stdout.split()


def test_two_builds_into_one_gs_data_dir_do_not_interleave(
    bed, cli_builds, tarball_release, tmp_path
):
    """The second waits on the lock in the store while the first holds it (the first is
    paused, SIGSTOP, once its lock object is there, so the two surely overlap), then finds the
    dataset built."""
    run = f"gs://{BUCKET}/twice"
    env = {**build_env(tarball_release.checksums), "IMAGENET2017_SCRATCH": str(tmp_path)}
    env[locking.LEASE_VAR] = "900"  # the paused holder's heartbeat stops: not a dead lock
    command = bed.command(
        build_command("clsloc", f"gs://{BUCKET}/raw", f"{run}/data", f"{run}/downloads")
    )

    def start():
        output = {"stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
        return subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True, **output)

    def locked() -> bool:
        return any(p.endswith(".build.lock") for p in listing(bed, f"{BUCKET}/twice/data"))

    first = start()
    try:
        wait_for(locked, "the first build's lock object")
        os.killpg(first.pid, signal.SIGSTOP)
        assert locked(), "the first build ended before it could be paused"
        second = start()
        said = []
        for line in second.stdout:
            said.append(line)
            if "Waiting: another build of this dataset" in line:
                break
        assert said and "Waiting: another build" in said[-1], "".join(said)[-3000:]
    finally:
        os.killpg(first.pid, signal.SIGCONT)
    outputs = [
        first.communicate(timeout=900)[0],
        "".join(said) + second.communicate(timeout=900)[0],
    ]
    assert [first.returncode, second.returncode] == [0, 0], "\n".join(o[-3000:] for o in outputs)
    assert "Waiting: another build" not in outputs[0]
    got = tmp_path / "data"
    bed.download(version_dir(f"{run}/data", "clsloc"), version_dir(got, "clsloc"))
    assert readback.shard_bytes(got, "clsloc") == readback.shard_bytes(cli_builds, "clsloc")
    assert not locked()


def killed_build(bed, data: str, point: str, release, scratch, etils: str) -> dict:
    """clsloc from the raw archives into data, SIGKILLed at the fault point `point`
    (tests/support/killed_build.py); the environment a rerun takes (the same scratch folder
    and etils back end)."""
    env = {**build_env(release.checksums), "IMAGENET2017_SCRATCH": str(scratch)}
    env.update(ETILS[etils])
    killed = bed.run(
        [sys.executable, "-m", "tests.support.killed_build", f"gs://{BUCKET}/raw", data],
        env={**env, "IMAGENET2017_FAULTS": f"{point}:kill"},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    return env


@pytest.mark.parametrize("etils", sorted(ETILS))
def test_a_build_killed_mid_upload_is_taken_over_and_resumed(
    bed, cli_builds, tarball_release, tmp_path, etils
):
    """SIGKILL once the first shard is in the data dir (tests/support/killed_build.py): the lock, the
    heartbeat and TFDS's incomplete folder stay in the store. The rerun takes the lock over
    (its holder is a dead process of this host), removes the leftovers, reuses the scratch
    folder's stream and shards without reading an archive again, and writes the same bytes."""
    data = f"gs://{BUCKET}/killed-{etils}/data"
    env = killed_build(bed, data, "shard-placed", tarball_release, tmp_path, etils)
    left = listing(bed, data.removeprefix("gs://"))
    assert any(p.endswith("clsloc/.build.lock") for p in left), left
    assert [p for p in left if "/incomplete." in p and ".tfrecord-" in p], left
    bed.reset_counts()
    command = build_command("clsloc", f"gs://{BUCKET}/raw", data, f"{data}/downloads")
    rerun = bed.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    said = rerun.stdout + rerun.stderr
    assert "a build that is not running any more (its process is gone); taking it over" in said
    assert "ILSVRC2017_CLS-LOC.tar.gz: read by an earlier run of this build; reusing it" in said
    assert "3 shards written by an earlier run of this build: reusing them" in said
    assert bed.counts().total("read", prefix=f"gs://{BUCKET}/raw/") == 0
    left = listing(bed, data.removeprefix("gs://"))
    assert not [p for p in left if "/incomplete." in p or ".build.lock" in p], left
    got = tmp_path / "data"
    bed.download(version_dir(data, "clsloc"), version_dir(got, "clsloc"))
    assert readback.shard_bytes(got, "clsloc") == readback.shard_bytes(cli_builds, "clsloc")


FAULTS = {"503": {"every": 4}, "dropped": {"drop_every": 5}}


@pytest.mark.parametrize("etils", sorted(ETILS))
@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_store_failing_now_and_then_gives_the_same_bytes(
    bed, cli_builds, tarball_release, tmp_path, fault, etils
):
    """Every fourth request to the store answered 503, or every fifth connection closed
    unanswered, none served: the archives' ranges, the caches, TFDS's own files and the final
    move alike. Every client retries; the bytes are the same. TensorFlow's own rename of the
    finished dataset failed under the 503s (compat.moved_into_store)."""
    run = f"gs://{BUCKET}/flaky-{fault}-{etils}"
    bed.reset_counts()
    bed.faults(503, store="gcs", **FAULTS[fault])
    try:
        tfds_build(
            bed,
            "clsloc",
            f"gs://{BUCKET}/raw",
            f"{run}/data",
            tarball_release.checksums,
            "--download_dir",
            f"{run}/downloads",
            scratch=tmp_path / "scratch",
            env=ETILS[etils],
        )
    finally:
        bed.faults(None)
    counts, field = bed.counts(), "faults" if fault == "503" else "dropped"
    # An upload refused before it was read is counted under its bucket (no name to see).
    for prefix in (f"gs://{BUCKET}/raw/", f"{run}/data/"):
        assert counts.total(field, prefix=prefix) > 3, (prefix, counts.total(field))
    got = tmp_path / "data"
    bed.download(version_dir(f"{run}/data", "clsloc"), version_dir(got, "clsloc"))
    assert readback.shard_bytes(got, "clsloc") == readback.shard_bytes(cli_builds, "clsloc")


def test_a_store_that_keeps_failing_ends_in_our_error_naming_the_object(
    bed, tarball_release, tmp_path
):
    """Every read of the archive's bytes answered 503: after the client's retries, the
    package's StorageError names the archive; nothing loadable is left."""
    data_dir = tmp_path / "data"
    bed.faults(503, every=1, match="ILSVRC2017_CLS-LOC.tar.gz?alt=media", store="gcs")
    try:
        result = tfds_build(
            bed,
            "clsloc",
            f"gs://{BUCKET}/raw",
            data_dir,
            tarball_release.checksums,
            scratch=tmp_path / "scratch",
            check=False,
        )
    finally:
        bed.faults(None)
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"imagenet2017_tfds.errors.StorageError: gs://{BUCKET}/raw/"
        "ILSVRC2017_CLS-LOC.tar.gz: reading bytes"
    ), last
    readback.assert_nothing_loads(data_dir)


@pytest.mark.tfds_write
@pytest.mark.parametrize("etils", sorted(ETILS))
def test_a_build_killed_while_moving_its_dataset_into_place_is_built_again(
    bed, cli_builds, tarball_release, tmp_path, etils
):
    """A store has no rename: the finished dataset is copied into its version folder one
    object at a time, dataset_info.json last. SIGKILL after the first copy
    (tests/support/killed_build.py) leaves a version folder without dataset_info.json, which TFDS does
    not take for a built dataset; the rerun builds it, to the same bytes."""
    data = f"gs://{BUCKET}/moving-{etils}/data"
    env = killed_build(bed, data, "object-moved", tarball_release, tmp_path, etils)
    version = version_dir(data, "clsloc").removeprefix("gs://")
    placed = [p for p in listing(bed, data.removeprefix("gs://")) if p.startswith(version + "/")]
    # One object copied; TensorFlow's client also made the folder's marker object ("x/").
    assert [p for p in placed if not p.endswith("/")] == [f"{version}/LICENSE"], placed
    rerun = bed.run(
        build_command("clsloc", f"gs://{BUCKET}/raw", data, None),
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    assert "moved the dataset into place (no dataset_info.json); it is built again" in rerun.stdout
    left = listing(bed, data.removeprefix("gs://"))
    assert not [p for p in left if "/incomplete." in p or ".build.lock" in p], left
    got = tmp_path / "data"
    bed.download(version_dir(data, "clsloc"), version_dir(got, "clsloc"))
    assert readback.shard_bytes(got, "clsloc") == readback.shard_bytes(cli_builds, "clsloc")
    assert loaded(bed, data, "clsloc", ETILS[etils]) == local_loaded(cli_builds, "clsloc")


@pytest.mark.parametrize("etils", sorted(ETILS))
@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_an_extracted_tree_in_a_store_gives_the_local_build(
    bed, cli_builds, tree_release, tmp_path, scheme, etils
):
    """A tree extracted from the archives, uploaded as it is: listed by prefix, every member
    path intact (etils' own walk of a store loses the scheme or does not work at all)."""
    tree = f"{scheme}://{BUCKET}/tree-{etils}"
    bed.upload(tree_release.manual_dir, tree)
    tfds_build(
        bed,
        "clsloc",
        tree,
        tmp_path,
        tree_release.checksums,
        scratch=tmp_path / "scratch",
        env=ETILS[etils],
    )
    assert readback.shard_bytes(tmp_path, "clsloc") == readback.shard_bytes(cli_builds, "clsloc")


def test_array_record_into_gs(bed, array_record_builds, tarball_release, tmp_path):
    """--file_format array_record into a gs:// data dir: the local build's files, byte for
    byte. They are not read back from gs://: ArrayRecord's open-source reader opens local files
    only (google/array_record#120); in the bed its constructor sent no request and did not
    return (docs/beam.md)."""
    data = f"gs://{BUCKET}/array-record/data"
    tfds_build(
        bed,
        "det",
        f"gs://{BUCKET}/raw",
        data,
        tarball_release.checksums,
        "--file_format",
        "array_record",
        scratch=tmp_path / "scratch",
    )
    got = tmp_path / "data"
    bed.download(version_dir(data, "det"), version_dir(got, "det"))

    def files(data_dir):
        folder = Path(version_dir(data_dir, "det"))
        return {p.name: p.read_bytes() for p in sorted(folder.glob("*.array_record-*"))}

    assert files(got) and files(got) == files(array_record_builds)


def test_a_lock_whose_heartbeat_stopped_is_taken_over_after_its_lease(
    bed, cli_builds, tarball_release, tmp_path
):
    """A lock left by a build on another host (its holder cannot be checked from here) whose
    heartbeat no longer moves: waited for, then taken over once the lease has passed."""
    data = f"gs://{BUCKET}/lease/data"
    lock = f"{BUCKET}/lease/data/imagenet2017/clsloc/.build.lock"
    made = bed.run(
        [
            sys.executable,
            "-c",
            "import sys, gcsfs; gcsfs.GCSFileSystem().pipe_file("
            'sys.argv[1], b\'{"holder": "another-host:4242:0123abcd"}\')',
            lock,
        ],
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr[-2000:]
    started = time.monotonic()
    result = tfds_build(
        bed,
        "clsloc",
        f"gs://{BUCKET}/raw",
        data,
        tarball_release.checksums,
        scratch=tmp_path / "scratch",
        env={"IMAGENET2017_LOCK_LEASE": "6"},
    )
    said = result.stdout + result.stderr
    assert "Waiting: another build of this dataset (another-host:4242:0123abcd) holds" in said
    assert re.search(
        r"held by another-host:4242:0123abcd, a build that is not running any "
        r"more \(no heartbeat for [67] s\); taking it over",
        said,
    ), said[-3000:]
    assert time.monotonic() - started >= 6
    got = tmp_path / "data"
    bed.download(version_dir(data, "clsloc"), version_dir(got, "clsloc"))
    assert readback.shard_bytes(got, "clsloc") == readback.shard_bytes(cli_builds, "clsloc")
