"""Damaging a miniature release on purpose: one archive re-packed with changed members."""

from __future__ import annotations

from pathlib import Path

from tests import minirelease


def rewrite(release: minirelease.Release, part: str, changes: dict[str, bytes | None]) -> Path:
    """Re-pack `part` with members replaced (None removes one); returns the new checksums."""
    members = dict(release.members[part])
    for name, data in changes.items():
        if data is None:
            members.pop(name)
        else:
            members[name] = data
    release.members[part] = members
    path = release.manual_dir / minirelease.ARCHIVES[part]
    path.write_bytes(minirelease.tarball_bytes(members, seed=7))
    names = [minirelease.ARCHIVES[p] for p in release.members]
    return minirelease.write_checksums(release.manual_dir, names)
