"""Members already read, served from memory: the images a one-read build took from its
stream, handed to a worker (pickled with their bytes) or kept until their split's turn."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from imagenet2017_tfds.sources.base import Entry, Source


class Loaded(Source):
    def __init__(self, name: str, data: dict[Entry, bytes]):
        self.name = name
        self.data = data

    def scan(self, want: Callable[[str], bool]) -> Iterator[tuple[Entry, bytes | None]]:
        for entry in sorted(self.data):
            yield entry, self.data[entry] if want(entry.path) else None

    def read(self, entries: Iterable[Entry]) -> Iterator[tuple[Entry, bytes]]:
        for entry in entries:
            yield entry, self.data[entry]
