"""Tarball (streamed through rapidgzip, with a reusable gzip index) and extracted tree."""

import errno
import gzip
import io
import os
import random
import tarfile
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from imagenet2017_tfds.errors import ArchiveError
from imagenet2017_tfds.sources import Entry, Tarball, Tree
from imagenet2017_tfds.sources.tree import release_root
from tests.support.noise import GZIPPED, mutated

MEMBERS = {
    f"ILSVRC/Data/CLS-LOC/train/n01440764/n01440764_{i}.JPEG": random.Random(i).randbytes(3000 + i)
    for i in range(40)
}
MEMBERS["ILSVRC/ImageSets/CLS-LOC/val.txt"] = b"ILSVRC2012_val_00000001 1\n"


def write_tarball(path, members=MEMBERS):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    with open(path, "wb") as f, gzip.GzipFile(fileobj=f, mode="wb", mtime=0) as g:
        g.write(raw.getvalue())
    return path


def scan_all(source, want=lambda path: path.endswith(".txt")) -> list[tuple[Entry, bytes | None]]:
    """What a scan takes from a walk of `source`: each member's entry, the bytes of those
    `want` accepts."""
    found = []
    with source.walk() as walk:
        for member in walk:
            data = walk.read(member) if want(member.path) else None
            found.append((Entry(member.offset, member.path, member.size), data))
    return found


def test_tarball_scan_then_read_back_any_subset(tmp_path):
    path = write_tarball(tmp_path / "a.tar.gz")
    index = tmp_path / "cache" / "a.gzindex"
    found = scan_all(Tarball(path, index_file=index))
    assert [e.path for e, _ in found] == [n[len("ILSVRC/") :] for n in MEMBERS]
    assert found[-1][1] == MEMBERS["ILSVRC/ImageSets/CLS-LOC/val.txt"]
    assert all(d is None for _, d in found[:-1])
    assert index.exists()
    chosen = [e for e, _ in found][::7]
    back = list(Tarball(path, index_file=index).read(chosen))
    assert [d for _, d in back] == [MEMBERS["ILSVRC/" + e.path] for e in chosen]


@pytest.mark.parametrize("prefix", ["", "./", "./ILSVRC/"])
def test_tarball_members_are_found_whatever_prefix_the_packer_wrote(tmp_path, prefix):
    """Some guides pack the tree without its ILSVRC/ folder, `tar czf F .` writes `./`."""
    path = write_tarball(
        tmp_path / "a.tar.gz", {prefix + n[len("ILSVRC/") :]: d for n, d in MEMBERS.items()}
    )
    found = scan_all(Tarball(path, index_file=tmp_path / "a.gzindex"))
    assert [e.path for e, _ in found] == [n[len("ILSVRC/") :] for n in MEMBERS]
    back = list(Tarball(path, index_file=tmp_path / "a.gzindex").read([e for e, _ in found][:3]))
    assert [d for _, d in back] == [MEMBERS["ILSVRC/" + e.path] for e, _ in back]


def test_tree_reads_the_same_members_with_or_without_ilsvrc_folder(tmp_path):
    for prefix in ("ILSVRC/", ""):
        root = tmp_path / (prefix or "flat")
        for name, data in MEMBERS.items():
            target = root / (prefix + name[len("ILSVRC/") :])
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        found_root = release_root(root)
        assert os.fspath(found_root).endswith("ILSVRC" if prefix else "flat")
        tree = Tree(found_root)
        entries = [e for e, _ in scan_all(tree)]
        assert sorted(e.path for e in entries) == sorted(n[len("ILSVRC/") :] for n in MEMBERS)
        for entry, data in tree.read(entries[:3]):
            assert data == MEMBERS["ILSVRC/" + entry.path]


def test_truncated_tarball_is_an_archive_error(tmp_path):
    path = write_tarball(tmp_path / "a.tar.gz")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match="a.tar.gz"):
        scan_all(Tarball(path))


def test_corrupt_gzip_data_is_an_archive_error(tmp_path):
    path = write_tarball(tmp_path / "a.tar.gz")
    data = bytearray(path.read_bytes())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="a.tar.gz"):
        scan_all(Tarball(path))


def test_not_gzip_at_all_is_an_archive_error(tmp_path):
    path = tmp_path / "a.tar.gz"
    path.write_bytes(b"<html>login page</html>" * 50)
    with pytest.raises(ArchiveError, match="a.tar.gz"):
        scan_all(Tarball(path))


def test_member_changed_since_indexing_is_detected(tmp_path):
    path = write_tarball(tmp_path / "a.tar.gz")
    entry = Entry(10**9, "Data/x.JPEG", 10)
    with pytest.raises(ArchiveError, match="Data/x.JPEG"):
        list(Tarball(path).read([entry]))


def test_a_rescan_replaces_the_index_and_still_reads(tmp_path):
    # A rescan (a catalog cache invalidated, skip_bad_members switched on) meets the index
    # of the first scan: it must replace it, not fail.
    path = write_tarball(tmp_path / "a.tar.gz")
    index = tmp_path / "cache" / "a.gzindex"
    first = scan_all(Tarball(path, index_file=index))
    assert scan_all(Tarball(path, index_file=index)) == first
    chosen = [e for e, _ in first][::5]
    back = list(Tarball(path, index_file=index).read(chosen))
    assert [d for _, d in back] == [MEMBERS["ILSVRC/" + e.path] for e in chosen]


def test_an_interrupted_index_export_keeps_the_old_index_and_leaves_no_temporary_file(tmp_path):
    from etils import epath

    from imagenet2017_tfds.internal import fileio

    index = epath.Path(tmp_path / "cache" / "a.gzindex")
    fileio.write_atomic(index, b"old")
    fileio.write_atomic(index, b"new")  # replaces
    with pytest.raises(RuntimeError), fileio.atomic_output(index) as out:
        out.write(b"half")
        raise RuntimeError("interrupted")
    assert index.read_bytes() == b"new"
    assert [p.name for p in index.parent.iterdir()] == ["a.gzindex"]


def test_cache_key_is_the_same_for_a_relative_and_an_absolute_path(tmp_path, monkeypatch):
    path = write_tarball(tmp_path / "a.tar.gz")
    monkeypatch.chdir(tmp_path)
    assert Tarball("a.tar.gz").cache_key() == Tarball(path).cache_key()


def test_a_kept_reader_serves_every_range_with_one_index_import(tmp_path, monkeypatch):
    import rapidgzip

    from imagenet2017_tfds.sources import tarball

    path = write_tarball(tmp_path / "a.tar.gz")
    index = tmp_path / "a.gzindex"
    entries = [e for e, _ in scan_all(Tarball(path, index_file=index))]
    # Each reader rapidgzip opens, whatever opens it, imports the index: counted there.
    opened = []
    reader = rapidgzip.RapidgzipFile
    monkeypatch.setattr(
        rapidgzip, "RapidgzipFile", lambda *a, **k: (opened.append(1), reader(*a, **k))[1]
    )
    ranges = [entries[i : i + 7] for i in range(0, len(entries), 7)][::-1]  # out of order
    for chunk in ranges:  # a fresh Tarball each time, as each unpickled job brings one
        source = Tarball(path, index_file=index, parallelization=1, keep_open=True)
        got = list(source.read(chunk))
        assert [d for _, d in got] == [MEMBERS["ILSVRC/" + e.path] for e in chunk]
    assert len(opened) == 1
    tarball.close_kept_readers()


def test_a_process_exits_cleanly_with_a_reader_kept_open(tmp_path):
    import subprocess
    import sys

    path = write_tarball(tmp_path / "a.tar.gz")
    code = (
        "from imagenet2017_tfds.sources import Entry, Tarball\n"
        f"t = Tarball({str(path)!r}, parallelization=1, keep_open=True)\n"
        "with t.walk() as walk:\n"
        "    entries = [Entry(m.offset, m.path, m.size) for m in walk]\n"
        "print(len(list(t.read(entries[:3]))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=os.getcwd()),
    )
    assert (result.returncode, result.stdout) == (0, "3\n"), result.stderr[-2000:]


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
        scanned = [(e.path, got) for e, got in scan_all(Tarball(path), lambda path: True)]
    except ArchiveError as e:
        assert reference not in [_reference_scan(g) for g in GZIPPED], "an intact tar refused"
        assert "a.tar.gz" in str(e), str(e)
        return
    assert scanned == reference


# ------------------------------------------------------------------ one walk per format


def test_a_tarball_walk_hands_each_member_read_streamed_or_skipped_as_the_consumer_decides(
    tmp_path,
):
    """The scan reads, the stream takes buffers, either skips (tar.Walker's tests hold them)."""
    path = write_tarball(tmp_path / "a.tar.gz")
    got = {}
    with Tarball(path).walk(buffers=3) as walk:
        for k, member in enumerate(walk):
            if k % 3 == 0:
                got[member.path] = walk.read(member)
            elif k % 3 == 1:
                got[member.path] = b"".join(bytes(view) for view in walk.chunks(member))
            assert member.size == len(MEMBERS["ILSVRC/" + member.path])
    assert got == {n[len("ILSVRC/") :]: d for k, (n, d) in enumerate(MEMBERS.items()) if k % 3 != 2}


def test_a_tarball_walk_tells_how_far_into_the_compressed_file_it_is(tmp_path):
    from imagenet2017_tfds.sources.tarball import TELL_EVERY

    members = {f"ILSVRC/Data/m{k}.JPEG": random.Random(k).randbytes(1 << 20) for k in range(10)}
    path = write_tarball(tmp_path / "a.tar.gz", members)
    told = []
    with Tarball(path).walk(on_position=told.append) as walk:
        for _ in walk:
            pass
        at_end = walk.compressed()
    # Every TELL_EVERY bytes of the tar stream (the members do not shrink): rapidgzip's
    # threads read ahead of the walk, so never less than it has used; at its end, all.
    assert len(told) == (10 << 20) // TELL_EVERY
    assert told == sorted(told) and told[-1] <= at_end == path.stat().st_size
    assert told[0] >= TELL_EVERY


def test_only_a_walk_that_reaches_the_end_exports_the_index_and_only_when_asked(tmp_path):
    path = write_tarball(tmp_path / "a.tar.gz")
    index = tmp_path / "cache" / "a.gzindex"
    with Tarball(path, index_file=index).walk() as walk:
        for _ in walk:
            break  # a consumer that stops early: rapidgzip recorded part of the archive only
    assert not index.exists()
    with Tarball(path, index_file=index).walk(keep_index=False) as walk:
        assert len(list(walk)) == len(MEMBERS)
    assert not index.exists()
    with Tarball(path, index_file=index).walk() as walk:
        entries = [Entry(m.offset, m.path, m.size) for m in walk]
    assert Tarball(path, index_file=index).index_ready()
    back = list(Tarball(path, index_file=index).read(entries[-2:]))
    assert [d for _, d in back] == list(MEMBERS.values())[-2:]


def test_damage_met_while_a_member_streams_is_the_archives_error(tmp_path):
    """Stored (incompressible) data with a byte changed reads on: the gzip trailer's CRC
    refuses it at the end of the stream, inside the last member's buffers or after them."""
    members = {f"ILSVRC/Data/m{k}.JPEG": random.Random(k).randbytes(300_000) for k in range(3)}
    path = write_tarball(tmp_path / "a.tar.gz", members)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    corrupt = pytest.raises(ArchiveError, match=r"a\.tar\.gz: the gzip data is corrupt")
    with corrupt, Tarball(path).walk(buffers=2) as walk:
        for member in walk:
            for _ in walk.chunks(member):
                pass


def test_a_consumers_own_failure_inside_a_walk_is_not_blamed_on_the_archive(tmp_path):
    """A bucket that cannot be written is the disk's failure, not the archive's."""
    path = write_tarball(tmp_path / "a.tar.gz")
    with pytest.raises(OSError, match="Input/output error") as e, Tarball(path).walk() as walk:
        for _ in walk:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
    assert not isinstance(e.value, ArchiveError)


def test_a_tree_walk_reads_a_file_only_when_asked_and_sizes_every_file(tmp_path):
    root = tmp_path / "ILSVRC"
    for name, data in MEMBERS.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    got = {}
    with Tree(root).walk() as walk:
        for k, member in enumerate(walk):
            if k % 2:
                (chunk,) = walk.chunks(member)
                walk.hold()()  # nothing to release: a tree's bytes are the consumer's
                got[member.path] = chunk
            assert (member.offset, member.size) == (0, len(MEMBERS["ILSVRC/" + member.path]))
    paths = sorted(n[len("ILSVRC/") :] for n in MEMBERS)
    assert got == {p: MEMBERS["ILSVRC/" + p] for p in paths[1::2]}
