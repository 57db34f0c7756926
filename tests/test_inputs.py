"""inputs.locate: the release found in manual_dir, as downloaded archives or as the tree
extracted from them, and what it says when something is missing; a build missing an archive
its config needs stops with that, and nothing loads."""

from __future__ import annotations

import shutil

import pytest

from imagenet2017_tfds import errors, testing
from imagenet2017_tfds.errors import MissingInputError
from imagenet2017_tfds.ilsvrc import inputs, kaggle, tasks
from imagenet2017_tfds.sources import Tarball, Tree
from tests.conftest import api_build
from tests.support.readback import assert_nothing_loads

DEVKIT, CLSLOC = tasks.DEVKIT_ARCHIVE, tasks.CLSLOC_ARCHIVE
DET, DET_TEST = tasks.DET_ARCHIVE, tasks.DET_TEST_ARCHIVE


@pytest.fixture(scope="module")
def tarballs(tmp_path_factory):
    return testing.write_release(tmp_path_factory.mktemp("tarballs"))


def test_archives_are_found_by_their_names(tarballs, tmp_path):
    found = inputs.locate(
        tarballs.manual_dir, tasks.DET.parts, tmp_path / "index", optional=(DEVKIT,)
    )
    assert set(found.parts) == {"det", "det_test", "devkit"}  # the devkit whenever present
    assert all(isinstance(s, Tarball) for s in found.parts.values())
    assert found.tarballs["det"] == tarballs.manual_dir / testing.DET
    assert found.parts["det"].index_file == tmp_path / "index" / f"{testing.DET}.gzindex"
    assert found.releases["det_test"] == f"{inputs.IMAGENET}: {testing.DET_TEST}"
    assert found.companions == {}


def test_the_devkit_is_optional(tmp_path):
    release = testing.write_release(tmp_path / "m", parts=("clsloc",))
    found = inputs.locate(release.manual_dir, (CLSLOC,), optional=(DEVKIT,))
    assert set(found.parts) == {"clsloc"}
    assert found.parts["clsloc"].index_file is None  # no index folder given


@pytest.mark.parametrize("prefix", [True, False])
def test_a_tree_serves_its_parts_and_det_and_det_test_share_one(tmp_path, prefix):
    release = testing.write_release(tmp_path / "m", form="tree", ilsvrc_prefix=prefix)
    found = inputs.locate(release.manual_dir, (CLSLOC, DET, DET_TEST), optional=(DEVKIT,))
    assert set(found.parts) == {"clsloc", "det", "det_test", "devkit"}
    assert all(isinstance(s, Tree) for s in found.parts.values())
    assert found.parts["det"] is found.parts["det_test"]
    assert found.parts["clsloc"] is not found.parts["det"]
    assert found.tarballs == {}
    root = release.manual_dir / "ILSVRC" if prefix else release.manual_dir
    assert found.releases["clsloc"] == f"extracted tree: {root}"


def test_an_archive_wins_over_a_tree_beside_it(tmp_path, tarballs):
    release = testing.write_release(tmp_path / "m", form="tree", parts=("clsloc",))
    shutil.copy(tarballs.manual_dir / testing.CLSLOC, release.manual_dir)
    found = inputs.locate(release.manual_dir, (CLSLOC,))
    assert isinstance(found.parts["clsloc"], Tarball)


@pytest.mark.parametrize("form", ["tarball", "tree"])
def test_kaggles_release_of_clsloc_is_named_as_such(tmp_path, form):
    release = testing.write_release(tmp_path / "m", form=form, parts=("clsloc",), kaggle=True)
    found = inputs.locate(release.manual_dir, (CLSLOC,))
    solution = release.manual_dir / kaggle.VAL_SOLUTION
    assert found.companions == {kaggle.VAL_SOLUTION: solution}
    if form == "tarball":
        assert found.releases["clsloc"] == f"{inputs.KAGGLE}: {kaggle.TARBALL}"
    else:
        assert found.releases["clsloc"].startswith(f"{inputs.KAGGLE}, extracted tree: ")


def test_no_manual_dir_says_where_to_download_and_how_to_pass_it():
    with pytest.raises(MissingInputError) as e:
        inputs.locate(None, (CLSLOC,), what="imagenet2017/clsloc")
    message = str(e.value)
    assert message.startswith("imagenet2017/clsloc needs the ILSVRC2017 release")
    assert "ILSVRC2017_CLS-LOC.tar.gz or imagenet_object_localization" in message
    assert "--manual_dir" in message and "https://image-net.org" in message


def test_a_missing_archive_is_named_with_where_it_was_looked_for_and_what_was_found(tarballs):
    with pytest.raises(MissingInputError) as e:
        inputs.locate(tarballs.manual_dir / "nowhere", (CLSLOC,))
    assert "does not exist" in str(e.value)
    folder = tarballs.manual_dir
    (folder.parent / "only-det").mkdir()
    shutil.copy(folder / testing.DET, folder.parent / "only-det")
    with pytest.raises(MissingInputError) as e:
        inputs.locate(folder.parent / "only-det", (CLSLOC, DET), what="x", optional=(DEVKIT,))
    message = str(e.value)
    assert message.startswith(
        f"x needs ILSVRC2017_CLS-LOC.tar.gz or {kaggle.TARBALL} and ILSVRC2017_DET.tar.gz (the "
        "devkit ILSVRC2017_devkit.tar.gz is optional), as downloaded"
    )
    assert "Missing: ILSVRC2017_CLS-LOC.tar.gz or imagenet_object_localization" in message
    assert str(folder.parent / "only-det" / testing.CLSLOC) in message  # looked at
    size = (folder / testing.DET).stat().st_size
    assert f"holds: {testing.DET} ({size} bytes)" in message


def test_kaggles_zip_left_zipped_is_named_with_the_command_that_unzips_it(tmp_path):
    (tmp_path / "imagenet-object-localization-challenge.zip").write_bytes(b"PK")
    with pytest.raises(MissingInputError) as e:
        inputs.locate(tmp_path, (CLSLOC,))
    assert f"unzip FILE -d {tmp_path}" in str(e.value)
    assert kaggle.TARBALL in str(e.value)


def test_the_archives_names():
    assert inputs.archive_names(CLSLOC) == f"ILSVRC2017_CLS-LOC.tar.gz or {kaggle.TARBALL}"
    assert set(tasks.archive_files()) == {*testing.ARCHIVES.values(), kaggle.TARBALL}
    assert {a.name for a in tasks.archive_files().values()} == set(testing.ARCHIVES)


@pytest.mark.parametrize("case", ["none", "empty", "wrong_name"])
def test_missing_inputs_say_what_is_needed_and_what_was_found(case, tmp_path, monkeypatch):
    manual = None if case == "none" else tmp_path / "manual"
    if manual is not None:
        manual.mkdir()
    if case == "wrong_name":
        (manual / "ILSVRC2017_CLS_LOC.tgz").write_bytes(b"x" * 1234)
    with pytest.raises(errors.MissingInputError) as e:
        api_build(manual, tmp_path / "data")
    message = str(e.value)
    assert "ILSVRC2017_CLS-LOC.tar.gz" in message
    if case == "empty":
        assert "is empty" in message and str(manual) in message
    if case == "wrong_name":
        assert "ILSVRC2017_CLS_LOC.tgz (1234 bytes)" in message
    assert_nothing_loads(tmp_path / "data")


def test_only_the_archives_a_config_needs_are_required(tmp_path, monkeypatch):
    release = testing.write_release(tmp_path / "m", form="tarball", parts=("clsloc", "det"))
    builder = api_build(
        release.manual_dir, tmp_path / "data", checksums=release.checksums, monkeypatch=monkeypatch
    )
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
        "train": 14,
        "validation": 10,
        "test": 5,
    }
    # det needs DET_test_new too: named as missing, beside what was found, with its size.
    with pytest.raises(errors.MissingInputError) as e:
        api_build(release.manual_dir, tmp_path / "det", config="det")
    message = str(e.value)
    assert "Missing: ILSVRC2017_DET_test_new.tar.gz" in message
    assert "ILSVRC2017_DET.tar.gz (" in message
    assert_nothing_loads(tmp_path / "det", "det")
