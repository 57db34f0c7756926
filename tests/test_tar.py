"""The tar header reader against tarfile's own output, and its errors."""

import contextlib
import io
import queue
import tarfile
import threading
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imagenet2017_tfds.errors import ArchiveError
from imagenet2017_tfds.sources import tar
from imagenet2017_tfds.sources.base import release_path
from tests.support.mutate import with_size_field
from tests.support.noise import FAST, TARS, damaged


def make_tar(members: dict[str, bytes], fmt=tarfile.GNU_FORMAT) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=fmt) as t:
        d = tarfile.TarInfo("ILSVRC/dir")
        d.type = tarfile.DIRTYPE
        t.addfile(d)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return out.getvalue()


def walk(data: bytes, buffer_bytes: int = tar.BUFFER):
    walker = tar.Walker(io.BytesIO(data), "t", buffer_bytes)
    return [(h.name, h.regular, walker.read(h) if h.regular else None) for h in walker.headers()]


LONG = "ILSVRC/Data/" + "x" * 150 + "/n01440764_1.JPEG"


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_headers_match_tarfile(fmt):
    members = {"ILSVRC/a.xml": b"<a/>", "ILSVRC/empty": b"", "ILSVRC/b.bin": bytes(range(256)) * 5}
    if fmt != tarfile.USTAR_FORMAT:
        members[LONG] = b"long"
    got = walk(make_tar(members, fmt))
    assert [g for g in got if g[1]] == [(n, True, d) for n, d in members.items()]
    assert [g[0].rstrip("/") for g in got if not g[1]] == ["ILSVRC/dir"]


@pytest.mark.parametrize("buffer_bytes", [512, 1024, 1536, 4096 + 512])
def test_members_across_the_buffers_edges_read_as_tarfile_reads_them(buffer_bytes):
    members = {f"ILSVRC/m{k}": bytes([k]) * (k * 397 % 5000) for k in range(40)}
    members[LONG] = b"long"
    got = walk(make_tar(members, tarfile.PAX_FORMAT), buffer_bytes)
    assert [g for g in got if g[1]] == [(n, True, d) for n, d in members.items()]


def test_chunks_are_views_of_the_members_bytes_in_order():
    data = bytes(range(256)) * 40
    walker = tar.Walker(io.BytesIO(make_tar({"a": data, "b": b"x"})), "t", 2048)
    seen = []
    for h in walker.headers():
        if h.regular:
            seen.append((h.name, b"".join(bytes(v) for v in walker.chunks(h))))
    assert seen == [("a", data), ("b", b"x")]


def test_views_held_by_another_thread_are_not_overwritten_until_released():
    members = {f"m{k}": bytes([k]) * (k * 397 % 5000) for k in range(40)}
    walker = tar.Walker(io.BytesIO(make_tar(members)), "t", 2048, buffers=3)
    pending: queue.SimpleQueue = queue.SimpleQueue()
    out: dict[str, bytearray] = {}

    def writer():  # a slow one: without the holds the walker would refill under it
        while (item := pending.get()) is not None:
            name, view, release = item
            time.sleep(0.001)
            out.setdefault(name, bytearray()).extend(view)
            release()

    thread = threading.Thread(target=writer)
    thread.start()
    for h in walker.headers():
        if h.regular:
            for view in walker.chunks(h):
                pending.put((h.name, view, walker.hold()))
    pending.put(None)
    thread.join()
    assert {n: bytes(b) for n, b in out.items()} == {n: d for n, d in members.items() if d}


def test_a_path_header_of_absurd_size_is_refused_without_reading_it():
    block = bytearray(make_tar({"a": b"1"})[:512])
    block[0:100] = b"././@LongLink".ljust(100, b"\0")
    block[156:157] = tar.GNU_LONGNAME
    block[124:136] = b"%011o\0" % (1 << 30)
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    with pytest.raises(ArchiveError, match="1073741824 bytes"):
        walk(bytes(block))


def test_members_whose_data_is_not_read_are_skipped():
    data = make_tar({"a": b"1" * 1000, "b": b"2"})
    walker = tar.Walker(io.BytesIO(data), "t")
    assert [h.name for h in walker.headers() if h.regular] == ["a", "b"]


def test_truncated_archive_is_an_error_naming_the_offset():
    data = make_tar({"a": b"1" * 5000})
    with pytest.raises(ArchiveError, match="truncated"):
        walk(data[:3000])
    with pytest.raises(ArchiveError, match="end-of-archive|truncated"):
        walk(data[:2048])


def test_damaged_header_is_an_error():
    data = bytearray(make_tar({"a": b"1"}))
    data[512 + 10] ^= 0xFF  # the second header (the first is the directory)
    with pytest.raises(ArchiveError, match="byte 512.*checksum"):
        walk(bytes(data))


@pytest.mark.parametrize(
    "name, expected",
    [
        ("ILSVRC/Data/CLS-LOC/val/x.JPEG", "Data/CLS-LOC/val/x.JPEG"),
        ("./ILSVRC/ImageSets/DET/val.txt", "ImageSets/DET/val.txt"),
        ("Data/DET/test/y.JPEG", "Data/DET/test/y.JPEG"),
        ("/etc/passwd", "etc/passwd"),
        ("ILSVRC/../../etc/passwd", None),
        ("ILSVRC/Data//x", None),
        ("", None),
    ],
)
def test_release_paths_are_harmless(name, expected):
    assert release_path(name) == expected


def test_what_follows_the_end_of_archive_marker_must_be_zeros_and_little():
    data = make_tar({"ILSVRC/a": b"1"})  # tarfile pads to a 10 KB record
    assert walk(data)[-1][0] == "ILSVRC/a"
    marker = len(data) - 10240 + 1536  # three blocks: the directory, a's header and data
    with pytest.raises(
        ArchiveError,
        match=rf"t at byte {len(data) + 3} .* after the end-of-"
        rf"archive marker \(at byte {marker}\)",
    ):
        walk(data + b"\0\0\0x")  # another archive's first bytes, say
    with pytest.raises(ArchiveError, match=rf"at byte {marker} .*more than \d+ bytes follow"):
        walk(data + bytes(tar.MAX_PADDING_BYTES))


def test_a_long_name_header_is_read_whole_only_up_to_its_limit():
    name = "ILSVRC/" + "n" * 300
    data = make_tar({name: b"x"})  # the directory, then the GNU long-name header at 512
    assert walk(data)[-1] == (name, True, b"x")
    assert data[512 + 156 : 512 + 157] == tar.GNU_LONGNAME
    size = tar.MAX_META_BYTES + 1
    hostile = data[:512] + with_size_field(data[512:1024], b"%011o\0" % size)
    with pytest.raises(ArchiveError, match=rf"t at byte 512 .*declares {size} bytes of metadata"):
        walk(hostile)


def _walk(data: bytes) -> list[tuple[str, bytes]]:
    """The regular members the walker reads, up to its error if it raises one."""
    walker, out = tar.Walker(io.BytesIO(data), "t"), []
    with contextlib.suppress(ArchiveError):
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


@st.composite
def intact_then_noise(draw) -> tuple[bytes, bytes]:
    """One of TARS and a copy of its first bytes (none, a few headers, all of it) followed
    by random bytes: an archive cut anywhere, noise where the rest was."""
    original = draw(st.sampled_from(TARS))
    cut = draw(st.one_of(st.integers(0, len(original)), st.sampled_from([0, len(original)])))
    return original, original[:cut] + draw(st.binary(max_size=3000))


@FAST
@given(intact_then_noise())
def test_tar_reader_reads_the_intact_part_as_tarfile_does_and_stops_at_the_noise(pair):
    """Every member tarfile reads wholly before the noise is read, in order, with its bytes;
    after them at most the member the noise starts in (its header intact, so the walker
    cannot know), then the walker ends or raises its own error, never another kind."""
    original, data = pair
    intact = _intact(original, data)
    with tarfile.open(fileobj=io.BytesIO(original)) as t:
        names = [m.name for m in t.getmembers() if m.isfile()]
    got = _walk(data)
    assert got[: len(intact)] == intact
    assert len(got) <= len(intact) + 1
    assert [name for name, _ in got] == names[: len(got)]
    if data == original:  # the archive as written: every member, and no error
        assert [(name, d) for name, regular, d in walk(data) if regular] == intact


@FAST
@given(damaged(TARS))
def test_tar_reader_reads_every_member_before_the_damage_as_tarfile_does(pair):
    original, data = pair
    intact = _intact(original, data)
    assert _walk(data)[: len(intact)] == intact


def test_a_header_carries_the_path_its_walker_makes_of_a_regular_members_name():
    data = make_tar({"ILSVRC/a.xml": b"<a/>", "ILSVRC/../b": b"b", LONG: b"long"})
    named = [(h.name.rstrip("/"), h.path) for h in tar.Walker(io.BytesIO(data), "t").headers()]
    assert named == [
        ("ILSVRC/dir", None),
        ("ILSVRC/a.xml", "ILSVRC/a.xml"),
        ("ILSVRC/../b", "ILSVRC/../b"),
        (LONG, LONG),
    ]
    walker = tar.Walker(io.BytesIO(data), "t", paths=release_path)
    assert [h.path for h in walker.headers()] == [None, "a.xml", None, LONG[len("ILSVRC/") :]]
