"""An engine's daemons on a simulated cluster's hosts (flink_cluster.py, spark_cluster.py):
each started inside its host (cluster.popen) with its output in log_dir/HOST-KIND.log on this
machine, waited for until its log says it is ready, and stopped, the last started first (a
cluster's workers before its head)."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from imagenet2017_tfds.launch.beam_build import tail


@dataclass
class Process:
    """A daemon's JVM on a host: its kind (jobmanager, taskmanager, master, worker), process,
    and log file (on this machine: its output is the caller's)."""

    host: str
    kind: str
    process: subprocess.Popen
    log: Path


def start(bed, host: str, kind: str, command: list[str], env: dict, log_dir) -> Process:
    """command on host, its output into log_dir/HOST-KIND.log."""
    log = Path(log_dir) / f"{host}-{kind}.log"
    with open(log, "wb") as out:
        process = bed.popen(
            host, command, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
    return Process(host, kind, process, log)


def wait_ready(each: Process, lines: dict, seconds: float, engine: str, error: type) -> None:
    """Until its kind's line of `lines` is in the process's log; else error (the engine's),
    naming the host, what was expected and the log's end."""
    deadline = time.monotonic() + seconds
    ready = lines[each.kind]
    while ready not in each.log.read_text(errors="replace"):
        expected = f"expected {ready!r} in its log {each.log}"
        if each.process.poll() is not None:
            raise error(
                f"the {engine} {each.kind} on host {each.host} exited with "
                f"{each.process.returncode} before it was ready ({expected}):\n" + tail(each.log)
            )
        if time.monotonic() > deadline:
            raise error(
                f"the {engine} {each.kind} on host {each.host} was not ready within "
                f"{seconds:.0f} s ({expected}):\n" + tail(each.log)
            )
        time.sleep(0.2)


def stop_all(processes: list[Process], seconds: float) -> None:
    """TERM, then KILL what is left after `seconds`; the last started first."""
    for each in reversed(processes):
        if each.process.poll() is None:
            each.process.terminate()
    deadline = time.monotonic() + seconds
    for each in reversed(processes):
        try:
            each.process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            each.process.kill()
            each.process.wait()


def tails(processes: list[Process]) -> str:
    """The end of every process's log, for a failure's message."""
    return "\n".join(f"---- {p.log} ----\n" + tail(p.log) for p in processes)
