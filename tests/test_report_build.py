"""`tfds build` writes the report (report.html and report.json beside dataset_info.json) from
the numbers its executors computed while they wrote the shards: the same JSON, byte for byte, as
the `report` command's reading of the shards but for the one field that says how the numbers
were had ("made"), on the local pool, in the build's own process, after a kill and a rerun
that reads no archive again, and on Beam's DirectRunner; with `report: false`, none."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from imagenet2017_tfds import report
from tests.conftest import cli, tfds_build
from tests.support import readback
from tests.test_beam import DIRECT
from tests.test_resume import KILLED_AT, NO_READ, _killed


def _folder(data, config: str) -> Path:
    return Path(data) / "imagenet2017" / config / readback.VERSION


def _built(data, config: str) -> tuple[str, str]:
    """The build's report: its JSON and its page, as text."""
    folder = _folder(data, config)
    return (folder / "report.json").read_text(), (folder / report.BUILD_REPORT).read_text()


def _without_made(text: str, made: str) -> str:
    """The report's JSON as written, its "made" field checked and left out."""
    numbers = json.loads(text)
    assert numbers.pop("made") == made
    return json.dumps(numbers, indent=1)


def _numbers(text: str) -> str:
    """The numbers of the report's JSON, as written: its splits (what differs between builds
    of one input is in the provenance: when, how long, the passes over an archive)."""
    return json.dumps(json.loads(text)["splits"], indent=1)


_SAID = re.compile(r"they were computed [^.]*\.")


def assert_the_commands_report(data, config: str, out: Path) -> str:
    """The build's report is the `report` command's of the same dataset, but for how its
    numbers were had; returns the build's JSON."""
    built_json, built_page = _built(data, config)
    cli("report", data, "--config", config, "-o", out / f"{config}.html")
    command_json = (out / f"{config}.json").read_text()
    command_page = (out / f"{config}.html").read_text()
    assert _without_made(built_json, report.MADE_BY_BUILD) == _without_made(
        command_json, report.MADE_FROM_SHARDS
    )
    assert built_json.endswith("\n") and command_json.endswith("\n")
    assert f"they were computed {report.MADE_BY_BUILD}." in built_page
    assert _SAID.sub("", built_page) == _SAID.sub("", command_page)
    return built_json


@pytest.mark.parametrize("config", ["clsloc", "det"])
def test_the_pools_report_is_the_commands(cli_builds, tmp_path, config):
    assert_the_commands_report(cli_builds, config, tmp_path)
    # The report is beside the dataset's files, not one of them.
    info = json.loads((_folder(cli_builds, config) / "dataset_info.json").read_text())
    assert "report" not in json.dumps(info["splits"])


def _the_pools_numbers(data, cli_builds, config: str, out: Path, passes: bool = True) -> None:
    """The build's report is the command's, its numbers the pool build's, byte for byte; its
    metadata.json too but for when and how long, the worker count asked for and (`passes`
    false: a Beam build, which verifies an archive in a read of its own) the passes."""
    built = assert_the_commands_report(data, config, out)
    assert _numbers(built) == _numbers(_built(cli_builds, config)[0])
    assert _metadata(data, config, passes) == _metadata(cli_builds, config, passes)


def _metadata(data, config: str, passes: bool) -> dict:
    meta = json.loads((_folder(data, config) / "metadata.json").read_text())
    assert isinstance(meta.pop("built_at"), str) and meta.pop("duration_seconds") > 0
    assert meta["options"].pop("workers") in (0, 1, 2)
    if not passes:
        for value in meta["inputs"].values():
            value.pop("passes", None)
    return meta


def test_the_in_process_builds_report_is_the_pools(cli_builds, tarball_release, tmp_path):
    tfds_build(
        '{"name": "clsloc", "workers": 1}',
        tarball_release.manual_dir,
        tmp_path / "data",
        tarball_release.checksums,
    )
    _the_pools_numbers(tmp_path / "data", cli_builds, "clsloc", tmp_path)


@pytest.mark.parametrize("point", ["shards", "checkpoint", "worker_checkpoint"])
def test_a_killed_and_resumed_builds_report_is_the_pools(
    cli_builds, tarball_release, tmp_path, point
):
    """Killed once a shard is recorded whole (its numbers in its record, its sample's images
    read back from its file), or once a shard has a checkpoint (its numbers read back from the
    file up to there), in the build's process or in a worker; the rerun reads no archive."""
    manual, data, checksums = (
        tarball_release.manual_dir,
        tmp_path / "data",
        tarball_release.checksums,
    )
    if point == "worker_checkpoint":
        faults, workers = "checkpoint-kept:kill", 2
    else:
        faults, workers = KILLED_AT[point]
    small = () if point == "shards" else ("small_buckets",)  # a shard frees some on its way
    first = _killed(manual, data, checksums, faults, workers, *small)
    assert first.returncode != 0, first.stderr[-3000:]
    if point != "worker_checkpoint":
        assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    assert not (_folder(data, "clsloc") / "report.json").exists()
    again = _killed(manual, data, checksums, NO_READ, workers, *small)
    assert again.returncode == 0, again.stderr[-3000:]
    reused = "shards written by" if point == "shards" else "shards partly written by"
    assert f"{reused} an earlier run of this build" in again.stderr
    _the_pools_numbers(data, cli_builds, "clsloc", tmp_path)


@pytest.mark.parametrize("config", ["clsloc", "det"])
def test_the_direct_runners_report_is_the_pools(cli_builds, tarball_release, tmp_path, config):
    tfds_build(
        config,
        tarball_release.manual_dir,
        tmp_path / "data",
        tarball_release.checksums,
        f"--beam_pipeline_options={DIRECT}",
    )
    _the_pools_numbers(tmp_path / "data", cli_builds, config, tmp_path, passes=False)
    ranges = tmp_path / "data" / "downloads" / "imagenet2017" / "ranges"
    assert not list(ranges.glob("*.numbers")), "a range's numbers were left behind"


def test_report_false_writes_none(cli_builds, tarball_release, tmp_path):
    result = tfds_build(
        '{"name": "clsloc", "report": false}',
        tarball_release.manual_dir,
        tmp_path,
        tarball_release.checksums,
    )
    folder = _folder(tmp_path, "clsloc")
    assert (folder / "dataset_info.json").exists()
    assert not list(folder.glob("report*")), sorted(p.name for p in folder.iterdir())
    assert "build's report" not in result.stdout + result.stderr
    assert readback.shard_bytes(tmp_path, "clsloc") == readback.shard_bytes(cli_builds, "clsloc")


def test_numbers_go_through_a_file_and_back(cli_builds):
    """A shard's or a range's numbers through their JSON state (a record of the work folder,
    a Beam range's file): the same numbers, and the sample's images with them or their
    places, from which they are read back."""
    from imagenet2017_tfds.report import shards
    from imagenet2017_tfds.report.numbers import SplitNumbers

    for split, numbers in shards.read(str(cli_builds), "det", workers=1).items():
        whole = SplitNumbers.from_state(json.loads(json.dumps(numbers.to_state())))
        assert whole.to_json() == numbers.to_json(), split
        assert [s.image for s in whole.sample] == [s.image for s in numbers.sample]
        assert whole.devkit_disagrees == numbers.devkit_disagrees
        bare = SplitNumbers.from_state(numbers.to_state(images=False))
        assert bare.to_json() == numbers.to_json() and not any(s.image for s in bare.sample)


def test_a_sampled_image_pillow_cannot_decode_is_shown_as_such():
    """A train image is stored undecoded unless decode_train asks: if it is in the sample,
    the page says Pillow cannot decode it, in a grey box of its proportions, and the build
    that writes the page goes on."""
    import io

    from PIL import Image

    from imagenet2017_tfds.ilsvrc import tasks
    from imagenet2017_tfds.report import page
    from imagenet2017_tfds.report.numbers import SplitNumbers

    jpeg = io.BytesIO()
    Image.new("RGB", (64, 32), "gray").save(jpeg, "JPEG")
    header = jpeg.getvalue()[:-200]  # its frame header whole, its scan cut short
    numbers = SplitNumbers("train", 1000)
    example = {
        "image": header + b"\x00" * 50 + b"\xff\xd9",
        "label": 3,
        "file_name": "n01443537_1.JPEG",
        "annotated": False,
        "blacklisted": False,
        "objects": {"bbox": [], "label": []},
    }
    numbers.add(example)
    names = tasks.class_names("clsloc")
    splits = {"train": numbers}
    text = page.html_page(page.numbers_json("clsloc", splits, {}, {}, names, "0"), splits, names)
    assert numbers.sample[0].width == 64
    assert "n01443537_1.JPEG" in text and "Pillow cannot decode this image" in text
