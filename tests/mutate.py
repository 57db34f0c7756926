"""Damaging a miniature release on purpose: one archive re-packed with changed members."""

from __future__ import annotations

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
