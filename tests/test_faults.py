"""Damaged archives and members: stopped with the member named by default; skipped, counted,
logged and recorded in the dataset's metadata under skip_bad_members. Interrupted and
concurrent builds."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import pytest
import tensorflow_datasets as tfds

from imagenet2017_tfds import errors, testing
from tests import readback
from tests.conftest import ROOT, TFDS, build_env, tfds_build
from tests.mutate import rewrite
from tests.test_failures import api_build, assert_nothing_loads

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
    from imagenet2017_tfds.engine import jobs

    started = []
    real = jobs.write_shard

    def tracked(job, *args, **kwargs):
        started.append(job.split)
        return real(job, *args, **kwargs)

    monkeypatch.setattr(jobs, "write_shard", tracked)
    sums = damage(release, "truncated image")
    with pytest.raises(errors.ImageError, match=VAL.replace(".", r"\.")):
        api_build(release.manual_dir, tmp_path / "data", checksums=sums, monkeypatch=monkeypatch,
                  workers=1)  # fmt: skip
    assert started[-1] == "validation" and "train" not in started


@pytest.mark.parametrize("case", list(CASES))
def test_skip_bad_members_records_every_skip(release, case, tmp_path, monkeypatch, caplog):
    _, _, member, (train, val) = CASES[case]
    sums = damage(release, case)
    builder = api_build(release.manual_dir, tmp_path / "data", checksums=sums, monkeypatch=monkeypatch,
                        skip_bad_members=True)  # fmt: skip
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
        api_build(release.manual_dir, tmp_path / "data", checksums=empty, monkeypatch=monkeypatch,
                  allow_unverified=True)  # fmt: skip
    assert_nothing_loads(tmp_path / "data")


def test_only_some_archives_lists_what_is_needed(tmp_path):
    release = testing.write_release(tmp_path / "m", form="tarball", parts=("det",))
    with pytest.raises(errors.MissingInputError) as e:
        api_build(release.manual_dir, tmp_path / "data", config="det")
    message = str(e.value)
    assert "Missing: ILSVRC2017_DET_test_new.tar.gz" in message
    assert "ILSVRC2017_DET.tar.gz (" in message  # what was found, with its size


def _kill_during_generation(command, env, seen: str) -> None:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)  # fmt: skip
    buffer = b""
    deadline = time.monotonic() + 300
    while seen.encode() not in buffer and time.monotonic() < deadline:
        chunk = os.read(process.stderr.fileno(), 4096)
        if not chunk:
            break
        buffer += chunk
    assert seen.encode() in buffer, buffer[-2000:].decode(errors="replace")
    time.sleep(0.3)
    assert process.poll() is None, "the build ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_killed_build_leaves_nothing_and_the_rerun_gives_the_same_bytes(tmp_path):
    corpus = tmp_path / "corpus"
    # bench's corpus, large enough that generating train takes seconds
    subprocess.run([sys.executable, str(ROOT / "bench" / "corpus.py"), str(corpus), "--size_mb", "80"],
                   env=build_env(None), check=True, capture_output=True)  # fmt: skip
    sums = corpus / "checksums.tsv"
    data = tmp_path / "data"
    command = [TFDS, "build", "imagenet2017", "--imports", "imagenet2017_tfds", "--config", "clsloc",
               "--manual_dir", str(corpus), "--data_dir", str(data)]  # fmt: skip
    _kill_during_generation(command, build_env(sums), "Generating train examples")
    assert_nothing_loads(data)
    tfds_build("clsloc", corpus, data, sums)
    assert not list((data / "imagenet2017" / "clsloc").glob("incomplete.*"))
    tfds_build("clsloc", corpus, tmp_path / "clean", sums)
    assert readback.shard_bytes(data, "clsloc") == readback.shard_bytes(
        tmp_path / "clean", "clsloc"
    )


def test_concurrent_builds_on_one_data_dir_do_not_corrupt_each_other(release, tmp_path):
    data = tmp_path / "data"
    command = [TFDS, "build", "imagenet2017", "--imports", "imagenet2017_tfds", "--config", "clsloc",
               "--manual_dir", str(release.manual_dir), "--data_dir", str(data)]  # fmt: skip
    env = build_env(release.checksums)
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0].decode(errors="replace") for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    tfds_build("clsloc", release.manual_dir, tmp_path / "clean", release.checksums)
    assert readback.shard_bytes(data, "clsloc") == readback.shard_bytes(
        tmp_path / "clean", "clsloc"
    )
    assert (
        tfds.builder("imagenet2017/clsloc", data_dir=str(data)).info.splits["train"].num_examples
        == 14
    )
    assert not list((data / "imagenet2017" / "clsloc").glob("incomplete.*"))


def build_fails_keeping_nothing(release, tmp_path, monkeypatch, match: str, **options) -> None:
    with pytest.raises(errors.ConsistencyError, match=match):
        api_build(
            release.manual_dir, tmp_path / "data", checksums=release.checksums,
            monkeypatch=monkeypatch, **options,
        )  # fmt: skip
    assert_nothing_loads(tmp_path / "data")


@pytest.mark.parametrize("workers", [1, 2])
def test_an_example_lost_on_the_way_fails_the_build_naming_it(
    release, tmp_path, monkeypatch, workers
):
    from imagenet2017_tfds.engine import jobs, pool

    # As a broken executor would: one example (in this process) or one shard's report
    # (from the pool) never arrives.
    if workers == 1:
        real = jobs.run

        def lossy(*args, **kwargs):
            for ex in real(*args, **kwargs):
                if not ex.key.endswith("n01440764_9999"):
                    yield ex

        monkeypatch.setattr(jobs, "run", lossy)
    else:
        real = pool.Pool.run

        def lossy(self, *args, **kwargs):
            for job, written in real(self, *args, **kwargs):
                if job.split == "train":
                    written.num_examples -= 1
                yield job, written

        monkeypatch.setattr(pool.Pool, "run", lossy)
    build_fails_keeping_nothing(release, tmp_path, monkeypatch,
                                "train: 13 examples written, 14 planned", workers=workers)  # fmt: skip


def test_a_shard_missing_from_disk_fails_the_build(release, tmp_path, monkeypatch):
    # As a runner that wrote one shard over another would leave it: TFDS's counts are
    # complete, a file is not there.
    from imagenet2017_tfds import fileio

    real = fileio.link_or_copy

    def astray(source, target):
        if "-train." in str(target):
            target = str(target) + ".astray"
        return real(source, target)

    monkeypatch.setattr(fileio, "link_or_copy", astray)
    build_fails_keeping_nothing(
        release, tmp_path, monkeypatch, "train: TFDS counted 1 shards of 14"
    )
