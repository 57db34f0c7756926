"""The two executors a build runs on, given what TFDS decided: the local engine on as many
worker processes as this machine fits, or the Beam pipeline on the download config's runner.
Both return what was prepared, per split (examples, bytes) of each shard they wrote under
TFDS's file names, and per split the report's numbers computed as they wrote (None when the
config's `report` is off)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass

from imagenet2017_tfds import compat
from imagenet2017_tfds.dataset.config import Imagenet2017Config
from imagenet2017_tfds.engine import local
from imagenet2017_tfds.internal import machine, scratch
from imagenet2017_tfds.internal.problems import Recorder

# Memory a worker process needs (TFDS's features, one image at a time) and the build's own
# process (TensorFlow, the plan): the worker count is capped by what the machine has free.
WORKER_BYTES = 400 << 20
MAIN_BYTES = 1 << 30


@dataclass(frozen=True)
class Target:
    """Where and how TFDS wants the dataset written."""

    data_dir: str  # the version folder
    data_dir_root: str  # the data dir the builder was given
    file_format: str  # "tfrecord", "array_record", ...
    template: Callable  # split -> TFDS's ShardedFileTemplate of its files


def uses_beam(download_config) -> bool:
    """Beam only when asked for (a runner or options given): without them TFDS would warn and
    may stop to ask a question on the terminal."""
    return bool(download_config.beam_runner or download_config.beam_options)


def run(
    config: Imagenet2017Config, manual_dir, cache_dir, download_config, target: Target, recorder
):
    """The build on the executor the download config asks for."""
    run_on = beam_build if uses_beam(download_config) else local_build
    return run_on(config, manual_dir, cache_dir, download_config, target, recorder)


def local_build(config, manual_dir, cache_dir, download_config, target: Target, recorder: Recorder):
    """The local engine on the workers that fit this machine; its finished shards are linked
    into TFDS's folder under TFDS's names."""
    fit = machine.worker_count(config.workers, WORKER_BYTES, reserve_bytes=MAIN_BYTES)
    options = local.Options(
        allow_unverified=config.allow_unverified,
        decode_splits=config.decoded_splits(("train", "validation", "test")),
        workers=fit.count,
        file_format=target.file_format,
        shard_config=download_config.get_shard_config(),
        data_dir=target.data_dir,
        skip_space_check=config.skip_space_check,
        scratch_dir=scratch.folder(cache_dir, target.data_dir_root, config.scratch_dir),
        numbers=config.report,
    )
    plural = "es" if fit.count != 1 else ""
    message = f"imagenet2017: {fit.count} worker process{plural} ({fit.reason})"
    print(message, file=sys.stderr, flush=True)
    built = local.build(manual_dir, config.task, cache_dir, recorder, options)

    def shard_paths(split: str, count: int) -> list:
        return target.template(split).sharded_filepaths(num_shards=count)

    return built.prepared, local.link_into(built, shard_paths), built.numbers


def beam_build(config, manual_dir, cache_dir, download_config, target: Target, recorder: Recorder):
    """The Beam pipeline over ranges of the archives, read through their gzip index, each
    shard written by the engine under TFDS's name (engine/beam.py)."""
    from imagenet2017_tfds.engine import beam

    with compat.beam_fixes(True):
        return beam.build(
            manual_dir,
            config.task,
            cache_dir,
            recorder,
            allow_unverified=config.allow_unverified,
            decoded=config.decoded_splits,
            template=target.template,
            file_format=target.file_format,
            download_config=download_config,
            numbers=config.report,
        )
