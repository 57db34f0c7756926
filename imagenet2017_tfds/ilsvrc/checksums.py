"""checksums.tsv: the published size and digests of each archive, checked before use.

Format: tab-separated `filename size md5 sha256`, an optional header naming the columns (in
any order, or in a `#` comment line), an empty cell for an unknown value, `#` starts a comment. IMAGENET2017_CHECKSUMS names a file that replaces the shipped one.
The verdict of a full read is cached, keyed by the archive's identity (fileio.stat_key: path,
size, mtime, inode, device, ctime) and the digests it matched, so 155 GB is hashed once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from imagenet2017_tfds.errors import ChecksumError
from imagenet2017_tfds.internal import fileio, resources

ENV_VAR = "IMAGENET2017_CHECKSUMS"
COLUMNS = ("filename", "size", "md5", "sha256")
DIGESTS = ("md5", "sha256")
CHUNK = 8 << 20


@dataclass(frozen=True)
class Record:
    filename: str
    size: int | None = None
    md5: str | None = None
    sha256: str | None = None

    def digests(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in DIGESTS if getattr(self, name)}


HEX = {"md5": 32, "sha256": 64}


def _header(cells: list[str]) -> list[str] | None:
    """The column names of a header line (in any order), or None for a data line. A line
    naming `filename` is a header; any other name in it must be a known column."""
    names = [c.strip().lower() for c in cells if c.strip()]
    return names if "filename" in names else None


def parse(text: str, source: str = "checksums file") -> dict[str, Record]:
    """Tab-separated `filename size md5 sha256`. A header line is optional and may name the
    columns in any order, as a line of its own or as a `#` comment (the first one that names
    `filename`); an empty cell is unknown. Only a real defect is an error, naming the line."""
    records = {}
    columns: list[str] | None = None
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        comment = stripped.startswith("#")
        if comment:
            cells = stripped[1:].split()
        else:  # tabs keep empty cells; a line without one may be spaced out
            cells = line.rstrip("\t ").split("\t") if "\t" in line else line.split()
        header = _header(cells) if columns is None and not records else None
        if header is not None:
            unknown = [c for c in header if c not in COLUMNS]
            if unknown and not comment:
                raise ChecksumError(
                    f"{source} line {number}: unknown column {unknown[0]!r}; the columns are "
                    f"{', '.join(COLUMNS)} (tab-separated), in any order."
                )
            if not unknown and len(set(header)) == len(header):
                columns = header
            continue
        if comment:
            continue
        records.update([_record(cells, columns or list(COLUMNS), number, source)])
    return records


def _record(cells: list[str], columns: list[str], number: int, where: str):
    if len(cells) > len(columns):
        raise ChecksumError(
            f"{where} line {number}: {len(cells)} cells, but only the columns "
            f"{', '.join(columns)}; separate them with tabs."
        )
    row = dict(zip(columns, (c.strip() for c in cells), strict=False))
    name, size = row.get("filename", ""), row.get("size", "")
    if not name:
        raise ChecksumError(f"{where} line {number}: no file name in {cells!r}.")
    if size and not size.isdigit():
        raise ChecksumError(
            f"{where} line {number}: the size column must be a number of bytes, found {size!r}."
        )
    digests = {}
    for algorithm, length in HEX.items():
        value = row.get(algorithm, "").lower()
        if value and (len(value) != length or any(c not in "0123456789abcdef" for c in value)):
            raise ChecksumError(
                f"{where} line {number}: the {algorithm} of {name} must be {length} hex "
                f"digits, found {value!r}."
            )
        digests[algorithm] = value or None
    return name, Record(name, int(size) if size else None, **digests)


def load() -> tuple[dict[str, Record], str]:
    """The checksums in force and where they came from."""
    override = os.environ.get(ENV_VAR)
    if override:
        try:
            text = fileio.path(override).read_text()
        except FileNotFoundError:
            raise ChecksumError(
                f"{ENV_VAR}={override}: no such file. Point it at a checksums file "
                "(see `imagenet2017-tfds checksums`) or unset it to use the shipped one."
            ) from None
        return parse(text, override), override
    return parse(resources.text("checksums.tsv"), "checksums.tsv"), "the shipped checksums.tsv"


def format_records(records: list[Record]) -> str:
    lines = ["# imagenet2017_tfds checksums: " + " ".join(COLUMNS), "\t".join(COLUMNS)]
    for r in records:
        cells = (r.filename, "" if r.size is None else str(r.size), r.md5 or "", r.sha256 or "")
        lines.append("\t".join(cells))
    return "\n".join(lines) + "\n"


Progress = Callable[[int], None]


DIGEST_AHEAD = 256 << 20  # bytes a paced digest may run ahead of the stream


class DigestPace:
    """How far into a file a reader may go: a digest that shares one read of an archive with
    its decompression stays at most `ahead` bytes before it, so the disk serves both from one
    pass (the page cache holds the gap)."""

    def __init__(self, ahead: int = DIGEST_AHEAD):
        self.ahead = ahead
        self._limit = ahead
        self._moved = threading.Condition()

    def advance(self, position: int) -> None:
        """Called for every member: the reader is woken only once a chunk more is allowed."""
        if position + self.ahead < self._limit + CHUNK:
            return
        with self._moved:
            if position + self.ahead > self._limit:
                self._limit = position + self.ahead
                self._moved.notify_all()

    def release(self) -> None:
        """No limit any more: the stream has ended."""
        self.advance(1 << 62)

    def cancel(self) -> None:
        """The stream stopped on a failure: the reader stops too."""
        self._cancelled = True
        self.release()

    def wait(self, position: int) -> None:
        with self._moved:
            self._moved.wait_for(lambda: self._limit >= position)
        if self._cancelled:
            raise Cancelled("the read this digest shared stopped")

    _cancelled = False


class Cancelled(Exception):
    """A paced digest whose stream stopped on a failure (the build fails for that reason)."""


def _file_chunks(path: fileio.Path):
    if not fileio.is_local(path):
        with path.open("rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk
        return
    # Unbuffered into one reused buffer: no copy, no allocation per chunk.
    buffer = memoryview(bytearray(CHUNK))
    with open(os.fspath(path), "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            yield buffer[:n]


def _chunks(path: fileio.Path, pace: DigestPace | None = None):
    """The file's chunks; with `pace`, each read only once the pace allows it."""
    if pace is None:
        yield from _file_chunks(path)
        return
    position = 0
    with contextlib.closing(_file_chunks(path)) as chunks:
        while True:
            pace.wait(position + CHUNK)
            if (chunk := next(chunks, None)) is None:
                return
            position += len(chunk)
            yield chunk


def hash_file(
    path: fileio.Path,
    algorithms=DIGESTS,
    progress: Progress | None = None,
    pace: DigestPace | None = None,
) -> Record:
    """Read `path` once; hashlib releases the GIL, so this runs well in its own thread."""
    hashers = {name: hashlib.new(name) for name in algorithms}
    size = 0
    for chunk in _chunks(path, pace):
        size += len(chunk)
        for h in hashers.values():
            h.update(chunk)
        if progress:
            progress(len(chunk))
    return Record(path.name, size, **{n: h.hexdigest() for n, h in hashers.items()})


class Verifier:
    """Checks one archive against its record; the verdict is cached in `cache_dir`."""

    def __init__(self, path: fileio.Path, record: Record | None, source: str, cache_dir):
        self.path = fileio.path(path)
        self.record = record
        self.source = source
        self.cache_file = (
            fileio.path(cache_dir) / f"verdict-{self.path.name}.json" if cache_dir else None
        )

    def needs_full_read(self, allow_unverified: bool) -> bool:
        """Cheap checks (known digest, size); True when a full read is still needed."""
        name = self.path.name
        actual = self.path.stat().length
        if self.record is not None and self.record.size is not None and actual != self.record.size:
            raise ChecksumError(
                f"{self.path}: expected {self.record.size} bytes ({self.source}), found "
                f"{actual}. The file is incomplete or not the ILSVRC2017 release: "
                "download it again."
            )
        if self.record is None or not self.record.digests():
            if allow_unverified:
                return False
            raise ChecksumError(
                f"{self.path}: no published digest for {name} in {self.source}. "
                f"Add its line (`imagenet2017-tfds checksums DIR` writes one) and point "
                f"{ENV_VAR} at that file, or opt out of verification with "
                '--config \'{"name": "<config>", "allow_unverified": true}\'.'
            )
        return self._cached_verdict() is None

    def _cache_key(self) -> dict:
        return {**fileio.stat_key(self.path), **self.record.digests()}

    def _cached_verdict(self) -> dict | None:
        """The digests a past full read of this very file matched; None: read it again.
        A damaged or foreign verdict file is reported by read_cache and counts as none."""
        if self.cache_file is None:
            return None
        payload = fileio.read_cache(self.cache_file, self._cache_key())
        if payload is None or json.loads(payload) != self.record.digests():
            return None
        return self.record.digests()

    def verify(self, progress: Progress | None = None, pace: DigestPace | None = None) -> None:
        """Full read: every known digest must match."""
        key = self._cache_key()  # taken before: a change during the read is not vouched for
        actual = hash_file(self.path, tuple(self.record.digests()), progress, pace)
        for name, expected in self.record.digests().items():
            found = getattr(actual, name)
            if found != expected:
                raise ChecksumError(
                    f"{self.path}: {name} mismatch: expected {expected} ({self.source}), "
                    f"found {found}. The file is damaged or not the ILSVRC2017 release: "
                    "download it again (nothing was written)."
                )
        if self.cache_file is not None:
            verdict = json.dumps(self.record.digests(), sort_keys=True).encode()
            fileio.write_cache(self.cache_file, verdict, key)


def _name_thread(name: bytes) -> None:
    """Names this thread for the OS (ps, /proc/<pid>/task/*/comm): the benchmark tells the
    digest apart from the stream by it."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


class DigestThread:
    """Runs a verification in a thread so it overlaps the archive scan (both read the file)."""

    def __init__(self, fn: Callable[[], None]):
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn,), daemon=True)
        self._thread.start()

    def _run(self, fn):
        _name_thread(b"i17-digest")
        try:
            fn()
        except BaseException as e:  # re-raised in join()
            self._error = e

    def join(self) -> None:
        """Raises what the verification raised; not a Cancelled one: its stream stopped on
        an error of its own, which is the one the build reports."""
        self._thread.join()
        if self._error is not None and not isinstance(self._error, Cancelled):
            raise self._error
