"""A build keeps Python's full collections off the objects that outlive its phases, gives
them back to the collector when it ends, leaves a caller's own freezing alone, and marks
what is left permanent at the exit of a process that built (no collection on the way out)."""

from __future__ import annotations

import gc
import subprocess
import sys
import textwrap

from imagenet2017_tfds.internal import collector
from tests.conftest import ROOT


def _tracked(obj) -> bool:
    """Whether a full collection would visit `obj` (frozen objects are in no generation)."""
    return any(o is obj for o in gc.get_objects())


def test_what_is_alive_when_a_build_starts_or_a_phase_ends_is_skipped_until_it_ends():
    before = [object()]
    with collector.build():
        assert not _tracked(before)
        catalog = [object()]  # a phase's long-lived objects
        assert _tracked(catalog)
        collector.freeze_settled()
        assert not _tracked(catalog)
        fresh = [object()]
        assert _tracked(fresh)
    assert _tracked(before) and _tracked(catalog)
    assert gc.get_freeze_count() == 0


def test_a_build_inside_a_build_gives_nothing_back_early():
    before = [object()]
    with collector.build():
        with collector.build():
            pass
        assert not _tracked(before)
    assert _tracked(before)


def test_settled_outside_a_build_freezes_nothing():
    loose = [object()]
    collector.freeze_settled()
    assert _tracked(loose) and gc.get_freeze_count() == 0


def test_a_caller_that_froze_objects_keeps_its_own_policy():
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        mine = [object()]
        with collector.build():
            collector.freeze_settled()
            assert _tracked(mine)
        assert gc.get_freeze_count() == frozen
    finally:
        gc.unfreeze()


def _exit_freeze_count(program: str) -> int:
    """What gc.get_freeze_count() is at the exit of a process running `program`, read by
    an exit handler registered first (so it runs after the build's own)."""
    code = textwrap.dedent(
        """
        import atexit, gc
        atexit.register(lambda: print("frozen at exit:", gc.get_freeze_count() > 0))
        from imagenet2017_tfds.internal import collector
        """
    ) + textwrap.dedent(program)
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert "frozen at exit:" in out, out
    return int("frozen at exit: True" in out)


def test_a_process_that_built_skips_the_collection_on_its_way_out():
    assert _exit_freeze_count("with collector.build():\n    pass\n") == 1


def test_a_process_that_did_not_build_exits_as_python_does():
    assert _exit_freeze_count("pass\n") == 0
