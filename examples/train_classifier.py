"""A Keras classifier input pipeline over imagenet2017/clsloc: a random-resized crop guided by
the boxes where the image has them, decoding only the crop's part of the JPEG, then batch,
prefetch; then a few training steps.

    python examples/train_classifier.py --data_dir ~/tensorflow_datasets --steps 100
"""

from __future__ import annotations

import pipeline_args
import tensorflow as tf
import tensorflow_datasets as tfds

import imagenet2017_tfds  # noqa: F401  (registers the builder)

NUM_CLASSES = 1000


def crop_window(jpeg, boxes):
    """A random crop as (offset_y, offset_x, height, width), chosen from the JPEG's header."""
    # Crops must overlap a labelled box when there is one; else any part of the image.
    whole = tf.constant([[0.0, 0.0, 1.0, 1.0]])
    guide = tf.cond(tf.shape(boxes)[0] > 0, lambda: boxes, lambda: whole)
    begin, crop_size, _ = tf.image.sample_distorted_bounding_box(
        tf.image.extract_jpeg_shape(jpeg),  # from the header: nothing decoded yet
        bounding_boxes=guide[tf.newaxis],
        min_object_covered=0.1,
        aspect_ratio_range=(3 / 4, 4 / 3),
        area_range=(0.08, 1.0),
        max_attempts=10,
        use_image_if_no_bounding_boxes=True,
    )
    return tf.stack([begin[0], begin[1], crop_size[0], crop_size[1]])


def crop_and_resize(example, size: int):
    jpeg = example["image"]  # the stored JPEG bytes (SkipDecoding): every image is a JPEG
    window = crop_window(jpeg, example["objects"]["bbox"])
    image = tf.image.decode_and_crop_jpeg(jpeg, window, channels=3)  # only the crop's blocks
    image = tf.image.resize(image, (size, size)) / 255.0
    image = tf.image.random_flip_left_right(image)
    return image, example["label"]


def pipeline(data_dir: str, split: str, batch: int, size: int) -> tf.data.Dataset:
    ds = tfds.load(
        "imagenet2017/clsloc", split=split, data_dir=data_dir, shuffle_files=True,
        decoders={"image": tfds.decode.SkipDecoding()},  # decoded in crop_and_resize
    )  # fmt: skip
    ds = ds.filter(lambda ex: ex["label"] >= 0)  # the test split has no labels
    return (
        ds.shuffle(1024)
        .repeat()
        .map(lambda ex: crop_and_resize(ex, size), num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch)
        .prefetch(tf.data.AUTOTUNE)
    )


def model(size: int) -> tf.keras.Model:
    return tf.keras.Sequential(
        [
            tf.keras.layers.Input((size, size, 3)),
            tf.keras.layers.Conv2D(16, 3, strides=2, activation="relu"),
            tf.keras.layers.GlobalAveragePooling2D(),
            tf.keras.layers.Dense(NUM_CLASSES),
        ]
    )


def main(argv=None) -> float:
    parser = pipeline_args.parser(__doc__)
    args = parser.parse_args(argv)
    # Readable names in label order, published in the dataset's metadata.json.
    names = tfds.builder("imagenet2017/clsloc", data_dir=args.data_dir).info.metadata["class_names"]
    data = pipeline(args.data_dir, args.split, args.batch, args.size)
    for _, labels in data.take(1):
        print("first batch:", ", ".join(names[i].split(",")[0] for i in labels.numpy()))
    net = model(args.size)
    net.compile(
        optimizer="adam",
        loss=tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = net.fit(
        data,
        steps_per_epoch=args.steps,
        epochs=1,
        verbose=2,
    )
    loss = float(history.history["loss"][-1])
    print(f"trained {args.steps} steps; loss {loss:.3f}")
    return loss


if __name__ == "__main__":
    main()
