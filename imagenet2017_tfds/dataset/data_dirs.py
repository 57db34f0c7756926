"""Where a build reads and writes, for the builder: the data dir (refused when TensorFlow
cannot write it; in a store, a dataset moved in part is built again), the download dir (in a
store, it holds the package's caches only: TFDS's download manager gets a local folder), the
package's cache dir, the manual dir and the local engine's scratch folder."""

from __future__ import annotations

import dataclasses
import os

import tensorflow_datasets as tfds

from imagenet2017_tfds.errors import MissingInputError, StorageError
from imagenet2017_tfds.ilsvrc import inputs
from imagenet2017_tfds.internal import fileio, scratch, store


@dataclasses.dataclass
class DownloadConfig(tfds.download.DownloadConfig):
    """TFDS's, carrying to `_download_and_prepare` the download dir the build was given when
    it is in a store (TFDS's download manager then works in a local one)."""

    store_download_dir: str | None = None


def refuse_data_dir(data_dir: str) -> None:
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
        if scheme.startswith("s3")
        else f"TensorFlow has no file system for {scheme}://"
    )
    raise StorageError(
        f"data dir {data_dir}: TFDS writes and reads the dataset's records through TensorFlow, "
        f"and {why}. Build into a local or gs:// data dir, then copy the dataset's folder "
        f"(imagenet2017/<config>/<version>) there; {scheme}:// works for --manual_dir and "
        "--download_dir."
    )


def made_config_folder(data_dir, name: str, config) -> bool:
    """TFDS before 4.9.10 lists the config folder's versions through TensorFlow when a
    builder is made, and catches only OSError: TensorFlow's NotFoundError for a config folder
    not yet in a bucket escapes. The folder is made, as TFDS would (False: the data dir is
    local, the error is another)."""
    import tensorflow as tf

    if data_dir is None or fileio.is_local(os.fspath(data_dir)):
        return False
    config_name = config if isinstance(config, str) else getattr(config, "name", None)
    if config_name is None and isinstance(config, dict):
        config_name = config.get("name")
    tf.io.gfile.makedirs(f"{os.fspath(data_dir)}/{name}/{config_name}")
    return True


def moved_in_part(version_dir: str) -> bool:
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


def for_build(
    download_dir, download_config, data_dir_root: str, scratch_option: str | None, version_dir: str
):
    """(download dir, download config) to hand TFDS: a download dir in a store replaced by a
    local one (the store's kept in the config, with the manual dir TFDS would default to); a
    dataset moved in part into a store rebuilt (TFDS would take the folder for a built
    dataset; told to overwrite it, it builds again: TensorFlow's client caches what it saw of
    the folder, and deleting it behind TFDS's back left TFDS 4.9.7 reusing it)."""
    given = download_config or tfds.download.DownloadConfig()
    config = DownloadConfig(
        **{f.name: getattr(given, f.name) for f in dataclasses.fields(given) if f.init}
    )
    if download_dir is not None and not fileio.is_local(os.fspath(download_dir)):
        config.store_download_dir = os.fspath(download_dir)
        if config.manual_dir is None:  # TFDS's default, in the store
            config.manual_dir = f"{config.store_download_dir}/manual"
        download_dir = scratch.root(data_dir_root, scratch_option)
    if moved_in_part(version_dir):
        config.download_mode = tfds.download.GenerateMode.REUSE_CACHE_IF_EXISTS
    return download_dir, config


def cache_dir(dl_manager, download_config) -> str:
    """The package's caches (catalogs, gzip indexes, digests' verdicts), in the download dir,
    which may be in a store."""
    store_dir = getattr(download_config, "store_download_dir", None)
    return os.fspath(fileio.path(store_dir or os.fspath(dl_manager.download_dir)) / "imagenet2017")


def manual_dir(dl_manager, download_config, dataset: str, parts) -> str:
    """The manual folder: the download config's when it is in a store, which TFDS's own check
    would look at through TensorFlow (no s3://) and inputs.locate checks with its own errors;
    else TFDS's, with its default."""
    given = download_config.manual_dir
    if given is not None and not fileio.is_local(os.fspath(given)):
        return os.fspath(given)
    try:
        return dl_manager.manual_dir
    except AssertionError as e:  # TFDS's own check: a missing or empty folder
        needed = " and ".join(inputs.archive_names(p) for p in parts)
        raise MissingInputError(
            f"{dataset} needs {needed} (or the tree extracted from them) in the manual folder: {e}"
        ) from None
