"""The devkit against the package's copy of the class lists and ground truth: an entry that
disagrees, or one missing, stops the build naming the file, the line and both counts."""

from __future__ import annotations

import pytest

from imagenet2017_tfds import errors, testing
from tests.conftest import api_build
from tests.support.mutate import rewrite
from tests.support.readback import assert_nothing_loads


@pytest.fixture
def full_release(tmp_path):
    return testing.write_release(tmp_path / "manual", form="tarball")


def test_devkit_disagreeing_with_the_package_names_the_first_entry(
    full_release, tmp_path, monkeypatch
):
    name = "devkit/data/map_clsloc.txt"
    lines = full_release.members["devkit"][name].decode().splitlines(keepends=True)
    lines[4] = lines[4].replace(lines[4].split()[0], "n99999999")
    sums = rewrite(full_release, "devkit", {name: "".join(lines).encode()})
    with pytest.raises(errors.ConsistencyError, match=r"map_clsloc.txt line 5 is 'n99999999 5"):
        api_build(
            full_release.manual_dir, tmp_path / "data", checksums=sums, monkeypatch=monkeypatch
        )
    assert_nothing_loads(tmp_path / "data")


def test_devkit_with_an_entry_less_names_both_counts(full_release, tmp_path, monkeypatch):
    name = "devkit/data/map_clsloc.txt"
    lines = full_release.members["devkit"][name].decode().splitlines(keepends=True)
    sums = rewrite(full_release, "devkit", {name: "".join(lines[:-1]).encode()})
    with pytest.raises(errors.ConsistencyError) as e:
        api_build(
            full_release.manual_dir, tmp_path / "data", checksums=sums, monkeypatch=monkeypatch
        )
    assert str(e.value) == (
        f"{testing.ARCHIVES['devkit']}: devkit/data/map_clsloc.txt has {len(lines) - 1} entries, "
        f"the package's copy {len(lines)}. Download ILSVRC2017_devkit.tar.gz again, or remove it."
    )
    assert_nothing_loads(tmp_path / "data")


def test_devkit_ground_truth_disagreement_is_an_error(full_release, tmp_path, monkeypatch):
    name = "devkit/data/ILSVRC2015_clsloc_validation_ground_truth.txt"
    lines = full_release.members["devkit"][name].decode().splitlines(keepends=True)
    lines[0] = "1\n"
    sums = rewrite(full_release, "devkit", {name: "".join(lines).encode()})
    with pytest.raises(errors.ConsistencyError, match="ground_truth.txt line 1 is '1'"):
        api_build(
            full_release.manual_dir, tmp_path / "data", checksums=sums, monkeypatch=monkeypatch
        )
