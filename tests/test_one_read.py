"""A first build reads a tarball once when its annotations and lists come before its images
(oneread.py), twice otherwise; the bytes written are the same either way."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest

from imagenet2017_tfds import checksums, generate, oneread, prepare, tasks, workers
from imagenet2017_tfds.problems import Recorder
from tests import minirelease, readback
from tests.conftest import tfds_build
from tests.mutate import wrong_md5
from tests.test_failures import assert_nothing_loads

MAIN = {"clsloc": "clsloc", "det": "det"}  # the archive a config streams


@pytest.fixture(scope="module")
def ordered(tmp_path_factory):
    """The miniature release (the members of the default one) in tar's depth-first order."""
    return {
        order: minirelease.write_release(tmp_path_factory.mktemp(order), order=order)
        for order in ("annotations_first", "annotations_last")
    }


def passes(data_dir, config: str) -> dict[str, int]:
    meta = data_dir / "imagenet2017" / config / readback.VERSION / "metadata.json"
    inputs = json.loads(meta.read_text())["inputs"]
    return {part: v["passes"] for part, v in inputs.items() if "passes" in v}


@pytest.mark.parametrize("workers", [None, 1])
@pytest.mark.parametrize("config", ["clsloc", "det"])
def test_one_read_when_annotations_and_lists_come_first(
    ordered, cli_builds, tmp_path, config, workers
):
    release = ordered["annotations_first"]
    options = config if workers is None else json.dumps({"name": config, "workers": workers})
    tfds_build(options, release.manual_dir, tmp_path, release.checksums)
    # DET's test split also holds DET_test_new's images: that small archive is scanned first
    # and its images read back as in two reads.
    expected = {"clsloc": {"clsloc": 1}, "det": {"det": 1, "det_test": 2}}[config]
    assert passes(tmp_path, config) == expected
    assert readback.shard_bytes(tmp_path, config) == readback.shard_bytes(cli_builds, config)


@pytest.mark.parametrize("config", ["clsloc", "det"])
def test_two_reads_when_the_images_come_first(ordered, cli_builds, tmp_path, config):
    release = ordered["annotations_last"]
    tfds_build(config, release.manual_dir, tmp_path, release.checksums)
    assert passes(tmp_path, config)[MAIN[config]] == 2
    assert readback.shard_bytes(tmp_path, config) == readback.shard_bytes(cli_builds, config)
    # The second build reads the archive once: its scan is cached.
    shutil.rmtree(tmp_path / "imagenet2017")
    tfds_build(config, release.manual_dir, tmp_path, release.checksums)
    assert passes(tmp_path, config)[MAIN[config]] == 1


def test_an_annotation_after_its_image_reads_the_archive_again(ordered, cli_builds, tmp_path):
    """The order promised one read (annotations first) but one train annotation comes last:
    the train examples written from the stream lack its boxes, so that build is abandoned and
    made again from the finished scan, with the same bytes as ever."""
    release = minirelease.write_release(tmp_path / "manual", order="annotations_first")
    members = release.members["clsloc"]
    names = minirelease.member_order(members, 1, "annotations_first")
    late = next(n for n in names if n.startswith("Annotations/CLS-LOC/train/"))
    names = [n for n in names if n != late] + [late]
    (release.manual_dir / minirelease.CLSLOC).write_bytes(minirelease.tar_gz(members, names))
    sums = minirelease.write_checksums(release.manual_dir, list(minirelease.ARCHIVES.values()))
    result = tfds_build("clsloc", release.manual_dir, tmp_path / "data", sums)
    assert "reading it once was abandoned" in result.stderr
    assert late.rsplit("/", 1)[-1].replace(".xml", ".JPEG") in result.stderr
    assert passes(tmp_path / "data", "clsloc") == {"clsloc": 2}
    assert readback.shard_bytes(tmp_path / "data", "clsloc") == readback.shard_bytes(
        cli_builds, "clsloc"
    )
    # Nothing of the abandoned attempt is left beside the dataset.
    version_dir = tmp_path / "data" / "imagenet2017" / "clsloc" / readback.VERSION
    assert sorted(p.name for p in version_dir.iterdir() if p.name.startswith(".")) == []


def test_a_digest_mismatch_in_one_read_fails_naming_the_file_and_keeps_nothing(ordered, tmp_path):
    release = ordered["annotations_first"]
    sums, actual = wrong_md5(release.checksums, minirelease.CLSLOC, tmp_path)
    result = tfds_build("clsloc", release.manual_dir, tmp_path / "data", sums, check=False)
    assert result.returncode != 0
    assert f"{minirelease.CLSLOC}: md5 mismatch: expected {'0' * 32}" in result.stderr
    assert f"found {actual}" in result.stderr
    assert_nothing_loads(tmp_path / "data")


def test_a_split_whose_turn_has_not_come_waits_in_the_spill(ordered, tmp_path, monkeypatch):
    """Splits taken in an order other than the archive's (as they would be, were TFDS to fix
    the order up front): the images read early wait on disk, and every split gets exactly
    the examples of two reads."""
    release = ordered["annotations_first"]
    monkeypatch.setenv("IMAGENET2017_CHECKSUMS", str(release.checksums))
    spill = tmp_path / "spill"
    one = oneread.begin(release.manual_dir, tasks.CLSLOC, tmp_path / "cache", False, Recorder(),
                        str(spill))  # fmt: skip
    assert isinstance(one, oneread.OneRead)
    head = one.split_of(one.stream.head[2])
    archive_order = [head] + [s for s in ("train", "validation", "test") if s != head]
    taken = list(reversed(archive_order))  # the archive's first split comes last
    spilled = []

    def read(parts):
        return [workers.Job(tasks.CLSLOC, one.found.parts[p], items, "strict", False)
                for p, items in parts.items()]  # fmt: skip

    got = {}
    for split in taken:
        jobs = list(one.jobs(split, False, read))
        spilled.append(sorted(p.name for p in spill.glob("*.spill")))
        got[split] = {k: ex["image"] for k, ex in workers.run_here(jobs, Recorder())}
    one.close()
    assert f"{head}.spill" in spilled[0]  # the archive's first split, read ahead of its turn
    assert not spill.exists()
    two = prepare.prepare(release.manual_dir, tasks.CLSLOC, tmp_path / "cache2")
    for split, plan in two.splits.items():
        expected = dict(generate.keyed_examples(tasks.CLSLOC, two.source("clsloc"),
                                                plan.items, Recorder()))  # fmt: skip
        assert {k: ex["image"] for k, ex in expected.items()} == got[split]


def test_the_digest_stays_behind_the_stream(tmp_path, monkeypatch):
    monkeypatch.setattr(checksums, "CHUNK", 1024)
    monkeypatch.setattr(checksums.Pace, "AHEAD", 1024)
    path = tmp_path / "archive"
    path.write_bytes(bytes(range(256)) * 40)  # 10 chunks
    pace = checksums.Pace()
    read = []

    def digest():
        read.extend(len(c) for c in checksums._chunks(checksums.epath.Path(path), pace))

    def settles_at(total: int) -> bool:
        """The digest reaches `total` bytes read and waits there."""
        deadline = time.monotonic() + 30
        while sum(read) < total and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)
        return sum(read) == total and thread.is_alive()

    thread = threading.Thread(target=digest, daemon=True)
    thread.start()
    assert settles_at(1024)  # one chunk ahead of a stream at 0
    pace.advance(4096)
    assert settles_at(4096 + 1024)
    pace.release()  # the stream has ended
    thread.join(timeout=30)
    assert not thread.is_alive() and sum(read) == 10240


def test_a_build_cut_short_by_max_examples_per_split_is_refused(ordered, tmp_path):
    """TFDS's --max_examples_per_split would stop reading each split early: no split could be
    checked against its list, and a one-read build would never reach the end of the archive,
    where its digest is checked. Refused before anything is read, naming the option."""
    release = ordered["annotations_first"]
    result = tfds_build("clsloc", release.manual_dir, tmp_path, release.checksums,
                        "--max_examples_per_split", "2", check=False)  # fmt: skip
    assert result.returncode != 0
    assert "builds every example: max_examples_per_split=2" in result.stderr
    assert not (tmp_path / "downloads" / "imagenet2017").exists()  # nothing was read
    assert_nothing_loads(tmp_path)
