"""What a build does with inputs it cannot use: a missing or damaged archive, a digest
mismatch, a damaged member stop it with the package's error naming the file or member, and
leave nothing that loads; under skip_bad_members a damaged member is left out, counted,
logged and recorded. A build killed midway leaves nothing that loads either. Random and
mutated XML, tar and image bytes give only the package's own errors, and nothing hangs."""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
import zlib
from pathlib import Path

import pytest
import tensorflow_datasets as tfds
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imagenet2017_tfds import errors, images, testing, xml_annotations
from imagenet2017_tfds.errors import Imagenet2017Error
from imagenet2017_tfds.sources import Tarball, tar
from tests import readback
from tests.conftest import ROOT, TFDS, api_build, build_env, tfds_build
from tests.mutate import rewrite, wrong_md5
from tests.readback import assert_nothing_loads

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
    # Its full decode runs before any shard of its split or of train is written.
    assert "train" not in started and "validation" not in started


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


# ---------------------------------------------------------------- inputs that stop a build


@pytest.fixture
def full_release(tmp_path):
    return testing.write_release(tmp_path / "manual", form="tarball")


def test_md5_mismatch_stops_the_cli_build_and_writes_nothing(full_release, tmp_path):
    bad, actual_md5 = wrong_md5(full_release.checksums, testing.CLSLOC, tmp_path)
    result = tfds_build("clsloc", full_release.manual_dir, tmp_path / "data", bad, check=False)
    assert result.returncode != 0
    assert "ChecksumError" in result.stderr
    assert f"{testing.CLSLOC}: md5 mismatch: expected {'0' * 32}" in result.stderr
    assert f"found {actual_md5}" in result.stderr
    assert_nothing_loads(tmp_path / "data")


def test_size_mismatch_is_reported_before_any_read(full_release, tmp_path, monkeypatch):
    text = full_release.checksums.read_text().splitlines()
    text = [
        f"{testing.CLSLOC}\t12\t\t" if line.startswith(testing.CLSLOC) else line for line in text
    ]
    bad = tmp_path / "bad.tsv"
    bad.write_text("\n".join(text) + "\n")
    with pytest.raises(errors.ChecksumError, match="expected 12 bytes"):
        api_build(
            full_release.manual_dir, tmp_path / "data", checksums=bad, monkeypatch=monkeypatch
        )
    assert_nothing_loads(tmp_path / "data")


def test_unknown_digest_needs_the_opt_out(full_release, tmp_path, monkeypatch):
    empty = tmp_path / "empty.tsv"
    empty.write_text("filename\tsize\tmd5\tsha256\n")
    with pytest.raises(errors.ChecksumError, match="allow_unverified"):
        api_build(full_release.manual_dir, tmp_path / "a", checksums=empty, monkeypatch=monkeypatch)
    assert_nothing_loads(tmp_path / "a")
    # The opt-out as `tfds build` passes it: a JSON config.
    options = json.dumps({"name": "clsloc", "allow_unverified": True})
    tfds_build(options, full_release.manual_dir, tmp_path / "b", empty)
    assert (
        tfds.builder("imagenet2017/clsloc", data_dir=str(tmp_path / "b"))
        .info.splits["train"]
        .num_examples
        == 14
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


def test_max_examples_per_split_is_refused_before_anything_is_read(
    full_release, tmp_path, monkeypatch
):
    from imagenet2017_tfds.engine import stream

    monkeypatch.setattr(stream, "read_once", lambda *a, **k: pytest.fail("the archive was read"))
    monkeypatch.setenv("IMAGENET2017_CHECKSUMS", str(full_release.checksums))
    builder = tfds.builder("imagenet2017/clsloc", data_dir=str(tmp_path / "data"))
    with pytest.raises(errors.ConsistencyError) as e:
        builder.download_and_prepare(
            download_config=tfds.download.DownloadConfig(
                manual_dir=str(full_release.manual_dir), max_examples_per_split=3
            )
        )
    assert str(e.value) == (
        "imagenet2017/clsloc builds every example: max_examples_per_split=3 would keep a "
        "dataset the release's lists cannot vouch for. Build without it; to try the builder "
        "quickly, `make demo` builds a miniature release in a minute."
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


def test_det_test_list_naming_the_other_archives_images_holds_nothing_against_them(
    full_release, tmp_path, monkeypatch
):
    # The DET archive's own test.txt naming a 2017 image (held by DET_test_new) is not a
    # missing image; its own earlier test images, named by no list, are kept and recorded.
    sums = rewrite(full_release, "det", {"ImageSets/DET/test.txt": b"ILSVRC2017_test_00000001 1\n"})
    builder = api_build(
        full_release.manual_dir,
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


# ---------------------------------------------------------------- hostile bytes: only our errors

FAST = settings(max_examples=300, deadline=2000, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def damaged(draw, originals: list[bytes]) -> tuple[bytes, bytes]:
    """One of `originals` and a copy of it with a few random changes."""
    original = draw(st.sampled_from(originals))
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 8))):
        if not data:
            break
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, len(data) - 1))
        if op == "flip":
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        else:
            del data[pos : pos + draw(st.integers(1, 32))]
    return original, bytes(data)


def mutated(originals: list[bytes]):
    return damaged(originals).map(lambda pair: pair[1])


XMLS = list(testing.annotation_samples().values())


def _annotation_by_elementtree(data: bytes) -> xml_annotations.Annotation | None:
    """What Python's own XML parser reads in an annotation; None where it finds no
    well-formed annotation with numbers where the package wants them."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.fromstring(data)
        size = root.find("size")
        objects = tuple(
            xml_annotations.Box(
                (o.findtext("name") or "").strip(),
                *(float(o.find("bndbox").findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax")),
                subcategory=(o.findtext("subcategory") or "").strip() or None,
            )
            for o in root.iterfind("object")
        )
        return xml_annotations.Annotation(
            float(size.findtext("width")), float(size.findtext("height")), objects
        )
    except (ET.ParseError, AttributeError, TypeError, ValueError):
        return None


@FAST
@given(st.one_of(st.sampled_from(XMLS), st.binary(max_size=2000), mutated(XMLS)))
def test_annotation_parser_raises_only_its_own_errors(data):
    """What it reads, when it reads anything, is what Python's own XML parser reads; a
    sample as the release has it is read."""
    try:
        ann = xml_annotations.parse(data, "member.xml")
    except Imagenet2017Error:
        assert data not in XMLS
        return
    assert ann.width > 0 and ann.height > 0
    reference = _annotation_by_elementtree(data)
    assert reference is None or ann == reference, (ann, reference)


def _tar(members, fmt=tarfile.GNU_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as t:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


TARS = [
    _tar(
        [
            ("ILSVRC/Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG", b"x" * 700),
            ("ILSVRC/a.xml", XMLS[0]),
        ]
    ),
    _tar([("ILSVRC/" + "d" * 120 + "/long.xml", b"y" * 10)]),
    _tar([("ILSVRC/" + "p" * 120 + "/pax.xml", b"z" * 10)], tarfile.PAX_FORMAT),
]


def _walk(data: bytes) -> list[tuple[str, bytes]]:
    """The regular members the walker reads, up to its error if it raises one."""
    walker, out = tar.Walker(io.BytesIO(data), "t"), []
    with contextlib.suppress(Imagenet2017Error):
        for header in walker.headers():
            if header.regular:
                out.append((header.name, walker.read(header)))
    return out


def _intact(original: bytes, data: bytes) -> list[tuple[str, bytes]]:
    """The members of `original` that tarfile reads, up to the first one a change in `data`
    touches (its header, data or padding)."""
    same = min(len(original), len(data))
    same = next((k for k in range(same) if original[k] != data[k]), same)
    with tarfile.open(fileobj=io.BytesIO(original)) as t:
        out = []
        for m in t.getmembers():
            if m.offset_data + -(-m.size // 512) * 512 > same:
                break
            out.append((m.name, t.extractfile(m).read()))
    return out


@FAST
@given(st.binary(max_size=3000))
def test_tar_reader_raises_only_its_own_errors_on_noise(data):
    _walk(data)


@FAST
@given(damaged(TARS))
def test_tar_reader_reads_every_member_before_the_damage_as_tarfile_does(pair):
    original, data = pair
    intact = _intact(original, data)
    assert _walk(data)[: len(intact)] == intact


def _reference_scan(data: bytes) -> list[tuple[str, bytes]] | None:
    """The members Python's gzip and tarfile read, named as a scan names them; None where
    either refuses the bytes (a CRC or length that does not match, a damaged header)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(data))) as t:
            return [
                (m.name.removeprefix("ILSVRC/"), t.extractfile(m).read())
                for m in t.getmembers()
                if m.isfile()
            ]
    except (OSError, EOFError, tarfile.TarError, zlib.error):
        return None


GZIPPED = [gzip.compress(t, mtime=0) for t in TARS]


@st.composite
def gzip_header_changed(draw) -> bytes:
    """A change to the gzip header's time, compressor flags or OS (bytes 4 to 9), which no
    reader checks: the archive reads as before."""
    data = bytearray(draw(st.sampled_from(GZIPPED)))
    data[draw(st.integers(4, 9))] ^= draw(st.integers(1, 255))
    return bytes(data)


@settings(max_examples=40, deadline=5000)
@given(st.one_of(mutated(GZIPPED), gzip_header_changed()))
def test_tarball_source_reads_what_gzip_and_tarfile_read_or_raises_its_own(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("gz") / "a.tar.gz"
    path.write_bytes(data)
    reference = _reference_scan(data)
    try:
        scanned = [(e.path, got) for e, got in Tarball(path).scan(lambda p: True)]
    except Imagenet2017Error:
        assert reference not in [_reference_scan(g) for g in GZIPPED], "an intact tar refused"
        return
    assert scanned == reference


def _jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 12), (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


JPEGS = [_jpeg()]


@FAST
@given(st.one_of(st.sampled_from(JPEGS), st.binary(max_size=500), mutated(JPEGS)))
def test_image_handling_raises_only_its_own_errors(data):
    """A member is kept as it is (an RGB or grey JPEG, the intact one among them) or
    re-encoded into an RGB JPEG Pillow decodes whole, of the size Pillow reads in the member."""
    from PIL import Image

    try:
        out = images.storable_jpeg(data, "member.JPEG")
    except Imagenet2017Error:
        assert data not in JPEGS
        return
    assert out[:3] == b"\xff\xd8\xff"
    if out is data:
        assert images.sniff(data).stored_as_is
        return
    assert data not in JPEGS
    with Image.open(io.BytesIO(out)) as kept, Image.open(io.BytesIO(data)) as member:
        kept.load()
        assert (kept.format, kept.mode, kept.size) == ("JPEG", "RGB", member.size)
