"""The TFDS builder `imagenet2017`: configs `clsloc` (default) and `det`.

TensorFlow and TFDS are imported here (and in compat.py) only; everything it calls is plain
Python. Each config carries what differs (its Task and features), so nothing here switches on
a config's name.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Iterable

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from imagenet2017_tfds import (
    card,
    classes,
    compat,
    inputs,
    locking,
    oneread,
    tasks,
    workers,
    writing,
)
from imagenet2017_tfds.errors import ConsistencyError, MissingInputError
from imagenet2017_tfds.prepare import Prepared, prepare
from imagenet2017_tfds.problems import Recorder

# Build options: fields `tfds build --config '{"name": "clsloc", ...}'` may set.
OPTIONS = ("skip_bad_members", "allow_unverified", "decode_train", "workers")


def _clsloc_features(names: list[str]) -> tfds.features.FeaturesDict:
    return tfds.features.FeaturesDict({
        "image": tfds.features.Image(encoding_format="jpeg"),
        "label": tfds.features.ClassLabel(names=names),
        "file_name": tfds.features.Text(),
        "annotated": np.bool_,
        "blacklisted": np.bool_,
        "objects": tfds.features.Sequence(
            {"bbox": tfds.features.BBoxFeature(), "label": tfds.features.ClassLabel(names=names)}
        ),
    })  # fmt: skip


def _det_features(names: list[str]) -> tfds.features.FeaturesDict:
    return tfds.features.FeaturesDict({
        "image": tfds.features.Image(encoding_format="jpeg"),
        "file_name": tfds.features.Text(),
        "annotated": np.bool_,
        "objects": tfds.features.Sequence({
            "bbox": tfds.features.BBoxFeature(),
            "label": tfds.features.ClassLabel(names=names),
            "subcategory": tfds.features.Text(),
            "blacklisted": np.bool_,
        }),
    })  # fmt: skip


@dataclasses.dataclass(eq=False)
class Imagenet2017Config(tfds.core.BuilderConfig):
    """A config and its options: --config '{"name": "clsloc", "skip_bad_members": true}'."""

    task: tasks.Task | None = None
    features: Callable[[list[str]], tfds.features.FeaturesDict] | None = None
    supervised_keys: tuple[str, str] | None = None
    skip_bad_members: bool = False  # skip (and record) damaged members instead of stopping
    allow_unverified: bool = False  # accept archives with no known digest in the checksums file
    decode_train: bool = False  # decode every train image fully too (validation, test always)
    workers: int = 0  # processes generating examples: 0 one per core, 1 the main process only


class SplitExamples:
    """A split's examples, made from its jobs by worker processes (serialized there) when
    there is a pool, else in this process; sized when the plan is known, so TFDS's progress
    bar shows the total."""

    def __init__(self, split: str, jobs: Callable[[], Iterable[workers.Job]], size: int | None,
                 pool, recorder: Recorder):  # fmt: skip
        self.split, self.jobs, self.size = split, jobs, size
        self.pool, self.recorder = pool, recorder

    def __len__(self) -> int:
        if self.size is None:
            raise TypeError("the split's size is known once the archive has been read")
        return self.size

    def __iter__(self):
        if self.pool is not None:
            yield from self.pool.run(self.jobs(), self.recorder)
        else:
            yield from workers.run_here(self.jobs(), self.recorder)


class Imagenet2017(tfds.core.GeneratorBasedBuilder):
    """ImageNet ILSVRC2017: CLS-LOC (1000 classes, boxes) and DET (200 classes)."""

    VERSION = tfds.core.Version("1.1.0")
    RELEASE_NOTES = card.RELEASE_NOTES
    BUILDER_CONFIGS = [
        Imagenet2017Config(name="clsloc", description=card.DESCRIPTIONS["clsloc"],
                           task=tasks.CLSLOC, features=_clsloc_features,
                           supervised_keys=("image", "label")),
        Imagenet2017Config(name="det", description=card.DESCRIPTIONS["det"], task=tasks.DET,
                           features=_det_features),
    ]  # fmt: skip
    DEFAULT_CONFIG_NAME = "clsloc"
    MANUAL_DOWNLOAD_INSTRUCTIONS = card.MANUAL_DOWNLOAD_INSTRUCTIONS
    # TFDS reads get_metadata() (README.md, CITATIONS.bib, TAGS.txt) from pkg_dir_path, by
    # default this module's folder; the card lives in the dataset folder `imagenet2017/`.
    pkg_dir_path = epath.Path(card.DATASET_FOLDER)

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        info = self.dataset_info_from_configs(
            description=config.description,
            features=config.features(list(config.task.classes().wnids)),
            supervised_keys=config.supervised_keys,
            homepage=card.HOMEPAGE,
            citation=card.CITATION,
            metadata=tfds.core.MetadataDict(),
            license=card.LICENSE,
        )
        return compat.skip_metadata_bucket(info)

    def _create_builder_config(self, builder_config, version):
        # Options do not change what is built, so a config carrying them keeps its name (and
        # data dir) and the shipped config's data: TFDS itself refuses a custom config named
        # like a shipped one.
        if isinstance(builder_config, Imagenet2017Config):
            shipped = {c.name: c for c in self.BUILDER_CONFIGS}.get(builder_config.name)
            if shipped is not None and builder_config is not shipped:
                options = {k: getattr(builder_config, k) for k in OPTIONS}
                return dataclasses.replace(shipped, **options)
        return super()._create_builder_config(builder_config, version)

    def _example_writer(self):
        return writing.CanonicalExampleWriter(file_format=self.info.file_format)

    def _cache_dir(self, dl_manager) -> str:
        return os.path.join(os.fspath(dl_manager.download_dir), "imagenet2017")

    def _manual_dir(self, dl_manager):
        try:
            return dl_manager.manual_dir
        except AssertionError as e:  # TFDS's own check: a missing or empty folder
            parts = self.builder_config.task.parts
            needed = " and ".join(inputs.archive_names(p) for p in parts)
            raise MissingInputError(
                f"imagenet2017/{self.builder_config.name} needs {needed} (or the tree "
                f"extracted from them) in the manual folder: {e}"
            ) from None

    def _decoded_splits(self, splits) -> set[str]:
        """Splits whose images are all decoded once: validation and test always (about
        170,000 images), train when `decode_train` asks for it."""
        return {s for s in splits if s != "train" or self.builder_config.decode_train}

    def _split_generators(self, dl_manager):
        config = self.builder_config
        manual_dir, cache_dir = self._manual_dir(dl_manager), self._cache_dir(dl_manager)
        recorder = Recorder.for_build(config.skip_bad_members)
        task = config.task
        if self._use_beam or not self._one_read_allowed:
            prepared = prepare(manual_dir, task, cache_dir, config.allow_unverified, recorder)
        else:
            spill = os.path.join(os.fspath(self.data_dir), ".one-read")
            prepared = oneread.begin(manual_dir, task, cache_dir, config.allow_unverified,
                                     recorder, spill)  # fmt: skip
        if isinstance(prepared, oneread.OneRead):
            self._one_read = one = prepared
            splits = [split for split, _ in task.items.values()]
            decoded = self._decoded_splits(splits)

            def examples(split: str) -> SplitExamples:
                read = self._read_jobs(one.found, split in decoded, recorder.mode)
                return SplitExamples(split, lambda: one.jobs(split, split in decoded, read), None,
                                     self._pool, recorder)  # fmt: skip

            # Until the archive says otherwise: smallest first (see below).
            return oneread.SplitOrder(one, ["validation", "test", "train"], examples)
        self._prepared = prepared
        decoded = self._decoded_splits(prepared.splits)
        if self._use_beam:
            from imagenet2017_tfds import beam

            work = os.path.join(cache_dir, "ranges")
            self._beam_tasks = beam.write_tasks(prepared, task, work, decoded)
            if self._writer_plans is not None:
                self._writer_plans.update(beam.writer_plans(prepared))
            return {split: beam.split_transform(split, t) for split, t in self._beam_tasks.items()}
        # TFDS writes the splits one after the other in this order: smallest first, so that
        # a damaged image in validation or test stops the build in minutes, not after train.
        order = sorted(prepared.splits, key=lambda split: len(prepared.splits[split]))
        return {s: self._split_examples(prepared, s, s in decoded) for s in order}

    def _read_jobs(self, found: inputs.Inputs, decode: bool, mode: str):
        """Jobs reading planned items (part -> items) from the inputs."""
        task = self.builder_config.task

        def jobs(parts) -> list[workers.Job]:
            if self._pool is not None:
                return self._pool.jobs(task, found.parts, parts, mode, decode)
            return [workers.Job(task, found.parts[part], items, mode, decode)
                    for part, items in sorted(parts.items())]  # fmt: skip

        return jobs

    def _split_examples(self, prepared: Prepared, split: str, decode: bool) -> SplitExamples:
        parts = prepared.splits[split].parts
        read = self._read_jobs(prepared.inputs, decode, prepared.recorder.mode)
        return SplitExamples(split, lambda: read(parts), len(prepared.splits[split]), self._pool,
                             prepared.recorder)  # fmt: skip

    _use_beam = False
    _one_read_allowed = True  # a first build may read its main archive once (oneread.py)
    _one_read: oneread.OneRead | None = None
    _pool: workers.Pool | None = None
    _writer_plans: dict | None = None  # a Beam build's shard layouts, see compat

    def download_and_prepare(self, *args, **kwargs):
        config_dir = os.path.dirname(os.fspath(self.data_path))
        with locking.build_lock(config_dir):
            return super().download_and_prepare(*args, **kwargs)

    def _download_and_prepare(self, dl_manager, download_config, **kwargs):
        # Beam only when asked for (runner or options given): without them TFDS would warn
        # and may stop to ask a question on the terminal.
        self._use_beam = bool(download_config.beam_runner or download_config.beam_options)
        if download_config.max_examples_per_split is not None:
            # Every split is checked against the release's lists, and a first build may
            # verify the archive only as it reads it to the end: a cut build proves nothing.
            raise ConsistencyError(
                f"imagenet2017/{self.builder_config.name} builds every example: "
                f"max_examples_per_split={download_config.max_examples_per_split} would keep "
                "a dataset the release's lists cannot vouch for. Build without it; to try the "
                "builder quickly, `make demo` builds a miniature release in a minute."
            )
        self._one_read_allowed = True
        try:
            result = self._generate(dl_manager, download_config, **kwargs)
        except oneread.Abandoned as e:
            # Said on the terminal (TFDS's command shows no Python warnings): it costs a read.
            print(f"{self._one_read.stream.source.name}: reading it once was abandoned ({e}); "
                  "reading it again.", file=sys.stderr, flush=True)  # fmt: skip
            self._one_read.abandon()
            self._one_read, self._one_read_allowed = None, False
            for leftover in epath.Path(self.data_dir).iterdir():  # the splits written so far
                if leftover.is_dir():
                    leftover.rmtree()
                else:
                    leftover.unlink()
            result = self._generate(dl_manager, download_config, **kwargs)
            self._prepared.passes = dict.fromkeys(self._prepared.passes, 2)  # scan, then this
        finally:
            if self._one_read is not None:
                self._one_read.close()
        if self._one_read is not None:  # its plan, made when the last split read the end
            self._prepared = self._one_read.prepared
        recorder = self._prepared.recorder
        if self._use_beam:
            from imagenet2017_tfds import beam

            recorder.merge(beam.recorded(self._beam_tasks))
        self._record(recorder)
        self._check_nothing_lost(recorder)
        return result

    def _generate(self, dl_manager, download_config, **kwargs):
        count = workers.count(self.builder_config.workers)
        self._pool = workers.Pool(count) if count > 1 and not self._use_beam else None
        writer = compat.planned_beam_writer() if self._use_beam else contextlib.nullcontext()
        try:
            with compat.tuned(), compat.beam_fixes(self._use_beam), writer as self._writer_plans, \
                    compat.preserialized(self.info.features, workers.Serialized):  # fmt: skip
                return super()._download_and_prepare(dl_manager, download_config, **kwargs)
        finally:
            self._writer_plans = None
            if self._pool is not None:
                self._pool.close()

    def _record(self, recorder: Recorder) -> None:
        """What the dataset's metadata.json keeps of the build: where each input came from
        and how it was verified, what was skipped, and what was kept though unlisted."""
        prepared = self._prepared
        meta = self.info.metadata
        # Readable names aligned with the labels; the ClassLabel names stay WNIDs.
        meta["class_names"] = classes.class_names(self.builder_config.name)
        meta["inputs"] = {
            part: {"release": prepared.inputs.releases[part], "verified": prepared.verified[part]}
            for part in sorted(prepared.inputs.parts)
        }
        for part, passes in prepared.passes.items():  # reads of each tarball's content
            meta["inputs"][part]["passes"] = passes
        records = recorder.to_json()
        meta["skipped_members"] = [[m, f"{k}: {r}"] for m, k, r in records["skipped"]]
        meta["unlisted_members"] = [m for m, k, _ in records["notices"] if k == "unlisted"]
        if recorder.skipped:
            print(f"Skipped {len(records['skipped'])} bad members (skip_bad_members); listed "
                  "in metadata.json under skipped_members.", flush=True)  # fmt: skip
        if meta["unlisted_members"]:
            logging.warning(
                "%d images no list names were kept (first: %s); listed in metadata.json "
                "under unlisted_members.", len(meta["unlisted_members"]), meta["unlisted_members"][0]
            )  # fmt: skip

    def _check_nothing_lost(self, recorder: Recorder) -> None:
        """Every planned example (ImageSets-checked) must be in the written split, and every
        shard TFDS counted must be on disk."""
        skipped = recorder.skipped_members()
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
            expected = sum(1 for _, item in plan.items if item.path not in skipped)
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
