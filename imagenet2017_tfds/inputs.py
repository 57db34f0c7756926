"""Finding the release in manual_dir: the archives as downloaded, or the tree extracted from them.

Only what the requested config needs is required; the devkit is always optional.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from etils import epath

from imagenet2017_tfds.errors import MissingInputError
from imagenet2017_tfds.sources import Source, Tarball, Tree
from imagenet2017_tfds.sources.tree import release_root

# The release's archives (torchvision's table-of-archives idea): part -> file name.
ARCHIVES = {
    "devkit": "ILSVRC2017_devkit.tar.gz",
    "clsloc": "ILSVRC2017_CLS-LOC.tar.gz",
    "det": "ILSVRC2017_DET.tar.gz",
    "det_test": "ILSVRC2017_DET_test_new.tar.gz",
}
# What each config needs, and where an extracted tree holds it (below ILSVRC/).
NEEDS = {"clsloc": ("clsloc",), "det": ("det", "det_test")}
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


@dataclass
class Inputs:
    parts: dict[str, Source]  # part -> source (a tree may serve several parts)
    tarballs: dict[str, epath.Path]  # part -> archive path, for those given as archives

    @property
    def devkit(self) -> Source | None:
        return self.parts.get("devkit")


def _describe(folder: epath.Path) -> str:
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


def locate(manual_dir, config: str, index_dir=None) -> Inputs:
    if manual_dir is None:
        raise MissingInputError(
            f"imagenet2017/{config} needs the ILSVRC2017 release, which cannot be downloaded "
            f"automatically. Download {_needed_names(config)} from https://image-net.org "
            "(account needed) into a folder and pass it with --manual_dir (tfds build) or "
            "download_config=tfds.download.DownloadConfig(manual_dir=...) (Python)."
        )
    folder = epath.Path(manual_dir)
    root = release_root(folder) if folder.is_dir() else None
    parts: dict[str, Source] = {}
    tarballs: dict[str, epath.Path] = {}
    looked = []
    trees: dict[str, Tree] = {}
    for part in (*NEEDS[config], "devkit"):
        archive = folder / ARCHIVES[part]
        looked.append(os.fspath(archive))
        if archive.is_file():
            index = epath.Path(index_dir) / f"{archive.name}.gzindex" if index_dir else None
            parts[part] = Tarball(archive, index_file=index)
            tarballs[part] = archive
            continue
        if root is not None:
            looked.append(os.fspath(root / TREE_MARKERS[part]))
            if (root / TREE_MARKERS[part]).is_dir():
                group = "det" if part.startswith("det") else part
                if group not in trees:
                    trees[group] = Tree(root, TREE_SUBDIRS[group])
                parts[part] = trees[group]
    missing = [p for p in NEEDS[config] if p not in parts]
    if missing:
        raise MissingInputError(
            f"imagenet2017/{config} needs {_needed_names(config)} (the devkit "
            f"{ARCHIVES['devkit']} is optional), as downloaded or extracted with "
            f"`tar xzf FILE -C DIR`. Missing: {', '.join(ARCHIVES[p] for p in missing)}. "
            f"Looked at: {'; '.join(looked)}. Found: {_describe(folder)}. Put the archives "
            "(or the ILSVRC/ tree extracted from them) in that folder."
        )
    return Inputs(parts, tarballs)


def _needed_names(config: str) -> str:
    return " and ".join(ARCHIVES[p] for p in NEEDS[config])
