"""The TFDS builder `imagenet2017`: configs `clsloc` (default) and `det`.

TensorFlow and TFDS are imported here only; everything it calls is plain Python.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from imagenet2017_tfds import card, classes, generate, locking, writing
from imagenet2017_tfds.errors import ConsistencyError
from imagenet2017_tfds.prepare import Prepared, prepare


@dataclasses.dataclass(eq=False)
class Imagenet2017Config(tfds.core.BuilderConfig):
    """Options `tfds build` can pass: --config '{"name": "clsloc", "skip_bad_members": true}'."""

    skip_bad_members: bool = False  # skip (and record) damaged members instead of stopping
    allow_unverified: bool = False  # accept archives with no known digest in the checksums file


class SplitExamples:
    """A split's examples, sized so TFDS's progress bar shows a known total."""

    def __init__(self, prepared: Prepared, split: str, config: str, skipped: list | None):
        self.prepared = prepared
        self.split = split
        self.config = config
        self.skipped = skipped  # a list under skip_bad_members: bad images land there

    def __len__(self) -> int:
        return len(self.prepared.splits[self.split].items)

    def __iter__(self):
        plan = self.prepared.splits[self.split]
        source = self.prepared.source(self.split)
        return generate.keyed_examples(self.config, source, plan.items, self.skipped)


class Imagenet2017(tfds.core.GeneratorBasedBuilder):
    """ImageNet ILSVRC2017: CLS-LOC (1000 classes, boxes) and DET (200 classes)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = card.RELEASE_NOTES
    BUILDER_CONFIGS = [
        Imagenet2017Config(name="clsloc", description=card.DESCRIPTIONS["clsloc"]),
        Imagenet2017Config(name="det", description=card.DESCRIPTIONS["det"]),
    ]
    DEFAULT_CONFIG_NAME = "clsloc"
    MANUAL_DOWNLOAD_INSTRUCTIONS = card.MANUAL_DOWNLOAD_INSTRUCTIONS
    # TFDS reads get_metadata() (README.md, CITATIONS.bib, TAGS.txt) from pkg_dir_path, by
    # default this module's folder; the card lives in the dataset folder `imagenet2017/`.
    pkg_dir_path = epath.Path(card.DATASET_FOLDER)

    def _info(self) -> tfds.core.DatasetInfo:
        name = self.builder_config.name
        names = list(classes.for_config(name).wnids)
        box = {"bbox": tfds.features.BBoxFeature(), "label": tfds.features.ClassLabel(names=names)}
        common = {
            "image": tfds.features.Image(encoding_format="jpeg"),
            "file_name": tfds.features.Text(),
            "annotated": np.bool_,
        }
        if name == "clsloc":
            features = {
                **common,
                "label": tfds.features.ClassLabel(names=names),
                "blacklisted": np.bool_,
                "objects": tfds.features.Sequence(box),
            }
            keys = ("image", "label")
        else:
            box.update(subcategory=tfds.features.Text(), blacklisted=np.bool_)
            features = {**common, "objects": tfds.features.Sequence(box)}
            keys = None
        info = self.dataset_info_from_configs(
            description=card.DESCRIPTIONS[name],
            features=tfds.features.FeaturesDict(features),
            supervised_keys=keys,
            homepage=card.HOMEPAGE,
            citation=card.CITATION,
            metadata=tfds.core.MetadataDict(),
            license=card.LICENSE,
        )
        # imagenet2017 is never on TFDS's metadata bucket, and TFDS's lookup leaves an empty
        # temporary folder behind for every builder made before a build: skip it.
        info.initialize_from_bucket = lambda: None
        return info

    def _create_builder_config(self, builder_config, version):
        # Options do not change what is built, so a config carrying them keeps its name (and
        # data dir): TFDS itself refuses a custom config named like a shipped one.
        if isinstance(builder_config, Imagenet2017Config):
            shipped = {c.name: c for c in self.BUILDER_CONFIGS}.get(builder_config.name)
            if shipped is not None and builder_config is not shipped:
                builder_config = dataclasses.replace(
                    shipped,
                    skip_bad_members=builder_config.skip_bad_members,
                    allow_unverified=builder_config.allow_unverified,
                )
                return builder_config
        return super()._create_builder_config(builder_config, version)

    def _example_writer(self):
        return writing.CanonicalExampleWriter(file_format=self.info.file_format)

    def _cache_dir(self, dl_manager) -> str:
        return os.path.join(os.fspath(dl_manager.download_dir), "imagenet2017")

    def _split_generators(self, dl_manager):
        config = self.builder_config
        # dl_manager.manual_dir asserts on a missing folder with TFDS's message; ours lists
        # what the config needs and what was found, so read the setting itself.
        manual_dir = getattr(dl_manager, "_manual_dir", None)
        prepared = prepare(
            manual_dir,
            config.name,
            cache_dir=self._cache_dir(dl_manager),
            allow_unverified=config.allow_unverified,
            skip_bad_members=config.skip_bad_members,
        )
        self._prepared = prepared
        skip = config.skip_bad_members
        if self._use_beam:
            from imagenet2017_tfds import beam

            work = os.path.join(self._cache_dir(dl_manager), "ranges")
            self._beam_tasks = beam.write_tasks(prepared, config.name, work, skip_bad_members=skip)
            return {split: beam.split_transform(split, t) for split, t in self._beam_tasks.items()}
        self._image_skips = {split: [] if skip else None for split in prepared.splits}
        # TFDS writes the splits one after the other in this order: smallest first, so that
        # a damaged image in validation or test stops the build in minutes, not after train.
        order = sorted(prepared.splits, key=lambda split: len(prepared.splits[split].items))
        return {
            split: SplitExamples(prepared, split, config.name, self._image_skips[split])
            for split in order
        }

    _use_beam = False

    def download_and_prepare(self, *args, **kwargs):
        config_dir = os.path.dirname(os.fspath(self.data_path))
        with locking.build_lock(config_dir):
            return super().download_and_prepare(*args, **kwargs)

    def _download_and_prepare(self, dl_manager, download_config, **kwargs):
        # Beam only when asked for (runner or options given): without them TFDS would warn
        # and may stop to ask a question on the terminal.
        self._use_beam = bool(download_config.beam_runner or download_config.beam_options)
        with writing.tuned():  # deterministic bytes, bounded shuffle memory
            result = super()._download_and_prepare(dl_manager, download_config, **kwargs)
        if self._use_beam:
            from imagenet2017_tfds import beam

            image_skips = beam.skipped_members(self._beam_tasks)
        else:
            image_skips = {k: v or [] for k, v in self._image_skips.items()}
        skipped = dict(self._prepared.skipped)
        for split_skips in image_skips.values():
            skipped.update(split_skips)
        self.info.metadata["skipped_members"] = [list(s) for s in sorted(skipped.items())]
        # Readable names aligned with the labels; the ClassLabel names stay WNIDs.
        self.info.metadata["class_names"] = classes.class_names(self.builder_config.name)
        if skipped:
            print(f"Skipped {len(skipped)} bad members (skip_bad_members); listed in "
                  "metadata.json under skipped_members.", flush=True)  # fmt: skip
        self._check_nothing_lost(image_skips)
        return result

    def _check_nothing_lost(self, image_skips: dict) -> None:
        """Every planned example (ImageSets-checked) must be in the written split, and every
        shard TFDS counted must be on disk."""
        for split, plan in self._prepared.splits.items():
            lengths = self.info.splits[split].shard_lengths
            files = self._shard_files(split)
            if len(files) != len(lengths):
                raise ConsistencyError(
                    f"imagenet2017/{self.builder_config.name} {split}: TFDS counted "
                    f"{len(lengths)} shards of {sum(lengths)} examples, {len(files)} shard "
                    f"files are in {self.data_dir}. The build is incomplete and was not kept: "
                    "report this as a bug."
                )
            skipped = {member for member, _ in image_skips.get(split, [])}
            expected = len(plan.items) - len(skipped)
            written = self.info.splits[split].num_examples
            if written == expected:
                continue
            names = self._written_file_names(split)
            missing = next(
                (item.path for _, item in plan.items
                 if item.path not in skipped and names is not None and item.file_name not in names),
                "(not identified)",
            )  # fmt: skip
            raise ConsistencyError(
                f"imagenet2017/{self.builder_config.name} {split}: {written} examples written, "
                f"{expected} planned from the release's lists; first missing member: {missing}. "
                "The build is incomplete and was not kept: report this as a bug."
            )

    def _shard_files(self, split: str) -> list[str]:
        import tensorflow as tf

        suffix, n = self.info.file_format.file_suffix, "[0-9]" * 5
        name = f"{self.name}-{split}.{suffix}-{n}-of-{n}"  # TFDS's shard names, nothing else
        return tf.io.gfile.glob(os.path.join(os.fspath(self.data_dir), name))

    def _written_file_names(self, split: str) -> set[str] | None:
        """The file names in a split's TFRecord shards (None for other formats)."""
        import tensorflow as tf
        from tensorflow.core.example import example_pb2

        if self.info.file_format.value != "tfrecord":
            return None
        names = set()
        for record in tf.data.TFRecordDataset(self._shard_files(split)):
            ex = example_pb2.Example.FromString(record.numpy())
            names.add(ex.features.feature["file_name"].bytes_list.value[0].decode())
        return names

    def _generate_examples(self, **kwargs):  # splits come ready-made from _split_generators
        raise NotImplementedError
