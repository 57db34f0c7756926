"""When each bucket the stream filled may be freed, for a local build: disk stays near the
archive's size because a bucket goes as soon as nothing still to write reads it.

- A bucket read by no shard still to write is freed when the build starts writing (every
  shard reading it was written by an earlier run).
- A bucket read by one shard still to write alone is freed on that shard's way, once a
  checkpoint covers the last item reading it (a TFRecord shard, which can be continued):
  its `Frees` schedule, applied by `Due` in the job.
- Any other bucket is freed once the last shard reading it is written and recorded.
A bucket freed, yet read by a shard still to write (its record or file damaged since, or the
folder changed by another program), stops the build with `BucketGone`: `with_buckets_again`
discards the work folder and builds once more from the archives.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from imagenet2017_tfds.engine import buckets
from imagenet2017_tfds.engine import work as work_lib
from imagenet2017_tfds.internal import fileio
from imagenet2017_tfds.internal.problems import Recorder


class BucketGone(Exception):
    """A bucket a shard still to write reads is gone: freed once that shard was written and
    recorded, whose record or file was then damaged (or deleted by another program)."""


def with_buckets_again(work: work_lib.WorkFolder, recorder: Recorder, build: Callable[[], object]):
    """`build()`, and once more from the archives (the work folder discarded, what it
    recorded forgotten) if a bucket it needs is gone."""
    recorded = list(recorder.problems), list(recorder.notices)
    try:
        return build()
    except BucketGone as gone:  # a shard to write again after its buckets were freed
        fileio.notice(work.root, str(gone), "it is discarded and the archives read again")
        work.remove()
        recorder.problems[:], recorder.notices[:] = recorded
        return build()


def item_buckets(entries: Iterable, in_buckets: Iterable[bool]) -> tuple[str | None, ...]:
    """The bucket each item's bytes are in (None: read from its source, a tree)."""
    return tuple(
        buckets.file_name(buckets.unpack_place(e.offset)[0]) if bucketed else None
        for e, bucketed in zip(entries, in_buckets, strict=True)
    )


@dataclass
class Reads:
    """A shard and the bucket of each of its items."""

    split: str
    shard: int
    buckets: tuple[str | None, ...]
    start: int = 0  # items an earlier run wrote (a checkpoint)

    def needs(self) -> set[str]:
        """The buckets the items still to write read."""
        return {name for name in self.buckets[self.start :] if name is not None}


class Lifecycle:
    """The buckets of a build's shards still to write (`todo`), counted by reader."""

    def __init__(self, work: work_lib.WorkFolder, todo: list[Reads]):
        self.work = work
        self.users: Counter = Counter()  # bucket -> shards still to write that read it
        for r in todo:
            self.users.update(r.needs())

    def check_present(self, todo: list[Reads]) -> None:
        for r in todo:
            for name in sorted(r.needs()):
                if not os.path.exists(os.path.join(self.work.buckets, name)):
                    raise BucketGone(
                        f"bucket {name} is gone, but {r.split} shard {r.shard}, which reads "
                        "it, is not written (or its file or record is damaged)"
                    )

    def frees(self, r: Reads) -> work_lib.Frees | None:
        """The buckets read by `r` alone, each with the number of items after which no
        item reads it, short of the last (freed with the shard)."""
        alone = {name for name in r.needs() if self.users[name] == 1}
        last = {name: k + 1 for k, name in enumerate(r.buckets) if name in alone}
        after: dict[int, list[str]] = {}
        for name, items in last.items():
            if r.start < items < len(r.buckets):
                after.setdefault(items, []).append(name)
        if not after:
            return None
        return work_lib.Frees(
            work=self.work.root,
            shard=r.shard,
            after=tuple((k, tuple(sorted(names))) for k, names in sorted(after.items())),
        )

    def free_unread(self, every: Iterable[Reads]) -> None:
        """Frees the buckets of `every` shard that no shard still to write reads."""
        for r in every:
            for name in set(r.buckets) - {None}:
                if self.users[name] == 0:
                    self.work.free_bucket(name)

    def written(self, r: Reads) -> list[str]:
        """`r` is written: the buckets no shard still to write reads now (freed once its
        record is kept)."""
        freed = []
        for name in r.needs():
            self.users[name] -= 1
            if self.users[name] == 0:
                freed.append(name)
        return freed


class Due:
    """A job's `Frees` schedule as it writes: the buckets that may go once the items before
    item `index` are on disk."""

    def __init__(self, frees: work_lib.Frees | None):
        self.after = list(frees.after) if frees else []

    def __bool__(self) -> bool:
        return bool(self.after)

    def at(self, index: int) -> list[str]:
        names: list[str] = []
        while self.after and self.after[0][0] <= index:  # every item before `index` written
            names += self.after.pop(0)[1]
        return names
