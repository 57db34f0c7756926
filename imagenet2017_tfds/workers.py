"""Generation on every core of one machine.

Worker processes take ranges of members (the ranges the Beam path uses), read them (through
the gzip index of a tarball, or the files of a tree), check and fix the images, build the
features, and encode and serialize each example with TFDS's own encoder and serializer. The
main process only feeds TFDS's writer (shuffle and shards) with the serialized bytes, which
pass TFDS's encoder and serializer unchanged (`compat.preserialized`). The output is
byte-identical to one process: the shuffle orders examples by key, and every record is made
canonical by the writer. Workers import TFDS but not TensorFlow (0.6 s to start, where
TensorFlow costs 3 s of CPU a process): the full decode of validation and test images runs in
the main process, which holds TensorFlow anyway, on threads (TensorFlow's decoder releases
the GIL), a range at a time.
"""

from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import itertools
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from imagenet2017_tfds import generate, images, ranges
from imagenet2017_tfds.errors import ImageError
from imagenet2017_tfds.examples import Item
from imagenet2017_tfds.problems import Recorder
from imagenet2017_tfds.sources import Entry, Source, Tarball
from imagenet2017_tfds.tasks import Task


class Serialized(bytes):
    """An example a worker serialized: TFDS's encoder and serializer pass it unchanged
    (compat.preserialized)."""


@dataclass(frozen=True)
class Job:
    task: Task  # pickled by name
    source: Source  # paths only
    items: list[tuple[Entry, Item]]
    mode: str  # the build's Recorder mode
    decode: bool  # send each stored image back for the main process to decode fully


_SERIALIZERS: dict = {}  # in a worker: task name -> (features, serializer)


def _serializer(task: Task):
    if task.name not in _SERIALIZERS:
        from tensorflow_datasets.core import example_serializer

        from imagenet2017_tfds import builder

        config = {c.name: c for c in builder.Imagenet2017.BUILDER_CONFIGS}[task.name]
        features = config.features(list(task.classes().wnids))
        serializer = example_serializer.ExampleSerializer(features.get_serialized_info())
        _SERIALIZERS[task.name] = features, serializer
    return _SERIALIZERS[task.name]


Result = tuple[str, bytes, str, bytes | None]  # key, serialized, member path, image to decode


def run(job: Job) -> tuple[list[Result], dict]:
    """In a worker: the range's examples, serialized, and what it recorded."""
    features, serializer = _serializer(job.task)
    recorder = Recorder(job.mode, quiet=True)
    paths = {item.key: item.path for _, item in job.items}
    out = []
    for key, ex in generate.keyed_examples(job.task, job.source, job.items, recorder):
        image = ex["image"] if job.decode else None
        out.append(
            (key, serializer.serialize_example(features.encode_example(ex)), paths[key], image)
        )
    return out, recorder.to_json()


def _decode_error(image: bytes, where: str) -> ImageError | None:
    try:
        images.check_decodes(image, where)
    except ImageError as e:
        return e
    return None


def count(setting: int) -> int:
    """Worker processes for a `workers` setting: 0 means one per core."""
    return setting if setting > 0 else os.cpu_count() or 1


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
    return pickle.loads(stream.read(size))


def main() -> None:
    """A worker process: jobs in on stdin, results (or the error raised) out on stdout."""
    jobs, results = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # anything printed goes to the log, not into the results
    while True:
        try:
            job = _receive(jobs)
        except EOFError:
            return
        try:
            outcome = ("ok", run(job))
        except Exception as e:  # noqa: BLE001  (raised again in the main process)
            try:
                pickle.dumps(e)
                outcome = ("error", e)
            except Exception:  # noqa: BLE001
                outcome = ("error", RuntimeError(f"{type(e).__name__}: {e}"))
        _send(results, outcome)


class Pool:
    """Worker processes for one build, started on first use, each a fresh
    `python -m imagenet2017_tfds.workers` fed through pipes: never a fork of a process that
    may hold TensorFlow's threads, and never a re-import of the user's main module (what
    multiprocessing's spawn would do to a script without a `__main__` guard)."""

    def __init__(self, workers: int):
        self.workers = workers
        self._procs: list[subprocess.Popen] = []
        self._outboxes: dict[int, queue.SimpleQueue] = {}  # worker pid -> jobs to send
        self._feeders: list[threading.Thread] = []
        self._threads = cf.ThreadPoolExecutor(workers)  # full decodes, in this process

    def _start(self) -> list[subprocess.Popen]:
        if not self._procs:
            command = [sys.executable, "-m", "imagenet2017_tfds.workers"]
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
        self._threads.shutdown(cancel_futures=True)
        for outbox in self._outboxes.values():
            outbox.put(None)
        for p in self._procs:  # a feeder blocked on a worker blocked on unread results
            with contextlib.suppress(OSError):
                p.stdout.close()
        for feeder in self._feeders:
            feeder.join(timeout=5)
        self._outboxes, self._feeders = {}, []
        for p in self._procs:
            with contextlib.suppress(OSError):
                p.stdin.close()
        for p in self._procs:  # done at once, unless stopped with results still unread
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self._procs = []

    @staticmethod
    def _ended(proc: subprocess.Popen) -> RuntimeError:
        return RuntimeError(
            f"a worker process (pid {proc.pid}) ended unexpectedly with status "
            f"{proc.wait()}; its messages are above. Build again, or with "
            '--config \'{"name": "...", "workers": 1}\' to generate in one process.'
        )

    def _submit(self, proc: subprocess.Popen, job: Job) -> None:
        """Queues `job` for the worker's feeder thread: a job carrying its images (a one-read
        build's) fills the pipe, and writing it here would wait on a worker that waits for
        this process to read its results."""
        self._outboxes[proc.pid].put(job)

    @staticmethod
    def _feed(proc: subprocess.Popen, outbox: queue.SimpleQueue) -> None:
        while (job := outbox.get()) is not None:
            try:
                _send(proc.stdin, job)
            except (BrokenPipeError, ValueError, OSError):  # the worker ended: its result says so
                return

    def _result(self, proc: subprocess.Popen):
        try:
            status, value = _receive(proc.stdout)
        except EOFError:
            raise self._ended(proc) from None
        if status == "error":
            raise value
        return value

    def jobs(
        self, task: Task, sources: dict[str, Source], parts: dict, mode: str, decode: bool
    ) -> list[Job]:
        """A split's items (`parts`: part -> items in read order) cut into ranges, at least
        one a worker."""
        jobs = []
        for part, items in sorted(parts.items()):
            source = sources[part]
            if isinstance(source, Tarball):  # one thread a worker: the workers fill the cores
                source = Tarball(source.path, source.index_file, parallelization=1, keep_open=True)
            for chunk in ranges.cut(items, self.workers):
                jobs.append(Job(task, source, chunk, mode, decode))
        return jobs

    def run(self, jobs: Iterable[Job], recorder: Recorder) -> Iterator[tuple[str, Serialized]]:
        """(key, Serialized) of every job's examples, in job order. Job k goes to worker k
        mod N, two jobs a worker in flight (bounded memory; `jobs` is drawn as they are
        sent). What workers record goes to `recorder`; an error a worker raises is raised
        here."""
        procs = self._start()
        pending: collections.deque = collections.deque()
        jobs = iter(jobs)
        turn = itertools.cycle(procs)

        def send() -> None:
            if (job := next(jobs, None)) is not None:
                proc = next(turn)
                self._submit(proc, job)
                pending.append((proc, job))

        for _ in range(2 * len(procs)):
            send()
        while pending:
            proc, job = pending.popleft()
            results, recorded = self._result(proc)
            send()
            recorder.merge(Recorder.from_json(recorded), log=True)
            errors = [None] * len(results)
            if job.decode:
                images_ = [image for _, _, _, image in results]
                wheres = [f"{job.source.name}: {path}" for _, _, path, _ in results]
                errors = list(self._threads.map(_decode_error, images_, wheres))
            for (key, data, path, _), error in zip(results, errors, strict=True):
                if error is not None:
                    recorder.problem("image", path, error)
                    continue
                yield key, Serialized(data)


def run_here(jobs: Iterable[Job], recorder: Recorder) -> Iterator[tuple[str, dict]]:
    """(key, features) of every job's examples, made in this process (one worker)."""
    for job in jobs:
        yield from generate.keyed_examples(job.task, job.source, job.items, recorder, job.decode)


if __name__ == "__main__":
    main()
