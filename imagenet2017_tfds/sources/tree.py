"""The folder a user extracted the archives into, with or without the leading ILSVRC/.

Links stay in the manual folder: a link (to a file or a folder) is followed only when its
target lies inside the folder's real path, so a build never packs a file from elsewhere on
the machine into a dataset (a stray link to a home folder, /etc, another user's files). The
walk checks every link it meets; each read checks the file it actually opened, so a link
swapped after the scan is refused too. A manual folder that is itself a link is followed:
the boundary is its real path. Remote trees (gs://) have no links.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator

from imagenet2017_tfds.errors import InputError
from imagenet2017_tfds.internal import fileio
from imagenet2017_tfds.sources.base import ROOT, Entry, Source

# The top-level folders of the release below ILSVRC/: how a tree root is recognised.
TOP = ("Annotations", "Data", "ImageSets", "devkit")


def release_root(folder) -> fileio.Path | None:
    """`folder/ILSVRC` or `folder` itself, whichever holds the release's top-level folders."""
    folder = fileio.path(folder)
    for root in (folder / ROOT.rstrip("/"), folder):
        if root.is_dir() and any((root / top).is_dir() for top in TOP):
            return root
    return None


class Tree(Source):
    """`root`: the release's root (the folder holding Annotations/, Data/, ...); `folder`: the
    manual folder, which no link may lead out of (the root itself when not given)."""

    def __init__(self, root, subdirs: tuple[str, ...] = TOP, folder=None):
        self.root = fileio.path(root)
        self.name = os.fspath(self.root)
        self.subdirs = subdirs
        self.folder = fileio.path(folder) if folder is not None else self.root
        self._sizes: dict[str, int] = {}  # a store's listing gives the sizes

    def _walk(self) -> Iterator[str]:
        if fileio.is_local(self.root):
            yield from self._walk_local(_Bound(os.fspath(self.folder)))
            return
        # A tree in a store (gs://, s3://) is listed by prefix, so Beam workers share one copy;
        # its objects have no links to follow.
        for sub in self.subdirs:
            listed = (self.root / sub).files()
            self._sizes.update({f"{sub}/{rel}": size for rel, size in listed.items()})
            yield from sorted(f"{sub}/{rel}" for rel in listed)

    def _walk_local(self, bound: _Bound) -> Iterator[str]:
        """Every file below each of `subdirs`, sorted, links followed within the folder."""
        root = os.fspath(self.root)
        bound.real(root)  # the root, or a folder above it, may be a link out
        for sub in self.subdirs:
            top = os.path.join(root, sub)
            if not os.path.isdir(top):
                continue
            found = []
            # (path below the root, the real paths of the folders down to it: a link to one of
            # them would make the walk endless)
            pending = [(sub, (bound.real(top),))]
            while pending:
                rel, chain = pending.pop()
                with os.scandir(os.path.join(root, rel)) as entries:
                    for entry in entries:
                        child = f"{rel}/{entry.name}"
                        if entry.is_symlink():
                            target = bound.link_target(entry.path)
                            if not os.path.isdir(target):
                                found.append(child)
                            elif any(r == target or r.startswith(target + os.sep) for r in chain):
                                raise InputError(
                                    f"{entry.path}: a link to {target}, a folder that holds "
                                    "the link itself, so the tree would never end. Remove the "
                                    "link."
                                )
                            else:
                                pending.append((child, (*chain, target)))
                        elif entry.is_dir(follow_symlinks=False):
                            pending.append((child, (*chain, os.path.join(chain[-1], entry.name))))
                        else:
                            found.append(child)
            yield from sorted(found)

    def _read(self, path: str, bound: _Bound | None) -> bytes:
        """The bytes of the file at `path` below the root; locally, only if the file opened
        lies inside the folder."""
        if bound is None:
            return (self.root / path).read_bytes()
        full = os.path.join(os.fspath(self.root), path)
        with open(full, "rb") as f:
            bound.opened(f.fileno(), full)
            return f.read()

    def _bound(self) -> _Bound | None:
        return _Bound(os.fspath(self.folder)) if fileio.is_local(self.root) else None

    @contextlib.contextmanager
    def walk(self) -> Iterator[TreeWalk]:
        """The one pass over the tree's files (base.Walk), in sorted order below each top
        folder, links followed within the manual folder."""
        try:
            yield TreeWalk(self)
        finally:
            self._sizes = {}  # a Beam worker is sent the source, not the listing

    def read(self, entries: Iterable[Entry]) -> Iterator[tuple[Entry, bytes]]:
        bound = self._bound()
        for entry in entries:
            yield entry, self._read(entry.path, bound)


class _File:
    """A file of a tree as its walk yields it (a base.Member). Its size is looked up only when
    asked for and not already known: from its bytes once read, or from a store's listing."""

    __slots__ = ("_size", "_tree", "path")
    offset = 0  # a tree's files are read by path, in any order

    def __init__(self, tree: Tree, path: str):
        self._tree, self.path, self._size = tree, path, None

    @property
    def size(self) -> int:
        if self._size is None:
            tree = self._tree
            self._size = tree._sizes.get(self.path) or (tree.root / self.path).stat().length
        return self._size


def _nothing_held() -> None:
    """A tree's bytes are the consumer's own: there is no buffer to release."""


class TreeWalk:
    """A walk of a tree (Tree.walk, a base.Walk): each file, read only when asked for, through
    the checks that keep a read inside the manual folder."""

    def __init__(self, tree: Tree):
        self._tree, self._bound = tree, tree._bound()

    def __iter__(self) -> Iterator[_File]:
        tree = self._tree
        for path in tree._walk():
            yield _File(tree, path)

    def read(self, member: _File) -> bytes:
        data = self._tree._read(member.path, self._bound)
        member._size = len(data)
        return data

    def chunks(self, member: _File) -> tuple[bytes]:
        return (self.read(member),)

    def hold(self) -> Callable[[], None]:
        return _nothing_held


class _Bound:
    """The manual folder's real path, and the checks that keep reads inside it."""

    def __init__(self, folder: str):
        self.folder = os.path.abspath(folder)
        self.real_folder = os.path.realpath(folder)

    def inside(self, real: str) -> bool:
        return real == self.real_folder or real.startswith(self.real_folder.rstrip(os.sep) + os.sep)

    def real(self, path: str) -> str:
        """The real path of `path`, refused when a link on the way leads out of the folder."""
        real = os.path.realpath(path)
        if not self.inside(real):
            self._refuse(path, real)
        return real

    def link_target(self, link: str) -> str:
        """The real path of the link's target: inside the folder, and existing."""
        target = self.real(link)
        if not os.path.exists(target):
            raise InputError(
                f"{link}: a link to {os.readlink(link)}, which does not exist. Replace the "
                "link by the file it should point to, or remove it."
            )
        return target

    def opened(self, fd: int, path: str) -> None:
        """Refuses the file just opened from `path` if it lies outside the folder: the file
        actually opened (Linux names it in /proc), not a path resolved before the open."""
        try:
            real = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # no /proc (macOS): the path resolved now
            real = os.path.realpath(path)
        if not self.inside(real):
            self._refuse(path, real)

    def _refuse(self, path: str, real: str):
        link = self._link_out(path)
        link, target = (link, os.path.realpath(link)) if link else (path, real)
        raise InputError(
            f"{link}: a link to {target}, outside the manual folder "
            f"{self.folder} (real path {self.real_folder}). Only what lies inside that folder "
            "is read: replace the link by the file or folder it points to, or move the target "
            "inside the folder (and link to it there)."
        )

    def _link_out(self, path: str) -> str | None:
        """The first link from the folder down to `path` whose target lies outside."""
        rel = os.path.relpath(os.path.abspath(path), self.folder)
        if rel == os.pardir or rel.startswith(os.pardir + os.sep):
            return None
        at = self.folder
        for part in [] if rel == os.curdir else rel.split(os.sep):
            at = os.path.join(at, part)
            if os.path.islink(at) and not self.inside(os.path.realpath(at)):
                return at
        return None
