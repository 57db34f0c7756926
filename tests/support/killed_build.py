"""A build of clsloc in a process of its own, stopped where the environment's fault points say
(IMAGENET2017_FAULTS, imagenet2017_tfds/internal/faults.py): killed (SIGKILL, no clean-up) as
power loss or the OOM killer would stop it, in the build's process or in a worker; or a rerun
with `archive-read:fail`, which must finish without reading the archive again.

    IMAGENET2017_FAULTS=checkpoint-kept:kill python -m tests.support.killed_build \\
        MANUAL DATA [WORKERS] [small_buckets]

WORKERS (default 2): 1 writes the shards in the build's process. `small_buckets`: 2**7
buckets a split of the miniature release (its `bucket-bytes` point armed), so that a shard
frees some on its way.
"""

from __future__ import annotations

import sys


def main(manual: str, data: str, workers: str = "2", *options: str) -> None:
    import contextlib

    import tensorflow_datasets as tfds

    import imagenet2017_tfds
    from imagenet2017_tfds.internal import faults

    config = imagenet2017_tfds.Imagenet2017Config(name="clsloc", workers=int(workers))
    builder = tfds.builder("imagenet2017", config=config, data_dir=data)
    small = "small_buckets" in options
    with faults.armed("bucket-bytes", lambda: 2_000) if small else contextlib.nullcontext():
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(manual_dir=manual)
        )
    print("built", builder.info.splits["train"].num_examples)


if __name__ == "__main__":
    main(*sys.argv[1:])
