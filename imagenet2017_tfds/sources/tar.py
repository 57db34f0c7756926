"""A minimal reader of tar headers over any readable, seekable stream.

tarfile's stream mode is slow per member and its random-access mode keeps a table of the
whole archive. This walks 512-byte headers itself, over any object with `readinto` (a
rapidgzip reader, a file), through reused buffers: a member's data is handed out as views
into them (`Walker.chunks`), so an image goes from the decompressor to its bucket without
becoming a Python object.

A header is trusted for nothing it costs to believe: a member's declared size, the data of
a pax or GNU long-name header and what follows the end-of-archive marker are each bounded
(the small functions below), so a damaged or hostile header is refused at its position in
bounded memory and time: `check_header` and `data_size` for each header, `check_padding` on
what follows the end marker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import NamedTuple

from imagenet2017_tfds.errors import ArchiveError

BLOCK = 512
REGULAR = (b"0", b"\0", b"7")
GNU_LONGNAME = b"L"
PAX = b"x"
BUFFER = 4 << 20
ZERO = bytes(BLOCK)
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


class Header(NamedTuple):
    """One header of the stream, as a walk yields it. A named tuple: immutable, and cheaper to
    make than a frozen dataclass (whose __init__ sets each field through object.__setattr__)
    on the thread every byte passes through, once for every member."""

    name: str
    offset: int  # where the data starts in the uncompressed stream
    size: int
    regular: bool
    path: str | None  # a regular member's name as the walker's `paths` gives it; else None


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


class _Buffer:
    """One of a walker's buffers, and how many views of it another thread still holds."""

    def __init__(self, size: int):
        self.view = memoryview(bytearray(size))
        self.holds = 0
        self.released = threading.Condition()

    def release(self) -> None:
        with self.released:
            self.holds -= 1
            self.released.notify()

    def wait_free(self) -> None:
        with self.released:
            self.released.wait_for(lambda: self.holds == 0)


def _as_named(name: str) -> str:
    return name


class Walker:
    """One forward pass over a tar stream. `headers()` yields each member's header; the
    member's data is then `read` (bytes), taken as `chunks` (views valid until the next
    call, or until released when `hold` was called for them), or left alone (skipped).

    With several buffers a consumer may hand views to another thread (a writer): `hold()`
    keeps the current view's buffer from being refilled until the returned function is
    called; the walker waits for it only when it comes round to that buffer again.

    `paths` makes a regular member's `path` from its name (a tarball's walk gives
    base.release_path: None for a name no release member has; by default the name itself),
    once per header: the path a consumer needs comes with the header, not as another object."""

    def __init__(
        self,
        f,
        label: str,
        buffer_bytes: int = BUFFER,
        buffers: int = 1,
        paths: Callable[[str], str | None] = _as_named,
    ):
        self._f, self.label, self._paths = f, label, paths
        self._ring = [_Buffer(buffer_bytes) for _ in range(buffers)]
        self._at = 0
        self._buf = self._ring[0].view
        self._start = self._end = 0  # the buffered bytes: _buf[_start:_end]
        self.position = 0  # the stream's offset of _buf[_start]
        self._member: Header | None = None  # the last header yielded
        self._left = 0  # its data and padding not consumed yet

    def hold(self) -> Callable[[], None]:
        """Keeps the buffer of the view just handed out until the returned function is called."""
        current = self._ring[self._at]
        with current.released:
            current.holds += 1
        return current.release

    def _next_buffer(self) -> None:
        """Moves to the next buffer of the ring (once no view of it is held), carrying over
        what is still unread in this one (less than a block)."""
        kept = self._buf[self._start : self._end]
        self._at = (self._at + 1) % len(self._ring)
        self._ring[self._at].wait_free()
        self._buf = self._ring[self._at].view
        self._buf[: len(kept)] = kept
        self._start, self._end = 0, len(kept)

    def _fill(self) -> int:
        """Reads more after what is buffered; the bytes now buffered (0: the stream ended)."""
        if self._start == self._end or self._end == len(self._buf):
            if len(self._ring) > 1:
                self._next_buffer()
            elif self._start == self._end:
                self._start = self._end = 0
            else:  # a partial block at the end: to the front
                kept = self._end - self._start
                self._buf[:kept] = self._buf[self._start : self._end]
                self._start, self._end = 0, kept
        n = self._f.readinto(self._buf[self._end :])
        self._end += n or 0
        return self._end - self._start

    def _truncated(self, header: Header) -> ArchiveError:
        return ArchiveError(
            f"{self.label}: member {header.name} (byte {header.offset}): the archive ends "
            "early (truncated): download it again."
        )

    def _take(self, n: int, header: Header) -> Iterator[memoryview]:
        """The next `n` bytes of the stream, as views."""
        while n:
            if self._start == self._end and not self._fill():
                raise self._truncated(header)
            k = min(n, self._end - self._start)
            view = self._buf[self._start : self._start + k]
            self._start += k
            self.position += k
            n -= k
            yield view

    def chunks(self, header: Header) -> Iterator[memoryview]:
        """The data of the member just yielded, as views into the buffer (each valid until
        the next call); leaves the stream at the next header."""
        if header is not self._member or self._left != -(-header.size // BLOCK) * BLOCK:
            raise ValueError(f"{self.label}: {header.name} is not the member at hand")
        self._left = 0
        yield from self._take(header.size, header)
        for _ in self._take(-header.size % BLOCK, header):  # the padding
            pass

    def read(self, header: Header) -> bytes:
        out = bytearray()
        for view in self.chunks(header):  # each copied before the buffer is refilled
            out += view
        return bytes(out)

    def _block(self) -> bytes | None:
        while self._end - self._start < BLOCK:
            before = self._end - self._start
            if self._fill() == before:
                return None
        block = bytes(self._buf[self._start : self._start + BLOCK])
        self._start += BLOCK
        self.position += BLOCK
        return block

    def headers(self) -> Iterator[Header]:
        """Headers up to the end-of-archive marker, each checked and its size bounded before
        a byte of its data is read or skipped; then the rest of the stream, read to its end
        (zeros, and not many), so the decompressor reaches the gzip trailer and checks it.
        Data the caller leaves unread is skipped."""
        name: str | None = None  # from a pax or GNU long-name header, for the next member
        last: Header | None = None
        while True:
            if self._left:
                for _ in self._take(self._left, last):
                    pass
                self._left = 0
            pos = self.position
            block = self._block()
            if block is None:
                inside = (
                    f" inside member {last.name} (data from byte {last.offset})" if last else ""
                )
                raise ArchiveError(
                    f"{where(self.label, pos)}: the archive ends{inside} without the "
                    "end-of-archive marker (truncated): download it again."
                )
            if block == ZERO:
                self._after_end(pos)
                return
            check_header(block, pos, self.label)
            size = data_size(block, pos, self.label)
            kind = block[156:157]
            named = name if name is not None else _name(block)
            regular = kind in REGULAR
            header = Header(
                named, pos + BLOCK, size, regular, self._paths(named) if regular else None
            )
            self._member, self._left = header, -(-size // BLOCK) * BLOCK
            if kind in META:
                name = long_name(kind, self.read(header), pos, self.label) or name
                continue
            name = None
            last = header
            yield header

    def _after_end(self, marker: int) -> None:
        while self._start < self._end or self._fill():
            chunk = bytes(self._buf[self._start : self._end])
            check_padding(chunk, self.position, marker, self.label)
            self.position += len(chunk)
            self._start = self._end
