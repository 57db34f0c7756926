"""The ILSVRC2017 naming rules: which member is which split's image, annotation or list.

Paths are below the leading `ILSVRC/` folder. Folder names inside a split are never
interpreted (the DET readme and the real archive spell them differently).
"""

from __future__ import annotations

from dataclasses import dataclass

# The challenges' folders under Data/, Annotations/ and ImageSets/ (tasks.Task.challenge).
CLSLOC_CHALLENGE = "CLS-LOC"
DET_CHALLENGE = "DET"
CHALLENGES = (CLSLOC_CHALLENGE, DET_CHALLENGE)
SPLIT_DIRS = ("train", "val", "test")
DET_TEST_NEW_PREFIX = "ILSVRC2017_test_"


@dataclass(frozen=True)
class Role:
    kind: str  # "image", "annotation", "imageset", "devkit"
    challenge: str = ""  # CLS-LOC or DET
    split_dir: str = ""  # train / val / test as the release names its folders
    name: str = ""  # image id below the split folder, list name, or devkit file name


def image_id(rest: str) -> str:
    """`n01440764/n01440764_10026.JPEG` -> `n01440764/n01440764_10026` (the ImageSets id)."""
    head, _, tail = rest.rpartition("/")
    stem = tail.rsplit(".", 1)[0] if "." in tail else tail
    return f"{head}/{stem}" if head else stem


def classify(path: str) -> Role | None:
    parts = path.split("/")
    top = parts[0]
    if top in ("Data", "Annotations") and len(parts) >= 4 and parts[1] in CHALLENGES:
        challenge, split_dir, rest = parts[1], parts[2], "/".join(parts[3:])
        if split_dir not in SPLIT_DIRS:
            return None
        if top == "Data":
            return Role("image", challenge, split_dir, image_id(rest))
        if rest.lower().endswith(".xml"):
            return Role("annotation", challenge, split_dir, image_id(rest))
        return None
    if (
        top == "ImageSets"
        and len(parts) == 3
        and parts[1] in CHALLENGES
        and parts[2].endswith(".txt")
    ):
        return Role("imageset", parts[1], "", parts[2][: -len(".txt")])
    if top == "devkit" and len(parts) == 3 and parts[1] == "data":
        return Role("devkit", "", "", parts[2])
    return None


def is_metadata(path: str) -> bool:
    """Members whose bytes a scan keeps: annotations, lists, devkit data (all small)."""
    role = classify(path)
    return role is not None and role.kind != "image"


def parse_imageset(text: str, where: str) -> list[tuple[str, str]]:
    """ImageSets lines `<image id> <value>` -> [(image id, value)] in file order."""
    from imagenet2017_tfds.errors import ConsistencyError

    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > 2:
            raise ConsistencyError(
                f"{where} line {number}: expected `<image id> <number>`, found {line!r}."
            )
        rows.append((fields[0], fields[1] if len(fields) > 1 else ""))
    return rows
