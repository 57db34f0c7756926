"""TFDS's Beam writer with its examples going through spill files (compat.PlannedBeamWriter,
beam.write_through_files), driven directly: a planned shard that gets no example (a member
skipped with skip_bad_members) leaves no gap in the shards' numbering, every example is written
once, sorted as TFDS sorts, and the spill files go when the split is finalized."""

from __future__ import annotations

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_serializer, file_adapters, naming
from tensorflow_datasets.core.utils import shard_utils

from imagenet2017_tfds import compat
from imagenet2017_tfds.beam import read_spilled
from imagenet2017_tfds.errors import ConsistencyError
from imagenet2017_tfds.writing import CanonicalExampleWriter

KEYS = [f"train/n01440764/n01440764_{i}.JPEG" for i in range(40)]
# Enough planned bytes for 4 shards (TFDS: one shard per 64 MiB at least).
PLANNED_BYTES = 300 << 20


def make_writer(data_dir):
    features = tfds.features.FeaturesDict({"index": np.int64})
    template = naming.ShardedFileTemplate(
        data_dir=data_dir, dataset_name="imagenet2017", split="train", filetype_suffix="tfrecord"
    )
    serializer = example_serializer.ExampleSerializer(features.get_serialized_info())
    example_writer = CanonicalExampleWriter(file_format=file_adapters.FileFormat.TFRECORD)
    return compat.writer_lib.BeamWriter(
        serializer=serializer, filename_template=template, hash_salt="train",
        disable_shuffling=False, example_writer=example_writer,
        shard_config=shard_utils.ShardConfig(),
    )  # fmt: skip


def test_spilled_examples_make_consecutive_shards_of_every_example(tmp_path):
    with compat.planned_beam_writer() as plans:
        plans["train"] = (KEYS, PLANNED_BYTES)
        writer = make_writer(tmp_path)
        assert isinstance(writer, compat.PlannedBeamWriter)
        assert writer._layout.num_shards == 4
        # Leave out every example of the planned shard 2, as skipped members would.
        kept = [(i, key) for i, key in enumerate(KEYS)
                if writer.shard_of(writer._hasher.hash_key(key)) != 2]  # fmt: skip
        assert 0 < len(kept) < len(KEYS)
        with beam.Pipeline() as pipeline:
            examples = pipeline | beam.Create([(key, {"index": i}) for i, key in kept])
            writer.write_from_pcollection(examples)
        shard_lengths, total_size = writer.finalize()
    assert compat.writer_lib.BeamWriter is not compat.PlannedBeamWriter  # undone after the build
    assert len(shard_lengths) == 3 and sum(shard_lengths) == len(kept)
    files = sorted(tmp_path.glob("imagenet2017-train.tfrecord-*"))
    assert [f.name[-14:] for f in files] == [f"{k:05d}-of-00003" for k in range(3)]
    records = [r.numpy() for f in files for r in tf.data.TFRecordDataset(str(f))]
    indices = [tf.train.Example.FromString(r).features.feature["index"].int64_list.value[0]
               for r in records]  # fmt: skip
    assert sorted(indices) == [i for i, _ in kept]
    # Within and across shards, in the order of the hashed keys, as TFDS writes them.
    hashed = [writer._hasher.hash_key(KEYS[i]) for i in indices]
    assert hashed == sorted(hashed)
    assert total_size == sum(len(r) for r in records)
    assert not list(tmp_path.glob(".spill-*"))


def test_a_truncated_spill_file_is_named_with_what_was_expected_and_found(tmp_path):
    """A spill file cut short after its bundle was written (another program, a full disk):
    reading a shard's examples back stops with the file, the offset and the byte counts."""
    spill = tmp_path / "bundle.spill"
    spill.write_bytes(b"first" + b"second!")
    records = [(7, 0, 5), (3, 5, 7)]  # (hashed key, offset, length)
    assert read_spilled([(str(spill), records)]) == [(7, b"first"), (3, b"second!")]
    with open(spill, "r+b") as f:
        f.truncate(9)
    with pytest.raises(ConsistencyError) as e:
        read_spilled([(str(spill), records)])
    assert str(e.value) == (
        f"{spill}: expected 7 bytes at offset 5, found 4: a spill file of this build was "
        "truncated or replaced; build again."
    )
