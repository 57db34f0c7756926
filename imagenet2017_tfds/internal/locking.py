"""One build of a config per data_dir at a time: a second one waits, then finds the dataset
built. Leftovers of a killed build (TFDS's `incomplete.*` folders) are removed under the lock.

On a local disk the lock is `filelock`'s: flock on POSIX, LockFileEx on Windows, where `fcntl`
does not exist. In a store (gs://) it is an object only one build can create (the store's
create-only write), whose holder keeps a heartbeat object of its own rewritten; a lock whose
heartbeat has not moved for LEASE seconds, or whose holder is a dead process of this host,
belonged to a build that was killed, and is broken by deleting that very version of it (two
waiters cannot both break it, nor break the next holder's).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid

import filelock

from imagenet2017_tfds.internal import fileio

LEASE_VAR = "IMAGENET2017_LOCK_LEASE"  # seconds without a heartbeat before a lock is broken


def _lease() -> float:
    return float(os.environ.get(LEASE_VAR) or 60)


@contextlib.contextmanager
def build_lock(config_dir):
    if not fileio.is_local(config_dir):
        with _StoreLock(fileio.path(config_dir)):
            for child in fileio.path(config_dir).iterdir():
                if child.name.startswith("incomplete."):  # left by a killed build
                    child.rmtree()
            yield
        return
    os.makedirs(config_dir, exist_ok=True)
    path = os.path.join(config_dir, ".build.lock")
    lock = filelock.FileLock(path)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        logging.warning("Another build of this dataset holds %s: waiting for it to end.", path)
        print(f"Waiting: another build of this dataset holds {path}.", flush=True)
        lock.acquire()
    try:
        for name in os.listdir(config_dir):
            if name.startswith("incomplete."):  # left by a killed build: never loadable
                shutil.rmtree(os.path.join(config_dir, name), ignore_errors=True)
        yield
    finally:
        lock.release()


def _say(message: str) -> None:
    logging.warning(message)
    print(message, flush=True)


class _StoreLock:
    def __init__(self, folder):
        self.lock = folder / ".build.lock"
        self.me = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._beating: threading.Thread | None = None

    def _beat_file(self, holder: str):
        digest = hashlib.sha256(holder.encode()).hexdigest()[:16]
        return self.lock.parent / f".build.lock.beat-{digest}"

    def __enter__(self):
        said, seen, since = False, None, time.monotonic()
        while not self.lock.create(json.dumps({"holder": self.me}).encode()):
            try:
                version = self.lock.identity()
                holder = json.loads(self.lock.read_bytes())["holder"]
            except (FileNotFoundError, ValueError, KeyError):
                continue  # released meanwhile, or being written: look again
            try:
                beat = self._beat_file(holder).identity()
            except FileNotFoundError:
                beat = None
            if (version, beat) != seen:
                seen, since = (version, beat), time.monotonic()
            quiet = time.monotonic() - since
            if quiet > _lease() or _dead_here(holder):
                why = (
                    "its process is gone"
                    if _dead_here(holder)
                    else f"no heartbeat for {quiet:.0f} s"
                )
                _say(
                    f"{self.lock}: held by {holder}, a build that is not running any more "
                    f"({why}); taking it over."
                )
                self.lock.delete_version(version)
                self._beat_file(holder).unlink(missing_ok=True)
                continue
            if not said:
                _say(
                    f"Waiting: another build of this dataset ({holder}) holds {self.lock}; "
                    f"a lock with no heartbeat for {_lease():.0f} s is taken over."
                )
                said = True
            time.sleep(min(2.0, _lease() / 6))
        self._beat()
        self._beating = threading.Thread(target=self._keep_beating, daemon=True)
        self._beating.start()
        return self

    def _beat(self) -> None:
        self._beat_file(self.me).write_bytes(str(time.time()).encode())

    def _keep_beating(self) -> None:
        while not self._stop.wait(_lease() / 6):
            try:
                self._beat()
            except Exception as e:  # a store that fails for a while: the lease covers it
                logging.warning("%s: heartbeat not written (%s)", self.lock, e)

    def __exit__(self, *exc):
        self._stop.set()
        if self._beating is not None:
            self._beating.join()
        with contextlib.suppress(Exception):  # a lock left behind is broken after its lease
            if json.loads(self.lock.read_bytes())["holder"] == self.me:
                self.lock.delete_version(self.lock.identity())
            self._beat_file(self.me).unlink(missing_ok=True)


def _dead_here(holder: str) -> bool:
    """The holder is a process of this host that no longer exists."""
    host, pid, _ = holder.split(":", 2)
    if host != socket.gethostname():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False
