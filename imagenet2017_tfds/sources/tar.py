"""A minimal reader of tar headers over any readable, seekable stream.

tarfile's stream mode is slow per member and its random-access mode keeps a table of the
whole archive; this walks 512-byte headers itself and never holds more than one member.
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


@dataclass(frozen=True, slots=True)
class Header:
    name: str
    offset: int  # where the data starts in the uncompressed stream
    size: int
    regular: bool


def _number(field: bytes, where: str) -> int:
    if field and field[0] & 0x80:  # GNU base-256 for large sizes
        return int.from_bytes(field[1:], "big")
    text = field.split(b"\0", 1)[0].strip()
    try:
        return int(text, 8) if text else 0
    except ValueError:
        raise ArchiveError(f"{where}: damaged tar header (size field {field!r}).") from None


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


def _pax_path(data: bytes, where: str) -> str | None:
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
            raise ArchiveError(f"{where}: damaged pax extended header.")
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        if key == b"path":
            return value.decode("utf-8", "surrogateescape")
        pos += length
    return None


def _read_exactly(f: BinaryIO, n: int, where: str) -> bytes:
    data = f.read(n)
    if len(data) != n:
        raise ArchiveError(f"{where}: the archive ends early (truncated): download it again.")
    return data


def headers(f: BinaryIO, label: str, start: int = 0, end: int | None = None) -> Iterator[Header]:
    """Headers from `start` (a header boundary) up to `end` or the end-of-archive marker."""
    pos = start
    if f.tell() != pos:
        f.seek(pos)
    long_name: str | None = None
    last: Header | None = None
    while end is None or pos < end:
        where = f"{label} at byte {pos} of the tar stream"
        block = f.read(BLOCK)
        if len(block) < BLOCK:
            inside = f" inside member {last.name} (data from byte {last.offset})" if last else ""
            raise ArchiveError(
                f"{where}: the archive ends{inside} without the end-of-archive marker "
                "(truncated): download it again."
            )
        if block == bytes(BLOCK):
            return
        if not _checksum_ok(block):
            raise ArchiveError(f"{where}: damaged tar header (checksum mismatch).")
        size = _number(block[124:136], where)
        kind = block[156:157]
        data_at = pos + BLOCK
        padded = (size + BLOCK - 1) // BLOCK * BLOCK
        if kind in (GNU_LONGNAME, PAX):
            meta = _read_exactly(f, padded, where)[:size]
            long_name = (
                meta.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
                if kind == GNU_LONGNAME
                else _pax_path(meta, where) or long_name
            )
            pos = data_at + padded
            continue
        name = long_name if long_name is not None else _name(block)
        long_name = None
        last = Header(name, data_at, size, kind in REGULAR)
        yield last
        pos = data_at + padded
        if f.tell() != pos:  # the caller did not consume the data: skip it
            f.seek(pos)


def read_data(f: BinaryIO, header: Header, label: str) -> bytes:
    """The member's bytes; leaves the stream at the next header."""
    if f.tell() != header.offset:
        f.seek(header.offset)
    where = f"{label}: member {header.name} (byte {header.offset})"
    data = _read_exactly(f, header.size, where)
    pad = -header.size % BLOCK
    if pad:
        _read_exactly(f, pad, where)
    return data
