"""A built dataset read back as numpy examples, whichever file format it was built in.

TFDS 4.9 reads TFRecord shards only through `as_dataset` (tf.data) and ArrayRecord shards only
through `as_data_source` (random access): the tools go through here to work on both.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

_BATCH = 256  # records read per call from an ArrayRecord data source


def builder(data_dir: str, config: str):
    import tensorflow_datasets as tfds

    import imagenet2017_tfds  # noqa: F401  (registers the builder)

    return tfds.builder(f"imagenet2017/{config}", data_dir=data_dir)


def random_access(ds_builder) -> bool:
    """Whether the dataset was written in a format TFDS reads with `as_data_source`."""
    import tensorflow_datasets as tfds

    return ds_builder.info.file_format in tfds.core.FileFormat.with_random_access()


def examples(
    ds_builder, split: str, *, image: bool = True, count: int | None = None
) -> Iterator[dict]:
    """The split's first `count` (default: all) examples in stored order, as `tfds.as_numpy`
    gives them: sequences as arrays, text as bytes. `image=False` leaves the image out
    undecoded (no JPEG is decoded)."""
    import tensorflow_datasets as tfds

    total = ds_builder.info.splits[split].num_examples
    count = total if count is None else min(count, total)
    if random_access(ds_builder):
        # A data source decodes in Python, and takes no PartialDecoding: skip the image's
        # decoding, then drop its bytes.
        decoders = None if image else {"image": tfds.decode.SkipDecoding()}
        source = ds_builder.as_data_source(split=split, decoders=decoders)
        for start in range(0, count, _BATCH):
            for ex in source.__getitems__(list(range(start, min(start + _BATCH, count)))):
                if not image:
                    del ex["image"]
                yield _as_arrays(ex)
        return
    decoders = None
    if not image:
        wanted = {k: v for k, v in ds_builder.info.features.items() if k != "image"}
        decoders = tfds.decode.PartialDecoding(wanted)
    ds = ds_builder.as_dataset(split=split, decoders=decoders).take(count)
    yield from tfds.as_numpy(ds)


def _as_arrays(example: dict) -> dict:
    """A data source's example with its sequences (lists) as arrays, as tf.data gives them."""
    return {
        k: _as_arrays(v) if isinstance(v, dict) else np.asarray(v) if isinstance(v, list) else v
        for k, v in example.items()
    }
