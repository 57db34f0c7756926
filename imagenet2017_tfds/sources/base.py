"""The interface every input offers: walk its members once, then read chosen ones back.

A walk (`Source.walk`) is the one pass over a source, whoever consumes it: the catalog's scan
and the build's stream both iterate one. Each format has one place that opens the source,
walks it, names its members by their release path, maps its failures to the package's errors
and ends the walk; the consumer decides per member whether to skip it, read its bytes or take
them as buffers (which the stream hands to the bucket writer's thread without a copy).
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

ROOT = "ILSVRC/"


@dataclass(frozen=True, order=True, slots=True)  # millions of these: no __dict__
class Entry:
    """One regular file of a source. `offset` orders reads (the tar data offset, or 0)."""

    offset: int
    path: str  # below the leading ILSVRC/ folder, '/'-separated
    size: int


def release_path(name: str) -> str | None:
    """A member name as a path below `ILSVRC/`; None for names that cannot be release files."""
    name = name.replace("\\", "/")
    while name.startswith(("./", "/")):
        name = name[2:] if name.startswith("./") else name[1:]
    if name.startswith(ROOT):
        name = name[len(ROOT) :]
    parts = name.split("/")
    if not name or any(p in ("", ".", "..") for p in parts):
        return None  # absolute, `..` or empty segments: never a release member
    return name


class Member(Protocol):
    """A regular file of a source as a walk meets it (a tarball's tar header, a tree's file)."""

    @property
    def path(self) -> str: ...  # below the leading ILSVRC/ folder, '/'-separated

    @property
    def offset(self) -> int: ...  # as Entry.offset: a tarball's data offset, a tree's 0

    @property
    def size(self) -> int: ...


class Walk(Protocol):
    """One forward pass over a source. Iterating yields each regular file below ILSVRC/ once,
    in the source's order. The member at hand (the last one yielded) may then be read whole
    (`read`), taken as buffers (`chunks`), or left alone: the next step skips it.

    A buffer from `chunks` is valid until the walk goes on, unless `hold()` was called for it
    (that buffer is not refilled until the function it returned is called): so a consumer
    hands buffers to another thread without copying them."""

    def __iter__(self) -> Iterator[Member]: ...

    def read(self, member: Member) -> bytes: ...

    def chunks(self, member: Member) -> Iterable[memoryview | bytes]: ...

    def hold(self) -> Callable[[], None]: ...


class Source(abc.ABC):
    """An archive or a tree; `name` names it in messages."""

    name: str

    @abc.abstractmethod
    def walk(self) -> contextlib.AbstractContextManager[Walk]:
        """The one pass over the source's members, as a context that closes the source (a
        tarball's walk that reached its end also exports the gzip index it was given)."""

    @abc.abstractmethod
    def read(self, entries: Iterable[Entry]) -> Iterator[tuple[Entry, bytes]]:
        """The bytes of `entries` (sorted by offset for a stream), in the order given."""

    def cache_key(self) -> dict | None:
        """What identifies this source's content for cached scans; None: do not cache."""
        return None

    def index_ready(self) -> bool:
        """Whether reads of a range can start at it (a tarball's gzip index is written)."""
        return True
