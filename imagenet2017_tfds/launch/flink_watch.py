"""What a Flink cluster did to the launcher's job (beam-build --flink_master): the
TaskManagers it lost or gained, and each restart of the job with Flink's reason, as lines of
the launcher's log while the job runs; a summary at its end; and, when the job failed, an
error naming the lost hosts and Flink's own reason.

Why the JobManager's REST API (the one Flink's web UI reads): the job server, Beam's, logs
only the job's end, and the SDK workers of a lost host die with it, so nothing on the
submitting host sees the loss. The JobManager has it all:
- /taskmanagers: those registered; one gone is lost (Flink drops it after heartbeat.timeout
  without an answer, or when it is stopped);
- /jobs/overview: the job, by the name the launcher gave it (job_name);
- /jobs/<id>: its state;
- /jobs/<id>/exceptions: its exception history, one entry per failure Flink handled (each
  a restart, but a last one that failed the job), with the task and TaskManager it hit.

Every request has a short timeout and a JobManager that does not answer is reported once:
the watch never stops or slows the build (watch.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from imagenet2017_tfds.launch.watch import EVERY, Watch

REASON_CHARS = 1000  # of one exception, in a line
TERMINAL = {"FINISHED", "FAILED", "CANCELED", "SUSPENDED"}
FAILED = {"FAILED", "FAILING"}


@dataclass
class Lost:
    """A TaskManager that left the cluster: its id, address, and seconds into the job (None
    before the job was found)."""

    id: str
    address: str
    seconds: float | None


def address_of(taskmanager: dict) -> str:
    """A TaskManager's host, from its RPC path (pekko.tcp://flink@HOST:PORT/user/rpc/...)."""
    found = re.search(r"@(\[[^\]]+\]|[^:/@]+):\d+", taskmanager.get("path", ""))
    return found.group(1) if found else "address unknown"


def reason(entry: dict) -> str:
    """An exception history entry as one line: its first line and each of its causes (the
    telling one may be in the middle: Flink's `Recovery is suppressed` wraps the
    NoResourceAvailableException that wraps a TimeoutException)."""
    lines = [line.strip() for line in (entry.get("stacktrace") or "").splitlines()]
    first = lines[0] if lines else entry.get("exceptionName", "an exception without a trace")
    causes = [line.removeprefix("Caused by: ") for line in lines if line.startswith("Caused by:")]
    text = "; caused by: ".join(dict.fromkeys([first, *causes]))
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 3] + "..."


def where(entry: dict) -> str:
    task, manager = entry.get("taskName"), entry.get("taskManagerId")
    endpoint = entry.get("endpoint") or entry.get("location")
    parts = [f"task {task}" if task else "", f"TaskManager {manager}" if manager else ""]
    at = f" at {endpoint}" if endpoint else ""
    text = " on ".join(p for p in parts if p)
    return f" ({text}{at})" if text else ""


class FlinkWatch(Watch):
    """Polled by the launcher's loop (poll), then asked for its summary (finish)."""

    what = "the JobManager"

    def __init__(
        self,
        rest: str,
        job_name: str,
        taskmanagers: list[dict],
        restarts_allowed: int,
        *,
        say: Callable[[str], None] | None = None,
        every: float = EVERY,
    ):
        """rest: the JobManager's HOST:PORT. job_name: the name the job was given.
        taskmanagers: /taskmanagers as seen before submitting. say: where lines go
        (default stderr)."""
        super().__init__(rest, say, every)
        self.job_name, self.restarts_allowed = job_name, restarts_allowed
        self.known = {m["id"]: address_of(m) for m in taskmanagers}  # every one seen
        self.present = set(self.known)  # those listed at the last look
        self.job: str | None = None
        self.job_started: float | None = None  # epoch seconds, Flink's
        self.state: str | None = None
        self.lost: list[Lost] = []
        self.joined: list[str] = []
        self.restarts: list[dict] = []  # exception history entries that restarted the job
        self.failure: dict | None = None  # the entry that failed it
        self.seen: set[tuple] = set()

    # -------------------------------------------------------------------- looking

    def _look(self) -> None:
        # The job first: a TaskManager's loss is said with the restarts it has caused.
        if self.job is None:
            self._find_job()
        if self.job is not None:
            self._look_at_job()
        self._look_at_taskmanagers()

    def seconds(self, epoch: float | None = None) -> float | None:
        """Seconds into the job (since Flink started it) of epoch (default now)."""
        if self.job_started is None:
            return None
        return (time.time() if epoch is None else epoch) - self.job_started

    def _look_at_taskmanagers(self) -> None:
        now = {m["id"]: address_of(m) for m in self.get("/taskmanagers")["taskmanagers"]}
        self.known.update(now)
        for id_ in sorted(self.present - now.keys()):
            lost = Lost(id=id_, address=self.known[id_], seconds=self.seconds())
            self.lost.append(lost)
            self.say(f"beam_build: {self._lost_line(lost)}; {self._done_so_far()}")
        for id_ in sorted(now.keys() - self.present):
            self.joined.append(id_)
            self.say(f"beam_build: TaskManager {id_} ({now[id_]}) joined the cluster")
        self.present = set(now)

    def _find_job(self) -> None:
        # By its name: Beam passes job_name to Flink as the job's name, unique per build.
        found = [j for j in self.get("/jobs/overview")["jobs"] if j.get("name") == self.job_name]
        if found:
            job = found[-1]
            self.job, self.job_started = job["jid"], job["start-time"] / 1000
            managers = ", ".join(f"{i} ({self.known[i]})" for i in sorted(self.present))
            self.say(
                f"beam_build: Flink job {self.job} ({job.get('name')}) submitted to the "
                f"cluster at {self.rest}, {job.get('state')}; its TaskManagers: {managers}"
            )

    def _look_at_job(self) -> None:
        self.state = self.get(f"/jobs/{self.job}")["state"]
        history = self.get(f"/jobs/{self.job}/exceptions?maxExceptions=20")
        entries = (history.get("exceptionHistory") or {}).get("entries") or []
        for entry in sorted(entries, key=lambda e: e.get("timestamp", 0)):
            key = (entry.get("timestamp"), entry.get("exceptionName"), entry.get("taskName"))
            if key in self.seen:
                continue
            self.seen.add(key)
            newest = entry is max(entries, key=lambda e: e.get("timestamp", 0))
            if newest and self.state in FAILED:
                self.failure = entry  # the failure that ended the job, not a restart
                continue
            self.restarts.append(entry)
            at = self.seconds(entry.get("timestamp", 0) / 1000)
            self.say(
                f"beam_build: Flink restarted the job's tasks {at:.1f} s into the job "
                f"(restart {len(self.restarts)} of {self.restarts_allowed}) after: "
                f"{reason(entry)}{where(entry)}"
            )

    # -------------------------------------------------------------------- telling

    def _lost_line(self, lost: Lost) -> str:
        when = "before the job started" if lost.seconds is None else f"at {lost.seconds:.1f} s"
        return (
            f"TaskManager {lost.id} ({lost.address}) lost {when} into the job: the "
            f"JobManager at {self.rest} no longer lists it"
        )

    def _done_so_far(self) -> str:
        if not self.restarts:
            return "Flink has not restarted the job's tasks (yet)"
        return (
            f"Flink restarted the job's tasks (restart {len(self.restarts)} of "
            f"{self.restarts_allowed})"
        )

    def finish(self, status: int, settle: float = 10.0) -> str | None:
        """A last look (until the job's state is final, at most settle seconds: the REST API
        caches it for a few) and the summary line; with status non-zero after a loss or a
        failed job, the error naming the lost TaskManagers and Flink's reason, returned for
        the launcher to end its report with."""
        self.settle(settle, lambda: self.state in TERMINAL or self.job is None)
        lost = "; ".join(self._lost_line(x) for x in self.lost) or "no TaskManager lost"
        left = ", ".join(f"{i} ({self.known[i]})" for i in sorted(self.present)) or "no TaskManager"
        restarts = f"Flink restarted the job's tasks {len(self.restarts)} times"
        restarts += f" (of {self.restarts_allowed} allowed)"
        job = f"Flink job {self.job}" if self.job else f"the job {self.job_name}"
        state = self.state or "not found on the cluster"
        self.say(f"beam_build: on the cluster: {lost}; {restarts}; {job} {state} on {left}")
        if status == 0 or not (self.failure or self.lost or self.state in FAILED):
            return None
        last = self.failure or (self.restarts[-1] if self.restarts else None)
        why = reason(last) + where(last) if last else f"none given (the job is {state})"
        hosts = ", ".join(f"{x.id} ({x.address})" for x in self.lost)
        error = (
            f"beam_build: the build failed: {job} {state}"
            + (f" after the cluster lost TaskManager {hosts}" if hosts else "")
            + f", with {len(self.restarts)} restarts of {self.restarts_allowed} allowed; "
            f"Flink's reason: {why}"
        )
        if hosts:
            error += (
                "; what to do: the TaskManagers left must have --workers free slots (the "
                f"job's parallelism), or a new TaskManager must join within Flink's "
                f"slot.request.timeout: left: {left}"
            )
        return error
