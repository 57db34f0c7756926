"""Objects in a store (gs://, s3://, any URL fsspec has a client for), read and written by the
package itself: the archives, the caches and the build's records, and the shards it uploads.

Every URL the package touches goes through `StorePath`, whatever etils would pick: with
TensorFlow installed, etils sends gs:// to `tf.io.gfile` (whose files' `seek` returns None and
which has no s3:// at all), so the same build would behave differently with `EPATH_USE_TF`.
TFDS's own reads and writes of the data dir (its records through `tf.io`) stay TFDS's.

Reads are sequential ranges of `BLOCK` bytes. When two readers share one pass over an object
(an archive's stream and its digest, `shared_pass`), each block is fetched once and handed to
both, so a pass fetches the object once. A Beam worker reads its range of an archive in
`RANGE_BLOCK`s: what it fetches beyond its range is at most a block at each end.
"""

from __future__ import annotations

import contextlib
import functools
import io
import posixpath
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass

from imagenet2017_tfds.errors import StorageError
from imagenet2017_tfds.internal import faults

BLOCK = 16 << 20  # bytes a read fetches at once: few requests, little overshoot at the end
KEPT_BLOCKS = 3  # a reader's own recent blocks: rapidgzip's threads read a little out of order
# A range of members (ranges.RANGE_BYTES) is a few hundred MB: 4 MB blocks keep what its
# edges add small, in requests each long enough that a request's latency is not the cost.
RANGE_BLOCK = 4 << 20

# The client of each scheme, and what to install for it.
CLIENTS = {
    "gs": ("gcsfs", "pip install imagenet2017-tfds (gcsfs comes with it)"),
    "gcs": ("gcsfs", "pip install imagenet2017-tfds (gcsfs comes with it)"),
    "s3": ("s3fs", "pip install 'imagenet2017-tfds[s3]'"),
    "s3a": ("s3fs", "pip install 'imagenet2017-tfds[s3]'"),
}


def scheme(path) -> str | None:
    text = str(path)
    return text.split("://", 1)[0] if "://" in text else None


@functools.cache
def _filesystem(protocol: str, version_aware: bool = False):
    import fsspec

    try:
        cls = fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as e:
        package, install = CLIENTS.get(protocol, (None, None))
        what = f"{package}, which is not installed: {install}" if package else f"a client ({e})"
        raise StorageError(f"{protocol}:// paths need {what}.") from None
    options = {"version_aware": True} if version_aware else {}
    if protocol in ("gs", "gcs"):
        # A build's objects are written once and read back by other processes: a listing
        # cached in this process must not hide them.
        options["cache_timeout"] = 0
    return cls(**options)


def _error(url: str, action: str, e: Exception) -> Exception:
    """Ours in place of a client's, naming the object: a missing object stays a
    FileNotFoundError (callers look for it), anything else the client gave up on (after its own
    retries of 5xx answers and dropped connections) is a StorageError."""
    if isinstance(e, (FileNotFoundError, FileExistsError, IsADirectoryError, StorageError)):
        return e
    said = str(e) if len(str(e)) < 400 else str(e)[:400] + "..."
    return StorageError(
        f"{url}: {action} failed ({type(e).__name__}: {said}); the store's client retried what it "
        "could. Check that the bucket exists and that these credentials may use it, then build "
        "again (what was complete is kept)."
    )


@contextlib.contextmanager
def _calls(url: str, action: str):
    try:
        yield
    except Exception as e:  # the clients raise their own exception types
        raise _error(url, action, e) from None


@dataclass(frozen=True)
class Stat:
    length: int
    mtime: float
    identity: dict  # what the store says this version of the object is (see StorePath.identity)


class StorePath:
    """A URL with the parts of `epath.Path` the package uses."""

    def __init__(self, url):
        url = str(url)
        self.protocol, rest = url.split("://", 1)
        self.key = posixpath.normpath(rest).strip("/") if rest.strip("/") else ""
        self.url = f"{self.protocol}://{self.key}"

    # ------------------------------------------------------------------ pure path parts
    def __fspath__(self) -> str:
        return self.url

    def __str__(self) -> str:
        return self.url

    def __repr__(self) -> str:
        return f"StorePath({self.url!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, StorePath) and other.url == self.url

    def __hash__(self) -> int:
        return hash(self.url)

    def __lt__(self, other) -> bool:
        return self.url < str(other)

    def __truediv__(self, name) -> StorePath:
        return StorePath(f"{self.url}/{name}")

    def joinpath(self, *names) -> StorePath:
        return StorePath("/".join([self.url, *map(str, names)]))

    @property
    def name(self) -> str:
        return posixpath.basename(self.key)

    @property
    def parent(self) -> StorePath:
        return StorePath(f"{self.protocol}://{posixpath.dirname(self.key)}")

    @property
    def fs(self):
        return _filesystem(self.protocol)

    # ------------------------------------------------------------------ queries
    def _info(self) -> dict:
        with _calls(self.url, "reading what the store holds"):
            self.fs.invalidate_cache(self.key)
            return self.fs.info(self.key)

    def stat(self) -> Stat:
        info = self._info()
        return Stat(length=int(info.get("size") or 0), mtime=0.0, identity=_identity(self, info))

    def identity(self) -> dict:
        """This version of the object, as the store names it: its generation (GCS), its ETag
        and version (S3), another client's own key (`ukey`), never a modification time that a
        client reports as 0."""
        return self.stat().identity

    def exists(self) -> bool:
        with _calls(self.url, "looking for it"):
            return self.fs.exists(self.key)

    def is_file(self) -> bool:
        with _calls(self.url, "looking for it"):
            return self.fs.isfile(self.key)

    def is_dir(self) -> bool:
        with _calls(self.url, "looking for it"):
            return self.fs.isdir(self.key)

    def iterdir(self) -> Iterator[StorePath]:
        with _calls(self.url, "listing it"):
            names = self.fs.ls(self.key, detail=False, refresh=True)
        for key in sorted(names):
            if key.strip("/") != self.key:
                yield StorePath(f"{self.protocol}://{key}")

    def glob(self, pattern: str) -> list[StorePath]:
        with _calls(self.url, "listing it"):
            keys = self.fs.glob(f"{self.key}/{pattern}")
        return [StorePath(f"{self.protocol}://{k}") for k in sorted(keys)]

    def files(self) -> dict[str, int]:
        """Every object below this folder: its path relative to it, and its size."""
        with _calls(self.url, "listing it"):
            found = self.fs.find(self.key, detail=True)
        prefix = self.key + "/"
        # fsspec's memory file system names its keys from "/".
        found = {key.lstrip("/"): info for key, info in found.items()}
        return {
            key[len(prefix) :]: int(info.get("size") or 0)
            for key, info in found.items()
            if key.startswith(prefix) and info.get("type") != "directory"
        }

    # ------------------------------------------------------------------ reads and writes
    def open(self, mode: str = "rb", block: int | None = None):
        """block: the bytes a read fetches at once (BLOCK)."""
        if mode in ("rb", "r"):
            reader = io.BufferedReader(Reader(self, block), buffer_size=1 << 20)
            return io.TextIOWrapper(reader, encoding="utf-8") if mode == "r" else reader
        if mode in ("wb", "w"):
            with _calls(self.url, "writing it"):
                f = self.fs.open(self.key, "wb")
            return _Upload(f, self.url) if mode == "wb" else io.TextIOWrapper(_Upload(f, self.url))
        raise ValueError(f"{self.url}: mode {mode!r} is not one the package uses")

    def read_bytes(self) -> bytes:
        with _calls(self.url, "reading it"):
            return self.fs.cat_file(self.key)

    def read_text(self, encoding: str = "utf-8") -> str:
        return self.read_bytes().decode(encoding)

    def write_bytes(self, data: bytes) -> None:
        # An object appears whole or not at all: no temporary name is needed.
        with _calls(self.url, "writing it"):
            self.fs.pipe_file(self.key, data)

    def write_text(self, text: str, encoding: str = "utf-8") -> None:
        self.write_bytes(text.encode(encoding))

    def upload(self, local: str) -> None:
        with _calls(self.url, f"uploading {local} to it"):
            self.fs.put_file(local, self.key)

    def create(self, data: bytes) -> bool:
        """Writes the object only if there is none (the store decides, atomically): False
        when there is one. A lock's first step."""
        try:
            with _calls(self.url, "creating it"):
                self.fs.pipe_file(self.key, data, mode="create")
        except FileExistsError:
            return False
        return True

    def delete_version(self, identity: dict) -> bool:
        """Deletes the object only while it is still the version `identity` names: False when
        it is gone or was replaced (a stale lock broken by two builds at once goes once)."""
        if "generation" not in identity:
            raise StorageError(f"{self.url}: deleting one version needs a GCS generation.")
        fs = _filesystem(self.protocol, version_aware=True)
        try:
            with _calls(self.url, "deleting it"):
                fs.rm_file(f"{self.key}#{identity['generation']}")
        except FileNotFoundError:
            return False
        return True

    def unlink(self, missing_ok: bool = False) -> None:
        try:
            with _calls(self.url, "deleting it"):
                self.fs.rm_file(self.key)
        except FileNotFoundError:
            if not missing_ok:
                raise

    def mkdir(self, parents: bool = False, exist_ok: bool = False) -> None:
        """Nothing to make: an object store's folders are the prefixes of its objects."""

    def rmtree(self) -> None:
        with _calls(self.url, "deleting it"):
            if self.fs.exists(self.key):
                self.fs.rm(self.key, recursive=True)

    def replace(self, target) -> StorePath:
        target = StorePath(target)
        with _calls(self.url, f"moving it to {target}"):
            self.fs.mv(self.key, target.key)
        return target

    def copy(self, target, overwrite: bool = False) -> None:
        target = StorePath(target)
        with _calls(self.url, f"copying it to {target}"):
            self.fs.copy(self.key, target.key)


def move_folder(source: StorePath, target: StorePath, last: str) -> None:
    """Copies every object below `source` to the same name below `target`, then deletes the
    sources: what renaming a folder does on a disk, in an order a reader can trust though the
    store has no rename: `last` is copied after every other object, so a folder that has it
    has them all. Each copy and deletion is one request the client retries on its own."""
    # Not folder markers (objects named "x/", which TensorFlow's makedirs writes): no data.
    names = [name for name in source.files() if name and not name.endswith("/")]
    if last not in names:
        raise StorageError(
            f"{source.url}: expected {last} among the {len(names)} objects to move to "
            f"{target.url}, found none; nothing was moved. Build again."
        )
    for name in sorted(names, key=lambda n: (n == last, n)):
        (source / name).copy(target / name)
        faults.point("object-moved", (target / name).url)
    source.rmtree()


def _identity(path: StorePath, info: dict) -> dict:
    out = {"path": path.url, "size": int(info.get("size") or 0)}
    if path.protocol in ("gs", "gcs"):
        out["generation"] = str(info.get("generation", ""))
    elif path.protocol.startswith("s3"):
        out["etag"] = str(info.get("ETag", "")).strip('"')
        out["version"] = str(info.get("VersionId") or "")
    else:
        out["ukey"] = str(path.fs.ukey(path.key))
    if not any(v for k, v in out.items() if k not in ("path", "size")):
        raise StorageError(
            f"{path.url}: the store gave no version of the object (generation, ETag or key), "
            "so a replaced archive could not be told from the one verified. Use a store that "
            "does (GCS, S3)."
        )
    return out


class _Upload(io.RawIOBase):
    """A client's upload file, its errors ours."""

    def __init__(self, f, url: str):
        self._f, self._url = f, url

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        with _calls(self._url, "writing it"):
            return self._f.write(data)

    def close(self) -> None:
        if not self.closed:
            with _calls(self._url, "finishing its upload"):
                self._f.close()
        super().close()


# ---------------------------------------------------------------------- one pass, two readers


# Blocks a reader of a shared pass may hold that the others have not taken (256 MB of BLOCKs).
AHEAD = 16


class _Pass:
    """The blocks of one object that several readers share: each fetched once, dropped once
    every reader has taken it. A reader that holds `ahead` blocks the others have not taken
    yet waits for them: the readers' distance, and the memory it costs, stay bounded."""

    def __init__(self, readers: int, ahead: int = AHEAD):
        self.readers, self.ahead = readers, ahead
        self.blocks: dict[int, tuple[bytes, set[int]]] = {}
        self.fetching: set[int] = set()
        self.changed = threading.Condition()

    def alone(self) -> None:
        """One reader after all (another is done, or found its work done): nothing more is
        kept for the others, and no reader waits for them."""
        with self.changed:
            self.readers = 1
            self.blocks.clear()
            self.changed.notify_all()

    def take(self, reader: int, index: int, fetch) -> bytes:
        with self.changed:
            while True:
                if index in self.blocks:
                    data, takers = self.blocks[index]
                    takers.add(reader)
                    if len(takers) >= self.readers:
                        del self.blocks[index]
                        self.changed.notify_all()
                    return data
                held = sum(1 for _, takers in self.blocks.values() if reader in takers)
                if index not in self.fetching and (self.readers == 1 or held < self.ahead):
                    self.fetching.add(index)
                    break
                self.changed.wait()
        try:
            data = fetch(index)
        finally:
            with self.changed:
                self.fetching.discard(index)
                self.changed.notify_all()
        with self.changed:
            if self.readers > 1:
                self.blocks[index] = (data, {reader})
        return data


_PASSES: dict[str, _Pass] = {}


@contextlib.contextmanager
def shared_pass(path, readers: int = 2, ahead: int = AHEAD):
    """While this holds, `readers` readers of `path` in this process share the blocks they
    fetch (an archive's decompression and its digest), none more than `ahead` blocks before
    the others; it gives the pass, whose `alone()` a caller calls when one of them will not
    read (None for a local file, which the page cache serves twice)."""
    if not isinstance(path, StorePath):
        yield None
        return
    _PASSES[path.url] = shared = _Pass(readers, ahead)
    try:
        yield shared
    finally:
        _PASSES.pop(path.url, None)
        shared.alone()


class Reader(io.RawIOBase):
    """An object read in blocks of `block` bytes (BLOCK), forward or by seeking (rapidgzip's
    reader, the digest, a Beam worker's range)."""

    def __init__(self, path: StorePath, block: int | None = None):
        self.path = path
        self.block = block or BLOCK
        self.size = path.stat().length
        self._pos = 0
        self._kept: OrderedDict[int, bytes] = OrderedDict()

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _fetch(self, index: int) -> bytes:
        start = index * self.block
        end = min(self.size, start + self.block)
        with _calls(self.path.url, f"reading bytes {start} to {end}"):
            data = self.path.fs.cat_file(self.path.key, start=start, end=end)
        if len(data) != end - start:
            raise StorageError(
                f"{self.path.url}: expected {end - start} bytes at {start}, the store sent "
                f"{len(data)}: the object changed while it was read. Build again."
            )
        return data

    def _block(self, index: int) -> bytes:
        if index in self._kept:
            self._kept.move_to_end(index)
            return self._kept[index]
        shared = _PASSES.get(self.path.url)
        data = self._fetch(index) if shared is None else shared.take(id(self), index, self._fetch)
        self._kept[index] = data
        while len(self._kept) > KEPT_BLOCKS:
            self._kept.popitem(last=False)
        return data

    def readinto(self, buffer) -> int:
        if self._pos >= self.size:
            return 0
        index, within = divmod(self._pos, self.block)
        block = self._block(index)
        n = min(len(buffer), len(block) - within)
        buffer[:n] = block[within : within + n]
        self._pos += n
        return n
