"""A detection input pipeline over imagenet2017/det: decode, resize, boxes and labels padded
to a fixed count (label -1 marks padding), batch, prefetch; iterated for a few steps.

    python examples/detection_pipeline.py --data_dir ~/tensorflow_datasets --steps 100
"""

from __future__ import annotations

import pipeline_args
import tensorflow as tf
import tensorflow_datasets as tfds

import imagenet2017_tfds  # noqa: F401  (registers the builder)


def to_fixed(example, size: int, max_boxes: int):
    image = tf.image.resize(example["image"], (size, size)) / 255.0
    boxes = example["objects"]["bbox"][:max_boxes]  # normalised: unchanged by the resize
    labels = tf.cast(example["objects"]["label"][:max_boxes], tf.int32)
    pad = max_boxes - tf.shape(boxes)[0]
    boxes = tf.pad(boxes, [[0, pad], [0, 0]])
    labels = tf.pad(labels, [[0, pad]], constant_values=-1)
    boxes.set_shape((max_boxes, 4))
    labels.set_shape((max_boxes,))
    return {"image": image, "boxes": boxes, "labels": labels}


def pipeline(data_dir: str, split: str, batch: int, size: int, max_boxes: int) -> tf.data.Dataset:
    ds = tfds.load("imagenet2017/det", split=split, data_dir=data_dir, shuffle_files=True)
    return (
        ds.shuffle(1024)
        .repeat()
        .map(lambda ex: to_fixed(ex, size, max_boxes), num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def main(argv=None) -> int:
    parser = pipeline_args.parser(__doc__, split="validation", size=128)
    parser.add_argument("--max_boxes", type=int, default=32)
    args = parser.parse_args(argv)
    # Readable names in label order, published in the dataset's metadata.json.
    names = tfds.builder("imagenet2017/det", data_dir=args.data_dir).info.metadata["class_names"]
    boxes = 0
    for step, batch in enumerate(
        pipeline(args.data_dir, args.split, args.batch, args.size, args.max_boxes).take(args.steps)
    ):
        real = int(tf.reduce_sum(tf.cast(batch["labels"] >= 0, tf.int32)))
        boxes += real
        first = sorted({names[i] for i in batch["labels"][0].numpy() if i >= 0})
        print(
            f"step {step}: images {tuple(batch['image'].shape)}, "
            f"boxes {tuple(batch['boxes'].shape)}, {real} real boxes; "
            f"first image: {', '.join(first) or 'none'}"
        )
    return boxes


if __name__ == "__main__":
    main()
