"""What a build does with a damaged member or archive: it stops with the package's error
naming the archive or the member, and leaves nothing that loads; under skip_bad_members a
damaged member is left out, counted, logged and recorded."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from imagenet2017_tfds import errors, testing
from imagenet2017_tfds.internal import faults
from tests.conftest import api_build, tfds_build
from tests.support import readback
from tests.support.mutate import rewrite
from tests.support.readback import assert_nothing_loads

TRAIN = "Data/CLS-LOC/train/n01440764/n01440764_9999.JPEG"
VAL = "Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG"
XML = "Annotations/CLS-LOC/train/n02105855/n02105855_2934.xml"


@pytest.fixture
def release(tmp_path):
    return testing.write_release(tmp_path / "manual", form="tarball", parts=("clsloc",))


def damage(release, case: str):
    m = release.members["clsloc"]
    listed = m["ImageSets/CLS-LOC/train_cls.txt"]
    changes = {
        "undecodable image": {TRAIN: b"\xff\xd8\xff\xe0 not really a jpeg"},
        "truncated image": {VAL: m[VAL][: len(m[VAL]) // 2]},
        "xml not well-formed": {XML: b"<annotation><size><width>60</wid"},
        "xml box unparsable": {XML: m[XML].replace(b"<xmin>5</xmin>", b"<xmin>five</xmin>")},
        "listed but missing": {
            "ImageSets/CLS-LOC/train_cls.txt": listed + b"n01440764/n01440764_77777 15\n"
        },
        "present but unlisted": {"Data/CLS-LOC/train/n01440764/n01440764_55555.JPEG": m[TRAIN]},
    }[case]
    return rewrite(release, "clsloc", changes)


CASES = {  # case -> (error type, text naming the member, the skipped member, train/val counts)
    "undecodable image": (errors.ImageError, TRAIN, TRAIN, (13, 10)),
    "truncated image": (errors.ImageError, VAL, VAL, (14, 9)),
    "xml not well-formed": (errors.AnnotationError, XML, XML, (14, 10)),
    "xml box unparsable": (errors.AnnotationError, XML, XML, (14, 10)),
    "listed but missing": (errors.ConsistencyError, "n01440764/n01440764_77777", "n01440764/n01440764_77777", (14, 10)),
    "present but unlisted": (errors.ConsistencyError, "n01440764_55555.JPEG", "Data/CLS-LOC/train/n01440764/n01440764_55555.JPEG", (14, 10)),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_damaged_member_stops_the_build_naming_it(release, case, tmp_path, monkeypatch):
    error, named, _, _ = CASES[case]
    sums = damage(release, case)
    with pytest.raises(error, match=named.replace(".", r"\.")):
        api_build(release.manual_dir, tmp_path / "data", checksums=sums, monkeypatch=monkeypatch)
    assert_nothing_loads(tmp_path / "data")


def test_a_damaged_validation_image_stops_the_build_before_train_starts(
    release, tmp_path, monkeypatch
):
    started = []
    sums = damage(release, "truncated image")
    with (
        faults.armed("shard-started", lambda job: started.append(job.split)),
        pytest.raises(errors.ImageError, match=VAL.replace(".", r"\.")),
    ):
        api_build(
            release.manual_dir,
            tmp_path / "data",
            checksums=sums,
            monkeypatch=monkeypatch,
            workers=1,
        )
    # Its full decode runs before any shard of its split or of train is written.
    assert "train" not in started and "validation" not in started


@pytest.mark.parametrize("case", list(CASES))
def test_skip_bad_members_records_every_skip(release, case, tmp_path, monkeypatch, caplog):
    _, _, member, (train, val) = CASES[case]
    sums = damage(release, case)
    builder = api_build(
        release.manual_dir,
        tmp_path / "data",
        checksums=sums,
        monkeypatch=monkeypatch,
        skip_bad_members=True,
    )
    splits = {k: v.num_examples for k, v in builder.info.splits.items()}
    assert (splits["train"], splits["validation"]) == (train, val)
    version_dir = tmp_path / "data" / "imagenet2017" / "clsloc" / readback.VERSION
    skipped = json.loads((version_dir / "metadata.json").read_text())["skipped_members"]
    assert [s[0] for s in skipped] == [member]
    assert skipped[0][1]  # the reason
    assert member in caplog.text
    if case.startswith("xml"):  # the image stays, without its broken annotation
        ex = readback.examples(tmp_path / "data", "clsloc", "train")["n02105855_2934.JPEG"]
        assert not ex["annotated"]


def test_skip_bad_members_through_tfds_build_and_beam(release, tmp_path):
    sums = damage(release, "undecodable image")
    options = json.dumps({"name": "clsloc", "skip_bad_members": True})
    beam = "--beam_pipeline_options=runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"
    for data, extra in ((tmp_path / "plain", ()), (tmp_path / "beam", (beam,))):
        tfds_build(options, release.manual_dir, data, sums, *extra)
        meta = json.loads(
            (data / "imagenet2017" / "clsloc" / readback.VERSION / "metadata.json").read_text()
        )
        assert [s[0] for s in meta["skipped_members"]] == [TRAIN]
        assert readback.splits(data, "clsloc")["train"] == 13


def tar_gz(members: dict[str, bytes], cut: int | None = None) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in members.items():
            info = tarfile.TarInfo(f"ILSVRC/{name}")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    data = raw.getvalue()
    return gzip.compress(data[:cut] if cut else data, mtime=0)


@pytest.mark.parametrize("case", ["truncated file", "corrupt gzip data", "truncated tar member"])
def test_damaged_archive_is_named_and_nothing_loads(release, case, tmp_path, monkeypatch):
    archive = release.manual_dir / testing.CLSLOC
    data = archive.read_bytes()
    if case == "truncated file":
        archive.write_bytes(data[: len(data) // 2])
        match = r"ILSVRC2017_CLS-LOC\.tar\.gz"
    elif case == "corrupt gzip data":
        damaged = bytearray(data)
        for i in range(len(data) // 2, len(data) // 2 + 200):
            damaged[i] ^= 0xA5
        archive.write_bytes(bytes(damaged))
        match = r"ILSVRC2017_CLS-LOC\.tar\.gz"
    else:  # a well-formed gzip stream whose tar ends inside the last member's data
        members = {k: v for k, v in release.members["clsloc"].items() if k != TRAIN}
        members[TRAIN] = release.members["clsloc"][TRAIN]  # an image last, longer than the cut
        last = TRAIN
        raw_len = sum(512 + -(-len(v) // 512) * 512 for v in members.values())
        archive.write_bytes(tar_gz(members, cut=raw_len - 600))
        # Whether the last member's data was being read (one read) or skipped (a scan):
        match = rf"member ILSVRC/{last}.*\(truncated\): download it again"
    empty = tmp_path / "none.tsv"
    empty.write_text("filename\tsize\tmd5\tsha256\n")
    with pytest.raises(errors.ArchiveError, match=match):
        api_build(
            release.manual_dir,
            tmp_path / "data",
            checksums=empty,
            monkeypatch=monkeypatch,
            allow_unverified=True,
        )
    assert_nothing_loads(tmp_path / "data")


@pytest.fixture
def full_release(tmp_path):
    return testing.write_release(tmp_path / "manual", form="tarball")


def test_unknown_det_class_names_the_file(full_release, tmp_path, monkeypatch):
    name = "Annotations/DET/train/ILSVRC2013_train/n02691156/n02691156_1.xml"
    xml = full_release.members["det"][name].replace(
        b"<name>n02691156</name>", b"<name>n99999999</name>"
    )
    sums = rewrite(full_release, "det", {name: xml})
    with pytest.raises(
        errors.AnnotationError, match="n02691156_1.*'n99999999' is not one of the 200"
    ):
        api_build(
            full_release.manual_dir,
            tmp_path / "data",
            config="det",
            checksums=sums,
            monkeypatch=monkeypatch,
        )
    assert_nothing_loads(tmp_path / "data", "det")
