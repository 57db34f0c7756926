"""A JAX / PyTorch input pipeline over imagenet2017/clsloc with no TensorFlow in the loop:
`tfds.data_source` reads an `array_record` build by index, Grain shuffles, spreads the work
over worker processes and batches, and Pillow decodes the JPEG. Out come numpy batches, ready
for `jax.device_put` or `torch.from_numpy`.

    tfds build imagenet2017 --imports imagenet2017_tfds --config clsloc \\
        --manual_dir ~/ilsvrc2017 --data_dir ~/tensorflow_datasets --file_format array_record
    python examples/grain_pipeline.py --data_dir ~/tensorflow_datasets --steps 100

A TFRecord build converts in place of a rebuild:
`tfds convert_format --root_data_dir ~/tensorflow_datasets --out_file_format array_record`.
Needs `pip install 'imagenet2017-tfds[grain]'`.
"""

from __future__ import annotations

import io
import sys

import numpy as np
import pipeline_args
import tensorflow_datasets as tfds  # reading an array_record build does not import TensorFlow
from PIL import Image

# Not `import imagenet2017_tfds`: reading a build needs only TFDS and the build's own files.
# TFDS 4.9.10 also forgets, for a registered builder, the array_record shards that
# `tfds convert_format` added beside the TFRecord ones; the files alone list them.

try:
    import grain
except ImportError:
    sys.exit("examples/grain_pipeline.py needs Grain: pip install 'imagenet2017-tfds[grain]'")


def sample_crop(
    width: int, height: int, boxes: np.ndarray, rng: np.random.Generator, attempts: int = 10
) -> tuple[int, int, int, int]:
    """A random crop (left, top, right, bottom) in pixels, as `sample_distorted_bounding_box`
    draws one: 8-100 % of the area, aspect ratio 3/4-4/3, covering at least 10 % of one of the
    normalised `boxes` (ymin, xmin, ymax, xmax) when there are any; else the whole image."""
    for _ in range(attempts):
        area = rng.uniform(0.08, 1.0) * width * height
        aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        w, h = round(np.sqrt(area * aspect)), round(np.sqrt(area / aspect))
        if not (0 < w <= width and 0 < h <= height):
            continue
        left, top = int(rng.integers(0, width - w + 1)), int(rng.integers(0, height - h + 1))
        if not len(boxes) or _covers(boxes, left, top, w, h, width, height) >= 0.1:
            return left, top, left + w, top + h
    return 0, 0, width, height


def _covers(boxes, left, top, w, h, width, height) -> float:
    """The largest fraction of one box that the crop covers."""
    ymin, xmin, ymax, xmax = (boxes * [height, width, height, width]).T
    inter_w = np.clip(np.minimum(xmax, left + w) - np.maximum(xmin, left), 0, None)
    inter_h = np.clip(np.minimum(ymax, top + h) - np.maximum(ymin, top), 0, None)
    area = np.maximum((xmax - xmin) * (ymax - ymin), 1e-9)
    return float((inter_w * inter_h / area).max())


def crop_and_resize(example: dict, rng: np.random.Generator, size: int) -> dict:
    """JPEG bytes -> a random box-guided crop, resized to size x size, maybe flipped, in
    [0, 1]. The crop is chosen from the header's dimensions, before any pixel is decoded."""
    with Image.open(io.BytesIO(example["image"])) as im:
        boxes = np.asarray(example["objects"]["bbox"], np.float32).reshape(-1, 4)
        crop = sample_crop(im.width, im.height, boxes, rng)
        image = im.convert("RGB").crop(crop).resize((size, size), Image.BILINEAR)
    pixels = np.asarray(image, np.float32) / 255.0
    if rng.random() < 0.5:
        pixels = pixels[:, ::-1]
    return {"image": pixels, "label": np.int32(example["label"])}


def open_source(data_dir: str, split: str):
    """Random access to a split of an array_record build (or a converted TFRecord one)."""
    return tfds.data_source(
        "imagenet2017/clsloc", split=split, data_dir=data_dir,
        decoders={"image": tfds.decode.SkipDecoding()},  # JPEG bytes: Pillow decodes
    )  # fmt: skip


def class_names(source) -> list[str]:
    """Readable names in label order, from the build's metadata.json (builds before it had
    them: from the package)."""
    names = source.dataset_info.metadata.get("class_names")
    if names is None:
        import imagenet2017_tfds

        names = imagenet2017_tfds.class_names("clsloc")
    return names


def pipeline(source, batch: int, size: int, workers: int, seed: int = 0):
    ds = (
        grain.MapDataset.source(source)
        .seed(seed)
        .shuffle()
        .repeat()
        .filter(lambda ex: ex["label"] >= 0)  # the test split has no labels
        .random_map(lambda ex, rng: crop_and_resize(ex, rng, size))
        .to_iter_dataset()
        .batch(batch, drop_remainder=True)
    )
    if workers:
        ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers))
    return ds


def main(argv=None) -> dict:
    parser = pipeline_args.parser(__doc__)
    parser.add_argument("--workers", type=int, default=2, help="Grain worker processes")
    args = parser.parse_args(argv)
    source = open_source(args.data_dir, args.split)
    names = class_names(source)
    labels = []
    iterator = iter(pipeline(source, args.batch, args.size, args.workers))
    for step in range(args.steps):
        batch = next(iterator)
        labels += batch["label"].tolist()
        first = names[batch["label"][0]].split(",")[0]
        print(f"step {step}: images {batch['image'].shape} {batch['image'].dtype}, "
              f"labels {batch['label'].tolist()}, first a {first}")  # fmt: skip
    tf_loaded = "tensorflow" in sys.modules
    print(f"TensorFlow imported: {tf_loaded}")
    return {"labels": labels, "shape": batch["image"].shape, "range": (float(batch["image"].min()),
            float(batch["image"].max())), "tensorflow_imported": tf_loaded}  # fmt: skip


if __name__ == "__main__":
    main()
