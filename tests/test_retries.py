"""A distributed build survives a lost SDK worker: a bundle run again replaces its spill file
instead of adding a second copy (beam.SpillExamples, driven directly), Beam's fixed class
replaces a dead worker (imagenet2017_tfds/launch/evict_dead_workers.py), and a Flink and a Spark build
started by the launcher with its defaults complete, byte for byte, when one SDK worker is
killed (SIGKILL) in the middle of a bundle; when the engine cannot recover, the launcher names
the worker that died and how."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from imagenet2017_tfds.engine import beam as beam_lib
from imagenet2017_tfds.launch import evict_dead_workers
from tests.support import procfs, readback
from tests.test_launch_engines import (
    TIMEOUT,
    assert_same_examples,
    harness_pids,
    launch,
    left_running,
)
from tests.test_spill_writer import KEYS, example, hashed, make_output


def spill_bundle(output, examples, finish=True):
    """One attempt at a bundle: the (shard, (file, records)) values it yields, or None when
    it is cut short before it finishes (its worker killed)."""
    fn = beam_lib.SpillExamples(output)
    fn.start_bundle()
    for pair in examples:
        fn.process(pair)
    if not finish:
        fn.file.close()  # what the killed process's exit does
        return None
    return [windowed.value for windowed in fn.finish_bundle()]


def test_a_bundle_processed_again_leaves_one_copy_of_its_examples(tmp_path):
    examples = [(hashed(key), example(i)) for i, key in enumerate(KEYS[:12])]
    output = make_output(tmp_path)
    assert spill_bundle(output, examples[:5], finish=False) is None  # a lost attempt
    first = spill_bundle(output, examples)  # its retry
    second = spill_bundle(output, examples)  # the stage restarted after it had finished
    assert first == second  # the same file, the same records
    (spill,) = output.spill_dir.glob(f"*{beam_lib.SPILL}")
    assert {path for _, (path, _) in second} == {str(spill)}
    read = [data for _, spills in second for _, data in beam_lib.read_spilled([spills])]
    assert sorted(read) == sorted(data for _, data in examples)  # every example once
    # The lost attempt's partial file is not a spill file: nothing refers to it.
    assert len(list(output.spill_dir.glob(f"*{beam_lib.PARTIAL}"))) == 1


def test_bundles_of_different_examples_keep_their_own_files(tmp_path):
    examples = [(hashed(key), example(i)) for i, key in enumerate(KEYS[:12])]
    output = make_output(tmp_path)
    values = spill_bundle(output, examples[:6]) + spill_bundle(output, examples[6:])
    assert len(list(output.spill_dir.glob(f"*{beam_lib.SPILL}"))) == 2
    read = [data for _, spills in values for _, data in beam_lib.read_spilled([spills])]
    assert sorted(read) == sorted(data for _, data in examples)


# ---------------------------------------------------------------- real engines, one worker killed


class Running:
    """The launcher started without waiting, its output read by a thread (a full pipe would
    stop it)."""

    def __init__(self, *args):
        self.process = launch(*args, wait=False)
        self.output = ("", "")
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        self.output = self.process.communicate()

    def running(self) -> bool:
        return self.reader.is_alive()

    def wait(self) -> str:
        """Its stderr, once it has ended (killed after TIMEOUT and a margin)."""
        self.reader.join(TIMEOUT + 600)
        if self.reader.is_alive():
            self.process.kill()
            self.reader.join()
        return self.output[1]


def kill_a_harness_mid_bundle(launcher: Running, work: Path) -> int:
    """SIGKILLs the SDK harness that is writing a bundle's spill file (a partial spill file is
    open in it: the bundle has begun and not finished), once; returns its pid."""
    while launcher.running():
        for pid in harness_pids(work):
            # A bundle of the miniature release lasts milliseconds: psutil's open_files, which
            # also opens each descriptor's fdinfo, once let a Spark build end unseen (CI,
            # 2026-12-06, run beside other builds).
            if any(path.endswith(beam_lib.PARTIAL) for path in procfs.open_paths(pid)):
                os.kill(pid, signal.SIGKILL)
                return pid
        time.sleep(0.001)
    raise AssertionError(
        f"no SDK harness was seen writing a spill file:\n{launcher.wait()[-3000:]}"
    )


@pytest.mark.engines
@pytest.mark.parametrize("runner", ["flink", "spark"])
def test_a_build_survives_an_sdk_worker_killed_mid_bundle(
    cli_builds, tarball_release, tmp_path, runner
):
    work, data = tmp_path / "work", tmp_path / "data"
    launcher = Running(runner, "clsloc", tarball_release, data, work)
    killed = kill_a_harness_mid_bundle(launcher, work)
    err = launcher.wait()
    assert launcher.process.returncode == 0, err[-6000:]
    # The same shards, byte for byte, as the default path's.
    assert readback.shard_bytes(data, "clsloc") == readback.shard_bytes(cli_builds, "clsloc")
    assert_same_examples(data, cli_builds, "clsloc")
    # The engine ran the lost worker's tasks again, on a new worker the fixed cache started.
    server_log = (work / "job-server.log").read_text()
    assert "closed its control connection (its process ended); starting another" in server_log
    if runner == "flink":
        assert re.search(
            r"Job BeamApp-\S+ \(\w+\) switched from state RUNNING to RESTARTING", server_log
        )
    else:
        assert re.search(
            r"WARN org\.apache\.spark\.scheduler\.TaskSetManager - Lost task", server_log
        )
    assert killed in harness_pids(work) and len(harness_pids(work)) > 2
    assert f"the SDK harness (pid {killed}) died: killed by signal 9 (SIGKILL)" in err
    assert "the engine ran their tasks again on new workers" in err
    assert not left_running(work)


@pytest.mark.engines
def test_a_lost_worker_the_engine_cannot_replace_is_named(tarball_release, tmp_path):
    """Every SDK harness killed as soon as it starts: Spark gives up after its attempts, and
    the launcher's error names the workers that died and how."""
    work, data = tmp_path / "work", tmp_path / "data"
    launcher = Running("spark", "clsloc", tarball_release, data, work)
    killed = set()
    while launcher.running():
        for pid in set(harness_pids(work)) - killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            killed.add(pid)
        time.sleep(0.05)
    err = launcher.wait()
    assert launcher.process.returncode == 1, err[-6000:]
    assert "the build failed after SDK workers died" in err
    named = re.findall(
        r"the SDK harness \(pid (\d+)\) died: killed by signal 9 \(SIGKILL\)",
        err.split("the build failed after SDK workers died")[1],
    )
    assert named and {int(pid) for pid in named} <= killed
    assert not list(data.rglob("dataset_info.json"))
    assert not left_running(work)


def test_the_fix_refuses_a_beam_source_it_was_not_written_for():
    fix = evict_dead_workers
    with pytest.raises(
        fix.PatchError,
        match=r"DefaultJobBundleFactory\.java .* expected 2 "
        r"occurrence\(s\) of 'client = currentCache.*, found 0; the fix in ",
    ):
        fix.patched_source("public class DefaultJobBundleFactory {}")
