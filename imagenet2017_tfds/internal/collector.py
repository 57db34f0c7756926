"""Python's cyclic garbage collector during a build.

A full collection visits every object Python tracks: the hundreds of thousands that importing
TensorFlow, TFDS and Beam leaves, then the catalog's entries and the plan's items (millions
on the real release). Python starts one whenever the tracked objects have grown by a quarter,
and the interpreter runs its own on the way out: each holds the main thread while it visits
them all, in the middle of a build's serial part or at the exit of a process holding those
imports. None of these objects is garbage, so a build marks what is alive as
permanent (gc.freeze) when it starts and again as each of its phases ends, and hands it all
back to the collector when it is done. At the exit of a process that built, everything left
is marked permanent too: its memory goes back to the system whole, and Python does not
promise to finalize objects that outlive the interpreter anyway.
"""

from __future__ import annotations

import atexit
import contextlib
import gc

_building = False  # a build of this process holds the freeze
_exit_registered = False


@contextlib.contextmanager
def build():
    """Within: the objects alive at entry, and at each `freeze_settled()`, are skipped by the
    collector's passes. A caller that froze objects itself (or a build already running in
    this process) keeps its own policy."""
    global _building, _exit_registered
    ours = gc.get_freeze_count() == 0
    if ours:
        gc.freeze()
        _building = True
    try:
        yield
    finally:
        if ours:
            _building = False
            gc.unfreeze()
            if not _exit_registered:
                atexit.register(gc.freeze)
                _exit_registered = True


def freeze_settled() -> None:
    """The objects alive now live as long as the build (a phase's catalog, its plan)."""
    if _building:
        gc.freeze()
