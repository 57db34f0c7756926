"""The tools around the builder: CLI (stats, show, index), the dataset card, the training
examples, array_record output with random access."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

import imagenet2017_tfds  # noqa: F401
from tests import readback
from tests.conftest import ROOT, build_env, tfds_build


def cli(*args, env=None):
    result = subprocess.run(
        [sys.executable, "-m", "imagenet2017_tfds.cli", *map(str, args)],
        env=env or build_env(None), capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def parse_table(text: str, config: str) -> dict[str, list[str]]:
    block = text.split(f"imagenet2017/{config}\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return {line.split()[0]: line.split() for line in block[1:]}


@pytest.mark.parametrize("command", ["verify", "checksums", "index", "stats", "show"])
def test_every_command_has_help(command):
    assert "usage: imagenet2017-tfds " + command in cli(command, "--help")


def test_stats_counts_match_the_release(cli_builds, tarball_release):
    out = cli("stats", cli_builds)
    for config in ("clsloc", "det"):
        table = parse_table(out, config)
        for split, expected in tarball_release.expected[config].items():
            row = table[split]
            boxes = sum(len(e.objects) for e in expected.values())
            assert int(row[1]) == len(expected)
            assert row[2] == f"{boxes / len(expected):.2f}"
            assert int(row[3]) == sum(not e.objects for e in expected.values())
            assert int(row[4]) == sum(e.annotated for e in expected.values())
            blacklisted = (
                sum(e.blacklisted for e in expected.values())
                if config == "clsloc"
                else sum(o.blacklisted for e in expected.values() for o in e.objects)
            )
            assert int(row[5]) == blacklisted, (config, split)


def test_show_draws_a_grid(cli_builds, tmp_path):
    out = tmp_path / "grid.png"
    assert "8 examples" in cli(
        "show", cli_builds, "--config", "det", "--split", "validation", "-n", 8, "-o", out
    )
    with Image.open(out) as im:
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.shape[0] > 200 and pixels.shape[1] > 200
    assert (pixels == [255, 255, 0]).all(-1).sum() > 50  # the yellow boxes are drawn


def test_index_ahead_of_time_is_reused_by_the_build(tarball_release, tmp_path):
    cache = tmp_path / "downloads" / "imagenet2017"
    env = build_env(tarball_release.checksums)
    out = cli(
        "index", tarball_release.manual_dir, "--config", "clsloc", "--cache_dir", cache, env=env
    )
    assert "14 images" not in out and "29 images indexed" in out  # 14 train + 10 val + 5 test
    index = cache / "ILSVRC2017_CLS-LOC.tar.gz.gzindex"
    verdict = cache / "verdict-ILSVRC2017_CLS-LOC.tar.gz.json"
    stamps = (index.stat().st_mtime_ns, verdict.stat().st_mtime_ns)
    tfds_build("clsloc", tarball_release.manual_dir, tmp_path / "data", tarball_release.checksums,
               "--download_dir", tmp_path / "downloads")  # fmt: skip
    assert (index.stat().st_mtime_ns, verdict.stat().st_mtime_ns) == stamps  # nothing redone


def test_dataset_card(cli_builds):
    for config in ("clsloc", "det"):
        info = tfds.builder(f"imagenet2017/{config}", data_dir=str(cli_builds)).info
        assert "Russakovsky" in info.citation and "IJCV" in info.citation
        assert info.homepage.startswith("https://image-net.org")
        assert "ILSVRC2017" in info.description
        assert "non-commercial" in info.redistribution_info.license
    # The card has one source, which the README points to instead of repeating.
    readme = (ROOT / "README.md").read_text()
    assert "Russakovsky" not in readme and "terms of access" in readme.lower()
    builder = imagenet2017_tfds.Imagenet2017
    assert str(builder.VERSION) in builder.RELEASE_NOTES


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
