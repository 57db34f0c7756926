"""The command-line tools (`imagenet2017-tfds verify|checksums|index|stats|show`): their help,
what they report of a build, the index a build reuses, and the message when an extra is
missing."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

import imagenet2017_tfds  # noqa: F401
from tests.conftest import ROOT, build_env, cli, parse_table, tfds_build


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
    tfds_build(
        "clsloc",
        tarball_release.manual_dir,
        tmp_path / "data",
        tarball_release.checksums,
        "--download_dir",
        tmp_path / "downloads",
    )
    assert (index.stat().st_mtime_ns, verdict.stat().st_mtime_ns) == stamps  # nothing redone


def test_show_without_matplotlib_says_which_extra_to_install(tmp_path):
    code = (
        "import sys\n"
        "sys.modules['matplotlib'] = None  # as if not installed\n"
        "from imagenet2017_tfds.tools import cli\n"
        f"sys.exit(cli.main(['show', {str(tmp_path)!r}]))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=build_env(None),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2, result.stderr
    assert "matplotlib" in result.stderr
    assert "pip install 'imagenet2017-tfds[show]'" in result.stderr
    assert not (ROOT / "grid.png").exists()


@pytest.mark.parametrize("case", ["a file", "no archive", "nothing built"])
def test_a_wrong_folder_is_named_with_what_was_expected_and_exit_status_2(case, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    command, message = {
        "a file": (
            ["verify", tmp_path / "notes.txt"],
            f"error: {tmp_path / 'notes.txt'}: not a folder. Pass the folder holding the .tar.gz archives.",
        ),
        "no archive": (
            ["checksums", tmp_path],
            f"error: {tmp_path}: no .tar.gz archive there; expected some of ILSVRC2017_CLS-LOC.tar.gz,",
        ),
        "nothing built": (
            ["stats", tmp_path, "--config", "det"],
            f"error: {tmp_path}: no imagenet2017/det built there.",
        ),
    }[case]
    result = subprocess.run(
        [sys.executable, "-m", "imagenet2017_tfds.tools.cli", *map(str, command)],
        env=build_env(None),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    assert result.stderr.startswith(message), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
