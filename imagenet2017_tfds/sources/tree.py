"""The folder a user extracted the archives into, with or without the leading ILSVRC/."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator

from etils import epath

from imagenet2017_tfds.sources.base import ROOT, Entry, Source

# The top-level folders of the release below ILSVRC/: how a tree root is recognised.
TOP = ("Annotations", "Data", "ImageSets", "devkit")


def release_root(folder) -> epath.Path | None:
    """`folder/ILSVRC` or `folder` itself, whichever holds the release's top-level folders."""
    folder = epath.Path(folder)
    for root in (folder / ROOT.rstrip("/"), folder):
        if root.is_dir() and any((root / top).is_dir() for top in TOP):
            return root
    return None


class Tree(Source):
    def __init__(self, root, subdirs: tuple[str, ...] = TOP):
        self.root = epath.Path(root)
        self.name = os.fspath(self.root)
        self.subdirs = subdirs

    def _walk(self) -> Iterator[str]:
        # epath walks gs:// and other remote trees too, so Beam workers can share one copy.
        root = os.fspath(self.root).rstrip("/") + "/"
        for sub in self.subdirs:
            top = self.root / sub
            if not top.is_dir():
                continue
            found = []
            for folder, _dirs, files in top.walk():
                rel = os.fspath(folder)[len(root) :].replace(os.sep, "/")
                found.extend(f"{rel}/{name}" for name in files)
            yield from sorted(found)

    def scan(self, want: Callable[[str], bool]) -> Iterator[tuple[Entry, bytes | None]]:
        for path in self._walk():
            full = self.root / path
            data = full.read_bytes() if want(path) else None
            size = len(data) if data is not None else full.stat().length
            yield Entry(0, path, size), data

    def read(self, entries: Iterable[Entry]) -> Iterator[tuple[Entry, bytes]]:
        for entry in entries:
            yield entry, (self.root / entry.path).read_bytes()
