"""The local executor: worker processes that each run whole jobs (jobs.write_shard).

Each worker is a fresh `python -m imagenet2017_tfds.engine.pool` fed through pipes: never a
fork of a process that may hold TensorFlow's threads, and never a re-import of the user's
main module (what multiprocessing's spawn would do to a script without a `__main__` guard).
Workers load TFDS's features but not TensorFlow (the local build checks full decodes on its
own threads before a job is sent).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import itertools
import os
import pickle
import queue
import signal
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator

if __name__ == "__main__":
    # A worker: Ctrl-C reaches the terminal's whole process group; the build's process
    # answers it (and stops its workers), a worker would only print a traceback of its own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)

from imagenet2017_tfds.engine import jobs as jobs_lib  # noqa: E402
from imagenet2017_tfds.errors import WorkerError  # noqa: E402
from imagenet2017_tfds.ilsvrc import tasks
from imagenet2017_tfds.internal import faults  # noqa: E402

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>

# WorkerError is defined in errors, not here: a worker runs this module as __main__, and a
# class of __main__ is pickled under that name, which the build's process cannot unpickle.


def _send(stream, value) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)))
    stream.write(data)
    stream.flush()


def _receive(stream):
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError
    (size,) = struct.unpack("<Q", head)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


def _end_with(build_pid: int) -> None:
    """Ends this worker when the build's process ends, however it ends (SIGKILL, the OOM
    killer): left running, a worker would finish its shards, checkpointing and freeing
    buckets, beside the rerun of the same build. Linux's parent-death signal; elsewhere a
    worker notices only between jobs, when it reads the end of its input."""
    prctl = getattr(ctypes.CDLL(None), "prctl", None)
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != build_pid:  # it ended before the signal was asked for
        os._exit(1)


def main() -> None:
    """A worker process: jobs in on stdin, results (or the error raised) out on stdout."""
    _end_with(int(sys.argv[1]))
    jobs = sys.stdin.buffer
    # The results get a descriptor of their own; anything else written to stdout, by Python
    # or by a library's C code, goes to the log instead of into the results.
    results = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    for name in sys.argv[2:]:  # ready before the first job: started while the stream runs
        jobs_lib.load_features(tasks.task(name))
    while True:
        try:
            job = _receive(jobs)
        except EOFError:
            return
        except Exception as e:  # noqa: BLE001  (a job it cannot unpickle: reported, not printed)
            error = WorkerError(
                f"a worker process (pid {os.getpid()}) cannot read the job it was sent "
                f"({type(e).__name__}: {e}); was the package changed while the build ran? "
                "Build again with the same command."
            )
            with contextlib.suppress(BrokenPipeError):
                _send(results, ("error", error))
            return
        try:
            outcome = ("ok", jobs_lib.write_shard(job))
        except Exception as e:  # noqa: BLE001  (raised again in the main process)
            try:
                pickle.dumps(e)
                outcome = ("error", e)
            except Exception:  # noqa: BLE001
                outcome = ("error", WorkerError(f"{type(e).__name__}: {e}"))
        try:
            _send(results, outcome)
        except BrokenPipeError:  # the main process stopped first: it reports why
            return


def _how(status: int) -> str:
    if status < 0:
        try:
            return f"was killed by signal {signal.Signals(-status).name}"
        except ValueError:
            return f"was killed by signal {-status}"
    return f"exited with status {status}"


class Pool:
    """Worker processes for one build, started on first use or by `start` (early, so they
    load the features while the archive is read)."""

    def __init__(self, workers: int, task_names: tuple[str, ...] = ()):
        self.workers, self.task_names = workers, task_names
        self._procs: list[subprocess.Popen] = []
        self._outboxes: dict[int, queue.SimpleQueue] = {}  # worker pid -> jobs to send
        self._feeders: list[threading.Thread] = []
        self._drains: list[threading.Thread] = []
        self._done: queue.SimpleQueue | None = None

    def start(self) -> list[subprocess.Popen]:
        if not self._procs:
            command = [
                sys.executable,
                "-m",
                "imagenet2017_tfds.engine.pool",
                str(os.getpid()),
                *self.task_names,
            ]
            path = os.pathsep.join([*sys.path, os.environ.get("PYTHONPATH", "")])
            env = dict(os.environ, PYTHONPATH=path)  # the package as this process found it
            self._procs = [
                subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env)
                for _ in range(self.workers)
            ]
            self._outboxes = {p.pid: queue.SimpleQueue() for p in self._procs}
            self._feeders = [
                threading.Thread(target=self._feed, args=(p, self._outboxes[p.pid]), daemon=True)
                for p in self._procs
            ]
            for feeder in self._feeders:
                feeder.start()
        return self._procs

    def close(self) -> None:
        """Stops the workers: their stdin closed, they end; killed if they do not at once
        (stopped mid-job). The drain threads read every result, so none waits to write."""
        for outbox in self._outboxes.values():
            outbox.put(None)
        for feeder in self._feeders:
            feeder.join(timeout=5)
        for p in self._procs:
            with contextlib.suppress(OSError):
                p.stdin.close()
        for p in self._procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for drain in self._drains:
            drain.join(timeout=5)
        for p in self._procs:
            with contextlib.suppress(OSError):
                p.stdout.close()
        self._procs, self._outboxes, self._feeders, self._drains = [], {}, [], []

    @staticmethod
    def _ended(proc: subprocess.Popen) -> WorkerError:
        return WorkerError(
            f"a worker process (pid {proc.pid}) {_how(proc.wait())} before it finished its "
            "shard; its messages are above. Build again with the same command: the shards "
            "already written are kept. If it was the out-of-memory killer, build with "
            'fewer workers (--config \'{"name": "...", "workers": 1}\').'
        )

    @staticmethod
    def _feed(proc: subprocess.Popen, outbox: queue.SimpleQueue) -> None:
        while (job := outbox.get()) is not None:
            try:
                _send(proc.stdin, job)
            except (BrokenPipeError, ValueError, OSError):  # the worker ended: its result says so
                return

    @staticmethod
    def _drain(proc: subprocess.Popen, done: queue.SimpleQueue) -> None:
        """Reads a worker's results as they come, so it never waits to hand one over."""
        while True:
            try:
                outcome = _receive(proc.stdout)
            except (EOFError, OSError, ValueError):
                done.put((proc, None))
                return
            except Exception as e:  # noqa: BLE001  (a result it cannot unpickle: said, not lost)
                message = (
                    f"a result of worker pid {proc.pid} cannot be read ({type(e).__name__}: {e})"
                )
                done.put((proc, ("error", WorkerError(message + ": report this as a bug."))))
                return
            done.put((proc, outcome))

    def run(self, jobs: Iterable[jobs_lib.Job]) -> Iterator[tuple[jobs_lib.Job, jobs_lib.Written]]:
        """Each job with what it wrote, as the workers finish them; two jobs a worker in
        flight (`jobs` is drawn as they are sent), the next to the worker that finished. An
        error a worker raises is raised here."""
        procs = self.start()
        done: queue.SimpleQueue = queue.SimpleQueue()
        if not self._drains:
            self._drains = [
                threading.Thread(target=self._drain, args=(p, done), daemon=True) for p in procs
            ]
            self._done = done
            for drain in self._drains:
                drain.start()
        done = self._done
        in_flight: dict[int, collections.deque] = {p.pid: collections.deque() for p in procs}
        jobs = iter(jobs)

        def send(proc) -> bool:
            if (job := next(jobs, None)) is None:
                return False
            self._outboxes[proc.pid].put(job)
            in_flight[proc.pid].append(job)
            return True

        for proc in itertools.chain(procs, procs):
            send(proc)
        while any(in_flight.values()):
            proc, outcome = done.get()
            if outcome is None:
                raise self._ended(proc)
            status, value = outcome
            if status == "error":
                raise value
            job = in_flight[proc.pid].popleft()
            send(proc)
            faults.point("shard-reported", job, value)
            yield job, value


if __name__ == "__main__":
    main()
