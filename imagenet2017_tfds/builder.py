"""The TFDS builder `imagenet2017`: configs `clsloc` (default) and `det`.

TensorFlow and TFDS are imported here (and in compat.py) only; everything it calls is plain
Python. Each config carries what differs (its Task and features), so nothing here switches on
a config's name.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
from collections.abc import Callable

import tensorflow_datasets as tfds
from etils import epath

from imagenet2017_tfds import (
    card,
    classes,
    collector,
    compat,
    fileio,
    inputs,
    locking,
    machine,
    scratch,
    store,
    tasks,
)
from imagenet2017_tfds.engine import local
from imagenet2017_tfds.errors import ConsistencyError, MissingInputError, StorageError
from imagenet2017_tfds.prepare import Prepared, prepare
from imagenet2017_tfds.problems import Recorder

# Build options: fields `tfds build --config '{"name": "clsloc", ...}'` may set.
OPTIONS = ("skip_bad_members", "allow_unverified", "decode_train", "workers", "skip_space_check",
           "scratch_dir")  # fmt: skip


@dataclasses.dataclass(eq=False)
class Imagenet2017Config(tfds.core.BuilderConfig):
    """A config and its options: --config '{"name": "clsloc", "skip_bad_members": true}'."""

    task: tasks.Task | None = None
    features: Callable[[list[str]], tfds.features.FeaturesDict] | None = None
    supervised_keys: tuple[str, str] | None = None
    skip_bad_members: bool = False  # skip (and record) damaged members instead of stopping
    allow_unverified: bool = False  # accept archives with no known digest in the checksums file
    decode_train: bool = False  # decode every train image fully too (validation, test always)
    workers: int = 0  # worker processes: 0 as many as the CPUs and memory allow, 1 none
    skip_space_check: bool = False  # build even where the disk seems too small for it
    scratch_dir: str | None = None  # local folder for the work when the data is in a store


# Memory a worker process needs (TFDS's features, one image at a time) and the build's own
# process (TensorFlow, the plan): the worker count is capped by what the machine has free.
WORKER_BYTES = 400 << 20
MAIN_BYTES = 1 << 30


def _refuse_data_dir(data_dir: str) -> None:
    """TFDS writes and reads a dataset's records through TensorFlow's file systems (tf.io,
    tf.data): a data dir in a store TensorFlow has no file system for cannot be built into."""
    scheme = store.scheme(data_dir)
    if scheme is None or scheme == "gs":
        return
    import tensorflow as tf

    try:
        tf.io.gfile.exists(data_dir)
    except tf.errors.UnimplementedError:
        pass
    else:
        return
    why = (
        "TensorFlow has no S3 file system since 2.6 (it moved to tensorflow-io, whose last "
        "release does not load into this TensorFlow)"
        if scheme.startswith("s3") else f"TensorFlow has no file system for {scheme}://"
    )  # fmt: skip
    raise StorageError(
        f"data dir {data_dir}: TFDS writes and reads the dataset's records through TensorFlow, "
        f"and {why}. Build into a local or gs:// data dir, then copy the dataset's folder "
        f"(imagenet2017/<config>/<version>) there; {scheme}:// works for --manual_dir and "
        "--download_dir."
    )


def _moved_in_part(version_dir: str) -> bool:
    """TFDS takes a version folder that exists for a built dataset. In a store, the finished
    dataset is copied into it one object at a time, dataset_info.json last
    (compat.moved_into_store): a folder without it is a move cut short (said on the terminal)."""
    if fileio.is_local(version_dir):
        return False
    folder = fileio.path(version_dir)
    if not folder.exists() or (folder / "dataset_info.json").exists():
        return False
    said = "left by a build stopped while it moved the dataset into place (no dataset_info.json)"
    print(f"{version_dir}: {said}; it is built again.", flush=True)
    return True


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
        Imagenet2017Config(name="clsloc", description=card.DESCRIPTIONS["clsloc"],
                           task=tasks.CLSLOC, features=tasks.CLSLOC.features,
                           supervised_keys=("image", "label")),
        Imagenet2017Config(name="det", description=card.DESCRIPTIONS["det"], task=tasks.DET,
                           features=tasks.DET.features),
    ]  # fmt: skip
    DEFAULT_CONFIG_NAME = "clsloc"
    MANUAL_DOWNLOAD_INSTRUCTIONS = card.MANUAL_DOWNLOAD_INSTRUCTIONS
    # TFDS reads get_metadata() (README.md, CITATIONS.bib, TAGS.txt) from pkg_dir_path, by
    # default this module's folder; the card lives in imagenet2017_tfds/card/.
    pkg_dir_path = epath.Path(card.FOLDER)

    def _info(self) -> tfds.core.DatasetInfo:
        config = self.builder_config
        # Description and citation come from the card (get_metadata), never from here.
        info = self.dataset_info_from_configs(
            features=config.features(list(config.task.classes().wnids)),
            supervised_keys=config.supervised_keys,
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
        _refuse_data_dir(os.fspath(data_dir or os.environ.get("TFDS_DATA_DIR", "")))
        import tensorflow as tf

        try:
            super().__init__(data_dir=data_dir, **kwargs)
        except tf.errors.NotFoundError:
            # TFDS before 4.9.10 lists the config folder's versions through TensorFlow when a
            # builder is made, and catches only OSError: TensorFlow's NotFoundError for a
            # config folder not yet in a bucket escapes. The folder is made, as TFDS would.
            if data_dir is None or fileio.is_local(os.fspath(data_dir)):
                raise
            config = kwargs.get("config") or self.DEFAULT_CONFIG_NAME
            name = config if isinstance(config, str) else getattr(config, "name", None)
            if name is None and isinstance(config, dict):
                name = config.get("name")
            tf.io.gfile.makedirs(f"{os.fspath(data_dir)}/{self.name}/{name}")
            super().__init__(data_dir=data_dir, **kwargs)

    def _cache_dir(self, dl_manager) -> str:
        """The package's caches (catalogs, gzip indexes, digests' verdicts), in the download dir,
        which may be in a store."""
        download_dir = self._store_download_dir or os.fspath(dl_manager.download_dir)
        return os.fspath(fileio.path(download_dir) / "imagenet2017")

    def _scratch_dir(self, dl_manager) -> str:
        return scratch.folder(self._cache_dir(dl_manager), os.fspath(self._data_dir_root),
                              self.builder_config.scratch_dir)  # fmt: skip

    def _manual_dir(self, dl_manager, given=None):
        """The manual folder: `given` (the download config's) when it is in a store, which
        TFDS's own check would look at through TensorFlow (no s3://) and inputs.locate checks
        with its own errors; else TFDS's, with its default."""
        if given is not None and not fileio.is_local(os.fspath(given)):
            return os.fspath(given)
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

    def download_and_prepare(self, *, download_dir=None, download_config=None, **kwargs):
        # A download dir in a store holds this package's caches only: TFDS's download manager,
        # which makes its folders through TensorFlow (no s3://), gets a local one.
        self._store_download_dir = None
        if download_dir is not None and not fileio.is_local(os.fspath(download_dir)):
            self._store_download_dir = os.fspath(download_dir)
            download_config = dataclasses.replace(download_config or tfds.download.DownloadConfig())
            if download_config.manual_dir is None:  # TFDS's default, in the store
                download_config.manual_dir = f"{self._store_download_dir}/manual"
            download_dir = scratch.root(os.fspath(self._data_dir_root),
                                        self.builder_config.scratch_dir)  # fmt: skip
        config_dir = os.fspath(fileio.path(os.fspath(self.data_path)).parent)
        with locking.build_lock(config_dir), compat.moved_into_store(os.fspath(self.data_path)):
            if _moved_in_part(os.fspath(self.data_path)):
                # TFDS would take the folder for a built dataset; told to overwrite it, it
                # builds again (TensorFlow's client caches what it saw of the folder: deleting
                # it behind TFDS's back left TFDS 4.9.7 reusing it).
                download_config = dataclasses.replace(
                    download_config or tfds.download.DownloadConfig(),
                    download_mode=tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS,
                )
            return super().download_and_prepare(
                download_dir=download_dir, download_config=download_config, **kwargs
            )

    _store_download_dir: str | None = None

    def _download_and_prepare(self, dl_manager, download_config, **kwargs):
        if download_config.max_examples_per_split is not None:
            # Every split is checked against the release's lists, and a first build may
            # verify the archive only as it reads it to the end: a cut build proves nothing.
            raise ConsistencyError(
                f"imagenet2017/{self.builder_config.name} builds every example: "
                f"max_examples_per_split={download_config.max_examples_per_split} would keep "
                "a dataset the release's lists cannot vouch for. Build without it; to try the "
                "builder quickly, `make demo` builds a miniature release in a minute."
            )
        recorder = Recorder.for_build(self.builder_config.skip_bad_members)
        with collector.build():
            # Beam only when asked for (runner or options given): without them TFDS would
            # warn and may stop to ask a question on the terminal.
            if download_config.beam_runner or download_config.beam_options:
                prepared, written = self._beam_build(dl_manager, download_config, recorder)
            else:
                prepared, written = self._local_build(dl_manager, download_config, recorder)
            self._set_splits(written)
            self._record(prepared, recorder)
            self._check_nothing_lost(prepared, recorder)

    def _local_build(self, dl_manager, download_config, recorder: Recorder):
        """The local engine (engine/local.py) on the workers that fit this machine; its
        finished shards are linked into TFDS's folder under TFDS's names."""
        config = self.builder_config
        fit = machine.worker_count(config.workers, WORKER_BYTES, reserve_bytes=MAIN_BYTES)
        options = local.Options(
            allow_unverified=config.allow_unverified,
            decode_splits=frozenset(self._decoded_splits(("train", "validation", "test"))),
            workers=fit.count, file_format=self.info.file_format.value,
            shard_config=download_config.get_shard_config(),
            data_dir=os.fspath(self.data_dir), skip_space_check=config.skip_space_check,
            scratch_dir=self._scratch_dir(dl_manager),
        )  # fmt: skip
        plural = "es" if fit.count != 1 else ""
        print(f"imagenet2017: {fit.count} worker process{plural} ({fit.reason})", file=sys.stderr,
              flush=True)  # fmt: skip
        built = local.build(self._manual_dir(dl_manager, download_config.manual_dir), config.task,
                            self._cache_dir(dl_manager), recorder, options)  # fmt: skip
        written = {}
        for split, shards in built.shards.items():
            template = self._get_filename_template(split_name=split)
            targets = template.sharded_filepaths(num_shards=len(shards)) if shards else []
            for shard, target in zip(shards, targets, strict=True):
                fileio.link_or_copy(built.shard_file(shard), target)
            written[split] = [(s.num_examples, s.num_bytes) for s in shards]
        built.work.remove()  # the dataset holds its own links to the shards now
        return built.prepared, written

    def _beam_build(self, dl_manager, download_config, recorder: Recorder):
        """The Beam pipeline over ranges of the archives, read through their gzip index,
        each shard written by the engine under TFDS's name (beam.py)."""
        from imagenet2017_tfds import beam

        config = self.builder_config
        prepared = prepare(self._manual_dir(dl_manager, download_config.manual_dir),
                           config.task, self._cache_dir(dl_manager), config.allow_unverified,
                           recorder)  # fmt: skip
        collector.settled()
        templates = {split: self._get_filename_template(split_name=split)
                     for split in prepared.splits}  # fmt: skip
        with compat.beam_fixes(True):
            written, recorded = beam.build(
                prepared, config.task, os.path.join(self._cache_dir(dl_manager), "ranges"),
                self._decoded_splits(prepared.splits), templates, self.info.file_format.value,
                download_config.get_shard_config(), download_config.beam_runner,
                download_config.beam_options,
            )  # fmt: skip
        recorder.merge(recorded)
        return prepared, written

    def _set_splits(self, written: dict[str, list[tuple[int, int]]]) -> None:
        """The split infos of what was written: split -> (examples, bytes) of each shard."""
        self.info.set_splits(tfds.core.SplitDict([
            tfds.core.SplitInfo(
                name=split, shard_lengths=[n for n, _ in shards],
                num_bytes=sum(size for _, size in shards),
                filename_template=self._get_filename_template(split_name=split),
            )
            for split, shards in written.items()
        ]))  # fmt: skip

    def _record(self, prepared: Prepared, recorder: Recorder) -> None:
        """What the dataset's metadata.json keeps of the build: where each input came from
        and how it was verified, what was skipped, and what was kept though unlisted."""
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
        meta["skipped_members"] = [[m, f"{k}: {r}"] for m, k, r in records["problems"]]
        meta["unlisted_members"] = [m for m, k, _ in records["notices"] if k == "unlisted"]
        if recorder.problems:
            print(f"Skipped {len(records['problems'])} bad members (skip_bad_members); listed "
                  "in metadata.json under skipped_members.", flush=True)  # fmt: skip
        if meta["unlisted_members"]:
            logging.warning(
                "%d images no list names were kept (first: %s); listed in metadata.json "
                "under unlisted_members.", len(meta["unlisted_members"]), meta["unlisted_members"][0]
            )  # fmt: skip

    def _check_nothing_lost(self, prepared: Prepared, recorder: Recorder) -> None:
        """Every planned example (ImageSets-checked) must be in the written split, and every
        shard TFDS counted must be on disk."""
        skipped = recorder.problem_members()
        for split, plan in prepared.splits.items():
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

    # TFDS's generation hooks: never called, the engine writes the shards itself.
    def _split_generators(self, dl_manager):
        raise NotImplementedError

    def _generate_examples(self, **kwargs):
        raise NotImplementedError
