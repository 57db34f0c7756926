"""The class lists of both configs, read from the package's data folder.

ClassLabel names are WNIDs in sorted order (the indices of TFDS `imagenet2012` and Keras);
the devkit numbers classes differently (map_clsloc.txt order), so both orders live here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from imagenet2017_tfds import resources


@dataclass(frozen=True)
class ClassList:
    wnids: tuple[str, ...]  # sorted: the ClassLabel order
    names: dict[str, str]  # wnid -> human-readable name
    devkit_ids: dict[str, int]  # wnid -> the devkit's 1-based id

    def index(self, wnid: str) -> int:
        return self._positions[wnid]

    @functools.cached_property
    def _positions(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.wnids)}

    @functools.cached_property
    def by_devkit_id(self) -> dict[int, str]:
        return {i: w for w, i in self.devkit_ids.items()}

    @functools.cached_property
    def by_name(self) -> dict[str, str]:
        """Readable labels as some XMLs spell them (`Scottish_deerhound`) -> wnid."""
        table = {}
        for wnid, name in self.names.items():
            for alias in (name, name.replace(" ", "_")):
                table.setdefault(alias.lower(), wnid)
        return table


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
    # The map's underscored names resolve XML labels; the synset mapping gives full names.
    aliases = {w: n for w, (_, n) in devkit.items()}
    lst = ClassList(
        wnids=tuple(sorted(devkit)),
        names=names,
        devkit_ids={w: i for w, (i, _) in devkit.items()},
    )
    for wnid, alias in aliases.items():
        lst.by_name.setdefault(alias.lower(), wnid)
    return lst


@functools.cache
def det() -> ClassList:
    devkit = parse_map(resources.text("map_det.txt"))
    return ClassList(
        wnids=tuple(sorted(devkit)),
        names={w: n for w, (_, n) in devkit.items()},
        devkit_ids={w: i for w, (i, _) in devkit.items()},
    )


def for_config(config: str) -> ClassList:
    return {"clsloc": clsloc, "det": det}[config]()


def readable_name(config: str, index: int) -> str:
    """The human-readable name of class `index` (ClassLabel order) of `config`."""
    lst = for_config(config)
    return lst.names[lst.wnids[index]]
