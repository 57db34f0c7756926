"""Which examples each split holds, from a source's catalog: the ILSVRC rules for labels,
membership (ImageSets against the archive's contents) and blacklists. No image bytes here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from imagenet2017_tfds import classes, devkit, layout
from imagenet2017_tfds.catalog import Catalog
from imagenet2017_tfds.errors import AnnotationError, ConsistencyError
from imagenet2017_tfds.examples import Item
from imagenet2017_tfds.sources import Entry


@dataclass
class SplitPlan:
    """The items of one split, in the order their bytes lie in the source."""

    source_part: str  # which input (inputs.ARCHIVES key) holds the bytes
    items: list[tuple[Entry, Item]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def sort(self) -> SplitPlan:
        self.items.sort(key=lambda pair: (pair[0].offset, pair[0].path))
        return self


def _file_name(entry: Entry) -> str:
    return entry.path.rsplit("/", 1)[-1]


def _below_split(entry: Entry) -> str:
    return entry.path.split("/", 3)[3]


class Problems:
    """Strict by default; with skip_bad_members every problem is logged and recorded."""

    def __init__(self, skip: bool):
        self.skip = skip
        self.recorded: list[tuple[str, str]] = []

    def report(self, error: Exception, member: str) -> None:
        if not self.skip:
            raise error
        logging.warning("Skipping %s: %s", member, error)
        self.recorded.append((member, str(error)))


def check_membership(listed: list[str], found: dict, where: str, problems: Problems) -> set[str]:
    """Every listed id must be present and every present image listed; returns the ids kept."""
    listed_set = set(listed)
    for image in listed:
        if image not in found:
            problems.report(
                ConsistencyError(
                    f"{where} lists {image}, but the archive holds no such image. The archive "
                    "is incomplete: download it again (or extract it again)."
                ),
                image,
            )
    for image in sorted(found):
        if image not in listed_set:
            problems.report(
                ConsistencyError(
                    f"{found[image].path}: an image that {where} does not list. The archive "
                    "is not the ILSVRC2017 release as published."
                ),
                found[image].path,
            )
    return {i for i in found if i in listed_set}


def _listed(cat: Catalog, task: str, name: str) -> list[str] | None:
    text = cat.imagesets.get((task, name))
    if text is None:
        return None
    return [i for i, _ in layout.parse_imageset(text, f"{cat.label}: ImageSets/{task}/{name}.txt")]


def _members(cat: Catalog, task: str, split_dir: str, list_name: str, problems: Problems):
    found = cat.images.get((task, split_dir), {})
    listed = _listed(cat, task, list_name)
    if listed is None:
        raise ConsistencyError(
            f"{cat.label}: ImageSets/{task}/{list_name}.txt is missing; it lists the "
            f"{split_dir} images and proves none is lost. The archive is incomplete: "
            "download it again."
        )
    keep = check_membership(
        listed, found, f"{cat.label}: ImageSets/{task}/{list_name}.txt", problems
    )
    return {i: e for i, e in found.items() if i in keep}


# ---------------------------------------------------------------- CLS-LOC


def clsloc_object_label(name: str, image_label: int) -> int:
    """A <name> is a WNID or a readable label (`Scottish_deerhound`). A label naming no class,
    or several ("crane"), means the image's own class: CLS-LOC boxes are of the image's class."""
    lst = classes.clsloc()
    if name in lst.devkit_ids:
        return lst.index(name)
    named = lst.by_name.get(name.lower(), ())
    return lst.index(named[0]) if len(named) == 1 else image_label


def clsloc(
    cat: Catalog, skip_bad_members: bool = False, devkit_present: bool = False
) -> dict[str, SplitPlan]:
    lst = classes.clsloc()
    problems = Problems(skip_bad_members)
    task = layout.CLSLOC
    notes = cat.annotations
    plans = {s: SplitPlan("clsloc") for s in ("train", "validation", "test")}

    for image, entry in _members(cat, task, "train", "train_cls", problems).items():
        wnid = image.split("/", 1)[0]
        if wnid not in lst.devkit_ids:
            problems.report(
                ConsistencyError(
                    f"{entry.path}: train folder {wnid!r} is not one of the 1000 CLS-LOC WNIDs."
                ),
                entry.path,
            )
            continue
        ann = notes.get((task, "train"), {}).get(image)
        plans["train"].items.append(
            (entry, Item(f"train/{image}", entry.path, _file_name(entry), lst.index(wnid), ann))
        )

    truth = devkit.clsloc_ground_truth()
    blacklist = devkit.clsloc_blacklist()
    for image, entry in _members(cat, task, "val", "val", problems).items():
        ann = notes.get((task, "val"), {}).get(image)
        try:
            number = int(image.rsplit("_", 1)[1])
            expected = truth[number - 1]
        except (IndexError, ValueError):
            problems.report(
                ConsistencyError(f"{entry.path}: not a validation image name of the release."),
                entry.path,
            )
            continue
        if ann is None:
            problems.report(
                AnnotationError(
                    f"{entry.path}: every validation image has an annotation XML, this one has none."
                ),
                entry.path,
            )
            continue
        label = lst.index(expected)
        if ann.objects:
            label = clsloc_object_label(ann.objects[0].name, label)
            if devkit_present and lst.wnids[label] != expected:
                raise ConsistencyError(
                    f"{entry.path}: the annotation says {lst.wnids[label]}, the devkit's "
                    f"{devkit.CLSLOC_GROUND_TRUTH} line {number} says {expected}. The devkit "
                    "or the archive is not the ILSVRC2017 release: download them again."
                )
        plans["validation"].items.append(
            (
                entry,
                Item(
                    f"validation/{image}",
                    entry.path,
                    _file_name(entry),
                    label,
                    ann,
                    number in blacklist,
                ),
            )
        )

    for image, entry in _members(cat, task, "test", "test", problems).items():
        plans["test"].items.append((entry, Item(f"test/{image}", entry.path, _file_name(entry))))

    for plan in plans.values():
        plan.skipped = problems.recorded
    return {k: v.sort() for k, v in plans.items()}


# ---------------------------------------------------------------- DET


def det_object_label(name: str, where: str) -> int:
    lst = classes.det()
    if name in lst.devkit_ids:
        return lst.index(name)
    raise AnnotationError(
        f"{where}: object <name> {name!r} is not one of the 200 DET WNIDs (map_det.txt). "
        "The annotation is damaged: fix it, or build with skip_bad_members."
    )


def det(
    det_cat: Catalog, test_cat: Catalog, same_source: bool, skip_bad_members: bool = False
) -> dict[str, SplitPlan]:
    problems = Problems(skip_bad_members)
    task = layout.DET
    plans = {s: SplitPlan("det") for s in ("train", "validation", "test_previous")}
    plans["test"] = SplitPlan("det_test")

    def add(split: str, image: str, entry: Entry, ann=None, black=frozenset()):
        if ann is not None:
            for box in ann.objects:
                try:
                    det_object_label(box.name, entry.path)
                except AnnotationError as e:
                    problems.report(e, entry.path)
                    return
        name = _below_split(entry)
        plans[split].items.append(
            (entry, Item(f"{split}/{name}", entry.path, name, -1, ann, False, black))
        )

    train_notes = det_cat.annotations.get((task, "train"), {})
    for image, entry in _members(det_cat, task, "train", "train", problems).items():
        add("train", image, entry, train_notes.get(image))

    val_notes = det_cat.annotations.get((task, "val"), {})
    val_index = {}
    for image, index in layout.parse_imageset(det_cat.imagesets.get((task, "val"), ""), "val.txt"):
        val_index[image] = int(index) if index.isdigit() else None
    black = devkit.det_blacklist()
    for image, entry in _members(det_cat, task, "val", "val", problems).items():
        ann = val_notes.get(image)
        if ann is None:
            problems.report(
                AnnotationError(
                    f"{entry.path}: every DET validation image has an annotation XML, this one has none."
                ),
                entry.path,
            )
            continue
        add("validation", image, entry, ann, black.get(val_index.get(image), frozenset()))

    # Data/DET/test holds the 2017 test set (DET_test_new) and, in the DET archive, an
    # earlier one; extracted into one tree they share a folder and one test.txt survives.
    tests = {}
    for cat, part in ((det_cat, "det"), (test_cat, "det_test")):
        for image, entry in cat.images.get((task, "test"), {}).items():
            split = (
                layout.det_test_split(image)
                if same_source
                else ("test" if part == "det_test" else "test_previous")
            )
            tests.setdefault(split, {})[image] = entry
    listed = {}
    for cat in {id(det_cat): det_cat, id(test_cat): test_cat}.values():
        ids = _listed(cat, task, "test") or []
        if ids:
            split = (
                layout.det_test_split(ids[0])
                if same_source
                else ("test" if cat is test_cat else "test_previous")
            )
            listed[split] = (ids, cat.label)
    for split in ("test", "test_previous"):
        found = tests.get(split, {})
        ids, label = listed.get(split, ((), ""))
        if ids and found and set(ids).isdisjoint(found):
            # A test.txt naming none of these images describes the other test set: it does
            # not prove anything about this one.
            logging.warning("%s: ImageSets/DET/test.txt lists none of the %s images; "
                            "counting the images instead.", label, split)  # fmt: skip
            ids = ()
        if ids:
            keep = check_membership(list(ids), found, f"{label}: ImageSets/DET/test.txt", problems)
        elif split == "test" and not found:
            raise ConsistencyError(
                f"{test_cat.label}: no DET test image (ILSVRC2017_test_*) and no ImageSets/DET/test.txt. "
                "Put ILSVRC2017_DET_test_new.tar.gz (or its extracted tree) in the manual folder."
            )
        else:
            keep = set(found)  # the list was overwritten when both were extracted together
        for image in sorted(keep):
            add(split, image, found[image])

    for plan in plans.values():
        plan.skipped = problems.recorded
    return {k: v.sort() for k, v in plans.items()}
