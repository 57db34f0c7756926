"""What a Spark standalone cluster did to the launcher's job (beam-build --spark_master): the
workers it lost, the executors the Spark driver lost with them, the tasks it ran again and
the executors started in their place, as lines of the launcher's log while the job runs; a
summary at its end; and, when the build failed after a loss, an error naming the lost hosts
and Spark's own reason.

Two sources, as neither tells it all:
- the master's web UI, /json: its workers and their state (a worker whose heartbeats stopped
  is DEAD after spark.worker.timeout, or no longer listed), and the application, by the name
  the launcher gave the job (Beam names the application job_name + "_" + a random id);
- the Spark driver's log, on this host (it runs in the job server, whose output the launcher
  keeps in WORK/job-server.log): the executors lost and why, the tasks they were running,
  stages resubmitted, executors granted in their place, a job aborted and Spark's reason.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from imagenet2017_tfds.launch.watch import EVERY, Watch

# Spark's driver-side messages (Spark 3.5: TaskSchedulerImpl, TaskSetManager, DAGScheduler,
# StandaloneSchedulerBackend) that tell what it did about a loss, and what a line says then.
DRIVER_EVENTS = [
    (re.compile(r"Lost executor (\S+) on (\S+): (.*)"), "lost executor {0} on {1}: {2}", "lost"),
    (
        re.compile(r"task (\S+) in stage (\S+) \(TID \d+\) failed because while it was being "),
        "task {0} of stage {1} was running on a lost executor: run again",
        None,
    ),
    (
        re.compile(r"Lost task (\S+) in stage (\S+) .*?: (.*)"),
        "task {0} of stage {1} failed: {2}",
        None,
    ),
    (re.compile(r"(Resubmitting .*)"), "{0}", None),
    (
        re.compile(r"Granted executor ID (\S+) on hostPort (\S+) "),
        "executor {0} started on {1}",
        "granted",  # said only after a loss: the job's first executors are no news
    ),
    (re.compile(r"(Job aborted due to .*)"), "{0}", "aborted"),
]
LOG_PREFIX = re.compile(r"^\S+ \[[^\]]*\] [A-Z]+ \S+ - ")  # time [thread] LEVEL logger -
MAX_EVENTS = 40  # lines of the driver's said; the log has the rest
REASON_CHARS = 1000
TERMINAL = {"FINISHED", "FAILED", "KILLED"}


@dataclass
class Lost:
    """A worker the master gave up: its id, host, what the master says of it, and seconds into
    the job (None before the job was found)."""

    id: str
    host: str
    state: str
    seconds: float | None


class SparkWatch(Watch):
    """Polled by the launcher's loop (poll), then asked for its summary (finish)."""

    what = "the Spark master's web UI"

    def __init__(
        self,
        ui: str,
        url: str,
        job_name: str,
        workers: list[dict],
        driver_log: Path,
        *,
        say: Callable[[str], None] | None = None,
        every: float = EVERY,
    ):
        """ui: the master's web UI (HOST:PORT); url: the master (spark://...). job_name: the
        name the job was given. workers: /json's workers as seen before submitting.
        driver_log: the job server's log."""
        super().__init__(ui, say, every)
        self.url, self.job_name, self.driver_log = url, job_name, driver_log
        self.known = {w["id"]: w.get("host", "?") for w in workers if w.get("state") == "ALIVE"}
        self.alive = set(self.known)
        self.app: dict | None = None
        self.lost: list[Lost] = []
        self.events: list[str] = []  # the driver's, as said
        self.executors_lost = 0
        self.log_offset = 0
        self.aborted: str | None = None

    # -------------------------------------------------------------------- looking

    def _look(self) -> None:
        status = self.get("/json")
        self._look_at_app(status)
        self._look_at_workers(status["workers"])
        self._read_driver_log()

    def seconds(self) -> float | None:
        """Seconds into the job (since the master registered the application)."""
        if self.app is None:
            return None
        return time.time() - self.app["starttime"] / 1000

    def _look_at_app(self, status: dict) -> None:
        apps = [*status.get("activeapps", []), *status.get("completedapps", [])]
        mine = [a for a in apps if a.get("name", "").startswith(f"{self.job_name}_")]
        if not mine:
            return
        first = self.app is None
        self.app = mine[0]
        if first:
            workers = ", ".join(f"{i} ({self.known[i]})" for i in sorted(self.alive))
            self.say(
                f"beam_build: Spark application {self.app['id']} ({self.app['name']}) "
                f"submitted to the cluster at {self.url}, {self.app.get('state')}; the "
                f"master's workers: {workers}"
            )

    def _look_at_workers(self, workers: list[dict]) -> None:
        now = {w["id"]: w for w in workers}
        for id_ in sorted(self.alive):
            state = now.get(id_, {}).get("state", "no longer listed")
            if state == "ALIVE":
                continue
            self.alive.discard(id_)
            lost = Lost(id=id_, host=self.known[id_], state=state, seconds=self.seconds())
            self.lost.append(lost)
            self.say(f"beam_build: {self._lost_line(lost)}")
        for id_, worker in sorted(now.items()):
            if worker.get("state") == "ALIVE" and id_ not in self.known:
                self.known[id_] = worker.get("host", "?")
                self.alive.add(id_)
                self.say(f"beam_build: Spark worker {id_} ({self.known[id_]}) joined the cluster")

    def _read_driver_log(self) -> None:
        try:
            with open(self.driver_log, "rb") as log:
                log.seek(self.log_offset)
                chunk = log.read()
        except OSError:
            return
        end = chunk.rfind(b"\n") + 1  # whole lines only; the rest at the next look
        self.log_offset += end
        for line in chunk[:end].decode(errors="replace").splitlines():
            self._driver_line(LOG_PREFIX.sub("", line))

    def _driver_line(self, message: str) -> None:
        for pattern, said, kind in DRIVER_EVENTS:
            found = pattern.search(message)
            if not found:
                continue
            if kind == "granted" and not self.executors_lost:
                return
            text = said.format(*found.groups())[:REASON_CHARS]
            if kind == "lost":
                self.executors_lost += 1
            elif kind == "aborted":
                self.aborted = text
            if len(self.events) < MAX_EVENTS:
                self.events.append(text)
                self.say(f"beam_build: Spark's driver: {text}")
            return

    # -------------------------------------------------------------------- telling

    def _lost_line(self, lost: Lost) -> str:
        when = "before the job started" if lost.seconds is None else f"at {lost.seconds:.1f} s"
        return (
            f"Spark worker {lost.id} ({lost.host}) lost {when} into the job: the master "
            f"{self.url} has it {lost.state}"
        )

    def finish(self, status: int, settle: float = 10.0) -> str | None:
        """A last look (until the application's state is final, at most settle seconds)
        and the summary line; with status non-zero after a loss, the error naming the lost
        workers and Spark's reason, returned for the launcher to end its report with."""
        self.settle(settle, lambda: self.app is None or self.app.get("state") in TERMINAL)
        lost = "; ".join(self._lost_line(x) for x in self.lost) or "no worker lost"
        left = ", ".join(f"{i} ({self.known[i]})" for i in sorted(self.alive)) or "no worker"
        again = f"the driver lost {self.executors_lost} executors"
        app = f"Spark application {self.app['id']}" if self.app else f"the job {self.job_name}"
        state = (self.app or {}).get("state", "not found on the cluster")
        self.say(f"beam_build: on the cluster: {lost}; {again}; {app} {state}, workers: {left}")
        if status == 0 or not (self.lost or self.aborted):
            return None
        why = self.aborted or (self.events[-1] if self.events else f"none given ({state})")
        hosts = ", ".join(f"{x.id} ({x.host})" for x in self.lost)
        error = f"beam_build: the build failed: {app} {state}"
        if hosts:
            error += f" after the cluster lost worker {hosts}"
        error += f"; Spark's reason: {why}"
        if hosts:
            error += (
                "; what to do: the workers left must give the job an executor (Spark runs a "
                f"lost executor's tasks on the others): left: {left}"
            )
        return error
