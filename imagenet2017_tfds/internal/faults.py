"""Named fault points: the places where the tests stop, fail or alter a build on purpose, as a
power cut, a full disk or a broken executor would, or as a release many times the size of the
miniature one would (more buckets than one a split). Unarmed (always, outside the tests) a point
is one dictionary lookup and does nothing.

A test arms a point in its own process with `armed(name, action)`: `action(*detail)` runs each
time the point is reached, and what it returns is the point's value (most points ignore it;
`example-serialized` leaves the example out on a true value, `disk-free` reports its value as
the free space, `bucket-bytes` as the size of bucket aimed at). For a build in a process of its
own, the environment arms it:

    IMAGENET2017_FAULTS="NAME:ACTION[@N][,NAME:ACTION[@N]...]"

ACTION is `kill` (SIGKILL this process: no clean-up, as power loss or the OOM killer) or
`fail` (raise FaultInjected); N (default 1) is which time the point is reached in a process,
counted in each process on its own (a worker process of the build counts its own). Every
process the build starts inherits the variable.

The points (where the engine reaches them, and what they pass as detail):

    archive-read        an archive's one read begins (stream.read_once); the source
    bucket-bytes        the number of buckets a split is chosen from the archives' size (local)
    bucket-add          an image is about to be appended to a bucket (buckets.BucketWriter.add)
    bucket-write        bytes are about to be written to a bucket, on the writer's thread
    streams-kept        every archive read now is recorded as streamed (local)
    shard-started       a shard's job begins to be written (jobs.write_shard); the job
    example-serialized  an example is serialized (jobs.run); its key
    checkpoint-kept     a shard's checkpoint is on disk and its buckets freed (jobs)
    shard-reported      a worker's report of a shard arrives (pool.Pool.run); job, Written
    shard-kept          a written shard is recorded complete (work.WorkFolder.keep_shard)
    disk-free           the free space of a folder is looked up (local); the folder
    shard-placed        a shard file is placed in the dataset's folder (builder); its path
    object-moved        an object of a finished dataset is copied into place (store); its url
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterator

ENV = "IMAGENET2017_FAULTS"

POINTS = frozenset({
    "archive-read", "bucket-bytes", "bucket-add", "bucket-write", "streams-kept",
    "shard-started", "example-serialized", "checkpoint-kept", "shard-reported", "shard-kept",
    "disk-free", "shard-placed", "object-moved",
})  # fmt: skip

ACTIONS = ("kill", "fail")


class FaultInjected(RuntimeError):
    """Raised by a point armed to `fail`: a fault a test put there."""


_armed: dict[str, Callable] = {}


def point(name: str, *detail):
    """The fault point `name`: nothing unless a test armed it; then its action's value."""
    action = _armed.get(name)
    return None if action is None else action(*detail)


@contextlib.contextmanager
def armed(name: str, action: Callable) -> Iterator[None]:
    """Arms the point `name` in this process while the block runs."""
    _check(name)
    before = _armed.get(name)
    _armed[name] = action
    try:
        yield
    finally:
        if before is None:
            _armed.pop(name, None)
        else:
            _armed[name] = before


def parse(spec: str) -> dict[str, tuple[str, int]]:
    """IMAGENET2017_FAULTS's value: point name -> (action, the time it acts)."""
    out = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        name, _, rest = item.partition(":")
        action, _, nth = rest.partition("@")
        _check(name)
        if action not in ACTIONS or (nth and not (nth.isdigit() and int(nth) > 0)):
            raise ValueError(
                f"{ENV}: {item!r} is not NAME:ACTION[@N] with ACTION one of {', '.join(ACTIONS)} "
                f"and N a count from 1"
            )
        out[name] = (action, int(nth or 1))
    return out


def _check(name: str) -> None:
    if name not in POINTS:
        raise ValueError(f"no fault point {name!r}; the points are {', '.join(sorted(POINTS))}")


def _arm_from_env() -> None:
    for name, (action, nth) in parse(os.environ.get(ENV, "")).items():
        _armed[name] = _counted(name, action, nth)


def _counted(name: str, action: str, nth: int) -> Callable:
    reached = 0

    def act(*detail):
        nonlocal reached
        reached += 1
        if reached != nth:
            return None
        if action == "kill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise FaultInjected(f"{ENV}: {name} reached {nth} time(s) in pid {os.getpid()}")

    return act


_arm_from_env()  # once, at import: a process of a build reads its faults when it starts
