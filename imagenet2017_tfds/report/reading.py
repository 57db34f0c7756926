"""A built dataset read back from its shards, whichever file format it was built in, local or in
a store, without TensorFlow: the shard files dataset_info.json lists, their records, and each
record parsed into the feature dict TFDS's numpy decoding gives, the image left as its bytes.

TFDS 4.9 reads TFRecord shards only through `as_dataset` (tf.data, TensorFlow) and ArrayRecord
shards only through `as_data_source`; the tools (report, stats, show) read both here instead.
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import struct
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

from imagenet2017_tfds.errors import Imagenet2017Error
from imagenet2017_tfds.internal import fileio

_BATCH = 256  # records read per call from an ArrayRecord shard


def dataset_folder(data_dir: str, config: str) -> fileio.Path:
    """DATA_DIR/imagenet2017/CONFIG/VERSION of the newest version built there."""
    root = fileio.path(data_dir) / "imagenet2017" / config
    versions = []
    if root.exists():
        for child in root.iterdir():
            parts = child.name.split(".")
            if all(p.isdigit() for p in parts) and (child / "dataset_info.json").exists():
                versions.append((tuple(int(p) for p in parts), child))
    if not versions:
        raise Imagenet2017Error(f"{data_dir}: no imagenet2017/{config} built there.")
    return max(versions, key=lambda v: v[0])[1]


@dataclass(frozen=True)
class Shard:
    split: str
    path: str
    file_format: str  # "tfrecord" or "array_record"
    examples: int  # as dataset_info.json counts them


def shards(folder: fileio.Path) -> dict[str, list[Shard]]:
    """Each split's shard files in order, from the folder's dataset_info.json."""
    info = fileio.read_json(folder / "dataset_info.json")
    file_format = info.get("fileFormat", "tfrecord")
    out = {}
    for split in info["splits"]:
        lengths = [int(n) for n in split.get("shardLengths", ())]
        out[split["name"]] = [
            Shard(
                split=split["name"],
                path=str(
                    folder / f"imagenet2017-{split['name']}.{file_format}-"
                    f"{i:05d}-of-{len(lengths):05d}"
                ),
                file_format=file_format,
                examples=n,
            )
            for i, n in enumerate(lengths)
        ]
    return out


def records(shard: Shard, end: int | None = None) -> Iterator[bytes]:
    """The serialized examples of one shard, in stored order, local or in a store; of a
    TFRecord file, those in its first `end` bytes when given (a shard being written)."""
    if shard.file_format == "array_record":
        yield from _array_records(shard.path)
        return
    with fileio.path(shard.path).open("rb") as f:
        while (end is None or f.tell() < end) and (head := f.read(12)):  # length, its CRC
            if len(head) < 12:
                raise Imagenet2017Error(f"{shard.path}: ends inside a record header (truncated).")
            (size,) = struct.unpack("<Q", head[:8])
            data = f.read(size + 4)  # the record and its CRC
            if len(data) < size + 4:
                raise Imagenet2017Error(
                    f"{shard.path}: a record of {size} bytes ends after {len(data)} (truncated)."
                )
            yield data[:size]


def _array_records(path: str) -> Iterator[bytes]:
    from array_record.python.array_record_module import ArrayRecordReader

    with contextlib.ExitStack() as stack:
        if not fileio.is_local(path):  # the reader opens local files only
            local = stack.enter_context(tempfile.TemporaryDirectory()) + "/shard"
            with fileio.path(path).open("rb") as src, open(local, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 22)
            path = local
        reader = ArrayRecordReader(path)
        try:
            total = reader.num_records()
            for start in range(0, total, _BATCH):
                yield from reader.read(start, min(start + _BATCH, total))
        finally:
            reader.close()


def parse(record: bytes) -> dict:
    """One serialized tf.train.Example as the feature dict TFDS's numpy decoding gives with
    the image left as bytes: scalars as Python values, `objects` as lists. Parsed with a
    message class of our own (the Example schema is the TFRecord format's, public), which
    costs a fraction of TFDS's per-feature decoding."""
    example = _example_class().FromString(record)
    out: dict = {"objects": {}}
    for key, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = list(getattr(feature, kind).value) if kind else []
        if key.startswith("objects/"):
            name = key[len("objects/") :]
            if name == "bbox":
                values = [tuple(values[i : i + 4]) for i in range(0, len(values), 4)]
            elif name == "blacklisted":
                values = [bool(v) for v in values]
            out["objects"][name] = values
        else:
            out[key] = values[0] if values else None
    for name in ("annotated", "blacklisted"):
        if name in out:
            out[name] = bool(out[name])
    return out


@functools.cache
def _example_class():
    """tf.train.Example's message class, declared here from its schema (example.proto and
    feature.proto of the TFRecord format) in a descriptor pool of our own."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    f = descriptor_pb2.FieldDescriptorProto
    package = "imagenet2017_tfds.report.reading"
    proto = descriptor_pb2.FileDescriptorProto(name="imagenet2017_example.proto", package=package)

    def message_field(message, name: str, number: int, of: str, repeated=False, **more) -> None:
        label = f.LABEL_REPEATED if repeated else f.LABEL_OPTIONAL
        message.field.add(
            name=name,
            number=number,
            type=f.TYPE_MESSAGE,
            label=label,
            type_name=f".{package}.{of}",
            **more,
        )

    lists = {"bytes_list": "BytesList", "float_list": "FloatList", "int64_list": "Int64List"}
    for kind, name in zip((f.TYPE_BYTES, f.TYPE_FLOAT, f.TYPE_INT64), lists.values(), strict=True):
        m = proto.message_type.add(name=name)
        m.field.add(name="value", number=1, type=kind, label=f.LABEL_REPEATED)
    feature = proto.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, (name, message) in enumerate(lists.items(), 1):
        message_field(feature, name, number, message, oneof_index=0)
    features = proto.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")  # map<string, Feature> feature = 1
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=f.TYPE_STRING, label=f.LABEL_OPTIONAL)
    message_field(entry, "value", 2, "Feature")
    message_field(features, "feature", 1, "Features.FeatureEntry", repeated=True)
    message_field(proto.message_type.add(name="Example"), "features", 1, "Features")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{package}.Example"))
