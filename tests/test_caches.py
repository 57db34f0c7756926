"""The caches beside the archives (the md5 verdict, the catalog, the gzip index): keyed by the
archive's whole identity, and never able to fail a build. Every test runs on the miniature
release's real tarballs, and damages real cache files."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
from etils import epath

from imagenet2017_tfds import testing
from imagenet2017_tfds.errors import ChecksumError
from imagenet2017_tfds.ilsvrc import catalog, checksums
from imagenet2017_tfds.internal import fileio
from imagenet2017_tfds.sources import Tarball

CLSLOC, DET = testing.CLSLOC, testing.DET


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return testing.write_release(
        tmp_path_factory.mktemp("caches"), form="tarball", parts=("clsloc", "det")
    )


@pytest.fixture
def archives(release, tmp_path):
    """Fresh copies of both archives (tests change them in place), and an empty cache."""
    (tmp_path / "manual").mkdir()
    for name in (CLSLOC, DET):
        shutil.copyfile(release.manual_dir / name, tmp_path / "manual" / name)
    return tmp_path / "manual", tmp_path / "cache"


def records(release) -> dict[str, checksums.Record]:
    return checksums.parse(release.checksums.read_text())


def verifier(release, manual, cache, name=CLSLOC) -> checksums.Verifier:
    return checksums.Verifier(manual / name, records(release)[name], "test", cache)


def tarball(manual, cache, name=CLSLOC) -> Tarball:
    return Tarball(manual / name, index_file=cache / f"{name}.gzindex")


def change_in_place_keeping_mtime(path) -> None:
    """One byte flipped in the middle, in place (same inode), and the mtime put back.
    The pause puts the change a clock tick after the copy: kernels before 6.13 stamp files
    with a tick of a few ms, and no real archive is changed within one of its download."""
    time.sleep(0.05)
    st = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(st.st_size // 2)
        byte = f.read(1)
        f.seek(st.st_size // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        st.st_size,
        st.st_mtime_ns,
        st.st_ino,
    )


# ------------------------------------------------------------------ 1. the archive's identity


def test_the_identity_is_path_size_mtime_inode_device_and_ctime(archives):
    manual, _ = archives
    st = os.stat(manual / CLSLOC)
    assert fileio.stat_key(epath.Path(manual / CLSLOC)) == {
        "path": os.path.abspath(manual / CLSLOC),
        "size": st.st_size,
        "mtime": st.st_mtime_ns,
        "inode": st.st_ino,
        "device": st.st_dev,
        "ctime": st.st_ctime_ns,
    }


def test_an_archive_changed_in_place_behind_its_mtime_is_verified_again(release, archives, capsys):
    manual, cache = archives
    v = verifier(release, manual, cache)
    assert v.needs_full_read(False) is True
    v.verify()
    assert v.needs_full_read(False) is False  # the verdict is reused
    change_in_place_keeping_mtime(manual / CLSLOC)
    assert v.needs_full_read(False) is True  # not reused: read again
    assert "ctime differ" in capsys.readouterr().err
    with pytest.raises(ChecksumError, match="md5 mismatch"):
        v.verify()


def test_an_archive_changed_in_place_behind_its_mtime_is_scanned_again(archives, capsys):
    manual, cache = archives
    catalog.cached_scan(tarball(manual, cache), cache)
    assert catalog.cached(tarball(manual, cache), cache) is not None
    change_in_place_keeping_mtime(manual / CLSLOC)
    assert catalog.cached(tarball(manual, cache), cache) is None
    err = capsys.readouterr().err
    assert f"catalog-{CLSLOC}.json: made for another archive" in err and "ctime" in err
    # Its gzip index went with it: it was the old content's.
    assert not tarball(manual, cache).index_ready()
    assert "discarded" in capsys.readouterr().err


# ------------------------------------------------------------------ 2. checked cache files


def test_a_cache_file_round_trips_and_names_what_is_wrong_with_it(tmp_path, capsys):
    path = epath.Path(tmp_path / "c.bin")
    key = {"path": "/a.tar.gz", "size": 3}
    assert fileio.read_cache(path, key) is None  # none yet: nothing to say
    assert capsys.readouterr().err == ""
    fileio.write_cache(path, b"payload", key)
    assert fileio.read_cache(path, key) == b"payload"
    whole = path.read_bytes()
    for data, why in [
        (whole[: len(whole) // 2], "truncated"),
        (whole[:-3], "truncated (4 of 7 bytes"),
        (whole[:5], "truncated"),
        (whole[:-1] + b"X", "digest mismatch"),
        (whole + b"more", "damaged (11 bytes of content"),
        (b'{"key": {}, "catalog": {}}', "not a cache file"),
        (whole.replace(b'"size": 3', b'"size": 4'), "made for another archive"),
        (fileio.MAGIC + b"{not json\n", "damaged header"),
    ]:
        path.write_bytes(data)
        assert fileio.read_cache(path, key) is None, why
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and str(path) in err and why in err, (why, err)
    fileio.write_cache(path, b"payload", {**key, "size": 4})
    assert fileio.read_cache(path, key) is None
    assert "(size differ)" in capsys.readouterr().err


def damage(path, how: str, other) -> None:
    """Cut in half, one byte flipped in the middle, or replaced by `other` (the same cache of
    the other archive)."""
    data = path.read_bytes()
    if how == "half":
        path.write_bytes(data[: len(data) // 2])
    elif how == "flip":
        i = len(data) // 2
        path.write_bytes(data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1 :])
    else:
        shutil.copyfile(other, path)


HOW = ["half", "flip", "other_archive"]


@pytest.mark.parametrize("how", HOW)
def test_a_damaged_verdict_is_discarded_and_the_archive_verified_again(
    release, archives, how, capsys
):
    manual, cache = archives
    for name in (CLSLOC, DET):
        verifier(release, manual, cache, name).verify()
    v = verifier(release, manual, cache)
    damage(v.cache_file, how, verifier(release, manual, cache, DET).cache_file)
    capsys.readouterr()
    assert v.needs_full_read(False) is True  # recomputed, not trusted
    err = capsys.readouterr().err
    assert str(v.cache_file) in err and err.count("\n") == 1
    v.verify()
    assert v.needs_full_read(False) is False  # written anew, and good
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("how", HOW)
def test_a_damaged_catalog_is_discarded_and_the_scan_gives_the_same_catalog(archives, how, capsys):
    manual, cache = archives
    first = catalog.cached_scan(tarball(manual, cache), cache)
    catalog.cached_scan(tarball(manual, cache, DET), cache)
    path = cache / f"catalog-{CLSLOC}.json"
    damage(path, how, cache / f"catalog-{DET}.json")
    capsys.readouterr()
    again = catalog.cached_scan(tarball(manual, cache), cache)
    assert again.scanned and again == first
    err = capsys.readouterr().err
    assert str(path) in err and err.count("\n") == 1
    reused = catalog.cached(tarball(manual, cache), cache)
    assert reused is not None and not reused.scanned and reused == first


def read_some(source, cat):
    entries = sorted(e for table in cat.images.values() for e in table.values())[::3]
    return entries, [data for _, data in source.read(entries)]


@pytest.mark.parametrize("how", [*HOW, "other_archive_with_its_check"])
def test_a_damaged_gzip_index_is_discarded_and_the_archive_scanned_again(archives, how, capsys):
    manual, cache = archives
    first = catalog.cached_scan(tarball(manual, cache), cache)
    catalog.cached_scan(tarball(manual, cache, DET), cache)
    index = tarball(manual, cache).index_file
    entries, expected = read_some(tarball(manual, cache), first)
    other = tarball(manual, cache, DET)
    damage(index, how, other.index_file)
    if how == "other_archive_with_its_check":
        shutil.copyfile(other.check_file, tarball(manual, cache).check_file)
    capsys.readouterr()
    again = catalog.cached_scan(tarball(manual, cache), cache)  # index_ready discards it
    err = capsys.readouterr().err
    assert f"{index}: gzip index of {CLSLOC} discarded" in err and err.count("\n") == 1
    assert again.scanned and again == first  # rescanned, the same catalog
    assert tarball(manual, cache).index_ready()  # the rescan wrote a good index
    assert read_some(tarball(manual, cache), again) == (entries, expected)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("how", HOW)
def test_a_gzip_index_damaged_after_the_scan_is_discarded_when_read(archives, how, capsys):
    manual, cache = archives
    cat = catalog.cached_scan(tarball(manual, cache), cache)
    catalog.cached_scan(tarball(manual, cache, DET), cache)
    entries, expected = read_some(tarball(manual, cache), cat)
    source = tarball(manual, cache)
    damage(source.index_file, how, tarball(manual, cache, DET).index_file)
    capsys.readouterr()
    assert read_some(source, cat) == (entries, expected)  # read without it
    assert "discarded" in capsys.readouterr().err
    assert not source.index_file.exists() and not source.check_file.exists()


def test_an_index_rapidgzip_refuses_is_discarded_and_the_archive_read_without_it(archives, capsys):
    # The check passes (a check file made for these very bytes), rapidgzip still refuses them.
    manual, cache = archives
    source = tarball(manual, cache)
    cat = catalog.cached_scan(source, cache)
    entries, expected = read_some(source, cat)
    garbage = b"garbage!" * 100
    source.index_file.write_bytes(garbage)
    record = {"length": len(garbage), "sha256": fileio.file_digest(source.index_file)[1]}
    fileio.write_cache(source.check_file, json.dumps(record).encode(), fileio.stat_key(source.path))
    capsys.readouterr()
    assert read_some(tarball(manual, cache), cat) == (entries, expected)
    err = capsys.readouterr().err
    assert "rapidgzip cannot import it" in err and err.count("\n") == 1
    assert not source.index_file.exists()
    assert catalog.cached(tarball(manual, cache), cache) is None  # so the next build rescans


def test_an_index_without_its_check_file_is_not_trusted(archives, capsys):
    manual, cache = archives
    source = tarball(manual, cache)
    catalog.cached_scan(source, cache)
    source.check_file.unlink()
    capsys.readouterr()
    assert not source.index_ready()
    assert f"no {source.check_file.name} beside it" in capsys.readouterr().err


def test_a_cache_that_cannot_be_written_does_not_fail_the_verification(release, archives, capsys):
    manual, cache = archives
    cache.write_bytes(b"a file where the cache folder should be")
    v = verifier(release, manual, cache)
    v.verify()  # the archive is good: a cache it cannot keep is no reason to stop
    assert "cannot be written" in capsys.readouterr().err
    assert v.needs_full_read(False) is True  # nothing was kept: the next build reads it again


# ------------------------------------------------------------------ 3. a build's work folder


def _engine_build(manual, cache):
    import tensorflow_datasets as tfds

    from imagenet2017_tfds.engine import local
    from imagenet2017_tfds.ilsvrc import tasks
    from imagenet2017_tfds.internal.problems import Recorder

    options = local.Options(
        workers=1,
        skip_space_check=True,
        shard_config=tfds.download.DownloadConfig().get_shard_config(),
    )
    built = local.build(manual, tasks.CLSLOC, cache, Recorder.for_build(False), options)
    shards = {
        s.split: Path(built.shard_file(s)).read_bytes() for v in built.shards.values() for s in v
    }
    return built.work.root, shards


def test_each_file_of_a_builds_work_folder_cut_is_discarded_and_the_same_shards_made(
    release, archives, monkeypatch, capsys
):
    """A build's records (each archive's stream, its plan, each shard's) and its shard files,
    cut in half as a killed build or a bad disk may leave them: each is noticed and made again,
    even once the buckets it was made from are freed."""
    manual, cache = archives
    monkeypatch.setenv("IMAGENET2017_CHECKSUMS", str(release.checksums))
    root, clean = _engine_build(manual, cache)  # complete: every bucket freed
    kept = Path(str(root) + ".kept")
    shutil.copytree(root, kept)
    files = sorted(p.relative_to(kept) for p in kept.rglob("*") if p.is_file())
    assert [f.name for f in files] == [
        "plan.json",
        "test-00000.json",
        "test-00000.tfrecord",
        "train-00000.json",
        "train-00000.tfrecord",
        "validation-00000.json",
        "validation-00000.tfrecord",
        "stream-clsloc.json",
    ]
    for name in files:
        shutil.rmtree(root)
        shutil.copytree(kept, root)
        damage(Path(root) / name, "half", None)
        capsys.readouterr()
        assert _engine_build(manual, cache) == (root, clean), name
        err = capsys.readouterr().err
        assert f"cache file {Path(root) / name}: " in err, (name, err)
