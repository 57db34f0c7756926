"""Inputs that must stop the build with a clear error, and leave nothing that loads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import tensorflow_datasets as tfds

import imagenet2017_tfds  # noqa: F401
from imagenet2017_tfds import errors, testing
from tests import readback
from tests.conftest import tfds_build
from tests.mutate import rewrite, wrong_md5


def api_build(manual_dir, data_dir, config="clsloc", checksums=None, monkeypatch=None, **options):
    if checksums is not None:
        monkeypatch.setenv("IMAGENET2017_CHECKSUMS", str(checksums))
    cfg = imagenet2017_tfds.Imagenet2017Config(name=config, **options) if options else config
    builder = tfds.builder("imagenet2017", config=cfg, data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=None if manual_dir is None else str(manual_dir)
        )
    )
    return builder


def assert_nothing_loads(data_dir, config="clsloc"):
    version_dir = Path(data_dir) / "imagenet2017" / config / readback.VERSION
    assert not (version_dir / "dataset_info.json").exists()
    assert not list(version_dir.glob("*.tfrecord*"))
    with pytest.raises(Exception):  # noqa: B017  (TFDS raises its own AssertionError type)
        tfds.load(f"imagenet2017/{config}", data_dir=str(data_dir), download=False)


@pytest.fixture
def release(tmp_path):
    return testing.write_release(tmp_path / "manual", form="tarball")


def test_md5_mismatch_stops_the_cli_build_and_writes_nothing(release, tmp_path):
    bad, actual_md5 = wrong_md5(release.checksums, testing.CLSLOC, tmp_path)
    result = tfds_build("clsloc", release.manual_dir, tmp_path / "data", bad, check=False)
    assert result.returncode != 0
    assert "ChecksumError" in result.stderr
    assert f"{testing.CLSLOC}: md5 mismatch: expected {'0' * 32}" in result.stderr
    assert f"found {actual_md5}" in result.stderr
    assert_nothing_loads(tmp_path / "data")


def test_size_mismatch_is_reported_before_any_read(release, tmp_path, monkeypatch):
    text = release.checksums.read_text().splitlines()
    text = [
        f"{testing.CLSLOC}\t12\t\t" if line.startswith(testing.CLSLOC) else line for line in text
    ]
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join(text) + "\n")
    with pytest.raises(errors.ChecksumError, match="expected 12 bytes"):
        api_build(release.manual_dir, tmp_path / "data", checksums=bad, monkeypatch=monkeypatch)
    assert_nothing_loads(tmp_path / "data")


def test_unknown_digest_needs_the_opt_out(release, tmp_path, monkeypatch):
    empty = tmp_path / "empty.tsv"
    empty.write_text("filename\tsize\tmd5\tsha256\n")
    with pytest.raises(errors.ChecksumError, match="allow_unverified"):
        api_build(release.manual_dir, tmp_path / "a", checksums=empty, monkeypatch=monkeypatch)
    assert_nothing_loads(tmp_path / "a")
    # The opt-out as `tfds build` passes it: a JSON config.
    options = json.dumps({"name": "clsloc", "allow_unverified": True})
    tfds_build(options, release.manual_dir, tmp_path / "b", empty)
    assert (
        tfds.builder("imagenet2017/clsloc", data_dir=str(tmp_path / "b"))
        .info.splits["train"]
        .num_examples
        == 14
    )


def test_cached_verdict_is_reused_and_invalidated_by_a_change(release, tmp_path, monkeypatch):
    api_build(
        release.manual_dir, tmp_path / "data", checksums=release.checksums, monkeypatch=monkeypatch
    )
    verdict = tmp_path / "data" / "downloads" / "imagenet2017" / f"verdict-{testing.CLSLOC}.json"
    _magic, _header, payload = verdict.read_bytes().split(b"\n", 2)  # fileio.write_cache's
    assert json.loads(payload)["md5"] == next(
        line.split("\t")[2]
        for line in release.checksums.read_text().splitlines()
        if line.startswith(testing.CLSLOC)
    )
    # Same name, other bytes: the stale verdict and catalog must not be trusted.
    archive = release.manual_dir / testing.CLSLOC
    archive.write_bytes(archive.read_bytes()[:-100] + bytes(100))
    with pytest.raises(errors.ChecksumError, match="md5 mismatch"):
        api_build(
            release.manual_dir,
            tmp_path / "data2",
            checksums=release.checksums,
            monkeypatch=monkeypatch,
        )


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
    release = testing.write_release(tmp_path / "m", form="tarball", parts=("clsloc",))
    builder = api_build(
        release.manual_dir, tmp_path / "data", checksums=release.checksums, monkeypatch=monkeypatch
    )
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {
        "train": 14,
        "validation": 10,
        "test": 5,
    }
    with pytest.raises(errors.MissingInputError, match="ILSVRC2017_DET.tar.gz"):
        api_build(release.manual_dir, tmp_path / "det", config="det")


def test_devkit_disagreeing_with_the_package_names_the_first_entry(release, tmp_path, monkeypatch):
    name = "devkit/data/map_clsloc.txt"
    lines = release.members["devkit"][name].decode().splitlines(keepends=True)
    lines[4] = lines[4].replace(lines[4].split()[0], "n99999999")
    sums = rewrite(release, "devkit", {name: "".join(lines).encode()})
    with pytest.raises(errors.ConsistencyError, match=r"map_clsloc.txt line 5 is 'n99999999 5"):
        api_build(release.manual_dir, tmp_path / "data", checksums=sums, monkeypatch=monkeypatch)
    assert_nothing_loads(tmp_path / "data")


def test_devkit_ground_truth_disagreement_is_an_error(release, tmp_path, monkeypatch):
    name = "devkit/data/ILSVRC2015_clsloc_validation_ground_truth.txt"
    lines = release.members["devkit"][name].decode().splitlines(keepends=True)
    lines[0] = "1\n"
    sums = rewrite(release, "devkit", {name: "".join(lines).encode()})
    with pytest.raises(errors.ConsistencyError, match="ground_truth.txt line 1 is '1'"):
        api_build(release.manual_dir, tmp_path / "data", checksums=sums, monkeypatch=monkeypatch)


def test_unknown_det_class_names_the_file(release, tmp_path, monkeypatch):
    name = "Annotations/DET/train/ILSVRC2013_train/n02691156/n02691156_1.xml"
    xml = release.members["det"][name].replace(b"<name>n02691156</name>", b"<name>n99999999</name>")
    sums = rewrite(release, "det", {name: xml})
    with pytest.raises(
        errors.AnnotationError, match="n02691156_1.*'n99999999' is not one of the 200"
    ):
        api_build(
            release.manual_dir,
            tmp_path / "data",
            config="det",
            checksums=sums,
            monkeypatch=monkeypatch,
        )
    assert_nothing_loads(tmp_path / "data", "det")


def test_det_test_list_naming_the_other_archives_images_holds_nothing_against_them(
    release, tmp_path, monkeypatch
):
    # The DET archive's own test.txt naming a 2017 image (held by DET_test_new) is not a
    # missing image; its own earlier test images, named by no list, are kept and recorded.
    sums = rewrite(release, "det", {"ImageSets/DET/test.txt": b"ILSVRC2017_test_00000001 1\n"})
    builder = api_build(
        release.manual_dir, tmp_path / "data", config="det", checksums=sums, monkeypatch=monkeypatch
    )
    assert builder.info.splits["test"].num_examples == 3 + 4
    meta = json.loads((Path(builder.data_dir) / "metadata.json").read_text())
    assert meta["unlisted_members"] == [
        f"Data/DET/test/ILSVRC2016_test_{n:08d}.JPEG" for n in (1, 2, 3)
    ]
