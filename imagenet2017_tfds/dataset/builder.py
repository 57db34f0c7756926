"""The TFDS builder `imagenet2017`: configs `clsloc` (default) and `det`.

It wires TFDS's hooks to the engine: a build runs on the local engine or the Beam pipeline
(executors.py), either of which writes every shard itself; then the split infos are set from
what it wrote, the build recorded in metadata.json (metadata.py) and the written dataset
checked against the plan (engine/verify.py). Where the build reads and writes is
data_dirs.py's; the configs and their options are config.py's.
"""

from __future__ import annotations

import os
import time

import tensorflow_datasets as tfds
from etils import epath

from imagenet2017_tfds import card, compat
from imagenet2017_tfds.dataset import config as config_lib
from imagenet2017_tfds.dataset import data_dirs, executors, metadata
from imagenet2017_tfds.dataset.config import Imagenet2017Config
from imagenet2017_tfds.engine import verify
from imagenet2017_tfds.ilsvrc import tasks
from imagenet2017_tfds.internal import collector, fileio, locking
from imagenet2017_tfds.internal.problems import Recorder

__all__ = ["Imagenet2017", "Imagenet2017Config"]


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
    BUILDER_CONFIGS = list(config_lib.SHIPPED)
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
        # data. What an option changed (members skip_bad_members left out) is in the
        # dataset's metadata.json. TFDS itself would refuse it (named like a shipped config).
        if (carried := config_lib.with_options(builder_config)) is not builder_config:
            return carried
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
        config.refuse_cut_build(download_config)
        recorder = Recorder.for_build(config.skip_bad_members)
        cache_dir = data_dirs.cache_dir(dl_manager, download_config)
        manual_dir = data_dirs.manual_dir(
            dl_manager, download_config, f"imagenet2017/{config.name}", config.task.parts
        )
        target = executors.Target(
            data_dir=os.fspath(self.data_dir),
            data_dir_root=os.fspath(self._data_dir_root),
            file_format=self.info.file_format.value,
            template=lambda split: self._get_filename_template(split_name=split),
        )
        with collector.build():
            prepared, written, numbers = executors.run(
                config, manual_dir, cache_dir, download_config, target, recorder
            )
            self.info.set_splits(
                tfds.core.SplitDict(
                    [
                        tfds.core.SplitInfo(
                            name=split,
                            shard_lengths=[n for n, _ in shards],
                            num_bytes=sum(size for _, size in shards),
                            filename_template=target.template(split),
                        )
                        for split, shards in written.items()
                    ]
                )
            )
            metadata.record(self.info.metadata, config.name, prepared, recorder)
            counted = {split: info.shard_lengths for split, info in self.info.splits.items()}
            verify.nothing_lost(
                f"imagenet2017/{config.name}",
                target.data_dir,
                counted,
                prepared,
                recorder,
                target.file_format,
                self.info.file_format.file_suffix,
            )
            metadata.ended(self, config_lib.OPTIONS, started, numbers)

    # TFDS's generation hooks: never called, the engine writes the shards itself.
    def _split_generators(self, dl_manager):
        raise NotImplementedError

    def _generate_examples(self, **kwargs):
        raise NotImplementedError
