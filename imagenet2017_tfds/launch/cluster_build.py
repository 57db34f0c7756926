"""One build on the simulated cluster, in one command, to try a cluster setup before renting
one (`make cluster-build`):

  python -m imagenet2017_tfds.launch.cluster_build --runner flink|spark --config clsloc \\
      --manual_dir ARCHIVES --out DATA_DIR [--kill_host_after SECONDS]

1. fetches what the engine and the launcher need (`beam-build --runner RUNNER ...
   --fetch_only`), here, outside any namespace: the hosts have no internet and see the
   cache read-only;
2. starts the simulated hosts (launch/cluster.py): the engine's head (jobmanager for Flink,
   master for Spark), worker-1, worker-2, submitter, and the store (fake GCS) on a host of
   its own;
3. uploads the archives (and IMAGENET2017_CHECKSUMS when it names a file here) to gs://;
4. starts the engine's cluster: Flink (launch/flink_cluster.py), a JobManager and a
   TaskManager of --slots slots on each worker host; or Spark (launch/spark_cluster.py), a
   master and a worker of --slots cores on each worker host (2 by default, so that one host
   can carry the job alone);
5. runs `beam-build --flink_master` (`--spark_master`) on the submitting host, from gs://
   into gs://, with this process's environment (but what names this machine's folders: the
   bed's own win);
6. with --kill_host_after, loses worker-2 (cluster.kill_host: every process there killed
   together, its link down) that many seconds after the launcher reported the job
   submitted, once SDK workers run there, so it is lost mid-job;
7. downloads the dataset into OUT/imagenet2017/CONFIG/VERSION/ (tfds.load(...,
   data_dir=OUT) reads it), stops everything, and exits with the build's status.

Its lines start with `cluster_build:`; the launcher's are passed through. The engine's and
the launcher's logs go to --log_dir (default a temporary folder, kept and named when the
build failed).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

WORKERS = ["worker-1", "worker-2"]
LOST = "worker-2"  # the host --kill_host_after loses
BUCKET = "i2017-cluster"
CONFIGS = ("clsloc", "det")
# The launcher's line once it has found its job on the cluster (launch/flink_watch.py).
SUBMITTED = "submitted to the cluster at"
# This machine's, wrong on a host (which has its own /tmp and HOME): not passed on.
MACHINE_ONLY = {"PWD", "OLDPWD", "TMP", "TEMP", "XDG_RUNTIME_DIR", "VIRTUAL_ENV"}


@dataclass(frozen=True)
class Engine:
    """A runner's cluster: its head host (the JobManager's, the master's), the launcher's
    flags that fetch what it needs, and the flag naming the cluster to submit to."""

    head: str
    fetch: tuple[str, ...]
    master_flag: str
    on_worker: str  # what runs on a worker host, but the SDK workers


ENGINES = {
    "flink": Engine(
        head="jobmanager",
        fetch=("--flink_cluster", "standalone"),
        master_flag="--flink_master",
        on_worker="the TaskManager",
    ),
    "spark": Engine(
        head="master",
        fetch=(),
        master_flag="--spark_master",
        on_worker="the Spark worker, its executor",
    ),
}


def hosts(runner: str) -> list[str]:
    return [ENGINES[runner].head, *WORKERS, "submitter"]


class ClusterBuildError(Exception):
    """What the command could not do; the message says what was expected and what to do."""


@dataclass
class Result:
    """A build on the cluster: the launcher's exit status, its seconds, and the host lost."""

    returncode: int
    seconds: float = 0.0
    lost: str | None = None


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m imagenet2017_tfds.launch.cluster_build",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--runner", choices=sorted(ENGINES), default="flink")
    parser.add_argument("--config", choices=CONFIGS, default="clsloc")
    parser.add_argument("--manual_dir", required=True, help="a local folder of the archives")
    parser.add_argument("--out", required=True, help="the local data dir to download into")
    parser.add_argument(
        "--kill_host_after",
        type=float,
        metavar="SECONDS",
        help=f"lose {LOST} this many seconds after the job was submitted",
    )
    parser.add_argument("--workers", type=int, default=2, help="the job's parallelism")
    parser.add_argument(
        "--slots", type=int, default=2, help="task slots per TaskManager, cores per Spark worker"
    )
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the engine's daemons (Flink's JobManager and TaskManagers, Spark's "
        "master and workers), over flink_cluster's or spark_cluster's",
    )
    parser.add_argument("--timeout", type=float, default=1800, help="the launcher's --timeout")
    parser.add_argument("--log_dir", help="Flink's and the launcher's logs (default: temporary)")
    args = parser.parse_args(argv)
    bad = [x for x in args.setting if "=" not in x]
    if bad:
        parser.error(f"--setting {bad[0]}: expected KEY=VALUE, e.g. heartbeat.timeout=10000")
    args.settings = dict(x.split("=", 1) for x in args.setting)
    return args


def check_manual_dir(folder: Path) -> list[Path]:
    archives = sorted(p for p in folder.glob("*") if p.is_file()) if folder.is_dir() else []
    if not archives:
        raise ClusterBuildError(
            f"--manual_dir {folder}: expected a local folder holding the ILSVRC2017 archives "
            f"(*.tar.gz), found {'no file in it' if folder.is_dir() else 'no folder'}"
        )
    return archives


# The package's command line, run by this Python.
CLI = (sys.executable, "-m", "imagenet2017_tfds.tools.cli")


def fetch(runner: str) -> None:
    """What the hosts need, into the cache, before they exist."""
    command = [
        *CLI,
        "beam-build",
        "--runner",
        runner,
    ]
    command += [*ENGINES[runner].fetch, "--fetch_only"]
    say(f"fetching: {' '.join(command)}")
    if subprocess.run(command, stdin=subprocess.DEVNULL).returncode != 0:
        raise ClusterBuildError(
            f"fetching {runner} and Beam's job server failed (see above): they come from "
            "Maven Central and PyPI; run it again where those are reachable"
        )


def submitter_env(bed, checksums_url: str | None) -> dict[str, str]:
    """This process's environment for the launcher on the submitting host, but what names
    this machine (the bed's own values win), with IMAGENET2017_CHECKSUMS as uploaded."""
    own = bed.env("submitter")
    env = {k: v for k, v in os.environ.items() if k not in own and k not in MACHINE_ONLY}
    if checksums_url is not None:
        env["IMAGENET2017_CHECKSUMS"] = checksums_url
    return env


def submit_command(
    runner: str,
    master: str | None,
    config: str,
    manual_dir: str,
    run: str,
    *,
    workers: int,
    timeout: float,
    work_dir: str = "/tmp/beam-work",
) -> list[str]:
    """The launcher's command on the submitting host (here, the tests' and bench/cluster.py):
    config from manual_dir into run/data, submitting to the runner's cluster at master (None:
    the launcher's own engine on that host), nothing staged (every host sees the package)."""
    command = [
        *CLI,
        "beam-build",
        "--runner",
        runner,
    ]
    if master is not None:
        command += [ENGINES[runner].master_flag, master]
    command += ["--config", config, "--no-setup-file", "--workers", str(workers)]
    command += ["--manual_dir", manual_dir, "--data_dir", f"{run}/data"]
    command += ["--download_dir", f"{run}/downloads"]
    return command + ["--timeout", str(timeout), "--work_dir", work_dir]


def sdk_workers(bed, host: str) -> list[int]:
    """The SDK workers on host (their boot processes and harnesses: beam_boot.py)."""
    found = []
    for pid in bed.pids(host):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"beam_boot.py" in cmdline:
            found.append(pid)
    return found


def say(line: str) -> None:
    print(f"cluster_build: {line}", file=sys.stderr, flush=True)


def submit(bed, args, master: str, run: str, env: dict, log: Path) -> Result:
    """The launcher on the submitting host, its output passed through (and into log); with
    --kill_host_after, LOST lost mid-job."""
    started = time.monotonic()
    process = bed.popen(
        "submitter",
        submit_command(
            args.runner,
            master,
            args.config,
            f"{run}/raw",
            run,
            workers=args.workers,
            timeout=args.timeout,
        ),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",  # a reader that stopped on a bad byte would block the launcher
    )
    submitted: list[float] = []

    def relay() -> None:
        with open(log, "w") as out:
            for line in process.stdout:
                out.write(line)
                sys.stderr.write(line)
                if not submitted and line.startswith("beam_build:") and SUBMITTED in line:
                    submitted.append(time.monotonic())

    reader = threading.Thread(target=relay, daemon=True)
    reader.start()
    result = Result(returncode=1)
    try:
        while process.poll() is None:
            if args.kill_host_after is not None and result.lost is None and submitted:
                lose_when_due(bed, args, submitted[0], result)
            time.sleep(0.5)
    finally:
        if process.poll() is None:  # interrupted: the launcher stops what it started
            process.terminate()
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        process.wait()
        reader.join(timeout=30)
    result.returncode, result.seconds = process.returncode, time.monotonic() - started
    if args.kill_host_after is not None and result.lost is None:
        say(f"{LOST} was not lost: the build ended before SDK workers ran there long enough")
    return result


def lose_when_due(bed, args, submitted: float, result: Result) -> None:
    """LOST, when `after` seconds have passed since the submission and SDK workers run
    there (before, it would be lost before its share of the job started)."""
    waited = time.monotonic() - submitted
    if waited < args.kill_host_after:
        return
    workers = sdk_workers(bed, LOST)
    if not workers:
        return
    killed = bed.kill_host(LOST)
    result.lost = LOST
    say(
        f"lost host {LOST} ({bed.hosts[LOST].address}) {waited:.1f} s after the job was "
        f"submitted: {len(killed)} processes killed together ({ENGINES[args.runner].on_worker} "
        f"and {len(set(workers) & set(killed))} SDK worker processes among them), its link down"
    )


def build(args) -> Result:
    """Steps 2 to 7 of the module; the bed and the engine are stopped whatever happens."""
    from imagenet2017_tfds.launch.cluster import ClusterBed

    archives = check_manual_dir(Path(args.manual_dir))
    out = Path(args.out)
    logs = Path(args.log_dir or tempfile.mkdtemp(prefix="imagenet2017-cluster-build-"))
    logs.mkdir(parents=True, exist_ok=True)
    run = f"gs://{BUCKET}"
    result = Result(returncode=1)
    with ClusterBed(hosts(args.runner)) as bed:
        say(f"hosts: {', '.join(f'{h.name} {h.address}' for h in bed.hosts.values())}")
        bed.store.make_bucket("gcs", BUCKET)
        for archive in archives:
            bed.store.upload(archive, f"{run}/raw/")
        checksums = os.environ.get("IMAGENET2017_CHECKSUMS")
        checksums_url = None
        if checksums and Path(checksums).is_file():  # a host sees none of this machine's files
            checksums_url = f"{run}/checksums.tsv"
            bed.store.upload(checksums, checksums_url)
        say(f"uploaded {len(archives)} files of {args.manual_dir} to {run}/raw/")
        cluster = start_cluster(bed, args, logs)
        try:
            env = submitter_env(bed, checksums_url)
            result = submit(bed, args, cluster.master, run, env, logs / "launcher.log")
        finally:
            cluster.stop()
        if result.returncode == 0:
            download(bed, f"{run}/data", out, args.config)
        else:
            say_what_is_left(bed, f"{run}/data/imagenet2017/{args.config}")
    if result.returncode == 0 and args.log_dir is None:
        shutil.rmtree(logs, ignore_errors=True)
    elif result.returncode != 0:
        say(f"logs kept in {logs}")
    return result


@dataclass
class Started:
    """The engine's cluster on the bed: what the launcher's --flink_master or --spark_master
    takes, and how to stop it."""

    master: str
    stop: Callable[[], None]


def start_cluster(bed, args, logs: Path) -> Started:
    """The engine's head on its host and a worker of --slots slots (cores) on each worker
    host, with --setting over the module's settings."""
    head, workers = ENGINES[args.runner].head, ", ".join(WORKERS)
    if args.runner == "flink":
        from imagenet2017_tfds.launch import flink_cluster

        flink = flink_cluster.start(
            bed, head, WORKERS, log_dir=logs, slots=args.slots, settings=args.settings
        )
        say(f"Flink: JobManager at {flink.rest}, {args.slots} slots on each of {workers}")
        return Started(flink.rest, flink.stop)
    from imagenet2017_tfds.launch import spark_cluster

    spark = spark_cluster.start(
        bed, head, WORKERS, log_dir=logs, cores=args.slots, settings=args.settings
    )
    say(f"Spark: master {spark.url} (web UI {spark.ui}), {args.slots} cores on each of {workers}")
    return Started(spark.url, spark.stop)


def download(bed, data_dir: str, out: Path, config: str) -> list[str]:
    """The built config's version folders from data_dir into out (a data dir tfds.load
    reads), each replacing the one of the same version there, whole: through a temporary
    folder in out, so a cut download leaves out's as it was."""
    out.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".cluster-build-", dir=out))
    try:
        files = bed.store.download(f"{data_dir}/imagenet2017/{config}", staging)
        target = out / "imagenet2017" / config
        target.mkdir(parents=True, exist_ok=True)
        for version in sorted(staging.iterdir()):
            shutil.rmtree(target / version.name, ignore_errors=True)
            version.rename(target / version.name)
            say(f"downloaded {data_dir}/imagenet2017/{config}/{version.name} into {target}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if not files:
        raise ClusterBuildError(
            f"{data_dir}/imagenet2017/{config} is empty after a build that succeeded: expected "
            "the dataset's version folder there"
        )
    return files


def say_what_is_left(bed, folder: str) -> None:
    """After a failed build: whether the store holds a dataset tfds.load would read (a
    version folder with its dataset_info.json) under folder; nothing is downloaded."""
    listing = "import fsspec, sys; fs, root = fsspec.core.url_to_fs(sys.argv[1]); "
    listing += "print(*(fs.find(root) if fs.exists(root) else []), sep='\\n')"
    found = bed.store.run([sys.executable, "-c", listing, folder], capture_output=True, text=True)
    names = found.stdout.split()
    info = [n for n in names if n.endswith("/dataset_info.json") and "incomplete" not in n]
    if found.returncode != 0:
        say(f"could not list {folder} after the failed build: {found.stderr.strip()[-500:]}")
    elif info:
        say(f"a dataset is left in {folder} despite the failure: {', '.join(info)}")
    else:
        say(f"no loadable dataset left in {folder} ({len(names)} objects, no dataset_info.json)")


def interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    # A termination request unwinds like Ctrl-C: the hosts and Flink are removed.
    signal.signal(signal.SIGTERM, interrupt)
    from imagenet2017_tfds.launch.flink_cluster import FlinkClusterError
    from imagenet2017_tfds.launch.spark_cluster import SparkClusterError
    from imagenet2017_tfds.launch.stores import StoreError

    try:
        check_manual_dir(Path(args.manual_dir))
        fetch(args.runner)
        result = build(args)
    except (ClusterBuildError, FlinkClusterError, SparkClusterError, StoreError) as e:
        say(str(e))
        return 2
    except KeyboardInterrupt:
        say("interrupted; everything it started is stopped")
        return 130
    say(f"exit {result.returncode} after {result.seconds:.1f} s of the build")
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
