"""A build of the miniature release in its own process, killed (SIGKILL, no clean-up) at a
chosen point, as power loss or the OOM killer would stop it; or one of its workers killed
in the middle of its range; or run to the end, refusing to read the archive (a rerun that
must resume past the stream).

    python -m tests.killed_build MANUAL DATA POINT   (POINT: stream, streamed, shards,
                                                       checkpoint, worker_checkpoint,
                                                       worker, uploaded, moving, none,
                                                       no_read)
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from imagenet2017_tfds.engine import buckets


def _die():
    os.kill(os.getpid(), signal.SIGKILL)


class DyingBuckets(buckets.Buckets):
    """The buckets as a worker process reads them (a job carries them pickled), except that
    the worker is killed after the second image of its range."""

    def __init__(self, folder: str, name: str):
        super().__init__(folder, name)
        self.build_pid = os.getpid()

    def read(self, entries):
        for k, item in enumerate(super().read(entries)):
            if k == 2 and os.getpid() != self.build_pid:
                _die()
            yield item


class BucketsDyingAfterACheckpoint(buckets.Buckets):
    """The buckets as a worker process reads them, except that the worker is killed once the
    shard it writes has a checkpoint on disk (waited for from the third image of its range
    on: by then one has been taken, the buckets being many), before the shard is complete."""

    def __init__(self, folder: str, name: str):
        super().__init__(folder, name)
        self.build_pid = os.getpid()

    def read(self, entries):
        for k, item in enumerate(super().read(entries)):
            yield item
            if k >= 2 and os.getpid() != self.build_pid:
                record = _checkpoint_of_the_shard_being_written()
                for _ in range(600):
                    if os.path.exists(record):
                        _die()
                    time.sleep(0.05)


def _checkpoint_of_the_shard_being_written() -> str:
    """The checkpoint record of the shard file this process has open (work.Work's names)."""
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.endswith(".tfrecord.partial"):
                return target.removesuffix(".tfrecord.partial") + ".partial.json"
    raise AssertionError("no shard being written in this process")


def main(manual: str, data: str, point: str) -> None:
    import tensorflow_datasets as tfds

    import imagenet2017_tfds
    from imagenet2017_tfds.engine import local, stream, work

    if point == "stream":  # in the middle of the archive: some images in buckets
        real_add, count = buckets.Store.add, [0]

        def add(self, *args):
            count[0] += 1
            if count[0] == 12:
                _die()
            return real_add(self, *args)

        buckets.Store.add = add
    elif point == "streamed":  # every archive's stream and digest done and recorded, no shard
        real_keep_streams = local._keep_streams

        def keep_streams(*args):
            real_keep_streams(*args)
            _die()

        local._keep_streams = keep_streams
    elif point == "shards":  # one shard written and recorded, the others not
        real_keep = work.Work.keep_shard

        def keep_shard(self, *args):
            real_keep(self, *args)
            _die()

        work.Work.keep_shard = keep_shard
    elif point == "checkpoint":  # a shard partly written: its first checkpoint on disk and
        from imagenet2017_tfds.engine import jobs  # the buckets behind it freed

        real_checkpoint = jobs.keep_checkpoint
        buckets.BUCKET_BYTES = 2_000  # 2**5 buckets a split: a shard frees some on its way

        def keep_checkpoint(*args):
            real_checkpoint(*args)
            _die()

        jobs.keep_checkpoint = keep_checkpoint
    elif point == "worker_checkpoint":  # a worker killed in a shard it checkpointed
        from tests.killed_build import BucketsDyingAfterACheckpoint as pickled_by_name

        buckets.BUCKET_BYTES = 2_000
        buckets.Buckets = pickled_by_name
    elif point == "worker":  # by its module's name: a worker's __main__ is not this module
        from tests.killed_build import DyingBuckets as pickled_by_name

        buckets.Buckets = pickled_by_name
    elif point == "uploaded":  # every shard written, the first copied into the data dir
        from imagenet2017_tfds import fileio

        real_link_or_copy = fileio.link_or_copy

        def link_or_copy(*args):
            real_link_or_copy(*args)
            _die()

        fileio.link_or_copy = link_or_copy
    elif point == "moving":  # the dataset finished, its first object copied into place
        from imagenet2017_tfds import store

        real_copy = store.StorePath.copy

        def copy(self, *args, **kwargs):
            real_copy(self, *args, **kwargs)
            if "/incomplete." in self.url:
                _die()

        store.StorePath.copy = copy
    elif point == "no_read":

        def refuse(*args, **kwargs):
            raise AssertionError("the archive was read again")

        stream.read_once = refuse
    assert local.stream is stream
    # One worker: the shards are written in this process, where the kill point is set.
    workers = 1 if point == "checkpoint" else 2
    config = imagenet2017_tfds.Imagenet2017Config(name="clsloc", workers=workers)
    builder = tfds.builder("imagenet2017", config=config, data_dir=data)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual))
    print("built", builder.info.splits["train"].num_examples)


if __name__ == "__main__":
    main(*sys.argv[1:])
