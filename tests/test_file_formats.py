"""Both file formats: the tools (`stats`, `show`) on TFRecord and ArrayRecord builds, the Grain
example (no TensorFlow in the loop) on an ArrayRecord build and on a TFRecord build converted
with `tfds convert_format`, and the tools' messages when an extra is not installed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter

import numpy as np
from PIL import Image

from imagenet2017_tfds import classes
from tests import readback
from tests.conftest import ROOT, TFDS, build_env
from tests.test_tools import cli, parse_table


def test_stats_say_the_same_on_both_file_formats(cli_builds, array_record_builds):
    tfrecord, array_record = cli("stats", cli_builds), cli("stats", array_record_builds)
    assert array_record == tfrecord
    # Not two empty tables: test_tools checks the TFRecord one against the release.
    assert int(parse_table(array_record, "det")["validation"][1]) == 10


def _grid(data_dir, out, config: str) -> np.ndarray:
    assert "6 examples" in cli(
        "show", data_dir, "--config", config, "--split", "validation", "-n", 6, "-o", out
    )
    with Image.open(out) as im:
        return np.asarray(im.convert("RGB"))


def test_show_draws_the_same_grid_on_both_file_formats(cli_builds, array_record_builds, tmp_path):
    for config in ("clsloc", "det"):
        tfrecord = _grid(cli_builds, tmp_path / f"{config}-tfrecord.png", config)
        array_record = _grid(array_record_builds, tmp_path / f"{config}-ar.png", config)
        # The same examples in the same order: boxes and labels on the same pixels. TFDS
        # decodes JPEGs with TensorFlow for one and Pillow for the other: pixels differ by
        # a few levels.
        boxes = (array_record == [255, 255, 0]).all(-1)
        assert (boxes == (tfrecord == [255, 255, 0]).all(-1)).all(), config
        assert boxes.sum() > 50
        assert np.abs(tfrecord.astype(int) - array_record).max() <= 8, config


def _python(code: str, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], env=env or build_env(None), cwd=ROOT,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def test_show_without_matplotlib_says_which_extra_to_install(tmp_path):
    result = _python(
        "import sys\n"
        "sys.modules['matplotlib'] = None  # as if not installed\n"
        "from imagenet2017_tfds import cli\n"
        f"sys.exit(cli.main(['show', {str(tmp_path)!r}]))\n"
    )
    assert result.returncode == 2, result.stderr
    assert "matplotlib" in result.stderr
    assert "pip install 'imagenet2017-tfds[show]'" in result.stderr
    assert not (ROOT / "grid.png").exists()


def test_bench_without_psutil_says_which_extra_to_install():
    result = _python(
        "import runpy, sys\n"
        "sys.modules['psutil'] = None  # as if not installed\n"
        "runpy.run_path('bench/bench.py', run_name='__main__')\n"
    )
    assert result.returncode == 1
    assert "pip install 'imagenet2017-tfds[bench]'" in result.stderr


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
        env=build_env(None), cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
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
        [TFDS, "convert_format", "--root_data_dir", str(data_dir),
         "--out_file_format", "array_record"],
        env=build_env(None), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
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
