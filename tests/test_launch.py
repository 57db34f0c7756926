"""The local-engine launcher (imagenet2017_tfds.launch.beam_build, `imagenet2017-tfds
beam-build`), its plain parts without Java or Go: arguments, the command lines it builds, each
engine's pipeline options, its cache, the boot wrapper and the package it stages for the
workers. tests/test_launch_engines.py starts the engines for real."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from imagenet2017_tfds.launch import beam_build as launcher
from imagenet2017_tfds.launch import flink_watch
from imagenet2017_tfds.tools import cli
from tests.conftest import CLI, ROOT, build_env, pip_install
from tests.support import readback


def test_the_workers_get_the_package_only_from_setup_file():
    env = {"PYTHONPATH": os.pathsep.join([str(ROOT), "/elsewhere/tfds"]), "PATH": "/bin"}
    assert launcher.worker_env(env, setup_file=True)["PYTHONPATH"] == "/elsewhere/tfds"
    assert launcher.worker_env(env, setup_file=False) == env


def _args(*extra: str):
    return launcher.parse_args(["--manual_dir", "D", "--data_dir", "O", *extra])


def test_the_subcommand_parses_the_launchers_own_arguments(capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(["beam-build", "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: imagenet2017-tfds beam-build")
    for option in ("--runner", "--flink_cluster", "--fetch_only", "--no-setup-file", "--work_dir"):
        assert option in out
    refusals = [
        ([], "--manual_dir and --data_dir are needed (unless --fetch_only)"),
        (
            ["--manual_dir", "D", "--data_dir", "O", "--workers", "0"],
            "--workers must be 1 or more, not 0",
        ),
        (
            [
                "--manual_dir",
                "D",
                "--data_dir",
                "O",
                "--runner",
                "spark",
                "--flink_cluster",
                "standalone",
            ],
            "--flink_cluster standalone needs --runner flink, not spark",
        ),
        (["--runner", "samza", "--fetch_only"], "argument --runner: invalid choice: 'samza'"),
    ]
    for argv, message in refusals:
        with pytest.raises(SystemExit) as exited:
            cli.main(["beam-build", *argv])
        assert exited.value.code == 2
        assert message in capsys.readouterr().err


def test_the_defaults_and_what_goes_to_tfds_build():
    args = _args()
    assert (args.runner, args.config, args.workers, args.flink_cluster) == (
        "flink",
        "clsloc",
        2,
        "embedded",
    )
    assert (args.jvm_heap, args.setup_file, args.timeout, args.work_dir) == ("1g", True, None, None)
    assert launcher.parse_args(["--fetch_only", "--runner", "prism"]).fetch_only
    args = _args(
        "--config", "det", "--download_dir", "X", "--", "--overwrite", "--file_format=tfrecord"
    )
    assert launcher.tfds_command(args, ["runner=PortableRunner", "job_endpoint=localhost:1"]) == [
        str(Path(sys.executable).parent / "tfds"),
        "build",
        "imagenet2017",
        "--imports",
        "imagenet2017_tfds",
        "--config",
        "det",
        "--manual_dir",
        "D",
        "--data_dir",
        "O",
        "--beam_pipeline_options=runner=PortableRunner,job_endpoint=localhost:1",
        "--download_dir",
        "X",
        "--overwrite",
        "--file_format=tfrecord",
    ]


def test_the_pipeline_options_of_each_engine(tmp_path):
    options, engine = launcher.start_engine(
        _args("--runner", "direct", "--workers", "3"), launcher.Services(tmp_path), {}
    )
    assert engine is None
    assert options == [
        "runner=DirectRunner",
        "direct_num_workers=3",
        "direct_running_mode=multi_processing",
    ]
    flink, spark = launcher.JOB_SERVERS["flink"], launcher.JOB_SERVERS["spark"]
    # One SDK worker process a slot (or Spark thread), kept for the whole job.
    assert flink.pipeline_options(2) == [
        "parallelism=2",
        "sdk_worker_parallelism=2",
        "environment_cache_millis=3600000",
    ]
    assert spark.pipeline_options(3) == [
        "sdk_worker_parallelism=3",
        "environment_cache_millis=3600000",
    ]
    assert flink.engine_args(4) == ["--flink-master=[local]"]
    assert spark.engine_args(4) == ["--spark-master-url=local[4,6]"]  # a failed task: 6 tries
    for server in (flink, spark):  # the poms ship with the package
        assert server.pom.is_file() and server.pom.parent == Path(launcher.__file__).parent


def test_a_cache_entry_is_made_once_and_a_failed_one_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(launcher, "CACHE", tmp_path / "cache")
    made = []

    def make(folder: Path) -> None:
        made.append(folder)
        (folder / "prism").write_text("binary")

    first = launcher.cached("prism-2.77.0", make)
    assert first == tmp_path / "cache" / "prism-2.77.0"
    assert (first / "prism").read_text() == "binary" and (first / ".complete").is_file()
    assert launcher.cached("prism-2.77.0", make) == first
    assert len(made) == 1 and not made[0].exists()  # made in a partial folder, renamed

    def fail(folder: Path) -> None:
        (folder / "half").write_text("x")
        raise launcher.LaunchError("the fetch failed")

    with pytest.raises(launcher.LaunchError, match="the fetch failed"):
        launcher.cached("flink-1.19.3", fail)
    assert sorted(
        p.name for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")
    ) == ["prism-2.77.0"]


def test_the_job_servers_jars_are_cached_by_their_poms_content(tmp_path, monkeypatch):
    monkeypatch.setattr(launcher, "CACHE", tmp_path)
    server = launcher.JOB_SERVERS["spark"]
    digest = hashlib.sha256(server.pom.read_bytes()).hexdigest()[:12]
    fix = Path(launcher.evict_dead_workers.__file__).read_bytes()
    fixed = (
        f"spark-lost-worker-fix-{hashlib.sha256(server.pom.read_bytes() + fix).hexdigest()[:12]}"
    )
    for folder in (f"spark-job-server-{digest}", fixed):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / ".complete").touch()
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # Maven cannot run: nothing is fetched
    assert launcher.job_server_classpath(server) == os.pathsep.join(
        [
            str(tmp_path / fixed / launcher.evict_dead_workers.JAR),
            f"{tmp_path}/spark-job-server-{digest}/*",
        ]
    )
    other = launcher.JobServer(**{**vars(server), "pom": tmp_path / "changed-pom.xml"})
    other.pom.write_bytes(server.pom.read_bytes() + b"<!-- another version -->")
    with pytest.raises(launcher.LaunchError, match="needs `mvn` on PATH"):
        launcher.job_server_classpath(other)


def test_the_boot_wrapper_runs_the_shipped_boot_with_this_python(tmp_path):
    wrapper = launcher.boot_wrapper(tmp_path)
    assert os.access(wrapper, os.X_OK)
    result = subprocess.run([str(wrapper), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "--provision_endpoint" in result.stdout and "--control_endpoint" in result.stdout


def _sdist_files(setup_py: Path, out: Path) -> dict[str, bytes]:
    """What pip installs from the sdist Beam's stager builds (setup.py sdist, as without `build`)."""
    subprocess.run(
        [sys.executable, "setup.py", "-q", "sdist", "--dist-dir", str(out / "dist")],
        cwd=setup_py.parent,
        check=True,
        capture_output=True,
    )
    (sdist,) = (out / "dist").glob("*.tar.gz")
    pip_install("--no-deps", "--no-build-isolation", "--target", str(out / "site"), str(sdist))
    return _package_files(out / "site" / "imagenet2017_tfds")


def _package_files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in folder.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_the_staged_package_is_the_imported_one_from_a_clone_or_an_install(wheel, tmp_path):
    clone = _package_files(ROOT / "imagenet2017_tfds")
    assert {
        "dataset/builder.py",
        "data/map_clsloc.txt",
        "launch/flink-pom.xml",
        "launch/beam_boot.py",
    } <= set(clone)
    staged = _sdist_files(launcher.staged_setup(tmp_path / "clone"), tmp_path / "clone")
    assert staged == clone
    # Installed from the wheel, with no setup.py anywhere: the same files are staged.
    site = tmp_path / "installed"
    pip_install("--no-deps", "--target", str(site), str(wheel))
    code = (
        "import sys; from pathlib import Path; from imagenet2017_tfds.launch import beam_build\n"
        "print(beam_build.staged_setup(Path(sys.argv[1])))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "work")],
        cwd=tmp_path,
        env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == str(tmp_path / "work" / "stage" / "setup.py")
    installed = _package_files(site / "imagenet2017_tfds")
    assert _sdist_files(Path(result.stdout.strip()), tmp_path / "work") == installed


def test_the_watch_of_a_jobmanager_that_does_not_answer_says_so_once_and_lets_the_build_go_on():
    """The launcher's watch of a user's Flink cluster (flink_watch.py) when nothing answers
    at the JobManager's address (a loopback port closed here; the watch of a real cluster
    losing a host is in test_cluster_lost_host.py)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        rest = f"127.0.0.1:{probe.getsockname()[1]}"  # closed once the probe is
    said: list[str] = []
    watch = flink_watch.FlinkWatch(rest, "imagenet2017-x", [], 5, say=said.append, every=0)
    watch.poll()
    watch.poll()
    assert len(said) == 1, said
    assert said[0].startswith(f"beam_build: the JobManager at {rest} did not answer ("), said
    assert "Connection refused" in said[0] and said[0].endswith("looks again"), said
    assert watch.finish(1, settle=0) is None  # no job seen, no loss: nothing to blame on Flink
    assert said[-1] == (
        "beam_build: on the cluster: no TaskManager lost; Flink restarted the job's tasks 0 "
        "times (of 5 allowed); the job imagenet2017-x not found on the cluster on no TaskManager"
    )


def test_a_build_past_its_timeout_is_stopped_with_exit_124(tarball_release, tmp_path):
    """--timeout shorter than the build (the DirectRunner: no engine to fetch or start; `tfds
    build` alone imports TensorFlow and Beam for seconds): the launcher stops the build it
    started, exits 124 and leaves no dataset and no process of it."""
    data = tmp_path / "data"
    command = [*CLI, "beam-build"]
    command += ["--runner", "direct"]
    command += ["--config", "clsloc", "--manual_dir", str(tarball_release.manual_dir)]
    command += ["--data_dir", str(data), "--timeout", "2", "--work_dir", str(tmp_path / "w")]
    env = build_env(tarball_release.checksums)
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 124, result.stderr[-3000:]
    assert "beam_build: --timeout reached; stopping what it started" in result.stderr
    left = [p for p in psutil.process_iter(["cmdline"]) if str(data) in (p.info["cmdline"] or [])]
    assert left == [], left
    readback.assert_nothing_loads(data)


def test_a_missing_tool_stops_the_launch_with_exit_2_naming_it(tarball_release, tmp_path):
    """Nothing cached and no Maven on PATH: `beam-build --runner flink` says which tool to
    install and exits 2, before any build starts."""
    data = tmp_path / "data"
    command = [*CLI, "beam-build"]
    command += ["--runner", "flink"]
    command += ["--config", "clsloc", "--manual_dir", str(tarball_release.manual_dir)]
    command += ["--data_dir", str(data), "--work_dir", str(tmp_path / "w")]
    env = dict(
        build_env(tarball_release.checksums),
        PATH=str(tmp_path / "no-tools"),
        IMAGENET2017_CACHE=str(tmp_path / "cache"),
    )
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-3000:]
    assert (
        "beam_build: fetching Beam's Flink job server from Maven Central needs `mvn` on PATH, "
        "which is not there: install it"
    ) in result.stderr
    assert "tfds build" not in result.stderr  # no build was started
    readback.assert_nothing_loads(data)


def test_a_process_that_ended_is_seen_at_once_and_left_unreaped():
    """exit_status(process, 0), as the launcher asks of its job server and cluster at each
    turn of its loop: the status of a process that has ended, without waiting; still a zombie
    (its process group id not reusable), so stopping the group reaches only what it started."""
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOWAIT)  # ended, not reaped
    assert launcher.exit_status(process, 0) == 3
    assert psutil.Process(process.pid).status() == psutil.STATUS_ZOMBIE
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert launcher.exit_status(running, 0) is None
    finally:
        running.kill()
        running.wait()
    process.wait()
