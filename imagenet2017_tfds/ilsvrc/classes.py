"""The class lists of both challenges, read from the package's data folder (tasks.py
names which config has which, and gives their readable names by config).

ClassLabel names are WNIDs in sorted order (the indices of TFDS `imagenet2012` and Keras);
the devkit numbers classes differently (map_clsloc.txt order), so both orders live here.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field

from imagenet2017_tfds.errors import AnnotationError
from imagenet2017_tfds.internal import resources


@dataclass(frozen=True)
class ClassList:
    wnids: tuple[str, ...]  # sorted: the ClassLabel order
    names: dict[str, str]  # wnid -> human-readable name
    devkit_ids: dict[str, int]  # wnid -> the devkit's 1-based id
    labels: dict[str, str] = field(default_factory=dict)  # wnid -> the devkit map's label

    def index(self, wnid: str) -> int:
        return self._positions[wnid]

    @functools.cached_property
    def _positions(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.wnids)}

    @functools.cached_property
    def by_devkit_id(self) -> dict[int, str]:
        return {i: w for w, i in self.devkit_ids.items()}

    @functools.cached_property
    def by_name(self) -> dict[str, tuple[str, ...]]:
        """Readable labels as some XMLs spell them (`Scottish_deerhound`), lower-cased -> every
        WNID so named, sorted. A label can name two classes: "crane" (bird, machine),
        "maillot", and "cardigan" once case is folded (the corgi and the sweater)."""
        table = defaultdict(set)
        for wnid in self.wnids:
            for name in (self.names[wnid], self.labels.get(wnid, "")):
                for alias in (name, name.replace(" ", "_"), name.replace("_", " ")):
                    if alias:
                        table[alias.lower()].add(wnid)
        return {alias: tuple(sorted(wnids)) for alias, wnids in table.items()}


def parse_map(text: str) -> dict[str, tuple[int, str]]:
    """`map_clsloc.txt` / `map_det.txt` lines `WNID ID name` -> {wnid: (id, name)}."""
    table = {}
    for line in text.splitlines():
        if line.strip():
            wnid, devkit_id, name = line.split(maxsplit=2)
            table[wnid] = (int(devkit_id), name)
    return table


@functools.cache
def clsloc() -> ClassList:
    devkit = parse_map(resources.text("map_clsloc.txt"))
    names = {}
    for line in resources.text("LOC_synset_mapping.txt").splitlines():
        if line.strip():
            wnid, name = line.split(maxsplit=1)
            names[wnid] = name
    # The synset mapping gives full names; the map's labels are how some XMLs name a class.
    return ClassList(
        wnids=tuple(sorted(devkit)),
        names=names,
        devkit_ids={w: i for w, (i, _) in devkit.items()},
        labels={w: n for w, (_, n) in devkit.items()},
    )


@functools.cache
def det() -> ClassList:
    devkit = parse_map(resources.text("map_det.txt"))
    return ClassList(
        wnids=tuple(sorted(devkit)),
        names={w: n for w, (_, n) in devkit.items()},
        devkit_ids={w: i for w, (i, _) in devkit.items()},
    )


def clsloc_object_label(name: str, image_label: int) -> int:
    """A CLS-LOC box's <name>: a WNID or a readable label (`Scottish_deerhound`). A label
    naming no class, or several ("crane"), means the image's own class: CLS-LOC boxes are of
    the image's class."""
    lst = clsloc()
    if name in lst.devkit_ids:
        return lst.index(name)
    named = lst.by_name.get(name.lower(), ())
    return lst.index(named[0]) if len(named) == 1 else image_label


def det_object_label(name: str, where: str) -> int:
    """A DET box's <name> must be one of the 200 DET WNIDs."""
    lst = det()
    if name in lst.devkit_ids:
        return lst.index(name)
    raise AnnotationError(
        f"{where}: object <name> {name!r} is not one of the 200 DET WNIDs (map_det.txt). "
        "The annotation is damaged: fix it, or build with skip_bad_members."
    )
