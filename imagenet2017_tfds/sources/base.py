"""The interface every input offers: walk its members once, then read chosen ones back."""

from __future__ import annotations

import abc
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

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


class Source(abc.ABC):
    """An archive or a tree; `name` names it in messages."""

    name: str

    @abc.abstractmethod
    def scan(self, want: Callable[[str], bool]) -> Iterator[tuple[Entry, bytes | None]]:
        """Every regular file once, in the source's own order; bytes for those `want` accepts."""

    @abc.abstractmethod
    def read(self, entries: Iterable[Entry]) -> Iterator[tuple[Entry, bytes]]:
        """The bytes of `entries` (sorted by offset for a stream), in the order given."""

    def cache_key(self) -> dict | None:
        """What identifies this source's content for cached scans; None: do not cache."""
        return None

    def index_ready(self) -> bool:
        """Whether reads of a range can start at it (a tarball's gzip index is written)."""
        return True
