"""Both file formats: an ArrayRecord build loads with random access, and the tools (`stats`,
`show`) say the same of TFRecord and ArrayRecord builds."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from tests.conftest import cli, parse_table
from tests.support import readback


def test_stats_say_the_same_on_both_file_formats(cli_builds, array_record_builds):
    tfrecord, array_record = cli("stats", cli_builds), cli("stats", array_record_builds)
    assert array_record == tfrecord
    # Not two empty tables: test_cli checks the TFRecord one against the release.
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


@pytest.mark.parametrize("config", ["clsloc", "det"])
def test_array_record_build_loads_with_random_access(cli_builds, array_record_builds, config):
    tmp_path = array_record_builds
    source = tfds.data_source(f"imagenet2017/{config}", split="validation", data_dir=str(tmp_path))
    expected = readback.examples(cli_builds, config, "validation")
    assert len(source) == len(expected)
    names = set()
    for i in reversed(range(len(source))):  # random access, in any order
        ex = source[i]
        name = ex["file_name"].decode() if isinstance(ex["file_name"], bytes) else ex["file_name"]
        names.add(name)
        assert list(ex["objects"]["label"]) == list(expected[name]["objects"]["label"])
        assert ex["image"].shape == expected[name]["pixels"].shape
    assert names == set(expected)
    assert (
        json.loads(
            (
                tmp_path / "imagenet2017" / config / readback.VERSION / "dataset_info.json"
            ).read_text()
        )["fileFormat"]
        == "array_record"
    )
