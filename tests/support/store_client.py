"""A reader of a built dataset, run inside a storage test bed (tests/test_object_stores.py):
`python tests/support/store_client.py DATA_DIR CONFIG` loads every split with tfds.load, as training
code does (records through TensorFlow's file system, gs:// included), and prints, as JSON,
each split's example count and the sha256 of its file names and image bytes in file-name
order (an ArrayRecord build through `as_data_source`, its images decoded)."""

from __future__ import annotations

import hashlib
import json
import sys


def _bytes(value) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def main(data_dir: str, config: str) -> None:
    import tensorflow_datasets as tfds

    import imagenet2017_tfds  # noqa: F401  (registers the builder)

    builder = tfds.builder(f"imagenet2017/{config}", data_dir=data_dir)
    out = {}
    for split in sorted(builder.info.splits):
        if builder.info.file_format.value == "array_record":  # random access, decoded
            found = sorted(
                (_bytes(ex["file_name"]), ex["image"].tobytes())
                for ex in builder.as_data_source(split=split)
            )
        else:
            ds = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
            found = sorted((ex["file_name"], ex["image"]) for ex in tfds.as_numpy(ds))
        digest = hashlib.sha256()
        for name, image in found:
            digest.update(name + b"\0" + image)
        out[split] = {"examples": len(found), "sha256": digest.hexdigest()}
    print(json.dumps(out, sort_keys=True))


if __name__ == "__main__":
    main(*sys.argv[1:])
