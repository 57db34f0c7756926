"""Paths of the user's data: local paths, or any URL etils.epath knows (gs://, s3://) so that
Beam workers on a cluster read the same manual_dir."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile

from etils import epath


def is_local(path: str | os.PathLike) -> bool:
    return "://" not in os.fspath(path)


def stat_key(path: epath.Path) -> dict:
    """What identifies a file's content for our caches: its path (absolute, so a relative
    --manual_dir finds the same cache), size, modification time, inode, device and change time.

    The mtime alone can be put back (`touch -d`, `os.utime`, a copy that keeps it); the change
    time cannot be set by a user, and every write, rename or utime moves it, so an archive
    changed in place behind a restored mtime is read again (git's index trusts the same
    fields). Linux from 6.13 gives a change that follows a stat a time of its own; older
    kernels stamp files with a clock tick (a few ms), so a change within the tick of the
    archive's previous one goes unseen, which no real download meets. A remote path keeps
    what epath gives: its length and mtime."""
    if is_local(path):
        st = os.stat(path)
        return {
            "path": os.path.abspath(path),
            "size": st.st_size,
            "mtime": st.st_mtime_ns,
            "inode": st.st_ino,
            "device": st.st_dev,
            "ctime": st.st_ctime_ns,
        }
    st = path.stat()
    return {"path": os.fspath(path), "size": st.length, "mtime": str(st.mtime)}


def as_path(path: str | os.PathLike) -> epath.Path:
    return epath.Path(path)


@contextlib.contextmanager
def atomic_output(path: epath.Path):
    """A file to write `path` through, so a reader never sees half a file: a temporary file
    beside it, moved over `path` (replacing any older one) only when the block succeeds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_local(path):
        fd, tmp = tempfile.mkstemp(dir=os.fspath(path.parent), prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                yield f
            os.replace(tmp, os.fspath(path))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    else:
        tmp = path.parent / f".{path.name}.tmp"
        with tmp.open("wb") as f:
            yield f
        tmp.replace(path)  # epath's rename would not overwrite an older file


def write_atomic(path: epath.Path, data: bytes) -> None:
    with atomic_output(path) as f:
        f.write(data)


def read_json(path: epath.Path):
    try:
        return json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def write_json(path: epath.Path, value) -> None:
    write_atomic(path, json.dumps(value, sort_keys=True).encode())
