"""A minimal reader of tar headers over any readable, seekable stream.

tarfile's stream mode is slow per member and its random-access mode keeps a table of the
whole archive; this walks 512-byte headers itself and never holds more than one member.

A header is trusted for nothing it costs to believe: a member's declared size, the data of
a pax or GNU long-name header and what follows the end-of-archive marker are each bounded
(the small functions below), so a damaged or hostile header is refused at its position in
bounded memory and time. Any walk of the headers calls them: `check_header` and `data_size`
for each header, `check_padding` or `end_of_archive` at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO

from imagenet2017_tfds.errors import ArchiveError

BLOCK = 512
REGULAR = (b"0", b"\0", b"7")
GNU_LONGNAME = b"L"
PAX = b"x"
META = (GNU_LONGNAME, PAX)  # headers whose data names the next member

# No member of the ILSVRC2017 release comes near this (images are at most a few MB, the
# largest list, train_cls.txt, about 40 MB); a member is read into memory whole.
MAX_MEMBER_BYTES = 256 << 20
# A pax or GNU long-name header holds a path (a few hundred bytes); its data is read whole.
MAX_META_BYTES = 1 << 20
# After the end-of-archive marker: the rest of tar's last record, zeros (GNU tar writes
# 10 KB records; 16 MB allows any blocking factor in use).
MAX_PADDING_BYTES = 16 << 20
_DOWNLOAD = "The archive is damaged or is not the ILSVRC2017 release: download it again."


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    offset: int  # where the data starts in the uncompressed stream
    size: int
    regular: bool


def where(label: str, pos: int) -> str:
    return f"{label} at byte {pos} of the tar stream"


def _number(field: bytes, at: str) -> int:
    if field and field[0] & 0x80:  # GNU base-256 for large sizes; 0xff starts a negative one
        if field[0] == 0xFF:
            raise ArchiveError(f"{at}: damaged tar header (a negative size). {_DOWNLOAD}")
        return int.from_bytes(bytes([field[0] & 0x7F]) + field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise ArchiveError(
            f"{at}: damaged tar header (size field {field!r}). {_DOWNLOAD}"
        ) from None


def _checksum_ok(block: bytes) -> bool:
    stored = block[148:156].split(b"\0", 1)[0].strip()
    try:
        expected = int(stored, 8)
    except ValueError:
        return False
    return sum(block[:148]) + 8 * 32 + sum(block[156:]) == expected


def _name(block: bytes) -> str:
    name = block[0:100].split(b"\0", 1)[0]
    if block[257:263] == b"ustar\x00":  # POSIX: a prefix field; GNU uses those bytes otherwise
        prefix = block[345:500].split(b"\0", 1)[0]
        if prefix:
            name = prefix + b"/" + name
    return name.decode("utf-8", "surrogateescape")


def check_header(block: bytes, pos: int, label: str) -> None:
    """A header block whose checksum does not match is refused, naming its position."""
    if not _checksum_ok(block):
        raise ArchiveError(
            f"{where(label, pos)}: damaged tar header (checksum mismatch). {_DOWNLOAD}"
        )


def data_size(block: bytes, pos: int, label: str) -> int:
    """The data size a (checked) header declares, refused here, before a byte of it is read
    or skipped, when no header of its kind has that much: a pax or GNU long-name header
    (read whole) a path's worth, a member more than any of the release."""
    size = _number(block[124:136], where(label, pos))
    if block[156:157] in META:
        if size > MAX_META_BYTES:
            raise ArchiveError(
                f"{where(label, pos)}: a pax or GNU long-name header declares {size} bytes of "
                f"metadata; a member's path takes a few hundred (this reader's limit is "
                f"{MAX_META_BYTES} bytes), so the header is damaged or hostile. {_DOWNLOAD}"
            )
    elif size > MAX_MEMBER_BYTES:
        raise ArchiveError(
            f"{where(label, pos)}: the tar header of {_name(block)!r} declares {size} bytes; no "
            f"member of the release comes near that (this reader's limit is {MAX_MEMBER_BYTES} "
            f"bytes), so the header is damaged. {_DOWNLOAD}"
        )
    return size


def _pax_path(data: bytes, at: str) -> str | None:
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            length = 0
        if length <= space - pos:
            raise ArchiveError(f"{at}: damaged pax extended header. {_DOWNLOAD}")
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        if key == b"path":
            return value.decode("utf-8", "surrogateescape")
        pos += length
    return None


def long_name(kind: bytes, data: bytes, pos: int, label: str) -> str | None:
    """The next member's name from a GNU long-name or pax header's data (None: a pax header
    without a path)."""
    if kind == GNU_LONGNAME:
        return data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    return _pax_path(data, where(label, pos))


def check_padding(chunk: bytes, offset: int, marker: int, label: str) -> None:
    """`chunk`, at `offset` of the tar stream, follows the end-of-archive marker at `marker`:
    it must be zeros (data there would be another archive's, never read) and within
    MAX_PADDING_BYTES of the marker (a bomb of zeros is not decompressed to its end)."""
    if chunk.count(0) != len(chunk):
        first = len(chunk) - len(bytes(chunk).lstrip(b"\0"))
        raise ArchiveError(
            f"{where(label, offset + first)}: data after the end-of-archive marker (at byte "
            f"{marker}): another archive appended, or damage. {_DOWNLOAD}"
        )
    if offset + len(chunk) - marker > MAX_PADDING_BYTES:
        raise ArchiveError(
            f"{where(label, marker)}: more than {MAX_PADDING_BYTES} bytes follow the "
            f"end-of-archive marker; tar pads its last record with at most a few KB. {_DOWNLOAD}"
        )


def end_of_archive(f: BinaryIO, pos: int, label: str) -> None:
    """Reads what follows the end-of-archive marker (the block at `pos`, already read) to the
    end of the stream: the decompressor then reaches the gzip trailer, so a cut or damaged
    tail (its CRC, its length) is found even though no member lies there."""
    offset = pos + BLOCK
    while chunk := f.read(1 << 20):
        check_padding(chunk, offset, pos, label)
        offset += len(chunk)


def _read_exactly(f: BinaryIO, n: int, at: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ArchiveError(f"{at}: the archive ends early (truncated): download it again.")
    return data


def headers(f: BinaryIO, label: str, start: int = 0, end: int | None = None) -> Iterator[Header]:
    """Headers from `start` (a header boundary) up to `end`, or to the end-of-archive marker
    and the end of the stream (end_of_archive)."""
    pos = start
    if f.tell() != pos:
        f.seek(pos)
    name: str | None = None  # from a pax or GNU long-name header, for the next member
    last: Header | None = None
    while end is None or pos < end:
        block = f.read(BLOCK)
        if len(block) < BLOCK:
            inside = f" inside member {last.name} (data from byte {last.offset})" if last else ""
            raise ArchiveError(
                f"{where(label, pos)}: the archive ends{inside} without the end-of-archive "
                "marker (truncated): download it again."
            )
        if block == bytes(BLOCK):
            if end is None:
                end_of_archive(f, pos, label)
            return
        check_header(block, pos, label)
        size = data_size(block, pos, label)
        kind = block[156:157]
        data_at = pos + BLOCK
        padded = (size + BLOCK - 1) // BLOCK * BLOCK
        if kind in META:
            meta = _read_exactly(f, padded, where(label, pos))[:size]
            name = long_name(kind, meta, pos, label) or name
            pos = data_at + padded
            continue
        last = Header(name if name is not None else _name(block), data_at, size, kind in REGULAR)
        name = None
        yield last
        pos = data_at + padded
        if f.tell() != pos:  # the caller did not consume the data: skip it
            f.seek(pos)


def read_data(f: BinaryIO, header: Header, label: str) -> bytes:
    """The member's bytes; leaves the stream at the next header."""
    if f.tell() != header.offset:
        f.seek(header.offset)
    at = f"{label}: member {header.name} (byte {header.offset})"
    data = _read_exactly(f, header.size, at)
    pad = -header.size % BLOCK
    if pad:
        _read_exactly(f, pad, at)
    return data
