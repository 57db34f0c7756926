"""Damaging a miniature release on purpose: one archive re-packed with changed members."""

from __future__ import annotations

import gzip
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from imagenet2017_tfds import testing


def rewrite(release: testing.Release, part: str, changes: dict[str, bytes | None]) -> Path:
    """Re-pack `part` with members replaced (None removes one); returns the new checksums."""
    members = dict(release.members[part])
    for name, data in changes.items():
        if data is None:
            members.pop(name)
        else:
            members[name] = data
    release.members[part] = members
    path = release.manual_dir / testing.ARCHIVES[part]
    path.write_bytes(testing.tarball_bytes(members, seed=7))
    names = [testing.ARCHIVES[p] for p in release.members]
    return testing.write_checksums(release.manual_dir, names)


def wrong_md5(checksums: Path, archive: str, folder: Path) -> tuple[Path, str]:
    """A copy of `checksums` (in `folder`) whose md5 of `archive` is all zeros, and the true one."""
    lines = checksums.read_text().splitlines()
    actual = next(line for line in lines if line.startswith(archive)).split("\t")[2]
    bad = [
        "\t".join([*line.split("\t")[:2], "0" * 32, ""]) if line.startswith(archive) else line
        for line in lines
    ]
    path = folder / "bad.tsv"
    path.write_text("\n".join(bad) + "\n")
    return path, actual


@dataclass(frozen=True)
class Member:
    name: str  # below ILSVRC/
    start: int  # its first header block in the tar stream
    end: int  # the end of its data, padded


def members(tar_bytes: bytes) -> list[Member]:
    """Where each member of a (valid) tar lies."""
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as t:
        return [
            Member(
                m.name.removeprefix("ILSVRC/"), m.offset, m.offset_data + -(-m.size // 512) * 512
            )
            for m in t.getmembers()
        ]


def tar_header(
    name: str, size: int, kind: bytes = tarfile.REGTYPE, fmt=tarfile.GNU_FORMAT
) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mtime, info.mode = size, kind, 1500000000, 0o644
    return info.tobuf(format=fmt)


def with_size_field(header: bytes, field: bytes) -> bytes:
    """`header` with its 12-byte size field replaced (octal text or GNU base-256), its
    checksum made right again: a header only its size makes hostile."""
    block = bytearray(header[:512])
    block[124:136] = field
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block) + header[512:]


def write_gzip(path: Path, pieces: list) -> None:
    """A .tar.gz of `pieces` in order, each one or more gzip members: bytes, or (bytes, n)
    for n copies of them, compressed once. A member of a MiB of zeros is about 1 KB, so a
    stream that expands a thousandfold to a GiB is written in a moment."""
    with open(path, "wb") as out:
        for piece in pieces:
            data, copies = piece if isinstance(piece, tuple) else (piece, 1)
            member = gzip.compress(data, compresslevel=9, mtime=0)
            for _ in range(copies):
                out.write(member)
