"""A split's examples going through spill files into the engine's shard writer
(beam.write_split), driven directly: a planned shard that gets no example (a member skipped
with skip_bad_members) leaves no gap in the shards' numbering, every example is written once,
sorted as TFDS sorts, what each shard holds comes back through the results file, and the spill
files go once it is read."""

from __future__ import annotations

import apache_beam as beam
import pytest
import tensorflow as tf
from tensorflow_datasets.core import naming
from tensorflow_datasets.core.utils import shard_utils

from imagenet2017_tfds import compat
from imagenet2017_tfds.engine import plan
from imagenet2017_tfds.engine.beam import Output, read_results, read_spilled, write_split
from imagenet2017_tfds.errors import ConsistencyError

KEYS = [f"train/n01440764/n01440764_{i}.JPEG" for i in range(40)]
# Enough planned bytes for 4 shards (TFDS: one shard per 64 MiB at least).
PLANNED_BYTES = 300 << 20


def make_output(data_dir, split: str = "train") -> Output:
    template = naming.ShardedFileTemplate(
        data_dir=data_dir, dataset_name="imagenet2017", split=split, filetype_suffix="tfrecord"
    )
    hkeys, layout = plan.split_layout(
        compat.Hasher(split),
        KEYS,
        [PLANNED_BYTES // len(KEYS)] * len(KEYS),
        shard_utils.ShardConfig(),
    )
    return Output(split, layout, template, "tfrecord", str(data_dir / f"{split}-shards.json"))


def example(index: int) -> bytes:
    feature = {"index": tf.train.Feature(int64_list=tf.train.Int64List(value=[index]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def hashed(key: str) -> int:
    return compat.Hasher("train").hash_key(key)


@beam.ptransform_fn
def created(root, pairs):
    """(hashed key, example) pairs made by a function, as the pipeline's ranges yield them:
    hashed keys are 128-bit integers, which the coder Beam infers from a Create's values
    (64-bit integers) cannot hold."""
    return root | beam.Create(range(len(pairs))) | beam.Map(pairs.__getitem__)


def test_spilled_examples_make_consecutive_shards_of_every_example(tmp_path):
    output = make_output(tmp_path)
    assert output.layout.num_shards == 4
    # Leave out every example of the planned shard 2, as skipped members would.
    kept = [(i, key) for i, key in enumerate(KEYS) if output.layout.shard_of(hashed(key)) != 2]
    assert 0 < len(kept) < len(KEYS)
    with beam.Pipeline() as pipeline:
        examples = pipeline | created([(hashed(key), example(i)) for i, key in kept])
        write_split(examples, output)
    written = read_results(output)
    assert len(written) == 3 and sum(n for n, _ in written) == len(kept)
    files = sorted(tmp_path.glob("imagenet2017-train.tfrecord-*"))
    assert [f.name[-14:] for f in files] == [f"{k:05d}-of-00003" for k in range(3)]
    records = [r.numpy() for f in files for r in tf.data.TFRecordDataset(str(f))]
    indices = [
        tf.train.Example.FromString(r).features.feature["index"].int64_list.value[0]
        for r in records
    ]
    assert sorted(indices) == [i for i, _ in kept]
    # Within and across shards, in the order of the hashed keys, as TFDS writes them.
    order = [hashed(KEYS[i]) for i in indices]
    assert order == sorted(order)
    assert sum(size for _, size in written) == sum(len(r) for r in records)
    assert not list(tmp_path.glob(".spill-*")) and not (tmp_path / "train-shards.json").exists()


def test_a_duplicate_key_stops_the_shard(tmp_path):
    output = make_output(tmp_path)
    twice = [(hashed(KEYS[0]), example(0)), (hashed(KEYS[0]), example(1))]
    with (
        pytest.raises(Exception, match="out of hashed-key order or a duplicate key"),
        beam.Pipeline() as pipeline,
    ):
        write_split(pipeline | created(twice), output)


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
