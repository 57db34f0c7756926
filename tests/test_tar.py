"""The tar header reader against tarfile's own output, and its errors."""

import io
import tarfile

import pytest

from imagenet2017_tfds.errors import ArchiveError
from imagenet2017_tfds.sources import tar
from imagenet2017_tfds.sources.base import release_path
from tests.mutate import with_size_field


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


def walk(data: bytes):
    f = io.BytesIO(data)
    return [
        (h.name, h.regular, tar.read_data(f, h, "t") if h.regular else None)
        for h in tar.headers(f, "t")
    ]


LONG = "ILSVRC/Data/" + "x" * 150 + "/n01440764_1.JPEG"


@pytest.mark.parametrize("fmt", [tarfile.GNU_FORMAT, tarfile.PAX_FORMAT, tarfile.USTAR_FORMAT])
def test_headers_match_tarfile(fmt):
    members = {"ILSVRC/a.xml": b"<a/>", "ILSVRC/empty": b"", "ILSVRC/b.bin": bytes(range(256)) * 5}
    if fmt != tarfile.USTAR_FORMAT:
        members[LONG] = b"long"
    got = walk(make_tar(members, fmt))
    assert [g for g in got if g[1]] == [(n, True, d) for n, d in members.items()]
    assert [g[0].rstrip("/") for g in got if not g[1]] == ["ILSVRC/dir"]


def test_members_whose_data_is_not_read_are_skipped():
    data = make_tar({"a": b"1" * 1000, "b": b"2"})
    f = io.BytesIO(data)
    assert [h.name for h in tar.headers(f, "t") if h.regular] == ["a", "b"]


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
    assert [h.name for h in tar.headers(io.BytesIO(data), "t")][-1] == "ILSVRC/a"
    marker = len(data) - 10240 + 1536  # three blocks: the directory, a's header and data
    with pytest.raises(ArchiveError, match=rf"t at byte {len(data) + 3} .* after the end-of-"
                       rf"archive marker \(at byte {marker}\)"):  # fmt: skip
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
