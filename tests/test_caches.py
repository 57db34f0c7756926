"""The caches beside the archives (the md5 verdict, the catalog, the gzip index): keyed by the
archive's whole identity. Every test runs on the miniature release's real tarballs."""

from __future__ import annotations

import os
import shutil
import time

import pytest
from etils import epath

from imagenet2017_tfds import catalog, checksums, fileio
from imagenet2017_tfds.errors import ChecksumError
from imagenet2017_tfds.sources import Tarball
from tests import minirelease

CLSLOC, DET = minirelease.CLSLOC, minirelease.DET


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return minirelease.write_release(
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


def test_an_archive_changed_in_place_behind_its_mtime_is_verified_again(release, archives):
    manual, cache = archives
    v = verifier(release, manual, cache)
    assert v.check_known(False) is True
    v.verify()
    assert v.check_known(False) is False  # the verdict is reused
    change_in_place_keeping_mtime(manual / CLSLOC)
    assert v.check_known(False) is True  # not reused: read again
    with pytest.raises(ChecksumError, match="md5 mismatch"):
        v.verify()


def test_an_archive_changed_in_place_behind_its_mtime_is_scanned_again(archives):
    manual, cache = archives
    catalog.cached_scan(tarball(manual, cache), cache)
    assert catalog.cached(tarball(manual, cache), cache) is not None
    change_in_place_keeping_mtime(manual / CLSLOC)
    assert catalog.cached(tarball(manual, cache), cache) is None
