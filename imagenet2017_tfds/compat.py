"""Every use of a private name of TFDS or Apache Beam, fenced here and checked at import.

TFDS and Beam offer no public hook for what these do:
- hash an example's key, lay out the shards and serialize an example exactly as TFDS's own
  writers do (`Hasher`, `get_bucket_number`, `ExampleSerializer`), and write a shard in a
  format other than TFRecord (`file_adapter`): every executor of the engine writes its shards
  itself, with TFDS's bytes;
- skip TFDS's metadata-bucket lookup, which leaves an empty temporary folder per builder;
- work around Beam's FnApiRunner losing a bundle's input (`beam_fixes`);
- move a finished dataset into a data dir in a store in an order a reader can trust
  (`moved_into_store`).
Each name is checked when this module is imported (Beam's when a Beam build starts): a name
missing or of another shape raises `CompatError` naming the library's version and what
changed, before any build begins, rather than failing silently mid-build. Patches that change
a process-wide setting are applied for one build (`moved_into_store`, `beam_fixes`) and
undone after it. Nothing here loads TensorFlow (the engine's worker processes import it), and
nothing here imports the engine.
"""

from __future__ import annotations

import contextlib
import inspect
import os

import tensorflow_datasets as tfds
from tensorflow_datasets.core import (
    constants,
    dataset_builder,
    dataset_info,
    example_serializer,
    file_adapters,
    hashing,
    shuffle,
)
from tensorflow_datasets.core import utils as tfds_utils

from imagenet2017_tfds.errors import Imagenet2017Error
from imagenet2017_tfds.internal import fileio, store


class CompatError(Imagenet2017Error):
    """A library changed a private name this package relies on."""


def _params(obj, name: str) -> list[str] | None:
    fn = getattr(obj, name, None)
    return list(inspect.signature(fn).parameters) if callable(fn) else None


def _tfds_problems() -> list[str]:
    """What changed in TFDS among the names this module uses; empty when all is as expected."""
    builder = tfds.core.GeneratorBasedBuilder
    expected = [
        # engine/shards.py lays out every executor's shards with it, as TFDS's Beam writer does.
        (
            _params(shuffle, "get_bucket_number") == ["hkey", "num_buckets", "max_hkey"],
            "shuffle.get_bucket_number(hkey, num_buckets, max_hkey) changed",
        ),
        # engine/stream.py hashes each key as TFDS's writers do (salted by the split's name).
        (
            _params(hashing.Hasher, "__init__") == ["self", "salt"]
            and _params(hashing.Hasher, "hash_key") == ["self", "key"],
            "hashing.Hasher(salt).hash_key(key) changed",
        ),
        # engine/jobs.py serializes each example with TFDS's serializer.
        (
            _params(example_serializer.ExampleSerializer, "get_tf_example") == ["self", "example"],
            "ExampleSerializer.get_tf_example(example) changed",
        ),
        # engine/shards.py writes the formats other than TFRecord through TFDS's adapters.
        (
            isinstance(getattr(file_adapters, "ADAPTER_FOR_FORMAT", None), dict)
            and (
                _params(
                    file_adapters.ADAPTER_FOR_FORMAT.get(tfds.core.FileFormat.TFRECORD),
                    "write_examples",
                )
                or []
            )[:1]
            == ["path"],
            "file_adapters.ADAPTER_FOR_FORMAT[format].write_examples(path, ...) changed",
        ),
        (
            _params(dataset_info.DatasetInfo, "initialize_from_bucket") == ["self"],
            "DatasetInfo.initialize_from_bucket() changed",
        ),
        (
            (_params(builder, "_download_and_prepare") or [])[:3]
            == ["self", "dl_manager", "download_config"],
            "GeneratorBasedBuilder._download_and_prepare(dl_manager, download_config) changed",
        ),
        (
            _params(builder, "_get_filename_template") == ["self", "split_name"],
            "DatasetBuilder._get_filename_template(split_name) changed",
        ),
        (
            _params(builder, "_create_builder_config") == ["self", "builder_config", "version"],
            "DatasetBuilder._create_builder_config(builder_config, version) changed",
        ),
        (
            _params(tfds_utils, "incomplete_dir") == ["dirname", "permissions", "overwrite"],
            "utils.incomplete_dir(dirname, permissions, overwrite) changed",
        ),
    ]
    return [what for ok, what in expected if not ok]


def refuse_changed(problems: list[str], library: str, version: str) -> None:
    if problems:
        raise CompatError(
            f"{library} {version} is not a version imagenet2017_tfds supports: "
            + "; ".join(problems)
            + ". Install a version within the bounds setup.py gives (pip install "
            "imagenet2017-tfds pulls one), or report this so the package can follow."
        )


refuse_changed(_tfds_problems(), "tensorflow-datasets", tfds.__version__)

# TFDS's own, for the engine (checked above).
Hasher = hashing.Hasher
get_bucket_number = shuffle.get_bucket_number
ExampleSerializer = example_serializer.ExampleSerializer


def file_adapter(file_format: str):
    """TFDS's writer of shard files in `file_format` (a FileFormat's value)."""
    return file_adapters.ADAPTER_FOR_FORMAT[tfds.core.FileFormat(file_format)]


# ---------------------------------------------------------------- TFDS: the final move


@contextlib.contextmanager
def moved_into_store(data_path: str):
    """For one build into a data dir in a store: TFDS writes the dataset into an `incomplete.*`
    folder beside its version folder and renames it into place when done, a single atomic
    step on a disk. A store has no rename:
    - TensorFlow's GCS client copies and deletes one object at a time in listing order, so a
      move cut short leaves dataset_info.json (which TFDS takes for a finished dataset) beside
      missing shards;
    - it asks once whether the folder is a folder and, when that listing fails (a 503), takes
      it for an object and fails with a 404 that is never retried (TensorFlow's
      GcsFileSystem::RenameFile; tests/test_object_stores.py answers 1 request in 4 with 503);
    - gcsfs (EPATH_USE_TF=false) copies in listing order too.
    Here the move is `store.move_folder`, with dataset_info.json last; the rest of TFDS's
    `incomplete_dir` is kept as it is."""
    if fileio.is_local(data_path):
        yield
        return
    saved = tfds_utils.incomplete_dir
    tfds_utils.incomplete_dir = _incomplete_dir_in_store
    try:
        # dataset_builder reaches it through a lazy proxy of the utils module.
        if getattr(dataset_builder.utils, "incomplete_dir", None) is not _incomplete_dir_in_store:
            problem = "DatasetBuilder no longer takes incomplete_dir from the utils module"
            refuse_changed([problem], "tensorflow-datasets", tfds.__version__)
        yield
    finally:
        tfds_utils.incomplete_dir = saved


@contextlib.contextmanager
def _incomplete_dir_in_store(dirname, permissions=None, overwrite=False):
    from etils import epath

    target = fileio.path(os.fspath(dirname))
    folder = target.parent / f"{constants.INCOMPLETE_PREFIX}{os.urandom(3).hex()}_{target.name}"
    # Made through TFDS's own client, as TFDS makes it: it writes there through that client.
    epath.Path(os.fspath(folder)).mkdir(parents=True, exist_ok=True)
    try:
        yield os.fspath(folder) + "/"
        target.rmtree()  # what a move cut short left
        # The version folder's marker object first, through TFDS's client: TensorFlow's client
        # caches that a folder exists (its stat cache) until it deletes the folder's marker,
        # so TFDS, overwriting a folder a cut move left, would still see it after deleting it.
        epath.Path(os.fspath(target)).mkdir(parents=True, exist_ok=True)
        store.move_folder(folder, target, last="dataset_info.json")
    finally:
        folder.rmtree()


# ---------------------------------------------------------------- TFDS: metadata


def skip_metadata_bucket(info: tfds.core.DatasetInfo) -> tfds.core.DatasetInfo:
    """imagenet2017 is never on TFDS's metadata bucket, and the lookup leaves an empty
    temporary folder behind for every builder made before a build."""
    info.initialize_from_bucket = lambda: None
    return info


# ---------------------------------------------------------------- Beam: the FnApiRunner's data loss

# The Beam releases the workaround was verified on: with it, `bench/beam_data_loss.py` delivers
# every byte and `bench/beam_proof.py`'s DirectRunner builds of the 1 GB corpus lose nothing
# (bench/beam-proof.md). To support another release, run both on it and add one line here.
BEAM_VERIFIED = ("2.77.0",)


def _beam_problems(worker_handlers, data_plane) -> list[str]:
    """What changed in Beam among the names the workaround relies on; empty when all is as
    expected. The workaround sets a module constant, so it works only while the runner reads
    that constant when it starts (GrpcServer.__init__) and 0 still selects the size-based
    stream."""
    create = getattr(getattr(data_plane, "ClosableOutputStream", None), "create", None)
    size_based = getattr(data_plane, "SizeBasedBufferingClosableOutputStream", None)
    server_init = getattr(getattr(worker_handlers, "GrpcServer", None), "__init__", None)
    try:
        probe = create(None, None, 0) if callable(create) else None  # no thread at 0
    except Exception:  # any failure means the signature changed
        probe = None
    return [
        what
        for ok, what in [
            (
                isinstance(getattr(worker_handlers, "DATA_BUFFER_TIME_LIMIT_MS", None), int),
                "fn_api_runner.worker_handlers.DATA_BUFFER_TIME_LIMIT_MS is no longer an int",
            ),
            (
                "DATA_BUFFER_TIME_LIMIT_MS"
                in getattr(getattr(server_init, "__code__", None), "co_names", ()),
                "fn_api_runner.worker_handlers.GrpcServer.__init__ no longer reads DATA_BUFFER_TIME_LIMIT_MS",
            ),
            (
                size_based is not None and isinstance(probe, size_based),
                "worker.data_plane.ClosableOutputStream.create(close, flush, 0) no longer returns a "
                "SizeBasedBufferingClosableOutputStream",
            ),
        ]
        if not ok
    ]


@contextlib.contextmanager
def beam_fixes(use_beam: bool):
    """For one Beam build: the workaround for the FnApiRunner's lost bundle input.

    Apache Beam's FnApiRunner (the DirectRunner's engine, and the local job service's) sends a
    bundle's input to a worker through the stream `data_plane.ClosableOutputStream.create`
    gives for `worker_handlers.DATA_BUFFER_TIME_LIMIT_MS` (1000). That is a
    TimeBasedBufferingClosableOutputStream: a thread flushes it every second with
    `flush_callback(get()); _clear()` under `_flush_lock`, while `write` takes no lock, so what
    the runner writes while the callback waits on the send queue is cleared unsent, and the
    worker processes a partial bundle as if complete. A limit of 0 gives the size-based stream,
    which has no flush thread: nothing races. The runner's GrpcServer reads the constant when a
    pipeline starts, in this process, so the setting reaches every runner this build starts
    (DirectRunner in any running mode); a job service in another process is not reached.
    Chosen over locking `write` by measurement (bench/beam-data-loss-report.md).
    """
    if not use_beam:
        yield
        return
    import apache_beam
    from apache_beam.runners.portability.fn_api_runner import worker_handlers
    from apache_beam.runners.worker import data_plane

    version = apache_beam.__version__
    if version not in BEAM_VERIFIED:
        raise CompatError(
            f"apache-beam {version} is installed, but imagenet2017_tfds's workaround for the "
            f"FnApiRunner's lost bundle input (DirectRunner) is verified on apache-beam "
            f"{', '.join(BEAM_VERIFIED)} only. Install one of those (pip install "
            f"apache-beam=={BEAM_VERIFIED[-1]}). Another release is supported once the "
            "project's reproduction of the loss passes on it (see compat.BEAM_VERIFIED in the "
            "source repository)."
        )
    refuse_changed(_beam_problems(worker_handlers, data_plane), "apache-beam", version)
    saved = worker_handlers.DATA_BUFFER_TIME_LIMIT_MS
    worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = 0
    try:
        yield
    finally:
        worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = saved
