"""Finding the release in manual_dir: the archives as downloaded, or the tree extracted from them.

Only what the requested config needs is required; the devkit is always optional. CLS-LOC
may come from image-net.org or from Kaggle's release of the same challenge.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from imagenet2017_tfds import fileio, kaggle
from imagenet2017_tfds.errors import MissingInputError
from imagenet2017_tfds.sources import Source, Tarball, Tree
from imagenet2017_tfds.sources.tree import release_root

IMAGENET = "image-net.org ILSVRC2017"
KAGGLE = "Kaggle imagenet-object-localization-challenge (test images patched in 2019)"

# The release's archives (torchvision's table-of-archives idea): part -> the file names it
# ships under, first choice first, each with the release it comes from.
ARCHIVES = {
    "devkit": {"ILSVRC2017_devkit.tar.gz": IMAGENET},
    "clsloc": {"ILSVRC2017_CLS-LOC.tar.gz": IMAGENET, kaggle.TARBALL: KAGGLE},
    "det": {"ILSVRC2017_DET.tar.gz": IMAGENET},
    "det_test": {"ILSVRC2017_DET_test_new.tar.gz": IMAGENET},
}
# Where an extracted tree holds each part (below ILSVRC/), and the folders it reads.
TREE_MARKERS = {
    "devkit": "devkit/data",
    "clsloc": "Data/CLS-LOC",
    "det": "Data/DET/train",
    "det_test": "Data/DET/test",
}
TREE_SUBDIRS = {
    "clsloc": ("Annotations/CLS-LOC", "Data/CLS-LOC", "ImageSets/CLS-LOC"),
    "det": ("Annotations/DET", "Data/DET", "ImageSets/DET"),
    "devkit": ("devkit/data",),
}
# Files beside the archives (or the tree) that are read when present.
COMPANIONS = (kaggle.VAL_SOLUTION,)


def archive_names(part: str) -> str:
    return " or ".join(ARCHIVES[part])


def all_archive_names() -> set[str]:
    return {name for names in ARCHIVES.values() for name in names}


@dataclass
class Inputs:
    parts: dict[str, Source]  # part -> source (a tree may serve several parts)
    tarballs: dict[str, fileio.Path]  # part -> archive path, for those given as archives
    releases: dict[str, str] = field(default_factory=dict)  # part -> where it comes from
    companions: dict[str, fileio.Path] = field(default_factory=dict)  # file name -> path


def _describe(folder: fileio.Path) -> str:
    if not folder.exists():
        return f"{folder} does not exist"
    if not folder.is_dir():
        return f"{folder} is not a folder"
    found = sorted(folder.iterdir())
    if not found:
        return f"{folder} is empty"
    shown = []
    for p in found[:20]:
        shown.append(f"{p.name}/" if p.is_dir() else f"{p.name} ({p.stat().length} bytes)")
    more = f" and {len(found) - 20} more" if len(found) > 20 else ""
    return f"{folder} holds: " + ", ".join(shown) + more


def locate(manual_dir, parts_needed: tuple[str, ...], index_dir=None, what="") -> Inputs:
    """The sources of `parts_needed` (and the devkit when present) in `manual_dir`; `what`
    names the dataset in messages."""
    needed = " and ".join(archive_names(p) for p in parts_needed)
    if manual_dir is None:
        raise MissingInputError(
            f"{what} needs the ILSVRC2017 release, which cannot be downloaded automatically. "
            f"Download {needed} from https://image-net.org (account needed) into a folder "
            "and pass it with --manual_dir (tfds build) or "
            "download_config=tfds.download.DownloadConfig(manual_dir=...) (Python)."
        )
    folder = fileio.path(manual_dir)
    root = release_root(folder) if folder.is_dir() else None
    found = Inputs({}, {})
    looked = []
    trees: dict[str, Tree] = {}
    for part in (*parts_needed, "devkit"):
        for name, release in ARCHIVES[part].items():
            archive = folder / name
            looked.append(os.fspath(archive))
            if archive.is_file():
                index = fileio.path(index_dir) / f"{archive.name}.gzindex" if index_dir else None
                found.parts[part] = Tarball(archive, index_file=index)
                found.tarballs[part] = archive
                found.releases[part] = f"{release}: {name}"
                break
        if part in found.parts or root is None:
            continue
        looked.append(os.fspath(root / TREE_MARKERS[part]))
        if (root / TREE_MARKERS[part]).is_dir():
            group = "det" if part.startswith("det") else part
            if group not in trees:
                trees[group] = Tree(root, TREE_SUBDIRS[group], folder=folder)
            found.parts[part] = trees[group]
            found.releases[part] = f"extracted tree: {root}"
    if folder.is_dir():
        for name in COMPANIONS:
            if (folder / name).is_file():
                found.companions[name] = folder / name
    tree = found.releases.get("clsloc", "").startswith("extracted")
    if kaggle.VAL_SOLUTION in found.companions and tree:
        found.releases["clsloc"] = f"{KAGGLE}, {found.releases['clsloc']}"
    missing = [p for p in parts_needed if p not in found.parts]
    zips = sorted(p.name for p in folder.glob("*.zip")) if folder.is_dir() else []
    hint = (
        f" {', '.join(zips)}: unzip it there first (`unzip FILE -d {folder}`): Kaggle's zip "
        f"holds {kaggle.TARBALL}, which is read as it is."
        if zips and "clsloc" in missing else ""
    )  # fmt: skip
    if missing:
        raise MissingInputError(
            f"{what} needs {needed} (the devkit {archive_names('devkit')} is optional), as "
            "downloaded or extracted with `tar xzf FILE -C DIR`. Missing: "
            f"{', '.join(archive_names(p) for p in missing)}. Looked at: {'; '.join(looked)}. "
            f"Found: {_describe(folder)}. Put the archives (or the ILSVRC/ tree extracted "
            f"from them) in that folder.{hint}"
        )
    return found
