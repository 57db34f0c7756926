"""A build killed (SIGKILL: power loss, the OOM killer) anywhere, in its own process or in a
worker, leaves nothing that loads; its rerun goes on from what was recorded (the stream, whole
shards, a shard's checkpoint) without reading the archive again, to the same bytes. The kills
are the engine's fault points (imagenet2017_tfds/internal/faults.py) armed by the environment of
tests/support/killed_build.py."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from imagenet2017_tfds import testing
from imagenet2017_tfds.engine.work import Checkpoint, WorkFolder
from tests.conftest import ROOT, build_env, tfds_build
from tests.support import readback
from tests.support.readback import assert_nothing_loads

# Where a build is killed: the fault point armed to SIGKILL it (internal/faults.py), and the
# build's workers (1: the shards are written in the build's process, where the point is).
KILLED_AT = {
    "stream": ("bucket-add:kill@12", 2),  # mid-archive: some images in buckets
    "streamed": ("streams-kept:kill", 2),  # every stream and digest recorded, no shard
    "shards": ("shard-kept:kill", 2),  # one shard written and recorded, the others not
    "checkpoint": ("checkpoint-kept:kill", 1),  # a shard's first checkpoint kept, buckets freed
}
NO_READ = "archive-read:fail"  # a rerun that must not read the archive again


def _killed(
    manual, data, checksums, faults: str, workers: int = 2, *options: str
) -> subprocess.CompletedProcess:
    """tests/support/killed_build.py, its faults armed by the environment."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.support.killed_build",
            str(manual),
            str(data),
            str(workers),
            *options,
        ],
        env={**build_env(checksums), "IMAGENET2017_FAULTS": faults},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _freed_mid_shard(data: Path) -> tuple[list[Checkpoint], set[str]]:
    """The checkpoints of the shards a killed build left partly written, and the buckets its
    stream wrote that are gone."""
    (root,) = (data / "downloads" / "imagenet2017" / "work").iterdir()
    w = WorkFolder(str(root))
    checkpoints = []
    for record in sorted((root / "shards").glob("*.partial.json")):
        split, shard = record.name.split(".")[0].split("-")
        checkpoints.append(w.checkpoint(split, int(shard), "tfrecord"))
    written = w._read(w._stream_file("clsloc"))["buckets"]
    return checkpoints, {name for name in written if not (root / "buckets" / name).exists()}


@pytest.mark.parametrize("point", ["stream", "streamed", "shards", "checkpoint"])
def test_a_build_killed_anywhere_resumes_to_the_same_bytes(
    point, cli_builds, tarball_release, tmp_path
):
    manual, data = tarball_release.manual_dir, tmp_path / "data"
    faults, workers = KILLED_AT[point]
    small = ("small_buckets",) if point == "checkpoint" else ()  # a shard frees some on its way
    first = _killed(manual, data, tarball_release.checksums, faults, workers, *small)
    assert first.returncode == -signal.SIGKILL, first.stderr[-3000:]
    assert not list((data / "imagenet2017" / "clsloc").glob("*/dataset_info.json"))
    if point == "checkpoint":  # a bucket is freed while the one shard reading it is written
        (checkpoint,), freed = _freed_mid_shard(data)  # one process: one shard at a time
        assert checkpoint is not None and checkpoint.num_examples > 0, checkpoint
        assert freed, "no bucket was freed before its shard was complete"
    left = _shard_files(data)
    assert len(left) == {"shards": 1, "checkpoint": 1}.get(point, 0), left
    # Once the stream is complete, the rerun never reads the archive again.
    again = _killed(manual, data, tarball_release.checksums, "" if point == "stream" else NO_READ)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.split()[-2:] == ["built", "14"]
    if point != "stream":
        assert "read by an earlier run of this build; reusing it" in again.stderr
    if point == "shards":
        assert "1 shards written by an earlier run of this build: reusing them" in again.stderr
    if point == "checkpoint":
        assert (
            f"1 shards partly written by an earlier run of this build: going on from their "
            f"{checkpoint.num_examples} examples written"
        ) in again.stderr
    assert_kept_in_the_dataset(left, data)
    assert readback.shard_bytes(data, "clsloc") == readback.shard_bytes(cli_builds, "clsloc")


def _shard_files(data: Path) -> dict[int, tuple[str, bytes]]:
    """The shard files a killed build recorded in its work folder, whole or up to a
    checkpoint: inode -> (name, the bytes recorded)."""
    (root,) = (data / "downloads" / "imagenet2017" / "work").iterdir()
    w, out = WorkFolder(str(root)), {}
    for path in (root / "shards").glob("*.tfrecord*"):
        split, shard = path.name.split(".")[0].split("-")
        if path.name.endswith(".partial"):
            recorded = w.checkpoint(split, int(shard), "tfrecord")
            size = recorded and recorded.file_bytes
        else:
            recorded = w.done(split, int(shard), "tfrecord")
            size = path.stat().st_size
        if recorded is not None:
            out[path.stat().st_ino] = (path.name, path.read_bytes()[:size])
    return out


def assert_kept_in_the_dataset(left: dict[int, tuple[str, bytes]], data: Path) -> None:
    """Each shard file a killed build left became a shard of the dataset the rerun built:
    the same file (linked, not written again), its bytes then a prefix of the shard's."""
    folder = data / "imagenet2017" / "clsloc" / readback.VERSION
    shards = {p.stat().st_ino: p.read_bytes() for p in folder.glob("*.tfrecord-*")}
    for inode, (name, before) in left.items():
        assert inode in shards, f"{name} was written again, not kept"
        assert shards[inode].startswith(before), name


def test_a_worker_killed_in_a_shard_it_checkpointed_leaves_it_to_continue(
    cli_builds, tarball_release, tmp_path
):
    """The pool's path: a worker frees buckets at its checkpoints, is killed (SIGKILL) before
    its shard is complete, the build stops; the rerun goes on from the checkpoint without
    reading the archive, to the same bytes."""
    manual, data = tarball_release.manual_dir, tmp_path / "data"
    # Each worker killed once the shard it writes has its first checkpoint on disk.
    first = _killed(
        manual, data, tarball_release.checksums, "checkpoint-kept:kill", 2, "small_buckets"
    )
    assert first.returncode != 0
    assert "was killed by signal SIGKILL" in first.stderr, first.stderr[-3000:]
    checkpoints, freed = _freed_mid_shard(data)
    assert checkpoints and all(c is not None and c.num_examples > 0 for c in checkpoints)
    assert freed, "no bucket was freed before its shard was complete"
    left = _shard_files(data)
    assert len(left) >= len(checkpoints), left
    again = _killed(manual, data, tarball_release.checksums, NO_READ)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "shards partly written by an earlier run of this build: going on" in again.stderr
    assert_kept_in_the_dataset(left, data)
    assert readback.shard_bytes(data, "clsloc") == readback.shard_bytes(cli_builds, "clsloc")


def test_a_changed_archive_never_reuses_a_killed_builds_work(tarball_release, tmp_path):
    release = testing.write_release(tmp_path / "manual")
    data = tmp_path / "data"
    assert _killed(release.manual_dir, data, release.checksums, "streams-kept:kill").returncode < 0
    archive = release.manual_dir / "ILSVRC2017_CLS-LOC.tar.gz"
    archive.write_bytes(archive.read_bytes())  # same bytes, a new file: another identity
    (killed,) = (data / "downloads" / "imagenet2017" / "work").iterdir()
    kept = {p: p.read_bytes() for p in killed.rglob("*") if p.is_file()}
    # The rerun goes to read the archive again: armed to refuse that read, it stops there.
    refused = _killed(release.manual_dir, data, release.checksums, NO_READ)
    assert refused.returncode == 1, refused.stderr[-3000:]
    assert "FaultInjected: IMAGENET2017_FAULTS: archive-read reached 1" in refused.stderr
    again = _killed(release.manual_dir, data, release.checksums, "")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "reusing" not in again.stderr
    # The killed build's folder is not this one's, and nothing in it was used or changed.
    assert {p: p.read_bytes() for p in killed.rglob("*") if p.is_file()} == kept
    assert again.stdout.split()[-2:] == ["built", "14"]


def test_a_build_killed_through_tfds_build_leaves_nothing_and_the_rerun_gives_the_same_bytes(
    tarball_release, tmp_path
):
    """`tfds build` killed (SIGKILL) once a shard is written: nothing loads, and the same
    command again finishes the build, leaving no incomplete folder, to a clean build's bytes."""
    sums, data = tarball_release.checksums, tmp_path / "data"
    killed = tfds_build(
        "clsloc",
        tarball_release.manual_dir,
        data,
        sums,
        check=False,
        env={"IMAGENET2017_FAULTS": "shard-kept:kill"},
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert_nothing_loads(data)
    tfds_build("clsloc", tarball_release.manual_dir, data, sums)
    assert not list((data / "imagenet2017" / "clsloc").glob("incomplete.*"))
    tfds_build("clsloc", tarball_release.manual_dir, tmp_path / "clean", sums)
    assert readback.shard_bytes(data, "clsloc") == readback.shard_bytes(
        tmp_path / "clean", "clsloc"
    )
