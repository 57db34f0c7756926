"""A Flink 1.19 standalone cluster on the hosts of a simulated cluster (launch/cluster.py),
as a user runs one on their machines: a JobManager on one host and a TaskManager on each of
others, started with Flink's own scripts from the cached distribution
(beam_build.flink_distribution), every setting on the command line.

    with ClusterBed(["jobmanager", "worker-1", "worker-2", "submitter"]) as bed:
        flink = start(bed, "jobmanager", ["worker-1", "worker-2"], log_dir=folder)
        ... beam-build --runner flink --flink_master {flink.rest} ...   (on "submitter")

Each Flink process advertises its own host's address (Flink's distribution config.yaml
pins them to localhost), and binds it: the JobManager's REST endpoint, the TaskManagers' RPC,
data (shuffle) and metric query ports. The JobManager's RPC, blob server and metric query
service listen on every address, as Flink needs (jobmanager_settings). The TaskManagers have
Beam's job server jars on their classpath, loaded parent-first (as
beam_build.start_flink_cluster does on one machine, and for the same reason), their
temporary files in the host's own /tmp, and the launcher's restart strategy
(beam_build.FLINK_RESTARTS), and all of them the settings that notice a lost host quickly
(LOSS_DETECTION). Their SDK workers log to BOOT_LOG on their host.

The JVMs run inside the hosts (cluster.popen), so the bed's removal, or losing a host
(kill_host), ends them with everything else there; stop() ends them earlier.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from imagenet2017_tfds.launch import beam_build, daemons
from imagenet2017_tfds.launch.cluster import HOME, ClusterBed

RPC_PORT, BLOB_PORT, REST_PORT = 6123, 6124, 8081  # Flink's defaults (blob: fixed, not random)
TMP = "/tmp/flink"  # on each host: its io.tmp.dirs, pid and log files
BOOT_LOG = f"{TMP}/beam_boot.log"  # each SDK worker's boot logs there (beam_boot.log)
READY = {
    "jobmanager": "Rest endpoint listening at",
    "taskmanager": "Successful registration at resource manager",
}
READY_SECONDS = 180  # a cold JVM on a loaded two-core machine
JOBMANAGER_MEMORY = beam_build.FLINK_CLUSTER["jobmanager.memory.process.size"]
# A lost host noticed in seconds, not minutes (docs/beam.md's recommended defaults): a killed
# TaskManager whose link is down answers nothing, so only its heartbeats' timeout tells
# (Flink's default: 50 s, heartbeats every 10 s); 10 s, not less, as a JVM on a loaded
# machine may miss a beat or two. A job that the TaskManagers left cannot hold fails after
# slot.request.timeout (default 300 s) with Flink's reason, and shuffle connections to a
# host that is gone give up after 10 s (default 120 s). Values in ms and s: Flink 1.19 reads
# these as numbers.
LOSS_DETECTION = {
    "heartbeat.interval": 2000,
    "heartbeat.timeout": 10000,
    "slot.request.timeout": 60000,
    "taskmanager.network.netty.client.connectTimeoutSec": 10,
}


class FlinkClusterError(Exception):
    pass


@dataclass
class FlinkCluster:
    """A started cluster: where its REST endpoint is (HOST:PORT, for --flink_master) and its
    processes."""

    rest: str
    processes: list[daemons.Process] = field(default_factory=list)

    def stop(self, seconds: float = 20) -> None:
        """TERM, then KILL what is left after `seconds`; the TaskManagers first."""
        daemons.stop_all(self.processes, seconds)


def jobmanager_settings(address: str) -> dict:
    """The JobManager on host address: its REST endpoint bound to it, and everything
    advertised as it. Its RPC, blob server and metric query service listen on every address:
    the REST handler that takes a job uploads the job's jars to the blob server at
    localhost:blob.server.port (its gateway to the dispatcher is an actor of its own JVM,
    whose host flink-rpc-akka names "localhost"), while the TaskManagers fetch them at the
    host's address; the three share jobmanager.bind-host. Bound to the address alone, every
    submission fails: `Could not upload job files ... Could not connect to BlobServer at
    address localhost/127.0.0.1:6124`."""
    return {
        "jobmanager.rpc.address": address,
        "jobmanager.bind-host": "0.0.0.0",
        "jobmanager.rpc.port": RPC_PORT,
        "blob.server.port": BLOB_PORT,
        "rest.address": address,
        "rest.bind-address": address,
        "rest.port": REST_PORT,
        "jobmanager.memory.process.size": JOBMANAGER_MEMORY,
        # A job of fewer tasks than the cluster has slots gets a slot on each TaskManager:
        # by default Flink fills one first, and the other hosts idle (with 2 slots each and
        # --workers 2, the whole job would run on one host).
        "taskmanager.load-balance.mode": "SLOTS",
        **LOSS_DETECTION,
        **beam_build.FLINK_RESTARTS,
    }


def taskmanager_settings(name: str, address: str, jobmanager: str, slots: int) -> dict:
    """A TaskManager on host name (at address) joining the JobManager at jobmanager: its
    ports bound to and advertised as its address, its id the host's name (the JobManager's
    messages about it name the host)."""
    memory = {k: v for k, v in beam_build.FLINK_CLUSTER.items() if k.startswith("taskmanager.")}
    return {
        "jobmanager.rpc.address": jobmanager,
        "jobmanager.rpc.port": RPC_PORT,
        "taskmanager.host": address,
        "taskmanager.bind-host": address,
        "taskmanager.resource-id": name,
        "taskmanager.numberOfTaskSlots": slots,
        "io.tmp.dirs": TMP,
        "classloader.resolve-order": "parent-first",
        **memory,
        **LOSS_DETECTION,  # a TaskManager watches its JobManager's heartbeats the same way
        **beam_build.FLINK_RESTARTS,
    }


def dynamic(settings: dict) -> list[str]:
    """Flink's scripts' dynamic properties: over the distribution's conf/config.yaml."""
    return [arg for key, value in settings.items() for arg in ("-D", f"{key}={value}")]


def start(
    bed: ClusterBed,
    jobmanager: str,
    taskmanagers: list[str],
    *,
    log_dir: Path,
    slots: int = 1,
    settings: dict | None = None,
    ready_seconds: float = READY_SECONDS,
) -> FlinkCluster:
    """A JobManager on host jobmanager and a TaskManager of `slots` slots on each host of
    taskmanagers, once all have registered; their logs in log_dir (HOST-KIND.log). settings:
    Flink settings for all of them, over this module's."""
    dist = beam_build.flink_distribution()  # cached: fetched before the bed started
    beam_classpath = beam_build.job_server_classpath(beam_build.JOB_SERVERS["flink"])
    address = bed.hosts[jobmanager].address
    extra = settings or {}
    cluster = FlinkCluster(rest=f"{address}:{REST_PORT}")
    try:
        own = jobmanager_settings(address)
        process = _start(bed, jobmanager, "jobmanager", {**own, **extra}, dist, log_dir)
        cluster.processes.append(process)
        daemons.wait_ready(process, READY, ready_seconds, "Flink", FlinkClusterError)
        for name in taskmanagers:
            own = taskmanager_settings(name, bed.hosts[name].address, address, slots)
            env = {"HADOOP_CLASSPATH": beam_classpath, "BEAM_BOOT_LOG": BOOT_LOG}
            process = _start(bed, name, "taskmanager", {**own, **extra}, dist, log_dir, env)
            cluster.processes.append(process)
        for process in cluster.processes[1:]:
            daemons.wait_ready(process, READY, ready_seconds, "Flink", FlinkClusterError)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def _start(bed, host, kind, settings, dist, log_dir, env=None) -> daemons.Process:
    # Java ignores HOME: its user.home would be the machine's (read-only there).
    env = {
        "FLINK_CONF_DIR": str(dist / "conf"),
        "FLINK_LOG_DIR": TMP,
        "FLINK_PID_DIR": TMP,
        "JVM_ARGS": f"-Duser.home={HOME}",
        **(env or {}),
    }
    bed.run(host, ["mkdir", "-p", TMP], check=True)
    command = ["bash", str(dist / "bin" / f"{kind}.sh"), "start-foreground", *dynamic(settings)]
    return daemons.start(bed, host, kind, command, env, log_dir)
