"""The engine's last word on a build: what was written is what was planned. An example or a
shard's report lost on the way, or a shard file missing from the dataset's folder, fails the
build naming the split and both counts, and nothing is kept."""

from __future__ import annotations

import os

import pytest

from imagenet2017_tfds import errors, testing
from imagenet2017_tfds.internal import faults
from tests.conftest import api_build
from tests.support.readback import assert_nothing_loads


@pytest.fixture
def release(tmp_path):
    return testing.write_release(tmp_path / "manual", form="tarball", parts=("clsloc",))


def build_fails_keeping_nothing(release, tmp_path, monkeypatch, match: str, **options) -> None:
    with pytest.raises(errors.ConsistencyError, match=match):
        api_build(
            release.manual_dir,
            tmp_path / "data",
            checksums=release.checksums,
            monkeypatch=monkeypatch,
            **options,
        )
    assert_nothing_loads(tmp_path / "data")


@pytest.mark.parametrize("workers", [1, 2])
def test_an_example_lost_on_the_way_fails_the_build_naming_it(
    release, tmp_path, monkeypatch, workers
):
    # As a broken executor would: one example (in this process) or one shard's report
    # (from the pool) never arrives.
    if workers == 1:
        point, lose = "example-serialized", lambda key: key.endswith("n01440764_9999")
    else:

        def lose(job, written):
            if job.split == "train":
                written.num_examples -= 1

        point = "shard-reported"
    with faults.armed(point, lose):
        build_fails_keeping_nothing(
            release,
            tmp_path,
            monkeypatch,
            "train: 13 examples written, 14 planned",
            workers=workers,
        )


def test_a_shard_missing_from_disk_fails_the_build(release, tmp_path, monkeypatch):
    # As a runner that wrote one shard over another would leave it: TFDS's counts are
    # complete, a file is not there.
    def astray(target):
        if "-train." in str(target):
            os.rename(str(target), str(target) + ".astray")

    with faults.armed("shard-placed", astray):
        build_fails_keeping_nothing(
            release, tmp_path, monkeypatch, "train: TFDS counted 1 shards of 14"
        )
