"""Where the local engine works (its buckets and shards being written) when the data is in a
store: always a local folder, never a path made by joining a URL with os.path.

The cache dir (`--download_dir`/imagenet2017) when it is local, as before; else
`DATA_DIR/downloads/imagenet2017` when the data dir is local; else the folder the user set
(the `scratch_dir` option or IMAGENET2017_SCRATCH), or `~/.cache/imagenet2017-tfds/scratch`.
One set explicitly wins. It is kept between runs, so a killed build resumes from it.
"""

from __future__ import annotations

import os

from imagenet2017_tfds.errors import StorageError
from imagenet2017_tfds.internal import fileio

ENV_VAR = "IMAGENET2017_SCRATCH"


def default() -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(cache, "imagenet2017-tfds", "scratch")


def folder(cache_dir: str, data_dir: str, option: str | None) -> str:
    """Where the work folders of a build with this cache dir go."""
    if fileio.is_local(cache_dir) and not (option or os.environ.get(ENV_VAR)):
        return cache_dir
    return os.path.join(root(data_dir, option), "imagenet2017")


def root(data_dir: str, option: str | None) -> str:
    """The local folder standing for a download dir in a store."""
    for chosen, how in ((option, "the scratch_dir option"), (os.environ.get(ENV_VAR), ENV_VAR)):
        if chosen:
            if not fileio.is_local(chosen):
                raise StorageError(
                    f"{how} is {chosen}: the build's work folder must be on a local disk (its "
                    "buckets are written and read at random). Set it to a local folder."
                )
            return os.path.abspath(os.path.expanduser(chosen))
    if fileio.is_local(data_dir):
        return os.path.join(data_dir, "downloads")
    return default()
