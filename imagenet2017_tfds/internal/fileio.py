"""Paths of the user's data: local paths, or URLs of an object store (gs://, s3://; store.py)
so that Beam workers on a cluster read the same manual_dir; the identity of an archive, and the
checked format of the caches keyed by it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import tempfile
from collections.abc import Iterable

from etils import epath

from imagenet2017_tfds.internal import store

Path = epath.Path | store.StorePath  # what path() gives


def is_local(path: str | os.PathLike) -> bool:
    return "://" not in os.fspath(path)


def path(value: str | os.PathLike) -> Path:
    """The one way to a path of the user's data: a URL is a store.StorePath (fsspec's client
    for its scheme, whatever etils would choose), anything else a local epath.Path."""
    if isinstance(value, store.StorePath):
        return value
    text = os.fspath(value)
    return epath.Path(text) if is_local(text) else store.StorePath(text)


def stat_key(file) -> dict:
    """What identifies a file's content for our caches: its path (absolute, so a relative
    --manual_dir finds the same cache), size, modification time, inode, device and change time.

    The mtime alone can be put back (`touch -d`, `os.utime`, a copy that keeps it); the change
    time cannot be set by a user, and every write, rename or utime moves it, so an archive
    changed in place behind a restored mtime is read again (git's index trusts the same
    fields). Linux from 6.13 gives a change that follows a stat a time of its own; older
    kernels stamp files with a clock tick (a few ms), so a change within the tick of the
    archive's previous one goes unseen, which no real download meets. A remote path keeps
    what the store names its version by (store.StorePath.identity): an object replaced by
    another of the same size is another key."""
    if is_local(file):
        st = os.stat(file)
        return {
            "path": os.path.abspath(file),
            "size": st.st_size,
            "mtime": st.st_mtime_ns,
            "inode": st.st_ino,
            "device": st.st_dev,
            "ctime": st.st_ctime_ns,
        }
    return store.StorePath(file).identity()


def digest_json(value) -> str:
    """A short digest of a JSON-able value (what a tree holds, for a work folder's name)."""
    import hashlib

    return hashlib.sha256(json.dumps(value).encode()).hexdigest()


def link_or_copy(source: str, target) -> None:
    """`target` becomes `source`'s content: a hard link where both are on one local file
    system (no byte copied), else a copy."""
    target = path(target)
    if not is_local(target):
        target.upload(source)
        return
    try:
        os.link(source, os.fspath(target))
        return
    except OSError:
        pass
    epath.Path(source).copy(target, overwrite=True)


def make_durable(paths: Iterable[str]) -> None:
    """Flushes these local files to disk: a resumed build trusts what they hold."""
    for name in paths:
        fd = os.open(name, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_output(target, durable: bool = False):
    """A file to write `target` through, so a reader never sees half a file: a temporary file
    beside it, moved over `target` (replacing any older one) only when the block succeeds.
    `durable`: on disk, and its name too, before this returns (a record that something else
    may be deleted on the strength of). In a store, a local temporary file uploaded when the
    block succeeds: an object appears whole when its upload ends, or not at all."""
    target = path(target)
    local = is_local(target)
    folder = os.fspath(target.parent) if local else None
    if local:
        os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            if durable and local:
                f.flush()
                os.fsync(f.fileno())
        if local:
            os.replace(tmp, os.fspath(target))
            if durable:
                make_durable([folder])
        else:
            target.upload(tmp)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def write_atomic(target, data: bytes) -> None:
    with atomic_output(target) as f:
        f.write(data)


def read_json(source):
    try:
        return json.loads(path(source).read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def write_json(target, value) -> None:
    write_atomic(target, json.dumps(value, sort_keys=True).encode())


# ------------------------------------------------------------------ checked cache files
#
# A cache must never fail a build: a file cut by a full disk or a kill, a flipped bit, a file
# copied from another machine's cache are each noticed here, reported in one line, and the
# caller rebuilds what the file held.

MAGIC = b"imagenet2017_tfds cache 1\n"
MISSING = "missing"  # cache_problem's reason when there is no file: nothing to report
log = logging.getLogger(__name__)


def notice(file, why: str, then: str = "it is ignored and made again from the archive") -> None:
    """One line on stderr, where the user sees it, and in the log when one is set up (absl's,
    a cluster's log files); with no handler at all, logging's last resort would print the
    same line to stderr a second time."""
    message = f"imagenet2017_tfds: cache file {file}: {why}; {then}."
    if log.hasHandlers():
        log.warning(message)
    print(message, file=sys.stderr, flush=True)


def _canonical(key: dict) -> dict:
    return json.loads(json.dumps(key, sort_keys=True))


def write_cache(file, payload: bytes, key: dict, durable: bool = False) -> bool:
    """`payload` under a header: the magic line, then one JSON line with `key` (what the
    payload was made from), the payload's length and its sha256. Written atomically
    (`durable`: see atomic_output); a cache that cannot be written (a full disk, a read-only
    folder) is reported and the build goes on without it: False."""
    header = {
        "key": _canonical(key),
        "length": len(payload),
        "sha256": hashlib.sha256(payload).hexdigest(),
    }
    try:
        with atomic_output(file, durable) as f:
            f.write(MAGIC + json.dumps(header, sort_keys=True).encode() + b"\n")
            f.write(payload)
    except OSError as e:
        notice(file, f"cannot be written ({e})", "the next build makes it again")
        return False
    return True


def read_cache(file, key: dict) -> bytes | None:
    """The payload of a cache file written by write_cache for `key`; None when there is none,
    and None after a notice when it is damaged, truncated, not a cache file or made for
    another key (another archive, or this one before it changed)."""
    why, payload = cache_problem(file, key)
    if why not in (None, MISSING):
        notice(file, why)
    return payload


def cache_problem(file, key: dict) -> tuple[str | None, bytes | None]:
    """read_cache without the notice: why the file is not a valid cache for `key` (MISSING
    when there is no such file), or None and its payload."""
    try:
        data = path(file).read_bytes()
    except FileNotFoundError:
        return MISSING, None
    except OSError as e:
        return f"cannot be read ({e})", None
    return _check(data, _canonical(key))


def _check(data: bytes, key: dict) -> tuple[str | None, bytes | None]:
    """Why `data` is not a valid cache file for `key` (None: it is), and its payload."""
    if not data.startswith(MAGIC):
        if MAGIC.startswith(data):
            return f"truncated ({len(data)} bytes, within its first line)", None
        return f"not a cache file (it does not start with {MAGIC.strip().decode()!r})", None
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        return f"truncated ({len(data)} bytes, within its header)", None
    try:
        header = json.loads(data[len(MAGIC) : end])
        stored, length, digest = header["key"], header["length"], header["sha256"]
        if not (isinstance(stored, dict) and isinstance(length, int)):
            raise TypeError(f"a {type(stored).__name__} key, a {type(length).__name__} length")
    except (ValueError, KeyError, TypeError) as e:
        return f"damaged header ({e.__class__.__name__}: {e})", None
    if stored != key:
        differ = sorted(k for k in {*stored, *key} if stored.get(k) != key.get(k))
        what = ", ".join(differ)
        return f"made for another archive, or this one before it changed ({what} differ)", None
    payload = data[end + 1 :]
    if len(payload) < length:
        return f"truncated ({len(payload)} of {length} bytes of content)", None
    if len(payload) > length:
        return f"damaged ({len(payload)} bytes of content, its header says {length})", None
    if hashlib.sha256(payload).hexdigest() != digest:
        return f"digest mismatch (the content's sha256 is not {digest})", None
    return None, payload


def file_digest(file) -> tuple[int, str]:
    """The length and sha256 of a file, read in chunks (a gzip index can be over a GB)."""
    h, length = hashlib.sha256(), 0
    with path(file).open("rb") as f:
        while chunk := f.read(8 << 20):
            h.update(chunk)
            length += len(chunk)
    return length, h.hexdigest()
