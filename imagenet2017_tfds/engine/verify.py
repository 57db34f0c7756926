"""The written dataset against the plan, once every executor is done: every planned example
(ImageSets-checked) is in its split, and every shard TFDS counted is on disk. TensorFlow
lists and reads the shards here, as TFDS will."""

from __future__ import annotations

import os

from imagenet2017_tfds.engine.prepare import Prepared
from imagenet2017_tfds.errors import ConsistencyError
from imagenet2017_tfds.internal.problems import Recorder


def shard_files(data_dir: str, name: str, split: str, suffix: str) -> list[str]:
    """The split's shard files as TFDS will read them: listed through TensorFlow's file
    systems, the client TFDS made the folder with and reads the dataset through."""
    import tensorflow as tf

    n = "[0-9]" * 5
    pattern = f"{name}-{split}.{suffix}-{n}-of-{n}"  # TFDS's shard names, nothing else
    return tf.io.gfile.glob(os.path.join(data_dir, pattern))


def written_file_names(files: list[str], file_format: str) -> set[str] | None:
    """The file names in a split's TFRecord shards (None for other formats)."""
    import tensorflow as tf
    from tensorflow.core.example import example_pb2

    if file_format != "tfrecord":
        return None
    names = set()
    for record in tf.data.TFRecordDataset(files):
        ex = example_pb2.Example.FromString(record.numpy())
        names.add(ex.features.feature["file_name"].bytes_list.value[0].decode())
    return names


def nothing_lost(
    dataset: str,
    data_dir: str,
    counted: dict[str, list[int]],
    prepared: Prepared,
    recorder: Recorder,
    file_format: str,
    suffix: str,
) -> None:
    """`dataset`: name/config, in messages; `counted`: split -> TFDS's shard lengths."""
    name = dataset.split("/")[0]
    skipped = recorder.problem_members()
    for split, plan in prepared.splits.items():
        lengths = counted[split]
        files = shard_files(data_dir, name, split, suffix)
        if len(files) != len(lengths):
            raise ConsistencyError(
                f"{dataset} {split}: TFDS counted {len(lengths)} shards of {sum(lengths)} "
                f"examples, {len(files)} shard files are in {data_dir}. The build is incomplete "
                "and was not kept: report this as a bug."
            )
        expected = sum(1 for _, item in plan.items if item.path not in skipped)
        written = sum(lengths)
        if written == expected:
            continue
        names = written_file_names(files, file_format)
        missing = next(
            (
                item.path
                for _, item in plan.items
                if item.path not in skipped and names is not None and item.file_name not in names
            ),
            "(not identified)",
        )
        raise ConsistencyError(
            f"{dataset} {split}: {written} examples written, {expected} planned from the "
            "release's lists; first missing member: "
            f"{missing}. The build is incomplete and was not kept: report this as a bug."
        )
