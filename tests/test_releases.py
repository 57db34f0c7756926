"""What users really downloaded, in both input forms: Kaggle's CLS-LOC, DET lists as the
devkit documents them, the 2017 DET test set whatever its test.txt says, images training
could not decode, and `imagenet2017-tfds check` reporting every problem in one table."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imagenet2017_tfds import errors, testing
from tests.conftest import api_build, build_env
from tests.support import readback
from tests.support.mutate import rewrite
from tests.support.readback import assert_nothing_loads
from tests.test_build import check_examples

FORMS = ["tarball", "tree"]


def metadata(data_dir, config: str) -> dict:
    folder = Path(data_dir) / "imagenet2017" / config / readback.VERSION
    return json.loads((folder / "metadata.json").read_text())


def put(release, part: str, changes: dict, kaggle: bool = False):
    """Changes members of one part in either form; returns the checksums to build with."""
    if release.form == "tree":
        for name, data in changes.items():
            path = release.manual_dir / "ILSVRC" / name
            if data is None:
                path.unlink()
            else:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
        return release.checksums
    sums = rewrite(release, part, changes)
    if kaggle:  # rewrite() packs under the image-net.org name
        (release.manual_dir / testing.CLSLOC).rename(release.manual_dir / testing.KAGGLE)
        return release.checksums
    return sums


# ---------------------------------------------------------------- Kaggle


@pytest.mark.parametrize("form", FORMS)
def test_kaggle_release_builds_clsloc_verified_by_content(form, cli_builds, tmp_path, monkeypatch):
    release = testing.write_release(tmp_path / "m", form=form, parts=("clsloc",), kaggle=True)
    # The checksums file does not list Kaggle's tarball (no digest is published).
    api_build(
        release.manual_dir, tmp_path / "data", checksums=release.checksums, monkeypatch=monkeypatch
    )
    check_examples(tmp_path / "data", release, "clsloc")
    # The same examples, byte for byte, as the image-net.org archive gives.
    assert readback.shard_bytes(tmp_path / "data", "clsloc") == readback.shard_bytes(
        cli_builds, "clsloc"
    )
    inputs = metadata(tmp_path / "data", "clsloc")["inputs"]
    assert "Kaggle" in inputs["clsloc"]["release"]
    assert inputs["clsloc"]["verified"].startswith("content")


@pytest.mark.parametrize("form", FORMS)
def test_kaggle_validation_disagreeing_with_its_solution_file_is_refused(
    form, tmp_path, monkeypatch
):
    release = testing.write_release(tmp_path / "m", form=form, parts=("clsloc",), kaggle=True)
    csv = release.manual_dir / testing.KAGGLE_VAL_SOLUTION
    lines = csv.read_text().splitlines()
    image, boxes = lines[1].split(",")
    wnid, xmin, *rest = boxes.split()
    lines[1] = f"{image},{wnid} {float(xmin) + 5:g} {' '.join(rest)}"
    csv.write_text("\n".join(lines) + "\n")
    with pytest.raises(errors.ConsistencyError, match=f"{image}.*LOC_val_solution.csv says"):
        api_build(
            release.manual_dir, tmp_path / "d", checksums=release.checksums, monkeypatch=monkeypatch
        )
    assert_nothing_loads(tmp_path / "d")


def test_kaggle_validation_label_against_the_ground_truth(tmp_path, monkeypatch):
    release = testing.write_release(tmp_path / "m", parts=("clsloc",), kaggle=True)
    (release.manual_dir / testing.KAGGLE_VAL_SOLUTION).unlink()  # the tarball alone
    name = "Annotations/CLS-LOC/val/ILSVRC2012_val_00000001.xml"
    xml = release.members["clsloc"][name].replace(b"n01751748", b"n01440764")
    checksums = put(release, "clsloc", {name: xml}, kaggle=True)
    with pytest.raises(errors.ConsistencyError, match="the annotation says n01440764"):
        api_build(release.manual_dir, tmp_path / "d", checksums=checksums, monkeypatch=monkeypatch)
    assert_nothing_loads(tmp_path / "d")


def test_a_checksums_file_that_lists_the_kaggle_tarball_is_honoured(tmp_path, monkeypatch):
    release = testing.write_release(tmp_path / "m", parts=("clsloc",), kaggle=True)
    sums = tmp_path / "sums.tsv"
    sums.write_text(f"{testing.KAGGLE}\t\t{'0' * 32}\t\n")
    with pytest.raises(errors.ChecksumError, match=f"{testing.KAGGLE}: md5 mismatch"):
        api_build(release.manual_dir, tmp_path / "d", checksums=sums, monkeypatch=monkeypatch)


# ---------------------------------------------------------------- DET lists

EXTRA = "Data/DET/train/ILSVRC2014_train_0000/ILSVRC2014_train_00000099.JPEG"


@pytest.mark.parametrize("form", FORMS)
def test_det_builds_from_the_per_class_lists_and_keeps_an_unlisted_image(
    form, tmp_path, monkeypatch
):
    release = testing.write_release(tmp_path / "m", form=form, det_train_txt=False)
    image = release.members["det"][
        "Data/DET/train/ILSVRC2013_train_extra0/ILSVRC2013_train_00000005.JPEG"
    ]
    checksums = put(release, "det", {EXTRA: image})
    builder = api_build(release.manual_dir, tmp_path / "d", "det", checksums, monkeypatch)
    assert builder.info.splits["train"].num_examples == len(release.expected["det"]["train"]) + 1
    # Also kept: an image whose XML has no object, which only train.txt would name.
    no_object = "Data/DET/train/ILSVRC2013_train/n01440764/n01440764_3.JPEG"
    unlisted = metadata(tmp_path / "d", "det")["unlisted_members"]
    assert [m for m in unlisted if m.startswith("Data/DET/train/")] == [no_object, EXTRA]
    # Extracted into one tree, DET_test_new's test.txt replaced the DET archive's.
    old = [f"Data/DET/test/ILSVRC2016_test_{n:08d}.JPEG" for n in (1, 2, 3)]
    assert [m for m in unlisted if m.startswith("Data/DET/test/")] == (
        old if form == "tree" else []
    )
    names = readback.examples(tmp_path / "d", "det", "train")
    assert names["ILSVRC2014_train_0000/ILSVRC2014_train_00000099.JPEG"]["image"] == image


def test_det_train_image_a_list_names_but_the_archive_lacks_stops_the_build(tmp_path, monkeypatch):
    release = testing.write_release(tmp_path / "m", det_train_txt=False)
    member = "Data/DET/train/ILSVRC2013_train_extra1/ILSVRC2013_train_00000012.JPEG"
    checksums = put(release, "det", {member: None})
    with pytest.raises(
        errors.ConsistencyError,
        match="lists ILSVRC2013_train_extra1/ILSVRC2013_train_00000012, but",
    ):
        api_build(release.manual_dir, tmp_path / "d", "det", checksums, monkeypatch)
    assert_nothing_loads(tmp_path / "d", "det")


def test_det_test_is_the_2017_set_when_det_test_new_lists_all_65500(tmp_path, monkeypatch):
    release = testing.write_release(tmp_path / "m", det_test_list="all")
    api_build(release.manual_dir, tmp_path / "d", "det", release.checksums, monkeypatch)
    check_examples(tmp_path / "d", release, "det")
    assert metadata(tmp_path / "d", "det")["unlisted_members"] == []


def test_det_test_list_naming_the_other_archives_images_holds_nothing_against_them(
    tmp_path, monkeypatch
):
    release = testing.write_release(tmp_path / "m", form="tarball")
    # The DET archive's own test.txt naming a 2017 image (held by DET_test_new) is not a
    # missing image; its own earlier test images, named by no list, are kept and recorded.
    sums = rewrite(release, "det", {"ImageSets/DET/test.txt": b"ILSVRC2017_test_00000001 1\n"})
    builder = api_build(
        release.manual_dir,
        tmp_path / "data",
        config="det",
        checksums=sums,
        monkeypatch=monkeypatch,
    )
    assert builder.info.splits["test"].num_examples == 3 + 4
    meta = json.loads((Path(builder.data_dir) / "metadata.json").read_text())
    assert meta["unlisted_members"] == [
        f"Data/DET/test/ILSVRC2016_test_{n:08d}.JPEG" for n in (1, 2, 3)
    ]


# ---------------------------------------------------------------- images training could not decode


def undecodable(jpeg: bytes) -> bytes:
    """Header and end marker intact, but a scan naming a component the frame lacks: only a
    full decode finds it."""
    sos = jpeg.index(b"\xff\xda")
    return jpeg[: sos + 5] + b"\x09" + jpeg[sos + 6 :]


VAL = "Data/CLS-LOC/val/ILSVRC2012_val_00000022.JPEG"
TRAIN = "Data/CLS-LOC/train/n01440764/n01440764_9999.JPEG"


@pytest.mark.parametrize("form", FORMS)
def test_a_validation_image_training_could_not_decode_stops_the_build(form, tmp_path, monkeypatch):
    release = testing.write_release(tmp_path / "m", form=form, parts=("clsloc",))
    checksums = put(release, "clsloc", {VAL: undecodable(release.members["clsloc"][VAL])})
    with pytest.raises(errors.ImageError, match=f"{VAL}: TensorFlow cannot decode this image"):
        api_build(release.manual_dir, tmp_path / "d", checksums=checksums, monkeypatch=monkeypatch)
    assert_nothing_loads(tmp_path / "d")
    api_build(
        release.manual_dir,
        tmp_path / "s",
        checksums=checksums,
        monkeypatch=monkeypatch,
        skip_bad_members=True,
    )
    assert [m for m, _ in metadata(tmp_path / "s", "clsloc")["skipped_members"]] == [VAL]


def test_train_images_are_decoded_only_when_asked(tmp_path, monkeypatch):
    release = testing.write_release(tmp_path / "m", parts=("clsloc",))
    checksums = put(release, "clsloc", {TRAIN: undecodable(release.members["clsloc"][TRAIN])})
    builder = api_build(
        release.manual_dir, tmp_path / "d", checksums=checksums, monkeypatch=monkeypatch
    )
    assert builder.info.splits["train"].num_examples == 14
    with pytest.raises(errors.ImageError, match=TRAIN):
        api_build(
            release.manual_dir,
            tmp_path / "e",
            checksums=checksums,
            monkeypatch=monkeypatch,
            decode_train=True,
        )


# ---------------------------------------------------------------- one scan, every problem


def check(manual_dir, checksums, *args) -> subprocess.CompletedProcess:
    env = build_env(checksums)
    return subprocess.run(
        [sys.executable, "-m", "imagenet2017_tfds.tools.cli", "check", str(manual_dir), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_check_reports_every_problem_in_one_table_and_fails(tmp_path):
    release = testing.write_release(tmp_path / "m", parts=("clsloc",))
    m = release.members["clsloc"]
    xml = "Annotations/CLS-LOC/train/n02105855/n02105855_2934.xml"
    checksums = put(
        release,
        "clsloc",
        {
            TRAIN: None,  # listed, missing
            "Data/CLS-LOC/train/n01440764/n01440764_55555.JPEG": m[VAL],  # present, unlisted
            xml: b"<annotation><size>",  # not well-formed
            VAL: undecodable(m[VAL]),  # only a full decode finds it
            "Data/CLS-LOC/test/ILSVRC2012_test_00000002.JPEG": m[VAL][:200],  # truncated
        },
    )
    result = check(release.manual_dir, checksums, "--config", "clsloc")
    assert result.returncode == 1, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[2:]}
    assert set(rows) == {"missing", "extra", "annotation", "image"}, result.stdout
    assert rows["missing"].split()[1] == "1" and "n01440764/n01440764_9999" in rows["missing"]
    assert "n01440764_55555.JPEG" in rows["extra"] and xml in rows["annotation"]
    assert rows["image"].split()[1] == "2" and VAL in rows["image"]
    assert "ILSVRC2012_test_00000002.JPEG" in rows["image"]
    assert "5 problems: a build would stop" in result.stdout


@pytest.mark.parametrize("form", FORMS)
def test_check_passes_a_sound_release(form, tmp_path):
    release = testing.write_release(tmp_path / "m", form=form)
    result = check(release.manual_dir, release.checksums)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "imagenet2017/clsloc: 29 images checked; no problem" in result.stdout
    assert "imagenet2017/det: 26 images checked; no problem" in result.stdout


def test_kaggles_zip_left_zipped_is_named_with_what_to_do(tmp_path, monkeypatch):
    manual = tmp_path / "m"
    manual.mkdir()
    (manual / "imagenet-object-localization-challenge.zip").write_bytes(b"PK\x03\x04 zip")
    with pytest.raises(errors.MissingInputError, match=r"challenge.zip: unzip it there first"):
        api_build(manual, tmp_path / "d", monkeypatch=monkeypatch)
