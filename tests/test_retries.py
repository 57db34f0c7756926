"""A distributed build survives a lost SDK worker: a bundle run again replaces its spill file
instead of adding a second copy (beam.SpillExamples, driven directly), Beam's fixed class
replaces a dead worker (examples/beam/evict_dead_workers.py), and a Flink and a Spark build
started by the launcher with its defaults complete, byte for byte, when one SDK worker is
killed (SIGKILL) in the middle of a bundle; when the engine cannot recover, the launcher names
the worker that died and how."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import psutil
import pytest

from imagenet2017_tfds import beam as beam_lib
from imagenet2017_tfds import compat
from tests.test_spill_writer import KEYS, PLANNED_BYTES, make_writer


def spill_bundle(writer, examples, finish=True):
    """One attempt at a bundle: the (shard, (file, records)) values it yields, or None when
    it is cut short before it finishes (its worker killed)."""
    fn = beam_lib.SpillExamples(writer)
    fn.start_bundle()
    for example in examples:
        fn.process(example)
    if not finish:
        fn.file.close()  # what the killed process's exit does
        return None
    return [windowed.value for windowed in fn.finish_bundle()]


def test_a_bundle_processed_again_leaves_one_copy_of_its_examples(tmp_path):
    examples = [(key, {"index": i}) for i, key in enumerate(KEYS[:12])]
    with compat.planned_beam_writer() as plans:
        plans["train"] = (KEYS, PLANNED_BYTES)
        writer = make_writer(tmp_path)
        assert spill_bundle(writer, examples[:5], finish=False) is None  # a lost attempt
        first = spill_bundle(writer, examples)  # its retry
        second = spill_bundle(writer, examples)  # the stage restarted after it had finished
        serialized = sorted(writer.serialize(example)[1] for example in examples)
    assert first == second  # the same file, the same records
    (spill,) = writer.spill_dir.glob(f"*{beam_lib.SPILL}")
    assert {path for _, (path, _) in second} == {str(spill)}
    read = [data for _, spills in second for _, data in beam_lib.read_spilled([spills])]
    assert sorted(read) == serialized  # every example once
    # The lost attempt's partial file is not a spill file: nothing refers to it.
    assert len(list(writer.spill_dir.glob(f"*{beam_lib.PARTIAL}"))) == 1


def test_bundles_of_different_examples_keep_their_own_files(tmp_path):
    examples = [(key, {"index": i}) for i, key in enumerate(KEYS[:12])]
    with compat.planned_beam_writer() as plans:
        plans["train"] = (KEYS, PLANNED_BYTES)
        writer = make_writer(tmp_path)
        values = spill_bundle(writer, examples[:6]) + spill_bundle(writer, examples[6:])
        serialized = sorted(writer.serialize(example)[1] for example in examples)
    assert len(list(writer.spill_dir.glob(f"*{beam_lib.SPILL}"))) == 2
    read = [data for _, spills in values for _, data in beam_lib.read_spilled([spills])]
    assert sorted(read) == serialized
