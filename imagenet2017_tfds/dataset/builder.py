"""The TFDS builder `imagenet2017`: configs `clsloc` (default) and `det`.

It wires TFDS's hooks to the engine: a build is the local engine (engine/local.py) or, when a
Beam runner or options are given, the Beam pipeline (beam.py); either writes every shard
itself, then the split infos are set from what it wrote, the build recorded in metadata.json
and the written dataset checked against the plan (engine/verify.py). Where the build reads
and writes is data_dirs.py's. Each config carries what differs (its Task and features), so
nothing here switches on a config's name.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time

import tensorflow_datasets as tfds
from etils import epath

from imagenet2017_tfds import card, compat
from imagenet2017_tfds.dataset import data_dirs, metadata
from imagenet2017_tfds.engine import local, verify
from imagenet2017_tfds.errors import ConsistencyError
from imagenet2017_tfds.ilsvrc import tasks
from imagenet2017_tfds.internal import collector, fileio, locking, machine, scratch
from imagenet2017_tfds.internal.problems import Recorder

# Build options: fields `tfds build --config '{"name": "clsloc", ...}'` may set.
OPTIONS = (
    "skip_bad_members",
    "allow_unverified",
    "decode_train",
    "workers",
    "skip_space_check",
    "scratch_dir",
    "report",
)


@dataclasses.dataclass(eq=False)
class Imagenet2017Config(tfds.core.BuilderConfig):
    """A config and its options: --config '{"name": "clsloc", "skip_bad_members": true}'."""

    task: tasks.Task | None = None
    skip_bad_members: bool = False  # skip (and record) damaged members instead of stopping
    allow_unverified: bool = False  # accept archives with no known digest in the checksums file
    decode_train: bool = False  # decode every train image fully too (validation, test always)
    workers: int = 0  # worker processes: 0 as many as the CPUs and memory allow, 1 none
    skip_space_check: bool = False  # build even where the disk seems too small for it
    scratch_dir: str | None = None  # local folder for the work when the data is in a store
    report: bool = True  # write report.html and report.json beside dataset_info.json


# Memory a worker process needs (TFDS's features, one image at a time) and the build's own
# process (TensorFlow, the plan): the worker count is capped by what the machine has free.
WORKER_BYTES = 400 << 20
MAIN_BYTES = 1 << 30


class Imagenet2017(tfds.core.GeneratorBasedBuilder):
    """ImageNet ILSVRC2017: CLS-LOC (1000 classes, boxes) and DET (200 classes)."""

    # The dataset's version: what a build writes changes with it (the package's is its own).
    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = {
        "1.0.0": "First release: configs clsloc and det.",
        "1.1.0": "det: `test` is the ILSVRC2017 DET test set, the DET archive's test images and "
        "the 5,500 of ILSVRC2017_DET_test_new (65,500), and `test_previous` is gone; det train "
        "holds the images of the per-class lists train_1..200.txt and of train.txt, images no "
        "list names kept and recorded. clsloc builds from Kaggle's release too. A validation or "
        "test image TensorFlow cannot decode stops the build (skip_bad_members leaves it out).",
    }
    BUILDER_CONFIGS = [
        Imagenet2017Config(name=t.name, description=t.description, task=t)
        for t in tasks.TASKS.values()
    ]
    DEFAULT_CONFIG_NAME = tasks.DEFAULT.name
    MANUAL_DOWNLOAD_INSTRUCTIONS = card.MANUAL_DOWNLOAD_INSTRUCTIONS
    # TFDS reads get_metadata() (README.md, CITATIONS.bib, TAGS.txt) from pkg_dir_path, by
    # default this module's folder; the card lives in imagenet2017_tfds/card/.
    pkg_dir_path = epath.Path(card.FOLDER)

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        # Description and citation come from the card (get_metadata), never from here.
        info = self.dataset_info_from_configs(
            features=config.task.make_features(),
            supervised_keys=config.task.supervised_keys,
            homepage=card.HOMEPAGE,
            metadata=tfds.core.MetadataDict(),
            license=card.LICENSE,
        )
        return compat.skip_metadata_bucket(info)

    def _create_builder_config(self, builder_config, version):
        # A config carrying options keeps its name (and data dir) and the shipped config's
        # data: TFDS itself refuses a custom config named like a shipped one. What an option
        # changed (members skip_bad_members left out) is in the dataset's metadata.json.
        if isinstance(builder_config, Imagenet2017Config):
            shipped = {c.name: c for c in self.BUILDER_CONFIGS}.get(builder_config.name)
            if shipped is not None and builder_config is not shipped:
                options = {k: getattr(builder_config, k) for k in OPTIONS}
                return dataclasses.replace(shipped, **options)
        return super()._create_builder_config(builder_config, version)

    def __init__(self, *, data_dir=None, **kwargs):
        # Before TFDS looks into the data dir: a store TensorFlow cannot write is refused with
        # the reason, not with TensorFlow's own error from deep inside TFDS.
        data_dirs.refuse_data_dir(os.fspath(data_dir or os.environ.get("TFDS_DATA_DIR", "")))
        import tensorflow as tf

        try:
            super().__init__(data_dir=data_dir, **kwargs)
        except tf.errors.NotFoundError:
            config = kwargs.get("config") or self.DEFAULT_CONFIG_NAME
            if not data_dirs.made_config_folder(data_dir, self.name, config):
                raise
            super().__init__(data_dir=data_dir, **kwargs)

    def download_and_prepare(self, *, download_dir=None, download_config=None, **kwargs):
        version_dir = os.fspath(self.data_path)
        config_dir = os.fspath(fileio.path(version_dir).parent)
        with locking.build_lock(config_dir), compat.moved_into_store(version_dir):
            download_dir, download_config = data_dirs.for_build(
                download_dir,
                download_config,
                os.fspath(self._data_dir_root),
                self.builder_config.scratch_dir,
                version_dir,
            )
            return super().download_and_prepare(
                download_dir=download_dir, download_config=download_config, **kwargs
            )

    def _download_and_prepare(self, dl_manager, download_config, **kwargs):
        started, config = time.time(), self.builder_config
        if download_config.max_examples_per_split is not None:
            # Every split is checked against the release's lists, and a first build may
            # verify the archive only as it reads it to the end: a cut build proves nothing.
            raise ConsistencyError(
                f"imagenet2017/{config.name} builds every example: "
                f"max_examples_per_split={download_config.max_examples_per_split} would keep "
                "a dataset the release's lists cannot vouch for. Build without it; to try the "
                "builder quickly, `make demo` builds a miniature release in a minute."
            )
        recorder = Recorder.for_build(config.skip_bad_members)
        cache_dir = data_dirs.cache_dir(dl_manager, download_config)
        manual_dir = data_dirs.manual_dir(
            dl_manager, download_config, f"imagenet2017/{config.name}", config.task.parts
        )
        with collector.build():
            # Beam only when asked for (runner or options given): without them TFDS would
            # warn and may stop to ask a question on the terminal.
            if download_config.beam_runner or download_config.beam_options:
                run = self._beam_build
            else:
                run = self._local_build
            prepared, written, numbers = run(manual_dir, cache_dir, download_config, recorder)
            self.info.set_splits(
                tfds.core.SplitDict(
                    [
                        tfds.core.SplitInfo(
                            name=split,
                            shard_lengths=[n for n, _ in shards],
                            num_bytes=sum(size for _, size in shards),
                            filename_template=self._get_filename_template(split_name=split),
                        )
                        for split, shards in written.items()
                    ]
                )
            )
            metadata.record(self.info.metadata, config.name, prepared, recorder)
            counted = {split: info.shard_lengths for split, info in self.info.splits.items()}
            verify.nothing_lost(
                f"imagenet2017/{config.name}",
                os.fspath(self.data_dir),
                counted,
                prepared,
                recorder,
                self.info.file_format.value,
                self.info.file_format.file_suffix,
            )
            metadata.ended(self, OPTIONS, started, numbers)

    def _decoded_splits(self, splits) -> frozenset[str]:
        """Splits whose images are all decoded once: validation and test always (about
        170,000 images), train when `decode_train` asks for it."""
        return frozenset(s for s in splits if s != "train" or self.builder_config.decode_train)

    def _local_build(self, manual_dir, cache_dir, download_config, recorder: Recorder):
        """The local engine on the workers that fit this machine; its finished shards are
        linked into TFDS's folder under TFDS's names. Returns what each split's shards hold."""
        config = self.builder_config
        fit = machine.worker_count(config.workers, WORKER_BYTES, reserve_bytes=MAIN_BYTES)
        options = local.Options(
            allow_unverified=config.allow_unverified,
            decode_splits=self._decoded_splits(("train", "validation", "test")),
            workers=fit.count,
            file_format=self.info.file_format.value,
            shard_config=download_config.get_shard_config(),
            data_dir=os.fspath(self.data_dir),
            skip_space_check=config.skip_space_check,
            scratch_dir=scratch.folder(
                cache_dir, os.fspath(self._data_dir_root), config.scratch_dir
            ),
            numbers=config.report,
        )
        plural = "es" if fit.count != 1 else ""
        print(
            f"imagenet2017: {fit.count} worker process{plural} ({fit.reason})",
            file=sys.stderr,
            flush=True,
        )
        built = local.build(manual_dir, config.task, cache_dir, recorder, options)
        return (
            built.prepared,
            local.link_into(
                built,
                lambda split, n: self._get_filename_template(split_name=split).sharded_filepaths(
                    num_shards=n
                ),
            ),
            built.numbers,
        )

    def _beam_build(self, manual_dir, cache_dir, download_config, recorder: Recorder):
        """The Beam pipeline over ranges of the archives, read through their gzip index, each
        shard written by the engine under TFDS's name (beam.py)."""
        from imagenet2017_tfds.engine import beam

        config = self.builder_config
        with compat.beam_fixes(True):
            return beam.build(
                manual_dir,
                config.task,
                cache_dir,
                recorder,
                config.allow_unverified,
                self._decoded_splits,
                lambda split: self._get_filename_template(split_name=split),
                self.info.file_format.value,
                download_config,
                numbers=config.report,
            )

    # TFDS's generation hooks: never called, the engine writes the shards itself.
    def _split_generators(self, dl_manager):
        raise NotImplementedError

    def _generate_examples(self, **kwargs):
        raise NotImplementedError
