"""One build of a config per data_dir at a time: a second one waits, then finds the dataset
built. Leftovers of a killed build (TFDS's `incomplete.*` folders) are removed under the lock.

The lock is `filelock`'s: flock on POSIX, LockFileEx on Windows, where `fcntl` does not exist.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil

import filelock

from imagenet2017_tfds import fileio


@contextlib.contextmanager
def build_lock(config_dir):
    if not fileio.is_local(config_dir):  # no flock on object stores: builds must not overlap
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
