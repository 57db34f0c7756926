"""Finding the release in manual_dir: the archives as downloaded, or the tree extracted from them.

Only what the requested config needs is required; what it reads when present (the devkit)
is optional. Which archives those are, under which file names, is the configs' data
(tasks.py: Archive records). CLS-LOC may come from image-net.org or from Kaggle's release
of the same challenge.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from imagenet2017_tfds.errors import MissingInputError
from imagenet2017_tfds.ilsvrc import kaggle
from imagenet2017_tfds.internal import fileio
from imagenet2017_tfds.sources import Source, Tarball, Tree
from imagenet2017_tfds.sources.tree import release_root

IMAGENET = "image-net.org ILSVRC2017"
KAGGLE = "Kaggle imagenet-object-localization-challenge (test images patched in 2019)"
# Releases that publish no digest of their archives: those are verified by their content
# (kaggle.py).
NO_DIGEST = (KAGGLE,)

# How an archive is vouched for (Archive.digest): by its digest in the checksums file (its
# content when its release publishes none), or by its data files, which must equal the
# package's copies (the devkit: devkit.check; its presence also asks for the ground truth).
PUBLISHED = "published"
PACKAGE_COPIES = "package copies"


@dataclass(frozen=True, eq=False)
class Archive:
    """One archive of the release as a config reads it (torchvision's table of archives, one
    record each). The tasks.py table owns them; nothing else names a part."""

    name: str  # the part: the key of Inputs.parts, of the catalogs and of SplitPlan.parts
    files: dict[str, str]  # the file names it ships under, first choice first -> its release
    tree_marker: str  # below ILSVRC/: the folder whose presence shows a tree holds it
    tree_folders: tuple[str, ...]  # what its Tree reads; archives with the same share one Tree
    split_dirs: tuple[str, ...] = ()  # the split folders whose images its catalog holds
    digest: str = PUBLISHED  # PUBLISHED or PACKAGE_COPIES

    def by_content(self, file_name: str) -> bool:
        """Whether its file `file_name` is vouched for by content, no digest being published."""
        return self.digest == PACKAGE_COPIES or self.files.get(file_name) in NO_DIGEST


# Files beside the archives (or the tree) that are read when present.
COMPANIONS = (kaggle.VAL_SOLUTION,)


def archive_names(archive: Archive) -> str:
    return " or ".join(archive.files)


@dataclass
class Inputs:
    parts: dict[str, Source]  # part -> source (a tree may serve several parts)
    tarballs: dict[str, fileio.Path]  # part -> archive path, for those given as archives
    releases: dict[str, str] = field(default_factory=dict)  # part -> where it comes from
    companions: dict[str, fileio.Path] = field(default_factory=dict)  # file name -> path
    archives: dict[str, Archive] = field(default_factory=dict)  # part -> its record


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


def locate(
    manual_dir,
    parts_needed: tuple[Archive, ...],
    index_dir=None,
    what="",
    optional: tuple[Archive, ...] = (),
) -> Inputs:
    """The sources of `parts_needed` (and of `optional` when present) in `manual_dir`; `what`
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
    if folder.is_dir():
        for name in COMPANIONS:
            if (folder / name).is_file():
                found.companions[name] = folder / name
    looked = []
    trees: dict[tuple[str, ...], Tree] = {}  # tree folders -> the Tree reading them
    for archive in (*parts_needed, *optional):
        part = archive.name
        for name, release in archive.files.items():
            path = folder / name
            looked.append(os.fspath(path))
            if path.is_file():
                index = fileio.path(index_dir) / f"{path.name}.gzindex" if index_dir else None
                found.parts[part] = Tarball(path, index_file=index)
                found.tarballs[part] = path
                found.releases[part] = f"{release}: {name}"
                found.archives[part] = archive
                break
        if part in found.parts or root is None:
            continue
        looked.append(os.fspath(root / archive.tree_marker))
        if (root / archive.tree_marker).is_dir():
            if archive.tree_folders not in trees:
                trees[archive.tree_folders] = Tree(root, archive.tree_folders, folder=folder)
            found.parts[part] = trees[archive.tree_folders]
            found.releases[part] = f"extracted tree: {root}"
            found.archives[part] = archive
            # Kaggle's solution file beside a tree of what Kaggle ships: the tree is Kaggle's.
            if kaggle.VAL_SOLUTION in found.companions and KAGGLE in archive.files.values():
                found.releases[part] = f"{KAGGLE}, {found.releases[part]}"
    missing = [p for p in parts_needed if p.name not in found.parts]
    zips = sorted(p.name for p in folder.glob("*.zip")) if folder.is_dir() else []
    hint = (
        f" {', '.join(zips)}: unzip it there first (`unzip FILE -d {folder}`): Kaggle's zip "
        f"holds {kaggle.TARBALL}, which is read as it is."
        if zips and any(kaggle.TARBALL in p.files for p in missing)
        else ""
    )
    also = " and ".join(f"the {p.name} {archive_names(p)}" for p in optional)
    also = f" ({also} {'is' if len(optional) == 1 else 'are'} optional)" if optional else ""
    if missing:
        raise MissingInputError(
            f"{what} needs {needed}{also}, as "
            "downloaded or extracted with `tar xzf FILE -C DIR`. Missing: "
            f"{', '.join(archive_names(p) for p in missing)}. Looked at: {'; '.join(looked)}. "
            f"Found: {_describe(folder)}. Put the archives (or the ILSVRC/ tree extracted "
            f"from them) in that folder.{hint}"
        )
    return found
