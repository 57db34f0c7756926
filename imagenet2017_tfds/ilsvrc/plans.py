"""Which examples each split holds, from the catalogs of the inputs: the ILSVRC rules for
labels, membership (ImageSets against the archive's contents) and blacklists. No image bytes.

One named step plans one split. Every problem goes to the build's Recorder, which raises it,
skips the member, or collects it (see problems.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from imagenet2017_tfds.errors import AnnotationError, ConsistencyError
from imagenet2017_tfds.ilsvrc import classes, devkit, kaggle, roles
from imagenet2017_tfds.ilsvrc.catalog import Catalog
from imagenet2017_tfds.ilsvrc.example_dicts import Item
from imagenet2017_tfds.ilsvrc.inputs import Archive
from imagenet2017_tfds.internal.problems import Recorder
from imagenet2017_tfds.sources import Entry

Pair = tuple[Entry, Item]
ItemStep = Callable[["Context", str, Entry], "Pair | None"]  # (ctx, image id, entry)


@dataclass
class SplitPlan:
    """The items of one split, per input part (the archive holding their bytes), each part's
    items in the order their bytes lie in it."""

    parts: dict[str, list[Pair]] = field(default_factory=dict)

    def add(self, part: str, entry: Entry, item: Item) -> None:
        self.parts.setdefault(part, []).append((entry, item))

    @property
    def items(self) -> list[Pair]:
        return [pair for part in sorted(self.parts) for pair in self.parts[part]]

    def __len__(self) -> int:
        return sum(len(v) for v in self.parts.values())

    def sort(self) -> SplitPlan:
        for items in self.parts.values():
            items.sort(key=lambda pair: (pair[0].offset, pair[0].path))
        return self


@dataclass
class Context:
    """What a plan step reads: the catalogs by part, the config's archives (which part holds
    which split folder), where problems go, and which checks of content apply."""

    catalogs: dict[str, Catalog]
    recorder: Recorder = field(default_factory=Recorder)
    # Validation labels must equal the devkit's ground truth: with the devkit present, and
    # always for a release no digest vouches for (Kaggle's).
    check_ground_truth: bool = False
    val_solution: kaggle.Solution | None = None  # Kaggle's LOC_val_solution.csv, if present
    parts: tuple[Archive, ...] = ()  # the config's archives (tasks.Task.parts)
    _memo: dict = field(default_factory=dict, repr=False)

    def memo(self, name: str, make):
        """A value derived from the catalogs once (per-image steps run millions of times)."""
        if name not in self._memo:
            self._memo[name] = make()
        return self._memo[name]

    def holding(self, split_dir: str) -> list[tuple[str, Catalog]]:
        """(part, catalog) of each of the config's archives holding `split_dir`'s images,
        the latest first: an image in several is read from the first."""

        def latest_first():
            parts = [a for a in reversed(self.parts) if split_dir in a.split_dirs]
            return [(a.name, self.catalogs[a.name]) for a in parts]

        return self.memo(f"holding {split_dir}", latest_first)

    def holder(self, split_dir: str) -> tuple[str, Catalog]:
        """(part, catalog) of the archive `split_dir`'s images are read from."""
        return self.holding(split_dir)[0]

    def annotation(self, challenge: str, split_dir: str, image: str):
        """The parsed annotation of `image` in `split_dir`, or None."""
        _, cat = self.holder(split_dir)
        return cat.annotations.get((challenge, split_dir), {}).get(image)


def _file_name(entry: Entry) -> str:
    return entry.path.rsplit("/", 1)[-1]


def _below_split(entry: Entry) -> str:
    return entry.path.split("/", 3)[3]


def clsloc_key(split: str, path: str) -> str:
    """A CLS-LOC example's key: its split and ImageSets id. The stream knows it from the member
    path alone, so it can put each image where its shard will look for it."""
    return f"{split}/{roles.image_id(path.split('/', 3)[3])}"


def det_key(split: str, path: str) -> str:
    """A DET example's key: its split and its file name below the split folder."""
    return f"{split}/{path.split('/', 3)[3]}"


def listed(cat: Catalog, task: str, name: str) -> list[str] | None:
    """The image ids of ImageSets/<task>/<name>.txt, or None when the catalog has no such list."""
    text = cat.imagesets.get((task, name))
    if text is None:
        return None
    where = f"{cat.source_name}: ImageSets/{task}/{name}.txt"
    return [image for image, _ in roles.parse_imageset(text, where)]


def _missing(rec: Recorder, where: str, image: str) -> None:
    rec.problem(
        "missing",
        image,
        ConsistencyError(
            f"{where} lists {image}, but the archive holds no such image. The archive is "
            "incomplete: download it again (or extract it again)."
        ),
    )


def strict_members(cat: Catalog, task: str, split_dir: str, list_name: str, rec: Recorder):
    """A split whose list is confirmed complete: every listed image present, every present
    image listed. Returns {image id: entry} of the images kept."""
    found = cat.images.get((task, split_dir), {})
    ids = listed(cat, task, list_name)
    where = f"{cat.source_name}: ImageSets/{task}/{list_name}.txt"
    if ids is None:
        rec.fatal(
            "list",
            where,
            ConsistencyError(
                f"{where} is missing; it lists the {split_dir} images and proves none is "
                "lost. The archive is incomplete: download it again."
            ),
        )
        return {}
    ids_set = set(ids)
    for image in ids:
        if image not in found:
            _missing(rec, where, image)
    kept = {}
    for image, entry in sorted(found.items()):
        if image in ids_set:
            kept[image] = entry
            continue
        rec.problem(
            "extra",
            entry.path,
            ConsistencyError(
                f"{entry.path}: an image that {where} does not list. The archive is not the "
                "ILSVRC2017 release as published: download it again."
            ),
        )
    return kept


def reference_members(found: dict[str, str], ids: set[str], where: str, rec: Recorder, split: str):
    """A split whose lists are not known to be complete (`found`: image id -> member path):
    a listed image that is absent is an error (the download is incomplete); a present image
    no list names is kept, with a notice."""
    for image in sorted(ids - found.keys()):
        _missing(rec, where, image)
    for image in sorted(found.keys() - ids):
        rec.notice("unlisted", found[image], f"kept in {split}, though {where} does not name it")


def _planned(ctx: Context, part: str, item, members: dict[str, Entry]) -> SplitPlan:
    """The plan of the `members` kept (image id -> entry), each made an item by `item`."""
    plan = SplitPlan()
    for image, entry in members.items():
        if pair := item(ctx, image, entry):
            plan.add(part, *pair)
    return plan


# ---------------------------------------------------------------- CLS-LOC


def clsloc_train_item(ctx: Context, image: str, entry: Entry) -> Pair | None:
    lst = classes.clsloc()
    wnid = image.split("/", 1)[0]
    if wnid not in lst.devkit_ids:
        ctx.recorder.problem(
            "label",
            entry.path,
            ConsistencyError(
                f"{entry.path}: train folder {wnid!r} is not one of the 1000 CLS-LOC WNIDs."
            ),
        )
        return None
    annotation = ctx.annotation(roles.CLSLOC_CHALLENGE, "train", image)
    key = clsloc_key("train", entry.path)
    item = Item(
        key=key,
        path=entry.path,
        file_name=_file_name(entry),
        label=lst.index(wnid),
        annotation=annotation,
    )
    return entry, item


def clsloc_train(ctx: Context) -> SplitPlan:
    part, cat = ctx.holder("train")
    members = strict_members(cat, roles.CLSLOC_CHALLENGE, "train", "train_cls", ctx.recorder)
    return _planned(ctx, part, clsloc_train_item, members)


def _validation_label(ctx: Context, image: str, entry: Entry, ann, number: int) -> int | None:
    """The class of validation image `number`: the devkit's ground truth, checked against
    the annotation (and Kaggle's solution) when content must vouch for the release."""
    lst, rec = classes.clsloc(), ctx.recorder
    expected = devkit.clsloc_ground_truth()[number - 1]
    label = lst.index(expected)
    if not ann.objects:
        return label
    found = lst.wnids[classes.clsloc_object_label(ann.objects[0].name, label)]
    if ctx.check_ground_truth and found != expected:
        rec.problem(
            "label",
            entry.path,
            ConsistencyError(
                f"{entry.path}: the annotation says {found}, the devkit's "
                f"{devkit.CLSLOC_GROUND_TRUTH} line {number} says {expected}. The archive is "
                "not the ILSVRC2017 release: download it again."
            ),
        )
        return None
    if ctx.val_solution is not None:
        try:
            ctx.val_solution.check(image, ann, expected, entry.path)
        except ConsistencyError as e:
            rec.problem("label", entry.path, e)
            return None
    return lst.index(found)


def clsloc_validation_item(ctx: Context, image: str, entry: Entry) -> Pair | None:
    rec = ctx.recorder
    match = re.fullmatch(r"ILSVRC2012_val_(\d{8})", image)
    number = int(match.group(1)) if match else 0
    if not 1 <= number <= len(devkit.clsloc_ground_truth()):
        rec.problem(
            "extra",
            entry.path,
            ConsistencyError(f"{entry.path}: not a validation image name of the release."),
        )
        return None
    ann = ctx.annotation(roles.CLSLOC_CHALLENGE, "val", image)
    if ann is None:
        rec.problem(
            "annotation",
            entry.path,
            AnnotationError(
                f"{entry.path}: every validation image has an annotation XML, this one has none."
            ),
        )
        return None
    label = _validation_label(ctx, image, entry, ann, number)
    if label is None:
        return None
    blacklisted = number in devkit.clsloc_blacklist()
    key = clsloc_key("validation", entry.path)
    item = Item(
        key=key,
        path=entry.path,
        file_name=_file_name(entry),
        label=label,
        annotation=ann,
        blacklisted=blacklisted,
    )
    return entry, item


def clsloc_validation(ctx: Context) -> SplitPlan:
    (part, cat), rec = ctx.holder("val"), ctx.recorder
    members = strict_members(cat, roles.CLSLOC_CHALLENGE, "val", "val", rec)
    plan = _planned(ctx, part, clsloc_validation_item, members)
    if ctx.val_solution is not None:
        for image in ctx.val_solution.unplanned(set(members)):
            rec.problem(
                "missing",
                image,
                ConsistencyError(
                    f"{ctx.val_solution.source} names {image}, but the archive holds no such "
                    "validation image. The archive is incomplete: download it again."
                ),
            )
    return plan


def clsloc_test_item(ctx: Context, image: str, entry: Entry) -> Pair | None:
    key = clsloc_key("test", entry.path)
    return entry, Item(key=key, path=entry.path, file_name=_file_name(entry))


def clsloc_test(ctx: Context) -> SplitPlan:
    part, cat = ctx.holder("test")
    members = strict_members(cat, roles.CLSLOC_CHALLENGE, "test", "test", ctx.recorder)
    return _planned(ctx, part, clsloc_test_item, members)


def clsloc(ctx: Context) -> dict[str, SplitPlan]:
    steps = {"train": clsloc_train, "validation": clsloc_validation, "test": clsloc_test}
    return {split: step(ctx).sort() for split, step in steps.items()}


# Each split folder's split, and the item an image there becomes (the plans above make it;
# engine/stream.py reads the folder -> split table as the images stream by).
CLSLOC_ITEMS = {
    "train": ("train", clsloc_train_item),
    "val": ("validation", clsloc_validation_item),
    "test": ("test", clsloc_test_item),
}


# ---------------------------------------------------------------- DET


def _det_item(ctx: Context, split: str, entry: Entry, ann=None, black=frozenset()) -> Item | None:
    """The item of one DET image; None (recorded) when a box names an unknown class."""
    if ann is not None:
        for box in ann.objects:
            try:
                classes.det_object_label(box.name, entry.path)
            except AnnotationError as e:
                ctx.recorder.problem("label", entry.path, e)
                return None
    return Item(
        key=det_key(split, entry.path),
        path=entry.path,
        file_name=_below_split(entry),
        annotation=ann,
        blacklisted_wnids=black,
    )


PER_CLASS_LIST = re.compile(r"train_\d+")


def det_train_item(ctx: Context, image: str, entry: Entry) -> Pair | None:
    annotation = ctx.annotation(roles.DET_CHALLENGE, "train", image)
    item = _det_item(ctx, "train", entry, annotation)
    return (entry, item) if item else None


def det_train(ctx: Context) -> SplitPlan:
    """The reference is the union of the per-class lists `train_N.txt` (the devkit documents
    them) and `train.txt` where it exists (nothing public says it lists every image)."""
    (part, cat), rec = ctx.holder("train"), ctx.recorder
    names = sorted(
        n
        for t, n in cat.imagesets
        if t == roles.DET_CHALLENGE and (n == "train" or PER_CLASS_LIST.fullmatch(n))
    )
    where = f"{cat.source_name}: ImageSets/DET/train*.txt"
    found = cat.images.get((roles.DET_CHALLENGE, "train"), {})
    if not names:
        rec.fatal(
            "list",
            where,
            ConsistencyError(
                f"{cat.source_name}: no DET train list (ImageSets/DET/train_1.txt ... train_200.txt, "
                "train.txt); they prove no train image is lost. The archive is incomplete: "
                "download it again."
            ),
        )
        return SplitPlan()
    ids = {image for name in names for image in listed(cat, roles.DET_CHALLENGE, name)}
    reference_members({i: e.path for i, e in found.items()}, ids, where, rec, "train")
    return _planned(ctx, part, det_train_item, dict(sorted(found.items())))


def _det_val_numbers(cat: Catalog) -> dict[str, int | None]:
    """ImageSets/DET/val.txt: image id -> its number (which the blacklist names)."""
    text = cat.imagesets.get((roles.DET_CHALLENGE, "val"), "")
    return {i: int(v) if v.isdigit() else None for i, v in roles.parse_imageset(text, "val.txt")}


def det_validation_item(ctx: Context, image: str, entry: Entry) -> Pair | None:
    _, cat = ctx.holder("val")
    ann = cat.annotations.get((roles.DET_CHALLENGE, "val"), {}).get(image)
    if ann is None:
        ctx.recorder.problem(
            "annotation",
            entry.path,
            AnnotationError(
                f"{entry.path}: every DET validation image has an annotation XML, this one has none."
            ),
        )
        return None
    numbers = ctx.memo("det_val_numbers", lambda: _det_val_numbers(cat))
    black = devkit.det_blacklist().get(numbers.get(image), frozenset())
    item = _det_item(ctx, "validation", entry, ann, black)
    return (entry, item) if item else None


def det_validation(ctx: Context) -> SplitPlan:
    part, cat = ctx.holder("val")
    members = strict_members(cat, roles.DET_CHALLENGE, "val", "val", ctx.recorder)
    return _planned(ctx, part, det_validation_item, members)


def det_test_item(ctx: Context, image: str, entry: Entry) -> Pair | None:
    item = _det_item(ctx, "test", entry)
    return (entry, item) if item else None


def det_test(ctx: Context) -> SplitPlan:
    """The ILSVRC2017 DET test set: the DET archive's own test images and the 5,500 of
    DET_test_new, each once, whichever test.txt the user has (one archive's, the other's,
    or the one that survived extracting both into one tree). An image listed by one
    archive's list and found in the other's is not missing. An id in both archives is read
    from DET_test_new, the config's latest archive (Context.holding)."""
    rec = ctx.recorder
    found: dict[str, tuple[str, Entry]] = {}
    lists: set[str] = set()
    sources = []
    holding = ctx.holding("test")
    for part, cat in holding:
        for image, entry in cat.images.get((roles.DET_CHALLENGE, "test"), {}).items():
            found.setdefault(image, (part, entry))
        ids = listed(cat, roles.DET_CHALLENGE, "test")
        if ids is not None:
            lists.update(ids)
            sources.append(cat.source_name)
    _, new = holding[0]
    if not any(i.startswith(roles.DET_TEST_NEW_PREFIX) for i in found):
        rec.fatal(
            "missing",
            new.source_name,
            ConsistencyError(
                f"{new.source_name}: no image of the 2017 DET test set ({roles.DET_TEST_NEW_PREFIX}*). "
                "Put ILSVRC2017_DET_test_new.tar.gz (or the tree extracted from it) in the manual folder."
            ),
        )
    where = " and ".join(f"{s}: ImageSets/DET/test.txt" for s in dict.fromkeys(sources))
    if not sources:
        rec.fatal(
            "list",
            new.source_name,
            ConsistencyError(
                f"{new.source_name}: no ImageSets/DET/test.txt in either DET archive; it proves no "
                "test image is lost. The archives are incomplete: download them again."
            ),
        )
        lists = set(found)
    reference_members({i: e.path for i, (_, e) in found.items()}, lists, where, rec, "test")
    plan = SplitPlan()
    for image, (part, entry) in sorted(found.items()):
        if pair := det_test_item(ctx, image, entry):
            plan.add(part, *pair)
    return plan


def det(ctx: Context) -> dict[str, SplitPlan]:
    steps = {"train": det_train, "validation": det_validation, "test": det_test}
    return {split: step(ctx).sort() for split, step in steps.items()}


DET_ITEMS = {
    "train": ("train", det_train_item),
    "val": ("validation", det_validation_item),
    "test": ("test", det_test_item),
}
