"""A built dataset's numbers from its shards: each shard read once, in worker processes when
there are several shards, each giving its own SplitNumbers, merged in shard order.

Workers are spawned, not forked (the caller may hold TensorFlow's threads); they import
neither TensorFlow nor TFDS (reading.parse), so each starts in well under a second.
"""

from __future__ import annotations

import concurrent.futures
import functools
import multiprocessing
import os

from imagenet2017_tfds.errors import ConsistencyError, Imagenet2017Error
from imagenet2017_tfds.ilsvrc import classes, devkit, tasks
from imagenet2017_tfds.report import reading
from imagenet2017_tfds.report.numbers import SplitNumbers


def read(data_dir: str, config: str, workers: int | None = None) -> dict[str, SplitNumbers]:
    """Every split's numbers, in dataset_info.json's split order."""
    folder = reading.dataset_folder(data_dir, config)
    by_split = reading.shards(folder)
    num_classes = len(tasks.task(config).classes().wnids)
    jobs = [(shard, num_classes) for shards in by_split.values() for shard in shards]
    workers = min(workers or os.cpu_count() or 1, len(jobs))
    if workers <= 1:
        parts = [numbers_of(*job) for job in jobs]
    else:
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            parts = list(pool.map(numbers_of, *zip(*jobs, strict=True)))
    out = {split: SplitNumbers(split, num_classes) for split in by_split}
    for (shard, _), part in zip(jobs, parts, strict=True):
        out[shard.split].merge(part)
    return out


def first(data_dir: str, config: str, split: str, count: int) -> list[dict]:
    """The split's first `count` examples in stored order (reading.parse's dicts)."""
    by_split = reading.shards(reading.dataset_folder(data_dir, config))
    if split not in by_split:
        raise Imagenet2017Error(
            f"{data_dir}: imagenet2017/{config} has no split {split!r}; it has "
            f"{', '.join(by_split)}."
        )
    out = []
    for shard in by_split[split]:
        for record in reading.records(shard):
            if len(out) == count:
                return out
            out.append(reading.parse(record))
    return out


def numbers_of(shard: reading.Shard, num_classes: int) -> SplitNumbers:
    """One shard's numbers (run in a worker)."""
    numbers = SplitNumbers(shard.split, num_classes)
    # The devkit's labels apply to CLS-LOC's validation images; `add` uses them only for a
    # config whose examples carry an image label.
    truth = ground_truth_of(shard.split)
    for record in reading.records(shard):
        numbers.add(reading.parse(record), truth)
    if numbers.examples != shard.examples:
        raise ConsistencyError(
            f"{shard.path}: {numbers.examples} examples read, dataset_info.json counts "
            f"{shard.examples}. The dataset is damaged: build it again."
        )
    return numbers


def ground_truth_of(split: str) -> tuple[int, ...] | None:
    """The devkit's labels a split's numbers are checked against (None: no check)."""
    return ground_truth() if split == "validation" else None


def feed_from(
    feeding: tuple[SplitNumbers, tuple | None], path: str, split: str, end: int, where: str
) -> None:
    """Feeds `feeding` (numbers and ground truth) the records in the first `end` bytes of the
    TFRecord file at `path`; their sample places are in the shard file `where`."""
    numbers, truth = feeding
    shard = reading.Shard(split, path, "tfrecord", 0)
    for k, record in enumerate(reading.records(shard, end)):
        numbers.add(reading.parse(record), truth, (where, k))


def fill_sample(numbers: SplitNumbers, file_format: str) -> None:
    """Reads back the sampled images not kept (a shard's numbers from a record of the work
    folder) from where they were written."""
    wanted: dict[str, dict[int, list]] = {}
    for s in numbers.sample:
        if not s.image and s.where is not None:
            wanted.setdefault(s.where[0], {}).setdefault(s.where[1], []).append(s)
    for path, places in wanted.items():
        shard = reading.Shard(numbers.split, path, file_format, 0)
        for k, record in enumerate(reading.records(shard)):
            for s in places.pop(k, ()):
                s.image = reading.parse(record)["image"]
            if not places:
                break
        if places:
            raise ConsistencyError(
                f"{path}: holds fewer examples than the build recorded writing there (record "
                f"{min(places)} is missing). The work folder was changed during the build: "
                "build again."
            )


@functools.cache
def ground_truth() -> tuple[int, ...]:
    """Validation image i's label (sorted-WNID order) at position i-1."""
    lst = classes.clsloc()
    return tuple(lst.index(w) for w in devkit.clsloc_ground_truth())
