"""A release .tar.gz read in place: streamed, never extracted, seekable through a gzip index.

rapidgzip decompresses on every core and records seek points as it goes; the index it
exports after one scan lets later reads (a split, a Beam worker's range) start anywhere.

rapidgzip writes the index itself, in its own format, and imports a damaged one without a
word (the reads then fail as corrupt gzip data, blaming the archive). So a small checked
file beside it, `<index>.check` (fileio.write_cache), records the index's length and sha256
under the archive's identity; an index that does not match it, or that rapidgzip refuses, is
deleted with a notice and the archive read without it (a rescan writes a new one).
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator

import rapidgzip

from imagenet2017_tfds.errors import ArchiveError, Imagenet2017Error
from imagenet2017_tfds.internal import fileio, machine, store
from imagenet2017_tfds.sources import tar
from imagenet2017_tfds.sources.base import Entry, Source, release_path


class _KeptReaders(threading.local):
    """Readers a thread keeps open between reads of ranges (a worker's, a Beam element's):
    the gzip index of the real archive is over a GB, and importing it for every range
    would cost more than reading the range."""

    def __init__(self):
        self.open: dict[tuple, tuple[contextlib.ExitStack, object]] = {}


_KEPT = _KeptReaders()
_ALL_KEPT: list[contextlib.ExitStack] = []
# Indexes that passed their check in this process, by the identity of the index, its check
# file and the archive: the real index is over a GB, hashed once, not at every opening.
_CHECKED: set[tuple] = set()
# Decompressed bytes between two reports of a walk's position: each asks rapidgzip how far it
# has read, and the reports pace the digest read beside the stream (checksums.DigestPace).
TELL_EVERY = 4 << 20


@atexit.register
def close_kept_readers() -> None:
    """rapidgzip aborts the interpreter if one of its files is still open at exit."""
    while _ALL_KEPT:
        _ALL_KEPT.pop().close()
    _KEPT.open.clear()


def _reason(e: Exception) -> str:
    """rapidgzip's message without its thread's id. Ours carries it whole, so the library's
    own traceback is not printed ahead of it (`from None`)."""
    return re.sub(r"\[Thread \d+\] ", "", f"{type(e).__name__}: {e}")


class Tarball(Source):
    def __init__(self, path, index_file=None, parallelization: int = 0, keep_open=False):
        self.path = fileio.path(path)
        self.name = self.path.name
        self.index_file = fileio.path(index_file) if index_file else None
        self.parallelization = parallelization
        self.keep_open = keep_open  # reuse one reader (and its index) for every read

    def _threads(self) -> int:
        """rapidgzip's threads: as asked, else one per CPU this process may use (rapidgzip's
        own default is the host's count, whatever the affinity or cgroup quota)."""
        return self.parallelization or machine.usable_cpus()

    def _kept(self):
        # The archive's identity too: a long-lived Beam worker may outlive an archive.
        key = (
            *fileio.stat_key(self.path).values(),
            os.fspath(self.index_file or ""),
            self.parallelization,
        )
        if key not in _KEPT.open:
            stack = contextlib.ExitStack()
            _ALL_KEPT.append(stack)
            _KEPT.open[key] = stack, stack.enter_context(self._open())
        return _KEPT.open[key][1]

    def cache_key(self) -> dict:
        return fileio.stat_key(self.path)

    def index_ready(self) -> bool:
        return self.index_file is None or self._index_checked()

    @property
    def check_file(self) -> fileio.Path:
        """The checked record of the index: its length and sha256, for this archive."""
        return self.index_file.parent / f"{self.index_file.name}.check"

    def _index_checked(self) -> bool:
        """Whether the index is there and is the one exported for this very archive; one that
        is not is deleted, with a notice."""
        if not self.index_file.exists():
            return False
        files = (self.index_file, self.check_file, self.path)
        try:
            seen = tuple(v for p in files for v in fileio.stat_key(p).values())
        except FileNotFoundError:
            seen = None  # no check file: the check below says so
        if seen is not None and seen in _CHECKED:
            return True
        why = self._index_problem()
        if why is not None:
            self._discard_index(why)
            return False
        if seen is not None:
            _CHECKED.add(seen)
        return True

    def _index_problem(self) -> str | None:
        why, payload = fileio.cache_problem(self.check_file, fileio.stat_key(self.path))
        if why == fileio.MISSING:
            return (
                f"no {self.check_file.name} beside it (an older version wrote the index, or "
                "its export was cut short)"
            )
        if why is not None:
            return f"its {self.check_file.name} is {why}"
        recorded = json.loads(payload)
        length, sha256 = fileio.file_digest(self.index_file)
        if [length, sha256] != [recorded["length"], recorded["sha256"]]:
            return (
                f"{length} bytes, sha256 {sha256[:16]}...; {self.check_file.name} recorded "
                f"{recorded['length']} bytes, sha256 {recorded['sha256'][:16]}... at its export"
            )
        return None

    def _discard_index(self, why: str) -> None:
        for p in (self.index_file, self.check_file):
            with contextlib.suppress(OSError):
                p.unlink(missing_ok=True)
        fileio.notice(
            self.index_file,
            f"gzip index of {self.name} discarded: {why}",
            "the archive is read without it; the next scan writes a new one",
        )

    def _keep_index(self, f) -> None:
        """Exports the index of a whole scan, then its check file."""
        try:
            with fileio.atomic_output(self.index_file) as out:  # replaces an older index
                f.export_index(out)
            length, sha256 = fileio.file_digest(self.index_file)
        except Exception as e:  # a full disk, or rapidgzip's own failure: no index, no error
            fileio.notice(
                self.index_file,
                f"cannot be written ({e})",
                "the archive is read without it; the next scan writes it",
            )
            return
        record = json.dumps({"length": length, "sha256": sha256}).encode()
        fileio.write_cache(self.check_file, record, fileio.stat_key(self.path))

    @contextlib.contextmanager
    def _reader(self):
        with contextlib.ExitStack() as stack:
            target = os.fspath(self.path)
            if not fileio.is_local(self.path):
                # A kept reader reads ranges (a Beam worker's): smaller blocks, less beyond them.
                block = store.RANGE_BLOCK if self.keep_open else None
                target = stack.enter_context(self.path.open("rb", block=block))
            try:
                f = stack.enter_context(
                    rapidgzip.RapidgzipFile(target, parallelization=self._threads())
                )
            except Exception as e:  # rapidgzip reports bad gzip data as plain exceptions
                raise ArchiveError(
                    f"{self.path}: not a readable gzip file ({_reason(e)})."
                ) from None
            yield f

    def _import_index(self, f) -> bool:
        try:
            with self.index_file.open("rb") as index:
                f.import_index(index)
        except Exception as e:  # a check passed, but rapidgzip still refuses it
            self._discard_index(f"rapidgzip cannot import it ({type(e).__name__}: {e})")
            return False
        return True

    @contextlib.contextmanager
    def _open(self):
        """A reader for reads of ranges: through the gzip index when there is a good one."""
        if self.index_file is not None and self._index_checked():
            with self._reader() as f:
                if self._import_index(f):
                    yield f
                    return
        # A reader a failed import may have left half set up is not reused: a fresh one.
        with self._reader() as f:
            yield f

    def _failure(self, e: Exception) -> Exception | None:
        """The error to raise for `e`, met reading the archive; None: `e` itself."""
        if isinstance(e, Imagenet2017Error):  # an ArchiveError the walker raised, say
            return None
        if isinstance(e, OSError):
            if e.errno in (errno.ENOSPC, errno.EDQUOT):  # a disk being written filled up:
                return None  # not the archive's fault (the build names the folder)
            return ArchiveError(f"{self.path}: cannot be read ({e}).")
        # corrupt deflate data surfaces as RuntimeError/ValueError
        return ArchiveError(
            f"{self.path}: the gzip data is corrupt ({_reason(e)}). Download the archive again."
        )

    @contextlib.contextmanager
    def _errors(self):
        try:
            yield
        except Exception as e:
            failure = self._failure(e)
            if failure is None:
                raise
            raise failure from None

    @contextlib.contextmanager
    def walk(
        self,
        buffers: int = 1,
        on_position: Callable[[int], None] | None = None,
        keep_index: bool = True,
    ) -> Iterator[TarballWalk]:
        """The one pass over the archive from its start (no index): rapidgzip decompresses it
        on its threads, a TarballWalk walks its tar headers. A local archive is opened by path,
        so rapidgzip's threads read it without taking the GIL.

        `buffers`: the walker's ring of buffers (more than one lets the consumer hold some,
        base.Walk). `on_position` is told the compressed bytes read so far every TELL_EVERY
        bytes of the tar stream (`TarballWalk.compressed()` tells it at any time). A walk that reached the archive's end exports
        the gzip index rapidgzip recorded on the way, when the Tarball has an `index_file`
        and `keep_index` (a build that reads its images from buckets never seeks)."""
        with self._reader() as f:
            walk = TarballWalk(self, f, buffers, on_position)
            yield walk
            if walk.complete and keep_index and self.index_file is not None:
                self._keep_index(f)  # replaces an older index (a rescan)

    def read(self, entries: Iterable[Entry]) -> Iterator[tuple[Entry, bytes]]:
        with contextlib.ExitStack() as stack:
            f = self._kept() if self.keep_open else stack.enter_context(self._open())
            stack.enter_context(self._errors())
            for entry in entries:
                if f.tell() != entry.offset:
                    f.seek(entry.offset)
                data = f.read(entry.size)
                if len(data) != entry.size:
                    raise ArchiveError(
                        f"{self.path}: member {entry.path} ends early (byte {entry.offset}, "
                        f"expected {entry.size} bytes, found {len(data)}): the archive is "
                        "truncated or changed since it was indexed. Download it again."
                    )
                yield entry, data


class _Decompressed:
    """rapidgzip's output as a walker reads it: what the read raises, as the archive's error
    (Tarball._failure), so every read of the walk names the archive, and nothing else does."""

    __slots__ = ("_f", "_tarball")

    def __init__(self, tarball: Tarball, f):
        self._tarball, self._f = tarball, f

    def readinto(self, buffer) -> int:
        with self._tarball._errors():  # once per buffer filled (tar.BUFFER), not per member
            return self._f.readinto(buffer)


class TarballWalk(tar.Walker):
    """A walk of a tarball (Tarball.walk, a base.Walk): the tar walker over rapidgzip's
    output. Iterating yields the tar headers of the regular members below ILSVRC/ (their
    `path` below it, base.release_path); `read`, `chunks` and `hold` are the walker's own, so
    the walk adds nothing per member to what the walker does."""

    def __init__(self, tarball: Tarball, f, buffers: int, on_position):
        super().__init__(
            _Decompressed(tarball, f), tarball.name, buffers=buffers, paths=release_path
        )
        self._rapidgzip, self._on_position = f, on_position
        self.complete = False  # the end-of-archive marker reached, the stream read to its end

    def compressed(self) -> int:
        """The compressed bytes rapidgzip has read so far."""
        return self._rapidgzip.tell_compressed() // 8

    def __iter__(self) -> Iterator[tar.Header]:
        on_position, told = self._on_position, 0
        for header in self.headers():
            if on_position is not None and self.position - told >= TELL_EVERY:
                told = self.position
                on_position(self.compressed())
            if header.path is not None:
                yield header
        self.complete = True
