"""Beam on a Flink 1.19 standalone cluster spread over simulated hosts (launch/cluster.py):
the JobManager on one host, a TaskManager on each of two others (launch/flink_cluster.py),
and the launcher (`imagenet2017-tfds beam-build --flink_master`) on a fourth, submitting to
that cluster as to a user's own. The hosts share nothing but the object store: the archives,
the shards and the checksums file are in gs:// on the bed's fake GCS server. The build must
give the local build's examples, read back by tfds.load from gs://, with SDK workers on both
worker hosts; every listening socket of every host is checked against what must reach it.
The launcher's checks before it submits are tested against the same cluster, and against a
JobManager alone.
The bed tests need root, Java and Go (fake-gcs-server)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path

import pytest

from imagenet2017_tfds.launch import beam_build, cluster_build, daemons, flink_cluster
from imagenet2017_tfds.launch.cluster import ClusterBed
from tests.conftest import ROOT, build_env
from tests.support import readback
from tests.test_object_stores import CLIENT, local_loaded, version_dir

HOSTS = ["jobmanager", "worker-1", "worker-2", "submitter"]
WORKERS = ["worker-1", "worker-2"]
BUCKET = "i2017-cluster"
TIMEOUT = 900  # the launcher's own --timeout
# Listeners on every address (0.0.0.0, ::), by host and process, and why each is there.
ANY_ADDRESS = {
    ("submitter", "job server"): "Beam's job server (job and artifact-staging ports) binds "
    "every address whatever --job-host says: its ServerFactory uses only the port "
    "(docs/beam.md); the submitter reaches it on this host, nothing else needs to",
    ("worker-1", "taskmanager"): "the SDK-harness services (control, logging, artifacts, "
    "provision, data, state) a TaskManager opens for its SDK workers bind every address on a "
    "random port, advertised as localhost: Beam's ServerFactory again (docs/beam.md)",
}
ANY_ADDRESS[("worker-2", "taskmanager")] = ANY_ADDRESS[("worker-1", "taskmanager")]
ANY_ADDRESS[("jobmanager", "jobmanager")] = (
    "the JobManager's RPC, blob server and metric query service share jobmanager.bind-host, "
    "and Flink's REST handler uploads a job's jars to the blob server at localhost while the "
    "TaskManagers fetch them at the host's address (flink_cluster.jobmanager_settings)"
)
ROLES = {  # a JVM's role, by its main class
    "StandaloneSessionClusterEntrypoint": "jobmanager",
    "TaskManagerRunner": "taskmanager",
    "FlinkJobServerDriver": "job server",
}


def launcher(*args: str) -> list[str]:
    return [sys.executable, "-m", "imagenet2017_tfds.tools.cli", "beam-build", *args]


# ------------------------------------------------------------------------------------------
# The checks before submitting, against the bed's cluster and against one no TaskManager has
# joined, from the submitting host.


def refused(bed, *args: str) -> str:
    """The launcher's stderr on the submitting host, when it exits 2."""
    result = bed.run(
        "submitter",
        launcher(*args),
        env={"TF_CPP_MIN_LOG_LEVEL": "2"},
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    return result.stderr


def gs_folders(*, data_dir="gs://b/data") -> list[str]:
    return ["--manual_dir", "gs://b/raw", "--data_dir", data_dir, "--no-setup-file"]


@pytest.mark.engines
@pytest.mark.stores
def test_a_cluster_without_free_slots_is_named_before_anything_starts(bed, tmp_path):
    """A JobManager alone (on the submitting host, for this test only)."""
    alone = flink_cluster.start(bed, "submitter", [], log_dir=tmp_path)
    try:
        stderr = refused(bed, "--flink_master", alone.rest, *gs_folders())
    finally:
        alone.stop()
    expected = (
        f"beam_build: the Flink cluster at {alone.rest} has 0 free task slots (0 TaskManagers "
        "registered): start TaskManagers, or wait for the running jobs to end"
    )
    assert expected in stderr, stderr
    assert "job-server.log" not in stderr  # refused before the job server started


@pytest.mark.engines
@pytest.mark.stores
def test_more_workers_than_free_slots_are_refused(bed, flink):
    stderr = refused(bed, "--flink_master", flink.rest, "--workers", "3", *gs_folders())
    expected = (
        f"the Flink cluster at {flink.rest} has 2 free task slots (2 TaskManagers registered)"
        ": --workers 3 needs 3: lower --workers or add TaskManagers"
    )
    assert expected in stderr, stderr


@pytest.mark.engines
@pytest.mark.stores
def test_a_local_data_folder_is_refused_with_the_reason(bed, flink):
    stderr = refused(bed, "--flink_master", flink.rest, *gs_folders(data_dir="/x"))
    assert (
        "beam_build: with --flink_master the workers run on other hosts: --data_dir /x is a "
        "local path they cannot see; use gs://..." in stderr
    ), stderr


@pytest.mark.engines
@pytest.mark.stores
def test_a_cluster_that_does_not_answer_is_named(bed, flink):
    nothing = f"{bed.hosts['jobmanager'].address}:1"  # the JobManager's host; no port open
    stderr = refused(bed, "--flink_master", nothing, *gs_folders())
    assert f"beam_build: the Flink cluster at {nothing} does not answer" in stderr, stderr
    assert "expected its JobManager's REST endpoint" in stderr


def test_flink_master_needs_the_package_on_the_hosts_not_staged():
    result = subprocess.run(
        launcher("--flink_master", "h:8081", "--manual_dir", "gs://b/r", "--data_dir", "gs://b/d"),
        env=build_env(None),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "--flink_master needs --no-setup-file" in result.stderr


# ------------------------------------------------------------------------------------------
# A build on the cluster.


@dataclass
class ClusterBuild:
    """A build submitted from host submitter: its exit status and output, and what was seen
    while it ran."""

    returncode: int
    stderr: str
    data_dir: str
    seconds: float
    listeners: dict[str, set] = field(default_factory=dict)  # host -> {(address, port, role)}
    reads: dict[str, int] = field(default_factory=dict)  # host -> archive bytes it read
    counts: dict = field(default_factory=dict)  # the store's (stores.Counts)
    boot_logs: dict[str, str] = field(default_factory=dict)  # worker host -> its boot log
    left: dict[str, list] = field(default_factory=dict)  # SDK workers alive well after the job


@pytest.fixture(scope="module")
def fetched():
    """What the launcher and the cluster need, fetched before the hosts exist: they have no
    route to Maven Central or PyPI, and the cache is read-only there."""
    cluster_build.fetch("flink")


@pytest.fixture(scope="module")
def bed(fetched, tarball_release):
    yield from release_bed(HOSTS, tarball_release)


def release_bed(hosts: list[str], release):
    """A bed of hosts, the release in its store (a module fixture's body)."""
    with ClusterBed(hosts) as bed:
        store_release(bed, release)
        yield bed


def store_release(bed: ClusterBed, release) -> None:
    """The release's archives and checksums file into the bed's store, where the hosts read
    them."""
    bed.store.make_bucket("gcs", BUCKET)
    for archive in sorted(Path(release.manual_dir).glob("*.tar.gz")):
        bed.store.upload(archive, f"gs://{BUCKET}/raw/")
    # The submitting host reads it there (it sees no folder of this machine's).
    bed.store.upload(release.checksums, f"gs://{BUCKET}/checksums.tsv")


@pytest.fixture(scope="module")
def flink(bed, tmp_path_factory):
    logs = tmp_path_factory.mktemp("flink-logs")
    cluster = flink_cluster.start(bed, "jobmanager", WORKERS, log_dir=logs, slots=1)
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass(frozen=True)
class Site:
    """A cluster on the bed, as a build on it is watched: its hosts, its worker hosts, its
    JVMs' roles by main class, and where each worker host's SDK workers log their boot."""

    hosts: list[str]
    workers: list[str]
    roles: dict[str, str]
    boot_log: str


FLINK = Site(HOSTS, WORKERS, ROLES, flink_cluster.BOOT_LOG)


def role(pid: int | None, process: str, roles: dict[str, str] = ROLES) -> str:
    """What a listening process is: an engine's or Beam's JVM by its main class, else its
    name."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except (OSError, TypeError):
        return process or "?"
    return next((r for cls, r in roles.items() if cls in cmdline), process or "?")


def plain(address: str) -> str:
    """An address as IPv4 when it is one mapped into IPv6 ([::ffff:a.b.c.d])."""
    where = ip_address(address)
    return str(getattr(where, "ipv4_mapped", None) or where)


def sample_listeners(bed: ClusterBed, into: dict[str, set], site: Site = FLINK) -> None:
    for host in [*site.hosts, "store"]:
        for each in bed.listening(host):
            found = (plain(each.address), each.port, role(each.pid, each.process, site.roles))
            if found[2] == "?":
                # No living process holds it: its owner ended (Spark's executors end with
                # the job) between the sockets' list and the processes' scan. What it was,
                # the samples while it lived tell.
                continue
            into.setdefault(host, set()).add(found)


def cluster_build_command(config: str, master: str, run: str, runner="flink") -> list[str]:
    """The launcher's command on the submitting host: runner (flink, spark) submitting to the
    cluster at master (--flink_master, --spark_master)."""
    return cluster_build.submit_command(
        runner,
        master,
        config,
        f"gs://{BUCKET}/raw",
        run,
        workers=2,
        timeout=TIMEOUT,
        work_dir=f"/tmp/beam-work-{config}",
    )


def run_on_cluster(bed, flink, config: str) -> ClusterBuild:
    """The build of config on the Flink cluster."""
    run = f"gs://{BUCKET}/{config}"
    return run_submitted(bed, cluster_build_command(config, flink.rest, run), run, FLINK)


def run_submitted(bed, command: list[str], run: str, site: Site) -> ClusterBuild:
    """The build of command, submitted from host submitter, into the store folder run; every
    host's listening sockets sampled while it runs."""
    bed.store.reset_counts()
    for host in site.workers:  # this build's boot lines only
        bed.run(host, ["truncate", "-s", "0", site.boot_log], check=True)
    env = {"IMAGENET2017_CHECKSUMS": f"gs://{BUCKET}/checksums.tsv", "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.monotonic()
    build = bed.popen(
        "submitter",
        command,
        env=env,
        cwd=str(ROOT),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    output: list[str] = []
    reader = threading.Thread(target=lambda: output.extend(build.stdout), daemon=True)
    reader.start()
    listeners: dict[str, set] = {}
    try:
        while build.poll() is None:
            assert time.monotonic() - started < TIMEOUT + 120, "the launcher outlived --timeout"
            sample_listeners(bed, listeners, site)
            time.sleep(1)
    finally:
        if build.poll() is None:
            build.kill()
        build.wait()
        reader.join(timeout=30)
    counts = bed.store.counts()
    reads = {
        h: counts.total("read", client=bed.hosts[h].address, prefix=f"gs://{BUCKET}/raw/")
        for h in site.hosts
    }
    boot_logs = {
        h: bed.run(h, ["cat", site.boot_log], capture_output=True, text=True).stdout
        for h in site.workers
    }
    # The cluster outlives the job; its SDK workers must not (beam_build: a minute after).
    wait = beam_build.CLUSTER_WORKERS_KEPT_MS / 1000 + 60
    deadline = time.monotonic() + wait
    while (
        any(cluster_build.sdk_workers(bed, h) for h in site.workers) and time.monotonic() < deadline
    ):
        time.sleep(1)
    left = {h: cluster_build.sdk_workers(bed, h) for h in site.workers}
    return ClusterBuild(
        build.returncode,
        "".join(output),
        f"{run}/data",
        time.monotonic() - started,
        listeners,
        reads,
        counts,
        boot_logs,
        left,
    )


@pytest.fixture(scope="module")
def cluster_builds(bed, flink):
    """config -> its build on the cluster, made once, when a test first asks."""
    made = {}

    def build(config: str) -> ClusterBuild:
        if config not in made:
            made[config] = run_on_cluster(bed, flink, config)
        return made[config]

    return build


@pytest.mark.engines
@pytest.mark.stores
@pytest.mark.parametrize("config", ["clsloc", "det"])
def test_a_build_submitted_to_the_cluster_gives_the_local_build(
    bed, flink, cluster_builds, cli_builds, tarball_release, tmp_path, config
):
    """From gs:// into gs://, the SDK workers on both worker hosts: the local build's
    examples, read back by tfds.load on another host."""
    build = cluster_builds(config)
    assert build.returncode == 0, daemons.tails(flink.processes) + "\n" + build.stderr[-8000:]
    check_cluster_build(bed, build, FLINK, config, cli_builds, tarball_release, tmp_path)


def check_cluster_build(bed, build, site: Site, config, cli_builds, release, tmp_path) -> None:
    """The build's shards are the local build's, tfds.load reads them on a worker host, and
    each worker host ran SDK workers (its engine's children, through the boot) and kept none
    after the job, and the ranges were read from the store by the worker hosts."""
    got = tmp_path / "data"
    bed.store.download(version_dir(build.data_dir, config), version_dir(got, config))
    shards = readback.shard_bytes(got, config)
    assert shards and shards == readback.shard_bytes(cli_builds, config)
    read = bed.run(
        site.workers[0],
        [sys.executable, CLIENT, build.data_dir, config],
        env={"TF_CPP_MIN_LOG_LEVEL": "2"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert read.returncode == 0, read.stderr[-4000:]
    assert json.loads(read.stdout.splitlines()[-1]) == local_loaded(cli_builds, config)
    for host in site.workers:
        assert "beam_boot[" in build.boot_logs[host], (host, build.boot_logs)
        assert build.left[host] == [], f"SDK workers on {host} outlived the job: {build.left}"
    # The ranges' archive bytes are read by worker hosts themselves, from the store, and by no
    # other host but the submitter (its verifying pass). Not by each worker host: which host
    # runs a range is the runner's choice (docs/beam.md, "How the work is spread").
    readers = {host for host, n in build.reads.items() if n}
    assert readers & set(site.workers) and readers <= {"submitter", *site.workers}, build.reads
    # What each host read of each archive, for the record. Not bounded by 1.05 times the
    # archive here: a range reads from the gzip index's checkpoint before it to the end of
    # the chunk (about 4 MB) holding its last member (ranges.py), so at this size every
    # range reads its whole archive (CLS-LOC: 3 splits x 1 range per worker, 3 times the
    # archive on each worker host). That bound is for a corpus of real size (the benchmark).
    for archive in sorted(Path(release.manual_dir).glob("*.tar.gz")):
        url = f"gs://{BUCKET}/raw/{archive.name}"
        by_host = {
            h: build.counts.total("read", client=bed.hosts[h].address, url=url) for h in site.hosts
        }
        size = archive.stat().st_size
        print(f"{config}: {archive.name} ({size} B) read by {by_host}")
        # The submitter verifies each archive the config uses in one pass: all of it, once.
        assert by_host["submitter"] in (0, size), (archive.name, by_host)
    print(f"{config} on the cluster: {build.seconds:.0f} s; archive bytes read: {build.reads}")


def unexpected_listeners(bed, listeners: dict[str, set], allowed=ANY_ADDRESS) -> list[str]:
    """Each listener not on its host's address, not on loopback, and not allowed (a
    {(host, role): reason} on every address)."""
    found = []
    for host, each in sorted(listeners.items()):
        own = bed.store_host.address if host == "store" else bed.hosts[host].address
        for address, port, what in sorted(each):
            where = ip_address(address)
            if where.is_loopback or address == own:
                continue
            if where.is_unspecified and (host, what) in allowed:
                continue
            found.append(f"{host}: {address}:{port} ({what})")
    return found


@pytest.mark.engines
@pytest.mark.stores
def test_every_listening_socket_is_where_it_must_be(bed, flink, cluster_builds):
    """During the build: what other hosts reach (the JobManager's RPC, blob server and REST,
    the TaskManagers' RPC and data ports, the store) listens on its host's address, what one
    host uses alone on loopback, and on every address only what ANY_ADDRESS allows, with the
    reason."""
    listeners = cluster_builds("clsloc").listeners
    print("\n" + "\n".join(f"{h}: {sorted(v)}" for h, v in sorted(listeners.items())))
    assert unexpected_listeners(bed, listeners) == []
    jobmanager = bed.hosts["jobmanager"].address
    assert (jobmanager, flink_cluster.REST_PORT, "jobmanager") in listeners["jobmanager"]
    for port in (flink_cluster.RPC_PORT, flink_cluster.BLOB_PORT):
        wildcard = {("::", port, "jobmanager"), ("0.0.0.0", port, "jobmanager")}
        assert wildcard & listeners["jobmanager"], listeners["jobmanager"]
    for host in WORKERS:
        mine = {(a, r) for a, _, r in listeners[host]}
        # Its RPC and data ports, and (the job ran there) the harness services.
        assert (bed.hosts[host].address, "taskmanager") in mine, listeners[host]
        assert ("::", "taskmanager") in mine or ("0.0.0.0", "taskmanager") in mine, mine
    assert {r for _, _, r in listeners["submitter"]} >= {"job server"}, listeners["submitter"]
    assert (bed.store_host.address, 443) in {(a, p) for a, p, _ in listeners["store"]}
