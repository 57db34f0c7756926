"""A Spark 3.5 standalone cluster on the hosts of a simulated cluster (launch/cluster.py), as
a user runs one on their machines: a master on one host and a worker on each of others,
started with Spark's own classes (org.apache.spark.deploy.master.Master and .worker.Worker,
what Spark's start-master.sh and start-worker.sh run) from the Spark job server's jars in the
cache (beam_build.spark_home: the same Spark 3.5.7, Scala 2.12, as the job server's driver),
every setting on the command line.

    with ClusterBed(["master", "worker-1", "worker-2", "submitter"]) as bed:
        spark = start(bed, "master", ["worker-1", "worker-2"], log_dir=folder)
        ... beam-build --runner spark --spark_master {spark.url} ...   (on "submitter")

What another host reaches listens on its host's address: the master's RPC (the workers and
the driver register there) and web UI (the launcher asks it for free cores: /json), the
workers' RPC (the master tells them to start executors). The workers' web UIs, which nothing
needs, listen on loopback (SPARK_LOCAL_IP; Spark cannot turn them off). The executors (each
worker's children) bind their host's name, which the host's hosts file maps to its address.
Their SDK workers log to BOOT_LOG on their host.

The JVMs run inside the hosts (cluster.popen), so the bed's removal, or losing a host
(kill_host), ends them with everything else there; stop() ends them earlier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from imagenet2017_tfds.launch import beam_build, daemons
from imagenet2017_tfds.launch.cluster import HOME, ClusterBed

MASTER_PORT, WORKER_PORT = 7077, 7078  # Spark's default master port; the worker's: fixed
MASTER_UI_PORT, WORKER_UI_PORT = beam_build.SPARK_UI_PORT, 8081  # Spark's defaults
TMP = "/tmp/spark"  # on each host: the workers' work folders, the executors' scratch files
BOOT_LOG = f"{TMP}/beam_boot.log"  # each SDK worker's boot logs there (beam_boot.py)
READY = {
    "master": "I have been elected leader! New state: ALIVE",
    "worker": "Successfully registered with master",
}
READY_SECONDS = 180  # a cold JVM on a loaded two-core machine
DAEMON_HEAP = "512m"  # a master or worker schedules only; the executors are JVMs of their own
# A lost host noticed in seconds (docs/beam.md's recommended settings): a worker whose host is
# gone answers nothing, so only its missed heartbeats tell. The master gives a worker up after
# spark.worker.timeout seconds without one (Spark's default: 60), and the workers beat every
# timeout/4; 10 s, not less, as a JVM on a loaded machine may miss a beat or two. The master
# then tells the driver that the worker's executors are lost, and Spark runs their tasks
# again on the executors left.
LOSS_DETECTION = {"spark.worker.timeout": 10}


class SparkClusterError(Exception):
    pass


@dataclass
class SparkCluster:
    """A started cluster: its master's URL (for --spark_master), its web UI (HOST:PORT, for
    --spark_master_ui) and its processes."""

    url: str
    ui: str
    processes: list[daemons.Process] = field(default_factory=list)

    def stop(self, seconds: float = 20) -> None:
        """TERM, then KILL what is left after `seconds`; the workers first."""
        daemons.stop_all(self.processes, seconds)


def master_command(address: str, more: dict | None = None) -> list[str]:
    """The master on host address: its RPC bound to and advertised as it (--host), its web UI
    on it too (SPARK_LOCAL_IP, in master_env), the REST submission server off (stated: the
    launcher does not use it)."""
    settings = {"spark.master.rest.enabled": "false", **LOSS_DETECTION, **(more or {})}
    main = ["org.apache.spark.deploy.master.Master", "--host", address]
    return [*java(settings), *main, "--port", str(MASTER_PORT), "--webui-port", str(MASTER_UI_PORT)]


def worker_command(
    address: str, master: str, cores: int, memory: str, more: dict | None = None
) -> list[str]:
    """A worker on host address registering with the master at master (spark://...): its
    RPC bound to and advertised as address; `cores` cores and `memory` for executors; its
    executors' work folders in the host's own TMP."""
    settings = {**LOSS_DETECTION, **(more or {})}
    main = ["org.apache.spark.deploy.worker.Worker", master, "--host", address]
    return [
        *java(settings),
        *main,
        *("--port", str(WORKER_PORT), "--webui-port", str(WORKER_UI_PORT)),
        *("--cores", str(cores), "--memory", memory, "--work-dir", f"{TMP}/work"),
    ]


def java(settings: dict) -> list[str]:
    """A Spark daemon's JVM: the job server's jars (beam_build.spark_home), the JDK opened to
    Spark as for the job server, its home the host's own (Java ignores HOME)."""
    jars = beam_build.spark_home() / "jars"  # cached: made before the bed started
    return [
        *("java", f"-Xmx{DAEMON_HEAP}", *beam_build.JVM_OPTIONS, *beam_build.SPARK_JAVA),
        f"-Duser.home={HOME}",
        f"-Djava.io.tmpdir={TMP}",
        *[f"-D{key}={value}" for key, value in settings.items()],
        *("-cp", f"{jars}/*"),
    ]


def env(local_ip: str, **more: str) -> dict:
    """A Spark daemon's environment: SPARK_HOME and the Scala version its launcher library
    needs to start executors (no build folders to tell it), and SPARK_LOCAL_IP, where its web
    UI listens."""
    home = str(beam_build.spark_home())
    scala = beam_build.SPARK_SCALA
    return {"SPARK_HOME": home, "SPARK_SCALA_VERSION": scala, "SPARK_LOCAL_IP": local_ip, **more}


def start(
    bed: ClusterBed,
    master: str,
    workers: list[str],
    *,
    log_dir: Path,
    cores: int = 1,
    memory: str = "2g",
    settings: dict | None = None,
    ready_seconds: float = READY_SECONDS,
) -> SparkCluster:
    """A master on host master and a worker of `cores` cores on each host of workers, once
    all have registered; their logs in log_dir (HOST-KIND.log). settings: Spark settings for
    the master and the workers, over this module's."""
    address = bed.hosts[master].address
    cluster = SparkCluster(f"spark://{address}:{MASTER_PORT}", f"{address}:{MASTER_UI_PORT}")
    try:
        command = master_command(address, settings)
        process = _start(bed, master, "master", command, env(address), log_dir)
        cluster.processes.append(process)
        daemons.wait_ready(process, READY, ready_seconds, "Spark", SparkClusterError)
        for name in workers:
            command = worker_command(bed.hosts[name].address, cluster.url, cores, memory, settings)
            # The web UI on loopback; the executors inherit BEAM_BOOT_LOG.
            worker_env = env("127.0.0.1", BEAM_BOOT_LOG=BOOT_LOG)
            cluster.processes.append(_start(bed, name, "worker", command, worker_env, log_dir))
        for process in cluster.processes[1:]:
            daemons.wait_ready(process, READY, ready_seconds, "Spark", SparkClusterError)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start(bed, host, kind, command, env, log_dir) -> daemons.Process:
    bed.run(host, ["mkdir", "-p", f"{TMP}/work"], check=True)
    return daemons.start(bed, host, kind, command, env, log_dir)
