"""The Keras example decodes only its crop: the window it picks from the JPEG header, decoded
with decode_and_crop_jpeg, is that part of the fully decoded image."""

from __future__ import annotations

import sys

import numpy as np

from tests.conftest import ROOT


def test_keras_example_decodes_exactly_its_crop(cli_builds):
    import tensorflow as tf

    from tests import readback

    sys.path.insert(0, str(ROOT / "examples"))
    import train_classifier

    tf.random.set_seed(0)
    cropped = 0
    for name, ex in readback.examples(cli_builds, "clsloc", "train").items():
        jpeg, boxes = tf.constant(ex["image"]), tf.constant(ex["objects"]["bbox"])
        for _ in range(5):
            y, x, h, w = train_classifier.crop_window(jpeg, boxes).numpy()
            full = ex["pixels"]
            assert 0 <= y < y + h <= full.shape[0] and 0 <= x < x + w <= full.shape[1], name
            part = tf.image.decode_and_crop_jpeg(jpeg, [y, x, h, w], channels=3).numpy()
            same = part == full[y : y + h, x : x + w]
            # Exact, but for the crop's first and last column: libjpeg upsamples the colour
            # there without the half-resolution chroma sample beyond the crop's edge.
            assert same[:, 1:-1].all(), name
            assert set(np.flatnonzero(~same.all(axis=(0, 2)))) <= {0, w - 1}, name
            cropped += (h, w) != full.shape[:2]
        image, label = train_classifier.crop_and_resize(
            {"image": jpeg, "objects": {"bbox": boxes}, "label": ex["label"]}, 32
        )
        assert image.shape == (32, 32, 3) and 0 <= float(tf.reduce_min(image)) <= 1
        assert int(label) == ex["label"]
    assert cropped > 10  # most windows are real crops, not the whole image
