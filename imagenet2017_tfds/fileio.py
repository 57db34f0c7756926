"""Paths of the user's data: local paths, or any URL etils.epath knows (gs://, s3://) so that
Beam workers on a cluster read the same manual_dir."""

from __future__ import annotations

import json
import os
import tempfile

from etils import epath


def is_local(path: str | os.PathLike) -> bool:
    return "://" not in os.fspath(path)


def stat_key(path: epath.Path) -> dict:
    """What identifies a file's content for our caches: its path (absolute, so a relative
    --manual_dir finds the same cache), size and modification time."""
    if is_local(path):
        st = os.stat(path)
        return {"path": os.path.abspath(path), "size": st.st_size, "mtime": st.st_mtime_ns}
    st = path.stat()
    return {"path": os.fspath(path), "size": st.length, "mtime": str(st.mtime)}


def as_path(path: str | os.PathLike) -> epath.Path:
    return epath.Path(path)


def write_atomic(path: epath.Path, data: bytes) -> None:
    """Write `data` so a reader never sees half a file (tmp file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_local(path):
        fd, tmp = tempfile.mkstemp(dir=os.fspath(path.parent), prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, os.fspath(path))
    else:
        tmp = path.parent / f".{path.name}.tmp"
        tmp.write_bytes(data)
        tmp.rename(path)


def read_json(path: epath.Path):
    try:
        return json.loads(path.read_bytes())
    except (FileNotFoundError, ValueError):
        return None


def write_json(path: epath.Path, value) -> None:
    write_atomic(path, json.dumps(value, sort_keys=True).encode())
