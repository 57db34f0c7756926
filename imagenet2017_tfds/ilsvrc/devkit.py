"""The devkit has no published digest: it is checked by content against the package's own
copies of its class maps, validation ground truth and blacklists."""

from __future__ import annotations

import functools

from imagenet2017_tfds.errors import ConsistencyError
from imagenet2017_tfds.ilsvrc import classes
from imagenet2017_tfds.internal import resources

CLSLOC_GROUND_TRUTH = "ILSVRC2015_clsloc_validation_ground_truth.txt"
CLSLOC_BLACKLIST = "ILSVRC2015_clsloc_validation_blacklist.txt"
DET_BLACKLIST = "ILSVRC2015_det_validation_blacklist.txt"
CHECKED = ("map_clsloc.txt", "map_det.txt", CLSLOC_GROUND_TRUTH, CLSLOC_BLACKLIST, DET_BLACKLIST)


def _lines(data: str) -> list[str]:
    return [" ".join(line.split()) for line in data.splitlines() if line.strip()]


def cross_check(files: dict[str, bytes], source_name: str, recorder) -> None:
    """Every checked file the devkit holds must equal the package's, entry for entry; a
    difference goes to `recorder` (problems.Recorder)."""
    for name in CHECKED:
        try:
            _check_file(files, source_name, name)
        except ConsistencyError as e:
            recorder.problem("devkit", f"devkit/data/{name}", e)


def _check_file(files: dict[str, bytes], source_name: str, name: str) -> None:
    if name not in files:
        return
    theirs = _lines(files[name].decode("utf-8", "replace"))
    ours = _lines(resources.text(name))
    for number, (a, b) in enumerate(zip(theirs, ours, strict=False), 1):
        if a != b:
            raise ConsistencyError(
                f"{source_name}: devkit/data/{name} line {number} is {a!r}, the package's copy "
                f"says {b!r}. This devkit is not the ILSVRC2017 one (or is damaged): "
                "download ILSVRC2017_devkit.tar.gz again, or remove it (it is optional)."
            )
    if len(theirs) != len(ours):
        raise ConsistencyError(
            f"{source_name}: devkit/data/{name} has {len(theirs)} entries, the package's copy "
            f"{len(ours)}. Download ILSVRC2017_devkit.tar.gz again, or remove it."
        )


@functools.cache
def clsloc_ground_truth() -> tuple[str, ...]:
    """WNID of validation image i at position i-1 (the file holds devkit ids)."""
    by_id = classes.clsloc().by_devkit_id
    return tuple(by_id[int(line)] for line in resources.text(CLSLOC_GROUND_TRUTH).split())


@functools.cache
def clsloc_blacklist() -> frozenset[int]:
    return frozenset(int(line) for line in resources.text(CLSLOC_BLACKLIST).split())


@functools.cache
def det_blacklist() -> dict[int, frozenset[str]]:
    table: dict[int, set[str]] = {}
    for line in resources.text(DET_BLACKLIST).splitlines():
        if line.strip():
            index, wnid = line.split()
            table.setdefault(int(index), set()).add(wnid)
    return {k: frozenset(v) for k, v in table.items()}
