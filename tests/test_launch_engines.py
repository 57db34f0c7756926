"""Beam on real engines, started for real by the local-engine launcher through its subcommand
(`imagenet2017-tfds beam-build`, imagenet2017_tfds/launch/beam_build.py): Beam's Flink job
server (Java, from Maven Central) with its embedded Flink cluster, Beam's Spark job server
(Java, from Maven Central) with Spark in local mode, and Prism (Go, built with `go install`);
Python SDK workers as separate processes that install the package from the sdist Beam
staged. The examples are byte for byte those of the default path, a digest
mismatch stops the build before any shard, an engine that cannot be built or that exits is
named with its own words (exit 2), and nothing the launcher started outlives it."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from imagenet2017_tfds.launch import beam_build as launcher
from tests.conftest import build_env
from tests.support import readback
from tests.support.mutate import wrong_md5

pytestmark = pytest.mark.engines  # each test starts a job server (Java, Maven) or Prism (Go)

TIMEOUT = 900  # the launcher's own limit: it stops what it started, then exits 124


def launch(
    runner, config, release, data_dir, work_dir, checksums=None, wait=True, *extra, env=None
):
    """runner: flink, spark, prism, or flink-standalone (a Flink cluster of its own processes);
    extra: more of the launcher's arguments; env: more environment."""
    runner, _, cluster = runner.partition("-")
    command = [
        sys.executable,
        "-m",
        "imagenet2017_tfds.tools.cli",
        "beam-build",
        "--runner",
        runner,
        "--config",
        config,
        "--manual_dir",
        str(release.manual_dir),
        "--data_dir",
        str(data_dir),
        "--workers",
        "2",
        "--timeout",
        str(TIMEOUT),
        "--work_dir",
        str(work_dir),
        *extra,
    ]
    if cluster:
        command += ["--flink_cluster", cluster]
    env = {**build_env(checksums or release.checksums), **(env or {})}
    if not wait:
        return subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    # The margin covers a first run's fetch of the job server or Prism (the launcher's limit
    # counts only the build).
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=TIMEOUT + 600)


def left_running(work_dir: Path) -> list[str]:
    """Processes that still name the launcher's work folder (job server, boot, workers)."""
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(p.info["cmdline"] or [])
        if str(work_dir) in cmdline:
            found.append(f"{p.pid}: {cmdline[:200]}")
    return found


def worker_pids(work_dir: Path) -> set[str]:
    """The SDK worker processes the boot started (it logs each, with its packages)."""
    log = (work_dir / "beam_boot.log").read_text()
    return set(re.findall(r"beam_boot\[(\d+)\]: worker .*: packages from ", log))


def assert_steps_in_order(work: Path) -> None:
    """timeline.json's steps come in the job's order; else the log lines they were read from."""
    steps = json.loads((work / "timeline.json").read_text())
    order = ["engine_ready", "job_submitted", "workers_up", "job_finished", "build_done"]
    seconds = [steps[name] for name in order]
    if not (seconds[0] > 0 and seconds == sorted(seconds) and len(set(seconds)) == 5):
        lines = [
            line
            for log in ("job-server.log", "beam_boot.log")
            for line in (work / log).read_text(errors="replace").splitlines()
            if re.search(r"Submitting job|Running job|finished|beam_boot\[\d+\]: worker", line)
        ]
        raise AssertionError(f"steps out of order: {steps}\n" + "\n".join(lines[:40]))


def harness_pids(work_dir: Path) -> list[int]:
    """The SDK harness processes the boot started (each worker's child), in their order."""
    boot_log = work_dir / "beam_boot.log"
    text = boot_log.read_text() if boot_log.exists() else ""
    return [int(pid) for pid in re.findall(r": the SDK harness \(pid (\d+)\) started", text)]


def assert_same_examples(data_dir, cli_builds, config):
    assert readback.records(data_dir, config) == readback.records(cli_builds, config)
    assert readback.splits(data_dir, config) == readback.splits(cli_builds, config)


@pytest.mark.parametrize(
    ("runner", "config"), [("flink", "clsloc"), ("flink", "det"), ("spark", "clsloc")]
)
def test_a_java_job_server_gives_the_same_examples(
    cli_builds, tarball_release, tmp_path, runner, config
):
    work = tmp_path / "work"
    result = launch(runner, config, tarball_release, tmp_path / "data", work)
    assert result.returncode == 0, result.stderr[-6000:]
    assert_same_examples(tmp_path / "data", cli_builds, config)
    # Two SDK worker processes for the whole job, each running the package the boot installed
    # from the sdist of setup.py (the repository is not on their path).
    pids = worker_pids(work)
    assert len(pids) == 2, (work / "beam_boot.log").read_text()
    site = re.search(r"packages from (\S+)", (work / "beam_boot.log").read_text()).group(1)
    assert (Path(site) / "imagenet2017_tfds" / "dataset" / "builder.py").is_file()
    server_log = (work / "job-server.log").read_text()
    assert re.search(launcher.JOB_SERVERS[runner].events["job_submitted"], server_log)
    if runner == "spark":  # Spark itself ran the job, in the job server, on 2 threads
        assert "on Spark master local[2,6]" in server_log  # a task tried up to 6 times
        assert re.search(r"DAGScheduler - Job \d+ finished", server_log)
    assert_steps_in_order(work)  # what the benchmark reports
    assert not left_running(work)


def test_a_standalone_flink_cluster_gives_the_same_examples(cli_builds, tarball_release, tmp_path):
    work = tmp_path / "work"
    result = launch("flink-standalone", "clsloc", tarball_release, tmp_path / "data", work)
    assert result.returncode == 0, result.stderr[-6000:]
    assert_same_examples(tmp_path / "data", cli_builds, "clsloc")
    # The job server sent the job to the JobManager's REST endpoint; the JobManager ran it on
    # the TaskManager, whose SDK workers (not the job server's) ran the Python code.
    server_log = (work / "job-server.log").read_text()
    assert re.search(r"RestClusterClient - Submitting job 'BeamApp-", server_log)
    jobmanager_log = (work / "jobmanager.log").read_text()
    assert "Registering TaskManager" in jobmanager_log
    assert re.search(
        r"Job BeamApp-\S+ \(\w+\) switched from state RUNNING to FINISHED", jobmanager_log
    )
    assert "Pipeline_options" in (work / "taskmanager.log").read_text()
    assert "Pipeline_options" not in server_log
    # Two for the whole job, as on the embedded cluster (Beam on the cluster's classpath).
    assert len(worker_pids(work)) == 2, (work / "beam_boot.log").read_text()
    assert_steps_in_order(work)
    assert not left_running(work)


def test_flink_build_verifies_before_any_shard(tarball_release, tmp_path):
    bad, _ = wrong_md5(tarball_release.checksums, "ILSVRC2017_DET.tar.gz", tmp_path)
    work = tmp_path / "work"
    result = launch("flink", "det", tarball_release, tmp_path / "data", work, checksums=bad)
    assert result.returncode == 1, result.stderr[-3000:]
    assert f"ILSVRC2017_DET.tar.gz: md5 mismatch: expected {'0' * 32}" in result.stderr
    assert not list((tmp_path / "data").rglob("*.tfrecord*"))
    assert not list((tmp_path / "data").rglob("dataset_info.json"))
    assert "Submitting job" not in (work / "job-server.log").read_text()
    assert not left_running(work)


@pytest.mark.parametrize("runner", ["flink", "spark", "flink-standalone"])
def test_an_interrupted_build_stops_everything_it_started(
    tarball_release, tmp_path, runner, ctrl_c_reaches_children
):
    work = tmp_path / "work"
    launcher = launch(runner, "clsloc", tarball_release, tmp_path / "data", work, wait=False)
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and launcher.poll() is None:
            boot_log = work / "beam_boot.log"
            if boot_log.exists() and worker_pids(work):
                break  # the job runs on its SDK workers
            time.sleep(0.5)
        assert launcher.poll() is None, launcher.communicate()[1][-3000:]
        workers = [int(pid) for pid in worker_pids(work)] + harness_pids(work)
        launcher.send_signal(signal.SIGINT)
        _, err = launcher.communicate(timeout=120)
    finally:
        if launcher.poll() is None:
            launcher.kill()
    assert launcher.returncode == 130, err[-3000:]
    assert "interrupted; stopping what it started" in err
    assert not [pid for pid in workers if psutil.pid_exists(pid)]
    assert not left_running(work)
    assert not list((tmp_path / "data").rglob("dataset_info.json"))


def test_prism_gives_the_same_examples(cli_builds, tarball_release, tmp_path):
    work = tmp_path / "work"
    result = launch("prism", "clsloc", tarball_release, tmp_path / "data", work)
    assert result.returncode == 0, result.stderr[-6000:]
    assert_same_examples(tmp_path / "data", cli_builds, "clsloc")
    assert worker_pids(work)  # Prism runs every bundle on one SDK worker process
    assert not left_running(work)


def test_a_job_server_that_exits_at_its_start_stops_the_launch_with_exit_2(
    tarball_release, tmp_path
):
    """Beam's Flink job server given a heap Java refuses (the launcher's --jvm_heap): the
    launcher names the server and its exit status, shows its log's end (Java's own words),
    stops the build it started and exits 2; nothing is built, nothing it started is left."""
    work = tmp_path / "work"
    result = launch(
        "flink", "clsloc", tarball_release, tmp_path / "data", work, None, True, "--jvm_heap", "1k"
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "beam_build: the Flink job server exited with 1 during the build:" in result.stderr
    assert "Too small maximum heap" in result.stderr
    assert "beam_build: exit 2 after" in result.stderr
    readback.assert_nothing_loads(tmp_path / "data")
    assert not left_running(work)


def test_an_engine_that_cannot_be_built_stops_the_launch_with_exit_2(tarball_release, tmp_path):
    """Prism to build with Go's module proxy turned off (GOPROXY=off, an empty cache): `go
    install` fails; the launcher names the step and its exit status, shows Go's own words,
    caches nothing and exits 2 without starting a build."""
    cache = tmp_path / "cache"
    env = {
        "IMAGENET2017_CACHE": str(cache),
        "GOPROXY": "off",
        "GOMODCACHE": str(tmp_path / "gomod"),
        "GOFLAGS": "",
    }
    result = launch(
        "prism",
        "clsloc",
        tarball_release,
        tmp_path / "data",
        tmp_path / "work",
        None,
        True,
        env=env,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert "beam_build: building Prism with go install failed (exit 1):" in result.stderr
    assert "GOPROXY=off" in result.stderr  # Go's reason, shown
    assert "tfds build" not in result.stderr  # no build was started
    assert not [p for p in cache.iterdir() if not p.name.endswith(".lock")]
    readback.assert_nothing_loads(tmp_path / "data")
