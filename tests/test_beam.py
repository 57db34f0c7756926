"""The Beam path: the same examples, byte for byte, on the DirectRunner with two worker
processes and on Beam's portability framework (job service + external SDK worker pool),
the way Flink, Spark and Dataflow run Python pipelines."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import build_env, tfds_build
from tests.support import readback
from tests.support.mutate import wrong_md5

DIRECT = "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"


def range_files(data_dir, config):
    return sorted(
        (Path(data_dir) / "downloads" / "imagenet2017" / "ranges").glob(f"{config}-*.json")
    )


@pytest.mark.parametrize("config", ["clsloc", "det"])
def test_direct_runner_two_workers_gives_the_same_examples(
    cli_builds, tarball_release, tmp_path, config
):
    tfds_build(
        config,
        tarball_release.manual_dir,
        tmp_path,
        tarball_release.checksums,
        f"--beam_pipeline_options={DIRECT}",
    )
    assert readback.records(tmp_path, config) == readback.records(cli_builds, config)
    assert readback.splits(tmp_path, config) == readback.splits(cli_builds, config)
    # Every split with more than one example was cut into ranges for separate workers.
    train = [p for p in range_files(tmp_path, config) if f"{config}-train-" in p.name]
    assert len(train) >= 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, process, timeout=120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"service exited with {process.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("localhost", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"nothing listens on port {port}")


# Beam's local job service, with the limit compat.beam_fixes sets in a build's own process: this
# one runs the FnApiRunner in a process of its own (docs/beam.md's command).
JOB_SERVICE = (
    "import sys; from apache_beam.runners.portability.fn_api_runner import worker_handlers; "
    "worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = 0; from apache_beam.runners.portability import "
    "local_job_service_main; local_job_service_main.run(sys.argv[1:])"
)


@pytest.fixture
def portable_services(tmp_path):
    job_port, pool_port = free_port(), free_port()
    env = build_env(None)
    commands = [
        [sys.executable, "-c", JOB_SERVICE, "--port", str(job_port)],
        [
            sys.executable,
            "-m",
            "apache_beam.runners.worker.worker_pool_main",
            "--service_port",
            str(pool_port),
        ],
    ]
    logs = [open(tmp_path / f"service{i}.log", "w") for i in range(2)]  # noqa: SIM115
    processes = [
        subprocess.Popen(c, env=env, stdout=log, stderr=subprocess.STDOUT)
        for c, log in zip(commands, logs, strict=True)
    ]
    try:
        wait_for_port(job_port, processes[0])
        wait_for_port(pool_port, processes[1])
        yield job_port, pool_port
    finally:
        for p in processes:
            p.terminate()
        for p in processes:
            p.wait(timeout=30)
        for log in logs:
            log.close()


def test_portable_runner_with_external_worker_pool(
    portable_services, cli_builds, tarball_release, tmp_path
):
    job_port, pool_port = portable_services
    options = (
        f"runner=PortableRunner,job_endpoint=localhost:{job_port},"
        f"environment_type=EXTERNAL,environment_config=localhost:{pool_port}"
    )
    data = tmp_path / "data"
    tfds_build(
        "clsloc",
        tarball_release.manual_dir,
        data,
        tarball_release.checksums,
        f"--beam_pipeline_options={options}",
    )
    assert readback.records(data, "clsloc") == readback.records(cli_builds, "clsloc")


def test_beam_build_verifies_before_any_shard(tarball_release, tmp_path):
    bad, _ = wrong_md5(tarball_release.checksums, "ILSVRC2017_DET.tar.gz", tmp_path)
    result = tfds_build(
        "det",
        tarball_release.manual_dir,
        tmp_path / "data",
        bad,
        f"--beam_pipeline_options={DIRECT}",
        check=False,
    )
    assert result.returncode != 0
    assert f"ILSVRC2017_DET.tar.gz: md5 mismatch: expected {'0' * 32}" in result.stderr
    assert not list((tmp_path / "data").rglob("*.tfrecord*"))
    assert not list((tmp_path / "data").rglob("dataset_info.json"))
