"""Beam on a Spark 3.5 standalone cluster spread over simulated hosts (launch/cluster.py):
the master on one host, a worker on each of two others (launch/spark_cluster.py), and the
launcher (`imagenet2017-tfds beam-build --spark_master`) on a fourth, submitting to that
cluster as to a user's own: only the Beam Spark job server starts there, with the Spark
driver in it. As for Flink (test_cluster_builds.py, whose helpers these tests share), the
hosts share nothing but the object store; the build must give the local build's examples,
read back by tfds.load, with SDK workers on both worker hosts; every listening socket of
every host is checked against what must reach it. The launcher's checks before it submits
are tested against the same cluster, and against a master alone. They need root, Java and
Go (fake-gcs-server)."""

from __future__ import annotations

import subprocess

import pytest

from imagenet2017_tfds.launch import cluster_build, daemons, spark_cluster
from tests.conftest import build_env
from tests.test_cluster_builds import (
    ANY_ADDRESS as FLINK_ANY_ADDRESS,
)
from tests.test_cluster_builds import (
    BUCKET,
    Site,
    check_cluster_build,
    cluster_build_command,
    gs_folders,
    launcher,
    refused,
    release_bed,
    run_submitted,
    unexpected_listeners,
)

HOSTS = ["master", "worker-1", "worker-2", "submitter"]
WORKERS = ["worker-1", "worker-2"]
ROLES = {  # a JVM's role, by its main class (the executor's first: its command names Worker@)
    "org.apache.spark.executor.CoarseGrainedExecutorBackend": "executor",
    "org.apache.spark.deploy.master.Master": "master",
    "org.apache.spark.deploy.worker.Worker": "worker",
    "SparkJobServerDriver": "job server",
}
SPARK = Site(HOSTS, WORKERS, ROLES, spark_cluster.BOOT_LOG)
# Listeners on every address (0.0.0.0, ::), by host and process, and why each is there.
ANY_ADDRESS = {
    ("submitter", "job server"): FLINK_ANY_ADDRESS[("submitter", "job server")],
    **{
        (host, "executor"): "the SDK-harness services (control, logging, artifacts, "
        "provision, data, state) an executor opens for its SDK workers bind every address on "
        "a random port, advertised as localhost: Beam's ServerFactory (docs/beam.md)"
        for host in WORKERS
    },
}


# ------------------------------------------------------------------------------------------
# The checks before submitting, against the bed's cluster and against a master no worker has
# joined, from the submitting host.


def spark_refused(bed, url: str, ui: str, *args: str) -> str:
    return refused(bed, "--runner", "spark", "--spark_master", url, "--spark_master_ui", ui, *args)


@pytest.mark.engines
@pytest.mark.stores
def test_a_master_without_free_cores_is_named_before_anything_starts(bed, tmp_path):
    """A master alone (on the submitting host, for this test only)."""
    alone = spark_cluster.start(bed, "submitter", [], log_dir=tmp_path)
    try:
        stderr = spark_refused(bed, alone.url, alone.ui, *gs_folders())
    finally:
        alone.stop()
    expected = (
        f"beam_build: the Spark master {alone.url} has 0 free cores (0 workers alive): start "
        "workers, or wait for the running applications to end"
    )
    assert expected in stderr, stderr
    assert "job-server.log" not in stderr  # refused before the job server started


@pytest.mark.engines
@pytest.mark.stores
def test_more_workers_than_free_cores_are_refused(bed, spark):
    stderr = spark_refused(bed, spark.url, spark.ui, "--workers", "3", *gs_folders())
    expected = f"the Spark master {spark.url} has 2 free cores (2 workers alive): --workers 3"
    assert expected + " needs 3: lower --workers or add workers" in stderr, stderr


@pytest.mark.engines
@pytest.mark.stores
def test_a_local_data_folder_is_refused_with_the_reason(bed, spark):
    stderr = spark_refused(bed, spark.url, spark.ui, *gs_folders(data_dir="/x"))
    assert (
        "beam_build: with --spark_master the workers run on other hosts: --data_dir /x is a "
        "local path they cannot see; use gs://..." in stderr
    ), stderr


@pytest.mark.engines
@pytest.mark.stores
def test_a_master_that_does_not_answer_is_named(bed, spark):
    nothing = f"{bed.hosts['master'].address}:1"  # the master's host; no port open
    stderr = spark_refused(bed, spark.url, nothing, *gs_folders())
    assert (
        f"beam_build: the Spark master {spark.url} does not answer (http://{nothing}/json" in stderr
    )
    assert "expected its web UI" in stderr and "--spark_master_ui HOST:PORT" in stderr, stderr


@pytest.mark.engines
@pytest.mark.stores
def test_another_master_at_the_web_ui_is_named(bed, spark):
    other = f"spark://{bed.hosts['worker-1'].address}:7077"
    stderr = spark_refused(bed, other, spark.ui, *gs_folders())
    assert f"the Spark master at {spark.ui} is {spark.url}, not {other}" in stderr, stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--runner", "flink", "--spark_master", "spark://h:7077"], "needs --runner spark"),
        (
            ["--runner", "spark", "--spark_master", "spark://h:7077", "--flink_master", "h:8081"],
            "--spark_master and --flink_master name two clusters: give one of them",
        ),
        (["--runner", "spark", "--spark_master", "h:7077"], "expected spark://HOST:PORT"),
        (["--runner", "spark", "--spark_master_ui", "h:8080"], "needs --spark_master"),
        (["--runner", "spark", "--spark_master", "spark://h:7077"], "needs --no-setup-file"),
    ],
)
def test_spark_master_arguments_are_checked(args, message):
    folders = ["--manual_dir", "gs://b/r", "--data_dir", "gs://b/d"]
    result = subprocess.run(
        launcher(*args, *folders), env=build_env(None), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2 and message in result.stderr, result.stderr


# ------------------------------------------------------------------------------------------
# Builds on the cluster.


@pytest.fixture(scope="module")
def fetched():
    """What the launcher and the cluster need (the job server's jars, SPARK_HOME, the boot
    wrapper), fetched before the hosts exist: they have no route to Maven Central, and the
    cache is read-only there."""
    cluster_build.fetch("spark")


@pytest.fixture(scope="module")
def bed(fetched, tarball_release):
    yield from release_bed(HOSTS, tarball_release)


@pytest.fixture(scope="module")
def spark(bed, tmp_path_factory):
    logs = tmp_path_factory.mktemp("spark-logs")
    cluster = spark_cluster.start(bed, "master", WORKERS, log_dir=logs, cores=1)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def spark_builds(bed, spark):
    """config -> its build on the cluster, made once, when a test first asks."""
    made = {}

    def build(config: str):
        if config not in made:
            run = f"gs://{BUCKET}/{config}"
            command = cluster_build_command(config, spark.url, run, runner="spark")
            made[config] = run_submitted(bed, command, run, SPARK)
        return made[config]

    return build


@pytest.mark.engines
@pytest.mark.stores
@pytest.mark.parametrize("config", ["clsloc", "det"])
def test_a_build_submitted_to_the_spark_cluster_gives_the_local_build(
    bed, spark, spark_builds, cli_builds, tarball_release, tmp_path, config
):
    """From gs:// into gs://, the SDK workers (the executors' children) on both worker hosts:
    the local build's examples, read back by tfds.load on a worker host."""
    build = spark_builds(config)
    assert build.returncode == 0, daemons.tails(spark.processes) + "\n" + build.stderr[-8000:]
    check_cluster_build(bed, build, SPARK, config, cli_builds, tarball_release, tmp_path)


@pytest.mark.engines
@pytest.mark.stores
def test_every_listening_socket_of_the_spark_cluster_is_where_it_must_be(bed, spark, spark_builds):
    """During the build: what other hosts reach (the master's RPC and web UI, the workers'
    RPC, the driver's RPC and block manager, the executors' block managers, the store)
    listens on its host's address, what one host uses alone (the workers' web UIs) on
    loopback, and on every address only what ANY_ADDRESS allows, with the reason."""
    listeners = spark_builds("clsloc").listeners
    print("\n" + "\n".join(f"{h}: {sorted(v)}" for h, v in sorted(listeners.items())))
    assert unexpected_listeners(bed, listeners, ANY_ADDRESS) == []
    master = bed.hosts["master"].address
    for port in (spark_cluster.MASTER_PORT, spark_cluster.MASTER_UI_PORT):
        assert (master, port, "master") in listeners["master"], listeners["master"]
    for host in WORKERS:
        address = bed.hosts[host].address
        assert (address, spark_cluster.WORKER_PORT, "worker") in listeners[host]
        assert ("127.0.0.1", spark_cluster.WORKER_UI_PORT, "worker") in listeners[host]
        # The executor ran there: its block manager on the address, its harness services.
        mine = {(a, r) for a, _, r in listeners[host]}
        assert (address, "executor") in mine, listeners[host]
        assert ("::", "executor") in mine or ("0.0.0.0", "executor") in mine, mine
    submitter = {(a, r) for a, _, r in listeners["submitter"]}
    assert (bed.hosts["submitter"].address, "job server") in submitter, submitter
    assert (bed.store_host.address, 443) in {(a, p) for a, p, _ in listeners["store"]}
