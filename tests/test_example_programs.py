"""The programs of examples/: the Keras classifier trains and decodes only its crop, the
detection pipeline pads boxes, the Grain pipeline reads ArrayRecord builds (and TFRecord builds
converted with `tfds convert_format`) without TensorFlow in the loop."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter

import numpy as np

from imagenet2017_tfds.ilsvrc import classes
from tests.conftest import ROOT, TFDS, build_env, cli
from tests.support import readback


def test_keras_example_decodes_exactly_its_crop(cli_builds):
    import tensorflow as tf

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


def test_keras_classifier_example_trains(cli_builds):
    sys.path.insert(0, str(ROOT / "examples"))
    import train_classifier

    loss = train_classifier.main(["--data_dir", str(cli_builds), "--steps", "3"])
    assert np.isfinite(loss) and loss > 0


def test_detection_example_pads_boxes(cli_builds):
    sys.path.insert(0, str(ROOT / "examples"))
    import detection_pipeline

    real = detection_pipeline.main(
        ["--data_dir", str(cli_builds), "--steps", "2", "--max_boxes", "12"]
    )
    assert real > 0


GRAIN = """
import json, sys
sys.path.insert(0, "examples")
import grain_pipeline
result = grain_pipeline.main(["--data_dir", sys.argv[1], "--steps", sys.argv[2],
                              "--workers", sys.argv[3]])
print(json.dumps({"labels": result["labels"], "shape": list(result["shape"]),
                  "range": result["range"], "tensorflow": "tensorflow" in sys.modules}))
"""


def _run_grain_example(data_dir, steps: int, workers: int) -> dict:
    result = subprocess.run(
        [sys.executable, "-c", GRAIN, str(data_dir), str(steps), str(workers)],
        env=build_env(None),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "TensorFlow imported: False" in result.stdout
    run = json.loads(result.stdout.strip().splitlines()[-1])
    assert run["tensorflow"] is False  # nothing in the loop imported TensorFlow
    assert run["shape"] == [4, 64, 64, 3]
    low, high = run["range"]
    assert 0.0 <= low < high <= 1.0
    return run


def _train_labels(tarball_release) -> Counter:
    train = tarball_release.expected["clsloc"]["train"].values()
    return Counter(classes.clsloc().index(e.label) for e in train)


def test_grain_example_reads_an_array_record_build_without_tensorflow(
    array_record_builds, tarball_release
):
    train = _train_labels(tarball_release)
    # In one process, 7 batches of 4 are exactly two shuffled epochs of the 14 train images.
    run = _run_grain_example(array_record_builds, steps=7, workers=0)
    assert Counter(run["labels"]) == train + train
    assert run["labels"][:14] != run["labels"][14:]  # each epoch shuffled anew
    # With worker processes (each takes every other element of the stream).
    run = _run_grain_example(array_record_builds, steps=3, workers=2)
    assert len(run["labels"]) == 12 and set(run["labels"]) <= set(train)


def test_tfds_convert_format_makes_a_tfrecord_build_readable_by_the_grain_example(
    cli_builds, tarball_release, tmp_path
):
    data_dir = tmp_path / "data"
    shutil.copytree(cli_builds / "imagenet2017" / "clsloc", data_dir / "imagenet2017" / "clsloc")
    result = subprocess.run(
        [
            TFDS,
            "convert_format",
            "--root_data_dir",
            str(data_dir),
            "--out_file_format",
            "array_record",
        ],
        env=build_env(None),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder = data_dir / "imagenet2017" / "clsloc" / readback.VERSION
    info = json.loads((folder / "dataset_info.json").read_text())
    assert info["alternativeFileFormats"] == ["array_record"]
    assert len(list(folder.glob("*.array_record-*"))) == len(list(folder.glob("*.tfrecord-*")))
    train = _train_labels(tarball_release)
    run = _run_grain_example(data_dir, steps=7, workers=0)
    assert Counter(run["labels"]) == train + train
    # The tools still read the TFRecord shards, the build's own format.
    assert cli("stats", data_dir, "--config", "clsloc") == cli(
        "stats", cli_builds, "--config", "clsloc"
    )


def test_sample_crop_covers_a_box_within_the_image_and_the_ranges():
    sys.path.insert(0, str(ROOT / "examples"))
    import grain_pipeline

    width, height = 500, 375
    boxes = np.array([[0.1, 0.6, 0.3, 0.9]], np.float32)  # (ymin, xmin, ymax, xmax)
    covered = whole = 0
    for seed in range(300):
        rng = np.random.default_rng(seed)
        left, top, right, bottom = grain_pipeline.sample_crop(width, height, boxes, rng)
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
        w, h = right - left, bottom - top
        if (w, h) == (width, height):
            whole += 1  # no attempt met the conditions: the whole image, as TF does
            continue
        assert 0.08 * 0.97 <= w * h / (width * height) <= 1.0
        assert 3 / 4 * 0.97 <= w / h <= 4 / 3 * 1.03
        box = boxes[0] * [height, width, height, width]
        inter = max(0, min(box[3], right) - max(box[1], left)) * max(
            0, min(box[2], bottom) - max(box[0], top)
        )
        assert inter / ((box[3] - box[1]) * (box[2] - box[0])) >= 0.1
        covered += 1
    assert covered > 200 and whole < 100
