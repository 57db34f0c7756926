"""Build imagenet2017 through Apache Beam on a local engine, in one command
(`make beam-build RUNNER=flink CONFIG=clsloc MANUAL_DIR=D DATA_DIR=O WORKERS=2`):

  imagenet2017-tfds beam-build --runner flink --config clsloc --manual_dir D --data_dir O --workers 2

- flink: Beam's Flink job server (Java) with its embedded Flink cluster (`--flink-master=[local]`,
  WORKERS task slots), fetched from Maven Central once (flink-pom.xml beside this module) into
  ~/.cache/imagenet2017-tfds/; the pipeline runs on WORKERS Python SDK worker processes that
  the job server starts (PROCESS environment, beam_boot.py).
  With `--flink_cluster standalone`, the job server submits to a Flink cluster of its own
  processes instead: a JobManager and a TaskManager (WORKERS slots) of the Flink release the
  runner was built for, from PyPI's apache-flink-libraries (jars) and apache-flink (scripts),
  fetched once into the same cache; the SDK workers are then the TaskManager's children.
  With `--flink_master HOST:PORT`, it submits to a Flink cluster of the user's instead (the
  JobManager's REST endpoint), and starts only the job server, here, advertised at this
  host's address on the way to the cluster. It first checks that the cluster answers with
  WORKERS free slots and that every data folder is a URL (gs://...) the workers' hosts read
  too. The TaskManagers need the job server's jars on their classpath and the hosts the same
  venv, package (`--no-setup-file`) and cache at the same paths (docs/beam.md). While the
  job runs it watches the cluster through the JobManager's REST API (flink_watch.py): it
  names each TaskManager lost and each restart Flink makes, sums them up at the end, and,
  when the job failed, ends with the lost hosts and Flink's own reason.
- spark: Beam's Spark job server (Java) running Spark in its own JVM
  (`--spark-master-url=local[WORKERS]`), fetched once (spark-pom.xml) the same
  way; the same PROCESS environment and WORKERS SDK worker processes.
  With `--spark_master spark://HOST:PORT`, it submits to a Spark standalone cluster of the
  user's instead: only the job server starts here, its Spark driver bound to and advertised
  at this host's address on the way to the master (the executors connect back to it). It
  first checks that the master's web UI answers with WORKERS free cores and that every data
  folder is a URL the workers' hosts read; the job runs on WORKERS executors of one core,
  one SDK worker each. The cluster needs Spark 3.5 with Scala 2.12 (spark_cluster.py starts
  one from the job server's own jars) and the hosts the same venv and cache (docs/beam.md).
- prism: Beam's Prism runner (Go), built once with `go install` into the same cache; it runs
  every bundle on one SDK worker process (it ignores the number of workers).
- direct: Beam's DirectRunner, WORKERS processes.

The workers get the package as a cluster's would: Beam builds an sdist (`setup_file`) of the
package this process imports, from a clone or from site-packages alike (`staged_setup`), and
stages it, the boot pip-installs it, and the package's folder is not on the workers'
PYTHONPATH (`--no-setup-file` skips this and lets them import it from there).
Everything it starts listens on loopback (but Beam's job server and SDK-harness services,
which listen on every address: docs/beam.md) and is stopped when the build ends, fails, times
out or is interrupted; it exits with the build's status. The environment passes through
(IMAGENET2017_CHECKSUMS and the like); arguments after `--` go to `tfds build`. With
--work_dir, the logs and `timeline.json` (when the job was submitted, its workers up, it ended)
are kept there.

A lost SDK worker (SIGKILL, the OOM killer) is replaced and its tasks run again: Flink restarts
the failed tasks, Spark retries them, and Beam's cache of workers is fixed to start a new one
(docs/beam-retries.md); the launcher names the workers that died, with their pid and signal or
exit status.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from imagenet2017_tfds.launch import evict_dead_workers, flink_watch, spark_watch

BEAM = Path(__file__).resolve().parent  # the poms and the boot ship beside this module
ROOT = BEAM.parent.parent  # the folder the package is imported from: a clone, site-packages
BOOT = BEAM / "beam_boot.py"
CACHE = Path(os.environ.get("IMAGENET2017_CACHE", "~/.cache/imagenet2017-tfds")).expanduser()
BIN = Path(sys.executable).parent
# A Java job server's heap; its embedded Flink cluster, or Spark in local mode, runs in it.
# Beam 2.62 keeps what a worker outputs in a stage in this heap until the worker ends the stage
# (Flink: up to 100 messages of 10 MB, then the worker blocks), so examples go to their shards
# through files (beam.py) and only small records cross it: 1 GB holds them (the job server's
# peak, 535-558 MB: bench/results-2026-11-25-oneread.json, the Flink rows' JVM). Unbounded,
# the JVM would take a quarter of the RAM.
JVM_HEAP = "1g"
# The job server does little but schedule: a C2 JIT compiler and a parallel GC would take the
# cores the SDK workers need (with these flags, 5.1-5.6 CPU s of a 1 GB Flink build:
# bench/results-2026-11-25-oneread.json).
JVM_OPTIONS = [
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-Dorg.slf4j.simpleLogger.showDateTime=true",
    "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSXXX",
]
READY_SECONDS = 180  # a cold JVM on a loaded machine
# Spark 3.5 on Java 17 needs the JDK's internals opened to it (what spark-submit adds: Spark's
# launcher.JavaModuleOptions); without them the job fails at its first RDD with
# `IllegalAccessError: ... cannot access class sun.nio.ch.DirectBuffer`.
SPARK_OPENS = [
    "java.lang",
    "java.lang.invoke",
    "java.lang.reflect",
    "java.io",
    "java.net",
    "java.nio",
    "java.util",
    "java.util.concurrent",
    "java.util.concurrent.atomic",
    "jdk.internal.ref",
    "sun.nio.ch",
    "sun.nio.cs",
    "sun.security.action",
    "sun.util.calendar",
]
SPARK_JAVA = [
    "-XX:+IgnoreUnrecognizedVMOptions",
    *[f"--add-opens=java.base/{package}=ALL-UNNAMED" for package in SPARK_OPENS],
]
# Spark reads its configuration from the JVM's spark.* properties: no web UI (it would listen
# on 0.0.0.0:4040), the driver on loopback.
SPARK_OPTIONS = [
    *SPARK_JAVA,
    "-Dspark.ui.enabled=false",
    "-Dspark.driver.host=localhost",
    "-Dspark.driver.bindAddress=127.0.0.1",
]
SPARK_SCALA = "2.12"  # of the job server's Spark (spark-pom.xml): a cluster's must match
SPARK_UI_PORT = 8080  # a Spark master's web UI (spark.master.ui.port), where /json answers

# A lost SDK worker (preemption, the OOM killer, a drained node) fails the tasks it ran; the
# engine runs them again, on a new worker (launch/evict_dead_workers.py). Flink runs a
# batch job without restarts unless configured (Beam's numberOfExecutionRetries and
# executionRetryDelay reach only streaming jobs in the 2.62 runner: FlinkExecutionEnvironments),
# so the job server gets a configuration folder (--flink-conf-dir; a standalone cluster the same
# settings). Exponential delay, as Flink 1.19 counts the tasks one lost worker fails together as
# one attempt (fixed-delay counts each task): up to RESTARTS restarts within 10 minutes of each
# other, the count reset after 10 quiet minutes. Spark in local mode retries only with
# local[N,F]: F attempts of a task.
RESTARTS = 5
FLINK_RESTARTS = {
    "restart-strategy.type": "exponential-delay",
    "restart-strategy.exponential-delay.initial-backoff": "1 s",
    "restart-strategy.exponential-delay.max-backoff": "30 s",
    "restart-strategy.exponential-delay.backoff-multiplier": "2.0",
    "restart-strategy.exponential-delay.reset-backoff-threshold": "10 min",
    "restart-strategy.exponential-delay.attempts-before-reset-backoff": RESTARTS,
}

# The standalone Flink cluster: Flink 1.19 as the 2.62 job server's runner (built on 1.19.0;
# PyPI has 1.19.3, the same minor release). Its settings go on the scripts' command lines as
# dynamic properties over the distribution's own conf/config.yaml (which binds to localhost and
# opens the JDK to Flink). The TaskManager's task heap holds what Beam's operators buffer and
# its task off-heap memory the gRPC channels to the SDK workers; managed memory (sorting for
# GroupByKey, spilled to io.tmp.dirs beyond it) is cut to a tenth, as only small records are
# grouped; each of Beam's blocking batch partitions wants 512 network buffers of 32 KB, and
# several are open at once (with 2g and Flink's network share the job failed at once:
# `Insufficient number of network buffers: required 512, but only 372 available`). With
# Flink's default TaskManager (1728m) a job hangs, out of heap, in a gRPC thread.
FLINK_DIST = "1.19.3"
FLINK_CLUSTER = {
    "jobmanager.memory.process.size": "1g",
    "taskmanager.memory.process.size": "3g",
    "taskmanager.memory.managed.fraction": "0.1",
    "taskmanager.memory.task.off-heap.size": "256m",
    "taskmanager.memory.network.min": "512m",
    "taskmanager.memory.network.max": "512m",
    **FLINK_RESTARTS,
}


@dataclass(frozen=True)
class JobServer:
    """A Java job server of Beam: its classpath (a pom fetched into the cache), main class,
    how it is told to run WORKERS in parallel, and the lines of its log that mark the job's
    life (for timeline.json)."""

    name: str
    pom: Path
    main: str
    engine_args: Callable[[int], list[str]]  # WORKERS -> its own flags
    java_options: list[str]
    env: dict[str, str]
    # Flink's parallelism is its task slots (Spark's are local[N]'s threads); one SDK worker
    # process per slot, kept for the whole job (by default every stage, or every Spark task,
    # starts its own, importing TensorFlow again).
    pipeline_options: Callable[[int], list[str]]
    events: dict[str, str]  # timeline.json's event -> a regular expression of its log line


def worker_options(workers: int) -> list[str]:
    return [f"sdk_worker_parallelism={workers}", "environment_cache_millis=3600000"]


@dataclass(frozen=True)
class FlinkMaster:
    """A user's Flink cluster to submit to (--flink_master), as checked before submitting:
    its REST endpoint, the slots of its largest TaskManager (the SDK workers to start on each),
    and this host's address on the way to it (where the job server is advertised)."""

    rest: str
    slots_per_taskmanager: int
    job_host: str
    taskmanagers: tuple = ()  # /taskmanagers' entries: what a loss is measured against
    job_name: str = field(default_factory=lambda: job_name())


@dataclass(frozen=True)
class SparkMaster:
    """A user's Spark standalone cluster to submit to (--spark_master), as checked before
    submitting: its master's URL (spark://HOST:PORT) and this host's address on the way to it
    (the Spark driver, in the job server, binds and advertises it: the executors connect back
    to it)."""

    url: str
    job_host: str
    ui: str = ""  # its web UI, HOST:PORT
    workers: tuple = ()  # /json's workers: what a loss is measured against
    job_name: str = field(default_factory=lambda: job_name())


def job_name() -> str:
    """The job's name (Beam's job_name), by which the launcher's watch finds it among the
    cluster's: Flink names the job so, Spark the application job_name + "_" + an id."""
    return f"imagenet2017-{os.urandom(6).hex()}"


JOB_SERVERS = {
    "flink": JobServer(
        name="Flink job server",
        pom=BEAM / "flink-pom.xml",
        main="org.apache.beam.runners.flink.FlinkJobServerDriver",
        engine_args=lambda workers: ["--flink-master=[local]"],
        java_options=[],
        env={},
        pipeline_options=lambda workers: [f"parallelism={workers}", *worker_options(workers)],
        events={"job_submitted": "Submitting job", "job_finished": "Execution finished in"},
    ),
    "spark": JobServer(
        name="Spark job server",
        pom=BEAM / "spark-pom.xml",
        main="org.apache.beam.runners.spark.SparkJobServerDriver",
        engine_args=lambda workers: [f"--spark-master-url=local[{workers},{RESTARTS + 1}]"],
        java_options=SPARK_OPTIONS,
        # Else Spark looks its host name up, finds loopback, and picks the first interface.
        env={"SPARK_LOCAL_IP": "127.0.0.1"},
        pipeline_options=worker_options,
        events={
            "job_submitted": r"SparkPipelineRunner - Running job",
            "job_finished": r"SparkPipelineRunner - Job \S+ finished\.",
        },
    ),
}


class LaunchError(Exception):
    pass


class TimedOut(LaunchError):
    pass


DEADLINE: float | None = None  # --timeout: when everything must have ended


def remaining(limit: float) -> float:
    """Seconds a step may take: its own limit, or less when --timeout comes sooner."""
    if DEADLINE is None:
        return limit
    left = DEADLINE - time.monotonic()
    if left <= 0:
        raise TimedOut("--timeout reached")
    return min(limit, left)


def cached(name: str, make) -> Path:
    """CACHE/name, made once by make(partial folder) under a lock (parallel builds, clones)."""
    from filelock import FileLock, Timeout

    target = CACHE / name
    if (target / ".complete").exists():
        return target
    CACHE.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(target) + ".lock", timeout=remaining(1800))
    try:
        lock.acquire()
    except Timeout:
        raise TimedOut(f"another process held {lock.lock_file} (making {target})") from None
    try:
        if (target / ".complete").exists():
            return target
        partial = Path(tempfile.mkdtemp(dir=CACHE, prefix=f".{name}-"))
        try:
            make(partial)
            (partial / ".complete").touch()
            shutil.rmtree(target, ignore_errors=True)
            partial.rename(target)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    finally:
        lock.release()
    return target


def run_tool(command: list[str], what: str, limit: float, **kwargs) -> None:
    if shutil.which(command[0]) is None:
        raise LaunchError(f"{what} needs `{command[0]}` on PATH, which is not there: install it")
    print(f"beam_build: {what}: {' '.join(command)}", file=sys.stderr, flush=True)
    start, timeout = time.monotonic(), remaining(limit)
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.TimeoutExpired:
        raise TimedOut(f"{what} did not finish within {timeout:.0f} s") from None
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-4000:]
        raise LaunchError(f"{what} failed (exit {result.returncode}):\n{output}")
    print(f"beam_build: {what}: done in {time.monotonic() - start:.1f} s", file=sys.stderr)


def job_server_jars(server: JobServer) -> Path:
    """The folder of the job server's jars (Flink: about 160, 150 MB; Spark: about 230,
    260 MB), CACHE/<runner>-job-server-<the pom's hash>."""
    digest = hashlib.sha256(server.pom.read_bytes()).hexdigest()[:12]
    runner = server.pom.stem.removesuffix("-pom")

    def fetch(folder: Path) -> None:
        command = [
            "mvn",
            "-B",
            "-q",
            "-f",
            str(server.pom),
            "dependency:copy-dependencies",
            f"-DoutputDirectory={folder}",
            "-DincludeScope=runtime",
        ]
        run_tool(command, f"fetching Beam's {server.name} from Maven Central", 900)

    return cached(f"{runner}-job-server-{digest}", fetch)


def job_server_classpath(server: JobServer) -> str:
    """The job server's Java classpath: Beam's class fixed to replace a lost SDK worker
    (launch/evict_dead_workers.py), compiled into CACHE/<runner>-lost-worker-fix-<hash>,
    then the job server's jars (job_server_jars)."""
    jars = job_server_jars(server)
    runner = server.pom.stem.removesuffix("-pom")
    fix = Path(evict_dead_workers.__file__)
    digest = hashlib.sha256(server.pom.read_bytes() + fix.read_bytes()).hexdigest()[:12]
    fixed = cached(
        f"{runner}-lost-worker-fix-{digest}",
        lambda folder: evict_dead_workers.build(jars, folder, run_tool),
    )
    return os.pathsep.join([str(fixed / evict_dead_workers.JAR), f"{jars}/*"])


def flink_distribution() -> Path:
    """What a standalone Flink cluster needs of a Flink release: lib/ (flink-dist and the
    log4j jars), bin/ (the scripts, and the jar they compute the JVMs' memory flags with) and
    conf/, from PyPI's two packages of PyFlink (unpacked only: pip installs nothing)."""

    def fetch(folder: Path) -> None:
        download = folder / "download"
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", str(download)]
        run_tool(
            [*pip, "--no-binary", ":all:", f"apache-flink-libraries=={FLINK_DIST}"],
            "fetching Flink's jars (apache-flink-libraries) from PyPI",
            1800,
        )
        # The scripts are the same in every wheel: one named platform, whatever this one is.
        run_tool(
            [
                *pip,
                "--only-binary",
                ":all:",
                "--python-version",
                "3.11",
                "--platform",
                "manylinux2014_x86_64",
                f"apache-flink=={FLINK_DIST}",
            ],
            "fetching Flink's scripts (apache-flink) from PyPI",
            600,
        )
        (sdist,) = download.glob("apache*flink*libraries*.tar.gz")
        with tarfile.open(sdist) as archive:
            for member in archive.getmembers():
                parts = Path(member.name).parts[1:]  # below the sdist's top folder
                wanted = parts[:2] == ("deps", "lib") and parts[-1].startswith(
                    ("flink-dist", "log4j")
                )
                if member.isfile() and (wanted or parts == ("deps", "bin", "bash-java-utils.jar")):
                    member.name = str(Path(*parts[1:]))
                    archive.extract(member, folder, filter="data")
        (wheel,) = download.glob("apache_flink-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            for name in archive.namelist():
                parts = Path(name).parts
                if len(parts) == 3 and parts[:2] in (("pyflink", "bin"), ("pyflink", "conf")):
                    target = folder / parts[1] / parts[2]
                    target.parent.mkdir(exist_ok=True)
                    target.write_bytes(archive.read(name))
                    target.chmod(0o755 if parts[1] == "bin" else 0o644)
        shutil.rmtree(download)
        missing = [
            p
            for p in [
                "bin/jobmanager.sh",
                "bin/bash-java-utils.jar",
                "conf/config.yaml",
                f"lib/flink-dist-{FLINK_DIST}.jar",
            ]
            if not (folder / p).exists()
        ]
        if missing:
            raise LaunchError(f"PyPI's Flink {FLINK_DIST} packages lacked {missing}")

    return cached(f"flink-{FLINK_DIST}", fetch)


def start_flink_cluster(
    services: Services, env: dict, workers: int, tmp: Path, beam_classpath: str
) -> str:
    """Starts a JobManager and a TaskManager of WORKERS slots on loopback; returns the address
    of the JobManager's REST endpoint, where the job server submits."""
    dist = flink_distribution()
    rest = free_port()
    settings = {
        **FLINK_CLUSTER,
        "jobmanager.rpc.port": free_port(),
        "rest.port": rest,
        "taskmanager.numberOfTaskSlots": workers,
        "parallelism.default": workers,
        "io.tmp.dirs": tmp,
        "classloader.resolve-order": "parent-first",
    }
    dynamic = [arg for key, value in settings.items() for arg in ("-D", f"{key}={value}")]
    # Beam's classes on the cluster's own classpath (after Flink's: the scripts append
    # HADOOP_CLASSPATH), loaded parent-first. Loaded from the job's jars instead, Beam ends
    # its SDK workers whenever no task of the job runs for a moment (it must not keep a job's
    # class loader alive), and the next tasks start new ones, importing TensorFlow again.
    env = dict(
        env,
        FLINK_CONF_DIR=str(dist / "conf"),
        FLINK_LOG_DIR=str(services.work),
        FLINK_PID_DIR=str(tmp),
        HADOOP_CLASSPATH=beam_classpath,
    )
    for name, ready in [
        ("jobmanager", "Rest endpoint listening at"),
        ("taskmanager", "Successful registration at resource manager"),
    ]:
        command = ["bash", str(dist / "bin" / f"{name}.sh"), "start-foreground", *dynamic]
        process = services.start(name, command, env)
        services.cluster.append(
            Engine(f"Flink {name}", process, services.work / f"{name}.log", ready)
        )
    return f"localhost:{rest}"


def spark_home() -> Path:
    """A SPARK_HOME for a Spark standalone cluster's master, workers and executors: its jars/
    is the Spark job server's jar folder, so the cluster runs the very Spark (3.5.7, Scala
    2.12) the job server's driver does, with Beam's classes on the executors' classpath. A
    worker starts its executors through Spark's launcher library, which needs a SPARK_HOME
    with jars/ (and SPARK_SCALA_VERSION, as no build folders are there to tell it)."""
    jars = job_server_jars(JOB_SERVERS["spark"])
    return cached(f"spark-home-{jars.name}", lambda folder: (folder / "jars").symlink_to(jars))


def spark_driver_options(master: SparkMaster, classpath: str, workers: int) -> list[str]:
    """The Spark driver's settings (in the job server's JVM) toward a cluster of the user's:
    bound to and advertised at this host's address on the way to the master, where the
    executors connect back (its RPC, which also serves them the jobs' jars, and its block
    manager), on ports of its own choosing, no web UI; WORKERS executors of one core each (one
    SDK worker each), each with Beam's fixed class first on its classpath (the workers' hosts
    see the cache at the same path), and a task tried as often as in local mode (local[N,F]).
    The job's tasks wait until all WORKERS cores have registered (for up to two minutes: a
    cold executor JVM on a loaded host): by default Spark schedules as soon as one executor
    is there, and that one can take every task of the archives' reading stage while the
    other is still starting, leaving a worker host that reads nothing."""
    fix = classpath.split(os.pathsep)[0]
    settings = {
        "spark.driver.host": master.job_host,
        "spark.driver.bindAddress": master.job_host,
        "spark.driver.port": free_port(),
        "spark.driver.blockManager.port": free_port(),
        "spark.ui.enabled": "false",
        "spark.cores.max": workers,
        "spark.executor.cores": 1,
        "spark.executor.memory": JVM_HEAP,
        "spark.executor.extraClassPath": fix,
        "spark.task.maxFailures": RESTARTS + 1,
        "spark.scheduler.minRegisteredResourcesRatio": "1.0",
        "spark.scheduler.maxRegisteredResourcesWaitingTime": "120s",
    }
    return [*SPARK_JAVA, *[f"-D{key}={value}" for key, value in settings.items()]]


def flink_conf(work: Path) -> Path:
    """A Flink configuration folder with FLINK_RESTARTS, for the job server's jobs."""
    folder = work / "flink-conf"
    folder.mkdir(exist_ok=True)
    lines = [f"{key}: {value}" for key, value in FLINK_RESTARTS.items()]
    (folder / "config.yaml").write_text("\n".join(lines) + "\n")
    return folder


def prism_binary() -> Path:
    """Prism at the Python SDK's version, built from the Go module proxy."""
    import apache_beam

    version = apache_beam.__version__

    def build(folder: Path) -> None:
        module = f"github.com/apache/beam/sdks/v2/go/cmd/prism@v{version}"
        env = dict(os.environ, GOBIN=str(folder), GOFLAGS="-mod=mod")
        run_tool(["go", "install", module], "building Prism with go install", 1800, env=env)

    return cached(f"prism-{version}", build) / "prism"


class Services:
    """Processes started for one build, each in its own process group (a job server's SDK
    workers are in the server's group), all stopped on exit."""

    def __init__(self, work: Path):
        self.work = work
        self.started: list[subprocess.Popen] = []
        self.engine: Engine | None = None
        self.cluster: list[Engine] = []  # a standalone cluster's processes
        # A user's cluster (--flink_master, --spark_master).
        self.watch: flink_watch.FlinkWatch | spark_watch.SparkWatch | None = None

    def start(self, name: str, command: list[str], env: dict, log: bool = True):
        """Starts a command logging to WORK/name.log, or with this process's output."""
        if not log:
            process = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, start_new_session=True
            )
        else:
            with open(self.work / f"{name}.log", "wb") as out:
                process = subprocess.Popen(
                    command,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        self.started.append(process)
        return process

    def stop(self) -> None:
        for process in reversed(self.started):
            signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 20
        for process in reversed(self.started):
            exit_status(process, max(0.1, deadline - time.monotonic()))
            signal_group(process, signal.SIGKILL)  # and whatever it left in its group
            process.wait()


def exit_status(process: subprocess.Popen, timeout: float | None) -> int | None:
    """Waits for the process to end without reaping it: while it is a zombie its process group
    id cannot be reused, so signalling the group reaches only what it started."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:  # looked at once at least: a timeout of 0 asks whether it has ended now
        if process.returncode is not None:
            return process.returncode
        done = os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        if done is not None:
            killed = done.si_code in (os.CLD_KILLED, os.CLD_DUMPED)
            return -done.si_status if killed else done.si_status
        if deadline is not None and time.monotonic() >= deadline:
            return None
        time.sleep(0.1)


def signal_group(process: subprocess.Popen, sig: int) -> None:
    if process.returncode is None:  # not reaped: the group id is still its own
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def free_port() -> int:
    # The engine binds it moments later; if another process took it meanwhile, the engine
    # exits and its log says so.
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def boot_wrapper(work: Path) -> Path:
    """The PROCESS environment's command: one executable, so a two-line wrapper."""
    wrapper = work / "beam_boot"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{BOOT}" "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


def cluster_boot() -> Path:
    """The PROCESS environment's command on a cluster's hosts: the same two-line wrapper, in
    the cache, which every host has at the same path with the venv and the job server's jars
    (their machine image); made by --fetch_only, as the hosts may not write there."""
    digest = hashlib.sha256(f"{sys.executable}\0{BOOT}".encode()).hexdigest()[:12]
    try:
        return cached(f"beam-boot-wrapper-{digest}", boot_wrapper) / "beam_boot"
    except OSError as e:  # a read-only cache (a cluster host's machine image)
        raise LaunchError(
            f"no SDK worker boot in {CACHE} and it cannot be written there ({e}): run "
            "`imagenet2017-tfds beam-build --runner flink|spark --fetch_only` where it can"
        ) from None


# How long a TaskManager keeps a job's SDK workers once no task of the job runs there (Beam's
# environment_cache_millis: the delay before it releases them, not a lifetime). On a cluster
# of the user's, which outlives the job, the workers (TensorFlow imported, each) end this
# long after the job, so an hour would keep them an hour past it. A minute still spans the
# pauses between a job's stages.
CLUSTER_WORKERS_KEPT_MS = 60_000


def cluster_pipeline_options(workers: int, master: FlinkMaster | SparkMaster) -> list[str]:
    """Flink: the job's parallelism is WORKERS slots of the cluster; each TaskManager starts
    an SDK worker per slot it has. Spark: WORKERS executors of one core, each starting one
    (spark_driver_options). The experiment leaves the list of the submitter's packages
    unstaged: with --no-setup-file nothing is staged then, so the TaskManagers and executors
    need no folder shared with the job server (docs/beam.md)."""
    if isinstance(master, SparkMaster):
        engine = ["sdk_worker_parallelism=1"]
    else:
        engine = [
            f"parallelism={workers}",
            f"sdk_worker_parallelism={master.slots_per_taskmanager}",
        ]
    return [
        *engine,
        f"job_name={master.job_name}",
        f"environment_cache_millis={CLUSTER_WORKERS_KEPT_MS}",
        "experiments=disable_logging_submission_environment",
    ]


def check_shared_folders(args, flag: str) -> None:
    """With a cluster of the user's (flag: --flink_master, --spark_master), every data folder
    must be a URL the workers' hosts read too."""
    for option in ("manual_dir", "data_dir", "download_dir"):
        value = getattr(args, option)
        if value is not None and ("://" not in value or value.startswith("file://")):
            raise LaunchError(
                f"with {flag} the workers run on other hosts: --{option} {value} is a "
                "local path they cannot see; use gs://... (or another store every host reads)"
            )


def flink_taskmanagers(rest: str) -> list[dict]:
    """The TaskManagers registered with the JobManager whose REST endpoint is rest."""
    url = f"http://{rest}/taskmanagers"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # a cluster's own
    try:
        with opener.open(url, timeout=remaining(30)) as response:
            return json.load(response)["taskmanagers"]
    except (OSError, ValueError, KeyError) as e:
        raise LaunchError(
            f"the Flink cluster at {rest} does not answer ({url}: {e}): expected its "
            "JobManager's REST endpoint (rest.address:rest.port) there, reachable from this host"
        ) from None


def check_free(free: int, workers: int, cluster: str, counted: str, more: str, jobs: str):
    """That a cluster has WORKERS free slots or cores; else what to do, named: start `more`
    (TaskManagers, workers) or wait for its `jobs` to end, or lower --workers."""
    if free >= workers:
        return
    todo = (
        f"start {more}, or wait for the running {jobs} to end"
        if free == 0
        else f"--workers {workers} needs {workers}: lower --workers or add {more}"
    )
    raise LaunchError(f"{cluster} has {free} free {counted}: {todo}")


def check_flink_master(rest: str, workers: int) -> FlinkMaster:
    """That the cluster answers and has WORKERS free task slots (the job's parallelism: a
    batch job waits for them all, then fails after Flink's slot.request.timeout)."""
    managers = flink_taskmanagers(rest)
    free = sum(m.get("freeSlots", 0) for m in managers)
    counted = f"task slots ({len(managers)} TaskManagers registered)"
    check_free(free, workers, f"the Flink cluster at {rest}", counted, "TaskManagers", "jobs")
    host, _, port = rest.rpartition(":")
    slots = max(m.get("slotsNumber", 1) for m in managers)
    job_host = address_towards(host.strip("[]"), int(port))
    return FlinkMaster(
        rest=rest, slots_per_taskmanager=slots, job_host=job_host, taskmanagers=tuple(managers)
    )


def spark_master_status(url: str, ui: str) -> dict:
    """What the Spark master at url says of itself: its web UI's /json (at ui, HOST:PORT),
    the only place a standalone master tells its workers and their free cores (its REST
    submission server is off by default and tells neither)."""
    where = f"http://{ui}/json"
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # a cluster's own
    try:
        with opener.open(where, timeout=remaining(30)) as response:
            status = json.load(response)
        status["workers"]  # noqa: B018 (a master's answer has it; anything else is not one)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LaunchError(
            f"the Spark master {url} does not answer ({where}: {e}): expected its web UI "
            "(--webui-port, spark.master.ui.port) there, reachable from this host; give "
            "--spark_master_ui HOST:PORT if it is elsewhere"
        ) from None
    if status.get("url", url) != url:
        raise LaunchError(
            f"the Spark master at {ui} is {status['url']}, not {url}: give --spark_master "
            "the URL its log and web UI show"
        )
    return status


def check_spark_master(url: str, ui: str, workers: int) -> SparkMaster:
    """That the master answers and its alive workers have WORKERS free cores (the job's
    executors' cores: spark.cores.max; with fewer, Spark waits for cores without end)."""
    alive = [w for w in spark_master_status(url, ui)["workers"] if w.get("state") == "ALIVE"]
    free = sum(w.get("coresfree", 0) for w in alive)
    counted = f"cores ({len(alive)} workers alive)"
    check_free(free, workers, f"the Spark master {url}", counted, "workers", "applications")
    host, _, port = url.removeprefix("spark://").rpartition(":")
    job_host = address_towards(host.strip("[]"), int(port))
    return SparkMaster(url=url, job_host=job_host, ui=ui, workers=tuple(alive))


def address_towards(host: str, port: int) -> str:
    """This host's address on the route to host:port, which the cluster reaches it at."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    with socket.socket(family, kind, proto) as s:
        s.connect(address)  # UDP: picks the route, sends nothing
        return s.getsockname()[0]


def staged_setup(work: Path) -> Path:
    """A setup.py for Beam's stager (`setup_file`), in WORK/stage beside a copy of the package
    this process imports, with every file of it: an installed package has no setup.py of its
    own, and a clone's is staged the same way."""
    stage = work / "stage"
    shutil.rmtree(stage, ignore_errors=True)
    package = BEAM.parent
    shutil.copytree(
        package, stage / package.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    data = sorted(
        str(p.relative_to(stage / package.name))
        for p in (stage / package.name).rglob("*")
        if p.is_file() and p.suffix != ".py"
    )
    version = re.search(r'__version__ = "([^"]+)"', (package / "__init__.py").read_text())
    (stage / "setup.py").write_text(
        "from setuptools import find_packages, setup\n\n"
        f"setup(name='imagenet2017-tfds', version={version.group(1)!r}, "
        f"packages=find_packages(include=[{package.name!r}, {package.name + '.*'!r}]), "
        f"package_data={{{package.name!r}: {data!r}}})\n"
    )
    return stage / "setup.py"


def worker_env(env: dict, setup_file: bool) -> dict:
    """The environment of the engine and its SDK workers: with setup_file, without the
    repository on PYTHONPATH (what else is there stays, e.g. another TFDS)."""
    if not setup_file:
        return env
    keep = [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and Path(p).resolve() != ROOT
    ]
    return dict(env, PYTHONPATH=os.pathsep.join(keep))


class Engine:
    """A started job server: its process, its log, and the line saying it is ready."""

    def __init__(self, name: str, process: subprocess.Popen, log: Path, ready: str):
        self.name, self.process, self.log, self.ready = name, process, log, ready
        self.ready_after: float | None = None

    def check(self, since: float) -> None:
        """Notes when it became ready; raises if it has exited (a build needs it to the end)."""
        if self.ready_after is None and self.ready in self.log.read_text(errors="replace"):
            self.ready_after = time.monotonic() - since
        status = exit_status(self.process, 0)
        if status is not None:
            raise LaunchError(
                f"the {self.name} exited with {status} during the build:\n{tail(self.log)}"
            )


def start_engine(
    args, services: Services, env: dict, master: FlinkMaster | SparkMaster | None = None
) -> tuple[list[str], Engine | None]:
    """Starts the runner's job server, without waiting for it (the build's own start-up takes
    longer); returns the pipeline options and the engine. With master (--flink_master,
    --spark_master), the job server submits to that cluster, whose TaskManagers or executors
    start the SDK workers."""
    if args.runner == "direct":
        return [
            "runner=DirectRunner",
            f"direct_num_workers={args.workers}",
            "direct_running_mode=multi_processing",
        ], None
    # The engine's and the workers' temporary files go into the work folder; the packages
    # the workers install, into the cache (by content, so once).
    tmp = services.work / "tmp"
    tmp.mkdir(exist_ok=True)
    wenv = dict(
        worker_env(env, args.setup_file),
        TMPDIR=str(tmp),
        BEAM_BOOT_LOG=str(services.work / "beam_boot.log"),
        BEAM_BOOT_CACHE=str(CACHE / "beam-boot"),
    )
    port = free_port()
    if args.runner in JOB_SERVERS:
        server = JOB_SERVERS[args.runner]
        classpath = job_server_classpath(server)
        name = server.name
        # Spark's scratch files (spark.local.dir) go to java.io.tmpdir too.
        engine_args = server.engine_args(args.workers)
        if args.flink_cluster == "standalone":
            rest = start_flink_cluster(services, wenv, args.workers, tmp, classpath)
            engine_args = [f"--flink-master={rest}"]
        java_options = server.java_options
        if isinstance(master, FlinkMaster):
            engine_args = [f"--flink-master={master.rest}"]
        if isinstance(master, SparkMaster):
            engine_args = [f"--spark-master-url={master.url}"]
            java_options = spark_driver_options(master, classpath, args.workers)
        if args.runner == "flink":  # the job's restarts (FLINK_RESTARTS)
            engine_args.append(f"--flink-conf-dir={flink_conf(services.work)}")
        # --job-host is only the address the job server advertises (it listens on every
        # address whatever it says: docs/beam.md); on a cluster, this host's on its network.
        job_host = "localhost" if master is None else master.job_host
        # Java takes its home from the password file, not HOME (a cluster host's own).
        home = [] if master is None else [f"-Duser.home={Path.home()}"]
        command = [
            "java",
            f"-Xmx{args.jvm_heap}",
            *JVM_OPTIONS,
            *java_options,
            *home,
            f"-Djava.io.tmpdir={tmp}",
            "-cp",
            classpath,
            server.main,
            *engine_args,
            f"--job-host={job_host}",
            f"--job-port={port}",
            f"--artifact-port={free_port()}",
            "--expansion-port=-1",
            f"--artifacts-dir={services.work / 'artifacts'}",
        ]
        ready, engine = "JobService started on", server.pipeline_options(args.workers)
        if master is not None:
            engine = cluster_pipeline_options(args.workers, master)
        wenv.update(server.env)
        if isinstance(master, SparkMaster):  # Spark's own address lookups: the driver's
            wenv["SPARK_LOCAL_IP"] = master.job_host
    else:
        name = "Prism job server"
        command = [
            str(prism_binary()),
            f"--job_port={port}",
            "--serve_http=false",
            "--log_kind=text",
        ]
        ready, engine = "Serving JobManagement", []
    process = services.start("job-server", command, wenv)
    # On a cluster, the workers' hosts cannot see this host's work folder.
    boot = boot_wrapper(services.work) if master is None else cluster_boot()
    config = json.dumps({"command": str(boot)})
    job_host = "localhost" if master is None else master.job_host
    # job_server_timeout: how long the build waits for the job server to answer.
    options = [
        "runner=PortableRunner",
        f"job_endpoint={job_host}:{port}",
        f"job_server_timeout={READY_SECONDS}",
        "environment_type=PROCESS",
        f"environment_config={config}",
        *engine,
    ]
    if args.setup_file:
        options.append(f"setup_file={staged_setup(services.work)}")
    return options, Engine(name, process, services.work / "job-server.log", ready)


def timeline(work: Path, started_at: float, engine: Engine | None, runner: str) -> dict:
    """Seconds from the launch to each step of the job, from the logs' timestamps."""
    out = {"engine_ready": engine.ready_after if engine else None}
    log = (work / "job-server.log").read_text(errors="replace") if engine else ""
    events = JOB_SERVERS[runner].events if runner in JOB_SERVERS else {}
    for event in ("job_submitted", "job_finished"):
        found = events.get(event) and re.search(r"^(\S+) .*" + events[event], log, re.MULTILINE)
        out[event] = stamp(found.group(1)) - started_at if found else None
    boot = work / "beam_boot.log"
    text = boot.read_text() if boot.exists() else ""
    found = re.search(r"^(\S+) beam_boot\[\d+\]: worker", text, re.MULTILINE)
    out["workers_up"] = stamp(found.group(1)) - started_at if found else None
    return {k: None if v is None else round(v, 2) for k, v in out.items()}


def lost_workers(work: Path) -> list[str]:
    """The SDK workers that died during the build, each with its pid and exit status or
    signal, as the boot logged them (launch/beam_boot.py)."""
    boot = work / "beam_boot.log"
    text = boot.read_text(errors="replace") if boot.exists() else ""
    return re.findall(r"^\S+ beam_boot\[\d+\]: (worker .* died: .*)$", text, re.MULTILINE)


def stamp(text: str) -> float:
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return float("nan")


def interrupt(signum, frame):
    raise KeyboardInterrupt


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="imagenet2017-tfds beam-build",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runner", choices=["flink", "spark", "prism", "direct"], default="flink")
    parser.add_argument("--config", default="clsloc", help="clsloc, det, or a JSON config")
    parser.add_argument("--manual_dir")
    parser.add_argument("--data_dir")
    parser.add_argument(
        "--fetch_only",
        action="store_true",
        help="fetch and cache what the runner needs (the job server's jars, Prism), then exit",
    )
    parser.add_argument("--download_dir", help="default DATA_DIR/downloads")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="SDK worker processes, Flink slots, Spark local[N] threads",
    )
    parser.add_argument(
        "--flink_cluster",
        choices=["embedded", "standalone"],
        default="embedded",
        help="flink: the job server's own Flink, or a JobManager and a "
        "TaskManager started beside it",
    )
    parser.add_argument(
        "--flink_master",
        metavar="HOST:PORT",
        help="flink: submit to this existing Flink cluster (its JobManager's "
        "REST endpoint); only the job server starts here",
    )
    parser.add_argument(
        "--spark_master",
        metavar="spark://HOST:PORT",
        help="spark: submit to this existing Spark standalone cluster (its master's URL); "
        "only the job server, with the Spark driver, starts here",
    )
    parser.add_argument(
        "--spark_master_ui",
        metavar="HOST:PORT",
        help=f"spark: the master's web UI, asked for its free cores (default HOST:{SPARK_UI_PORT})",
    )
    parser.add_argument("--jvm_heap", default=JVM_HEAP, help=f"Java job server -Xmx ({JVM_HEAP})")
    parser.add_argument(
        "--no-setup-file",
        dest="setup_file",
        action="store_false",
        help="workers import the package from its folder, not a staged sdist",
    )
    parser.add_argument(
        "--timeout", type=float, help="stop everything after this many seconds (fetches included)"
    )
    parser.add_argument(
        "--work_dir",
        help="logs, staged files, timeline.json (default: a "
        "temporary folder, removed after a build that succeeded)",
    )
    parser.add_argument("--timeline", help="also write timeline.json to this file")
    parser.add_argument("tfds_args", nargs="*", help="after --: more `tfds build` arguments")
    args = parser.parse_args(argv)
    if not args.fetch_only and not (args.manual_dir and args.data_dir):
        parser.error("--manual_dir and --data_dir are needed (unless --fetch_only)")
    if args.workers < 1:
        parser.error(f"--workers must be 1 or more, not {args.workers}")
    if args.flink_cluster == "standalone" and args.runner != "flink":
        parser.error(f"--flink_cluster standalone needs --runner flink, not {args.runner}")
    if args.flink_master is not None and args.spark_master is not None:
        parser.error("--spark_master and --flink_master name two clusters: give one of them")
    if args.flink_master is not None:
        check_flink_master_args(parser, args)
    if args.spark_master is not None or args.spark_master_ui is not None:
        check_spark_master_args(parser, args)
    return args


def check_flink_master_args(parser, args) -> None:
    if args.runner != "flink":
        parser.error(f"--flink_master needs --runner flink, not {args.runner}")
    if args.flink_cluster == "standalone":
        parser.error(
            "--flink_master submits to a cluster of yours; --flink_cluster standalone "
            "would start one of its own: give one of them"
        )
    host, _, port = args.flink_master.rpartition(":")
    if not host or not port.isdigit():
        parser.error(
            f"--flink_master {args.flink_master}: expected HOST:PORT of the Flink "
            "JobManager's REST endpoint, e.g. jobmanager:8081"
        )
    if args.setup_file and not args.fetch_only:
        # The job server writes a staged sdist under its own --artifacts-dir, which the
        # TaskManagers read from the same path on their hosts (docs/beam.md).
        parser.error(
            "--flink_master needs --no-setup-file: the workers run on other hosts and "
            "import the package installed there (the same venv as here)"
        )


def check_spark_master_args(parser, args) -> None:
    if args.spark_master is None:
        parser.error("--spark_master_ui needs --spark_master (the master whose web UI it is)")
    if args.runner != "spark":
        parser.error(f"--spark_master needs --runner spark, not {args.runner}")
    host, _, port = args.spark_master.removeprefix("spark://").rpartition(":")
    if not args.spark_master.startswith("spark://") or not host or not port.isdigit():
        parser.error(
            f"--spark_master {args.spark_master}: expected spark://HOST:PORT, the Spark "
            "standalone master's URL, e.g. spark://master:7077"
        )
    if args.spark_master_ui is None:
        args.spark_master_ui = f"{host}:{SPARK_UI_PORT}"
    if args.setup_file and not args.fetch_only:
        # As with --flink_master: the executors would read a staged sdist from the job
        # server's --artifacts-dir at the same path on their own hosts.
        parser.error(
            "--spark_master needs --no-setup-file: the workers run on other hosts and "
            "import the package installed there (the same venv as here)"
        )


def tfds_command(args, options: list[str]) -> list[str]:
    command = [str(BIN / "tfds"), "build", "imagenet2017", "--imports", "imagenet2017_tfds"]
    command += ["--config", args.config, "--manual_dir", args.manual_dir]
    command += ["--data_dir", args.data_dir, "--beam_pipeline_options=" + ",".join(options)]
    if args.download_dir:
        command += ["--download_dir", args.download_dir]
    return command + args.tfds_args


def run_build(args, services: Services, env: dict, started: float) -> int:
    master = None
    if args.flink_master is not None:  # before anything is fetched or started
        check_shared_folders(args, "--flink_master")
        master = check_flink_master(args.flink_master, args.workers)
        print(
            f"beam_build: the Flink cluster at {master.rest} has the free slots; the job "
            f"server is advertised at {master.job_host}",
            file=sys.stderr,
            flush=True,
        )
    if args.spark_master is not None:
        check_shared_folders(args, "--spark_master")
        master = check_spark_master(args.spark_master, args.spark_master_ui, args.workers)
        print(
            f"beam_build: the Spark master {master.url} has the free cores; the job server "
            f"and the Spark driver are at {master.job_host}",
            file=sys.stderr,
            flush=True,
        )
    options, engine = start_engine(args, services, env, master)
    services.engine = engine
    # What the cluster does to the job: lost hosts, restarts.
    if isinstance(master, FlinkMaster):
        services.watch = flink_watch.FlinkWatch(
            master.rest, master.job_name, list(master.taskmanagers), RESTARTS
        )
    elif isinstance(master, SparkMaster):
        driver_log = services.work / "job-server.log"  # the driver runs in the job server
        services.watch = spark_watch.SparkWatch(
            master.ui, master.url, master.job_name, list(master.workers), driver_log
        )
    command = tfds_command(args, options)
    print(f"beam_build: {' '.join(command)}", file=sys.stderr, flush=True)
    build = services.start("tfds-build", command, env, log=False)
    while (status := exit_status(build, 0.2)) is None:
        remaining(float("inf"))  # raises TimedOut past --timeout
        for each in [engine, *services.cluster] if engine else []:
            each.check(started)
        if services.watch is not None:
            services.watch.poll()
    return status


def main(argv=None) -> int:
    global DEADLINE
    args = parse_args(argv)
    if args.fetch_only:
        if args.runner in JOB_SERVERS:
            job_server_classpath(JOB_SERVERS[args.runner])
        if args.runner == "flink" and args.flink_cluster == "standalone":
            flink_distribution()
        if args.runner in ("flink", "spark"):  # for a cluster's hosts (--*_master)
            cluster_boot()
        if args.runner == "spark":  # for a Spark standalone cluster (spark_cluster.py)
            spark_home()
        if args.runner == "prism":
            prism_binary()
        return 0
    started, started_at = time.monotonic(), time.time()
    if args.timeout is not None:
        DEADLINE = started + args.timeout
    # A termination request unwinds like Ctrl-C, so everything started is stopped.
    signal.signal(signal.SIGTERM, interrupt)
    env = dict(os.environ, PATH=os.pathsep.join([str(BIN), os.environ.get("PATH", "")]))
    pythonpath = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if str(ROOT) not in pythonpath:  # the submitter imports the package this process imports
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), *pythonpath]))
    keep = args.work_dir is not None
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="imagenet2017-beam-"))
    work.mkdir(parents=True, exist_ok=True)
    services, status = Services(work), 1
    try:
        status = run_build(args, services, env, started)
    except TimedOut as e:
        print(f"beam_build: {e}; stopping what it started", file=sys.stderr)
        status = 124
    except LaunchError as e:
        print(f"beam_build: {e}", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        print("beam_build: interrupted; stopping what it started", file=sys.stderr)
        status = 130
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):  # a second Ctrl-C must not stop the stopping
            signal.signal(sig, signal.SIG_IGN)
        services.stop()
        shutil.rmtree(work / "tmp", ignore_errors=True)
    if status < 0:  # the build was killed by a signal: the shell's convention
        status = 128 - status
    seconds = time.monotonic() - started
    if args.runner != "direct" and status == 0:
        steps = timeline(work, started_at, services.engine, args.runner)
        steps["build_done"] = round(seconds, 2)
        # The steps are the logs' wall-clock stamps: a clock stepped during the build (NTP, a
        # resumed VM) shifts them against one another by this much.
        steps["clock_step"] = round(time.time() - started_at - seconds, 2)
        for path in filter(None, [work / "timeline.json", args.timeline]):
            Path(path).write_text(json.dumps(steps) + "\n")
        print(f"beam_build: timeline (s): {steps}", file=sys.stderr)
    # The cluster's own account of the job; on failure, the lost hosts and Flink's reason.
    cluster_error = None
    if services.watch is not None:  # interrupted or timed out: no waiting for the job's end
        cluster_error = services.watch.finish(status, settle=0 if status in (124, 130) else 10)
    lost = lost_workers(work)
    if status != 0:
        for log in sorted(work.glob("*.log")):
            print(f"---- the end of {log} ----\n{tail(log)}", file=sys.stderr)
        print(f"beam_build: logs kept in {work}", file=sys.stderr)
        if cluster_error:
            print(cluster_error, file=sys.stderr)
        if lost:
            print(
                "beam_build: the build failed after SDK workers died (the engine could not "
                "run their tasks again):\n  " + "\n  ".join(lost),
                file=sys.stderr,
            )
    elif not keep:
        shutil.rmtree(work, ignore_errors=True)
    if status == 0 and lost:
        print(
            "beam_build: SDK workers died during the build; the engine ran their tasks again "
            "on new workers:\n  " + "\n  ".join(lost),
            file=sys.stderr,
        )
    print(f"beam_build: exit {status} after {seconds:.1f} s", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
