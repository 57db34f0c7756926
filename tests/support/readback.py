"""Reading a built dataset back: examples by file name, and its shard bytes."""

from __future__ import annotations

from pathlib import Path

# The builder's version folder (the builder itself is not imported before TFDS is).
VERSION = "1.1.0"


def examples(data_dir, config: str, split: str) -> dict[str, dict]:
    """file_name -> example (numpy), the image as stored bytes and decoded."""
    import tensorflow_datasets as tfds

    import imagenet2017_tfds  # noqa: F401  (registers the builder)

    name = f"imagenet2017/{config}"
    raw = tfds.load(
        name, split=split, data_dir=str(data_dir), decoders={"image": tfds.decode.SkipDecoding()}
    )
    decoded = tfds.load(name, split=split, data_dir=str(data_dir))
    out = {}
    for ex, dec in zip(tfds.as_numpy(raw), tfds.as_numpy(decoded), strict=True):
        ex["pixels"] = dec["image"]
        out[ex["file_name"].decode()] = ex
    return out


def assert_nothing_loads(data_dir, config="clsloc"):
    """A failed build left no dataset: no version folder (what TFDS looks for), no
    dataset_info and no shard of any format anywhere under the config's folder (TFDS's
    incomplete folders included), and tfds.load refuses it with the error TFDS's
    `as_dataset` raises for a dataset never prepared in `data_dir` (an AssertionError, its
    message naming the dataset and `data_dir`, in TFDS 4.9.7 to 4.9.10), not any other."""
    import re

    import pytest
    import tensorflow_datasets as tfds

    import imagenet2017_tfds  # noqa: F401  (registers the builder)

    config_dir = Path(data_dir) / "imagenet2017" / config
    assert not (config_dir / VERSION).exists(), f"{config_dir / VERSION} is there"
    left = [p for p in config_dir.rglob("*") if p.name == "dataset_info.json" or _is_shard(p)]
    assert not left, left
    not_prepared = rf"^Dataset imagenet2017: could not find data in {re.escape(str(data_dir))}\. "
    with pytest.raises(AssertionError, match=not_prepared):
        tfds.load(f"imagenet2017/{config}", data_dir=str(data_dir), download=False)


def _is_shard(path: Path) -> bool:
    """A shard file of any format TFDS writes, whole or in the making."""
    return any(f".{fmt}-" in path.name for fmt in ("tfrecord", "array_record", "riegeli"))


def shard_bytes(data_dir, config: str) -> dict[str, bytes]:
    folder = Path(data_dir) / "imagenet2017" / config / VERSION
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.tfrecord-*"))}


def splits(data_dir, config: str) -> dict[str, int]:
    import tensorflow_datasets as tfds

    import imagenet2017_tfds  # noqa: F401

    info = tfds.builder(f"imagenet2017/{config}", data_dir=str(data_dir)).info
    return {name: s.num_examples for name, s in info.splits.items()}


def records(data_dir, config: str) -> dict[str, list[bytes]]:
    """split -> every serialized example, sorted: equal sets whatever the shard boundaries."""
    import tensorflow as tf

    folder = Path(data_dir) / "imagenet2017" / config / VERSION
    out: dict[str, list[bytes]] = {}
    for path in sorted(folder.glob("*.tfrecord-*")):
        split = path.name.split("-")[1].split(".")[0]
        out.setdefault(split, []).extend(r.numpy() for r in tf.data.TFRecordDataset(str(path)))
    return {k: sorted(v) for k, v in out.items()}
