"""How examples are written: wire.py's bytes against protobuf's own deterministic
serialization, the serializer against TFDS's on our real features, and a build whose
shuffle spills to disk against one that does not."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagenet2017_tfds import wire
from tests import readback
from tests.test_build import api_build, check_examples

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
int64s = st.integers(-(2**63), 2**63 - 1)
floats32 = st.floats(width=32, allow_nan=False)
features = st.dictionaries(
    names,
    st.one_of(
        st.tuples(st.just(wire.BYTES), st.lists(st.binary(max_size=300), max_size=4)),
        st.tuples(st.just(wire.FLOAT), st.lists(floats32, max_size=6)),
        st.tuples(st.just(wire.INT64), st.lists(int64s, max_size=6)),
    ),
    max_size=6,
)


def _protobuf(feats: dict) -> bytes:
    from tensorflow.core.example import example_pb2, feature_pb2

    ex = example_pb2.Example()
    ex.features.SetInParent()  # present even when empty, as TFDS builds it
    for name, (kind, values) in feats.items():
        f = ex.features.feature[name]
        if kind == wire.BYTES:
            f.bytes_list.value.extend(values)
            f.bytes_list.SetInParent()
        elif kind == wire.FLOAT:
            f.float_list.CopyFrom(feature_pb2.FloatList(value=values))
        else:
            f.int64_list.CopyFrom(feature_pb2.Int64List(value=values))
    return ex.SerializeToString(deterministic=True)


@settings(max_examples=300, deadline=None)
@given(features)
def test_wire_example_equals_protobuf_deterministic_bytes(feats):
    ours = wire.example({n: wire.feature(k, v) for n, (k, v) in feats.items()})
    assert ours == _protobuf(feats)


def test_wire_varints_at_the_edges():
    for kind, values in [(wire.INT64, [0, 1, 127, 128, 2**63 - 1, -1, -(2**63)]),
                         (wire.BYTES, [b"", b"x" * 127, b"y" * 128, b"z" * 70000])]:  # fmt: skip
        assert wire.example({"v": wire.feature(kind, values)}) == _protobuf({"v": (kind, values)})


# Our two configs' real features, and examples drawn for them.
def _features(config, data_dir):
    import tensorflow_datasets as tfds

    import imagenet2017_tfds  # noqa: F401  (registers the builder)

    return tfds.builder(f"imagenet2017/{config}", data_dir=str(data_dir)).info.features


boxes = st.lists(
    st.tuples(*[st.floats(0, 1, width=32)] * 4).map(
        lambda b: np.array([min(b[0], b[2]), min(b[1], b[3]), max(b[0], b[2]), max(b[1], b[3])])
    ),
    max_size=5,
)


@st.composite
def raw_examples(draw, config):
    n_labels = 1000 if config == "clsloc" else 200
    objs = draw(boxes)
    labels = [draw(st.integers(0, n_labels - 1)) for _ in objs]
    ex = {
        "image": draw(st.binary(min_size=1, max_size=2000)),
        "file_name": draw(names),
        "annotated": draw(st.booleans()),
        "objects": {"bbox": objs, "label": labels},
    }
    if config == "clsloc":
        ex.update(label=draw(st.integers(-1, n_labels - 1)), blacklisted=draw(st.booleans()))
    else:
        ex["objects"].update(
            subcategory=[draw(names) for _ in objs], blacklisted=[draw(st.booleans()) for _ in objs]
        )
    return ex


@pytest.mark.parametrize("config", ["clsloc", "det"])
def test_serializer_gives_tfds_examples_in_deterministic_bytes(config, tmp_path):
    from tensorflow.core.example import example_pb2
    from tensorflow_datasets.core import example_serializer

    from imagenet2017_tfds.writing import WireSerializer

    feats = _features(config, tmp_path)
    info = feats.get_serialized_info()
    reference, ours = example_serializer.ExampleSerializer(info), WireSerializer(info)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(raw_examples(config))
    def check(raw):
        encoded = feats.encode_example(raw)
        want = example_pb2.Example.FromString(reference.serialize_example(encoded))
        assert ours.serialize_example(encoded) == want.SerializeToString(deterministic=True)

    check()


def test_serializer_names_the_feature_it_cannot_write(tmp_path):
    from imagenet2017_tfds.writing import WireSerializer

    info = _features("clsloc", tmp_path).get_serialized_info()
    bad = {"image": b"x", "file_name": "a", "annotated": 1, "label": "seven", "blacklisted": 0,
           "objects": {"bbox": np.zeros((0, 4), np.float32), "label": np.zeros(0, np.int64)}}  # fmt: skip
    with pytest.raises(ValueError, match="`label`"):
        WireSerializer(info).serialize_example(bad)


@pytest.mark.parametrize("config", ["clsloc", "det"])
def test_written_records_are_protobufs_canonical_bytes(cli_builds, config):
    from tensorflow.core.example import example_pb2

    records = readback.records(cli_builds, config)
    assert sum(map(len, records.values())) > 10
    for split, recs in records.items():
        for r in recs:
            canonical = example_pb2.Example.FromString(r).SerializeToString(deterministic=True)
            assert r == canonical, split


def test_a_shuffle_that_spills_to_disk_writes_the_same_bytes(
    tarball_release, cli_builds, tmp_path, monkeypatch
):
    from tensorflow_datasets.core import shuffle

    from imagenet2017_tfds import writing

    spilled = []
    add = writing.LocalBucket.add
    monkeypatch.setattr(writing, "SHUFFLE_BUFFER_BYTES", 1)  # spill from the second example
    monkeypatch.setattr(writing.LocalBucket, "add", lambda b, *a: (spilled.append(1), add(b, *a)))
    api_build(tarball_release, "clsloc", tmp_path, monkeypatch)
    assert len(spilled) == sum(readback.splits(tmp_path, "clsloc").values())  # all spilled
    check_examples(tmp_path, tarball_release, "clsloc")
    assert readback.shard_bytes(tmp_path, "clsloc") == readback.shard_bytes(cli_builds, "clsloc")
    # TFDS's own settings are back.
    assert shuffle.MAX_MEM_BUFFER_SIZE == 1000 << 20 and shuffle._Bucket is not writing.LocalBucket


def test_example_writer_puts_any_record_in_canonical_form(tmp_path):
    import tensorflow as tf
    from tensorflow_datasets.core import file_adapters

    from imagenet2017_tfds.writing import CanonicalExampleWriter

    feats = {"b": wire.feature(wire.INT64, [7]), "a": wire.feature(wire.BYTES, [b"x"])}
    entries = [wire.example({name: feats[name]})[2:] for name in ("b", "a")]  # strip header
    reordered = wire._field(1, b"".join(entries))  # valid protobuf, map not in sorted order
    canonical = wire.example(feats)
    assert reordered != canonical and len(reordered) == len(canonical)
    path = tmp_path / "x.tfrecord"
    writer = CanonicalExampleWriter(file_format=file_adapters.FileFormat.TFRECORD)
    writer.write(path, [(1, reordered)])
    assert [r.numpy() for r in tf.data.TFRecordDataset(str(path))] == [canonical]
