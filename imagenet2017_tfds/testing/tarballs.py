"""Tarballs as the release's are written: GNU tar under `ILSVRC/`, gzip without a name or a
time, members in the order of tar's walk of a folder (or in none), and the checksums file."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import tarfile
from pathlib import Path

# The top folders' order: "annotations_last" (Annotations after the images, the rest in random
# order), "annotations_first" as Kaggle's listing has it (Annotations, ImageSets, then Data).
ORDERS = ("annotations_last", "annotations_first")
MTIME = 1500000000


def tar_order(members: list, rng: random.Random, order: str = "annotations_last") -> list:
    """Members (name, ...) in the order of tar's depth-first walk with each directory listed
    in random order, as on a filesystem that lists directories in hash order (ext4); the top
    folders in `order` (ORDERS)."""
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, not {order!r}")
    tree: dict = {}
    for member in members:
        *folders, _ = member[0].split("/")
        node = tree
        for folder in folders:
            node = node.setdefault(folder + "/", {})
        node.setdefault("", []).append(member)

    def walk(node: dict, top: bool) -> list:
        out = list(node.get("", []))
        rng.shuffle(out)
        folders = sorted(k for k in node if k)
        rng.shuffle(folders)
        if top and order == "annotations_last" and "Annotations/" in folders:
            folders.remove("Annotations/")
            folders.append("Annotations/")
        elif top and order == "annotations_first":
            first = ["Annotations/", "ImageSets/", "Data/"]
            folders.sort(key=lambda f: first.index(f) if f in first else len(first))
        for folder in folders:
            out += walk(node[folder], False)
        return out

    return walk(tree, True)


def member_order(members: dict[str, bytes], seed: int, order: str = "scrambled") -> list[str]:
    """The members' names in the tarball's order: "scrambled" (no order at all), or one of
    ORDERS (tar's depth-first walk)."""
    names = sorted(members)
    if order == "scrambled":
        random.Random(seed).shuffle(names)
        return names
    return [name for name, _ in tar_order([(n, None) for n in names], random.Random(seed), order)]


def tarball_bytes(members: dict[str, bytes], seed: int, order: str = "scrambled") -> bytes:
    """A .tar.gz as GNU tar would write it, members under ILSVRC/ in `order` (member_order)."""
    return tar_gz(members, member_order(members, seed, order))


def tar_gz(members: dict[str, bytes], names: list[str]) -> bytes:
    """The .tar.gz of `members` in the order of `names` (GNU format, under ILSVRC/)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for name in names:
            info = tarfile.TarInfo(f"ILSVRC/{name}")
            info.size, info.mtime, info.mode = len(members[name]), MTIME, 0o644
            tar.addfile(info, io.BytesIO(members[name]))
    out = io.BytesIO()
    with gzip.GzipFile(fileobj=out, mode="wb", mtime=0) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def write_checksums(folder: Path, names: list[str]) -> Path:
    """`folder/checksums.tsv` (the package's format) for the archives `names` in `folder`."""
    lines = ["# checksums of the miniature release", "filename\tsize\tmd5\tsha256"]
    for name in names:
        data = (folder / name).read_bytes()
        md5, sha256 = hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest()
        lines.append(f"{name}\t{len(data)}\t{md5}\t{sha256}")
    path = folder / "checksums.tsv"
    path.write_text("\n".join(lines) + "\n")
    return path
