"""The table of configs: what differs between them, carried by each config as TFDS's
`VocConfig` carries its data. A config (Task) holds the archives it reads (Archive records:
file names, tree folders, digest policy, the split folders whose catalog each fills), its
classes, its plan, its example function, its features and its card's description. Plain
Python: TFDS is imported when the features are made. A new config is one new Task; no other
module names a config or an archive.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from imagenet2017_tfds.ilsvrc import classes, example_dicts, features, inputs, kaggle, plans, roles
from imagenet2017_tfds.ilsvrc.inputs import IMAGENET, KAGGLE, Archive

# ---------------------------------------------------------------- the archives

DEVKIT_ARCHIVE = Archive(
    name="devkit",
    files={"ILSVRC2017_devkit.tar.gz": IMAGENET},
    tree_marker="devkit/data",
    tree_folders=("devkit/data",),
    digest=inputs.PACKAGE_COPIES,
)
CLSLOC_ARCHIVE = Archive(
    name="clsloc",
    files={"ILSVRC2017_CLS-LOC.tar.gz": IMAGENET, kaggle.TARBALL: KAGGLE},
    tree_marker="Data/CLS-LOC",
    tree_folders=("Annotations/CLS-LOC", "Data/CLS-LOC", "ImageSets/CLS-LOC"),
    split_dirs=roles.SPLIT_DIRS,
)
DET_FOLDERS = ("Annotations/DET", "Data/DET", "ImageSets/DET")
DET_ARCHIVE = Archive(
    name="det",
    files={"ILSVRC2017_DET.tar.gz": IMAGENET},
    tree_marker="Data/DET/train",
    tree_folders=DET_FOLDERS,
    split_dirs=roles.SPLIT_DIRS,
)
# The 5,500 test images new in 2017, completing the DET archive's own test set.
DET_TEST_ARCHIVE = Archive(
    name="det_test",
    files={"ILSVRC2017_DET_test_new.tar.gz": IMAGENET},
    tree_marker="Data/DET/test",
    tree_folders=DET_FOLDERS,
    split_dirs=("test",),
)


# ---------------------------------------------------------------- the configs


@dataclass(frozen=True)
class Task:
    name: str  # the config name
    description: str  # the config's description on the dataset card
    challenge: str  # the ILSVRC task folder: CLS-LOC or DET
    # The archives it needs, oldest first: where several hold a split folder, the latest is
    # read first (plans.Context.holding). Looked for and named in this order.
    parts: tuple[Archive, ...]
    classes: Callable[[], classes.ClassList]
    plan: Callable[[plans.Context], dict[str, plans.SplitPlan]]
    items: dict[str, tuple[str, plans.ItemStep]]  # split folder -> (split, its image's item)
    example: Callable[[example_dicts.Item, bytes], dict]
    key: Callable[[str, str], str]  # (split, member path) -> the example's key
    features: Callable[[list[str]], object]  # class names -> its tfds FeaturesDict
    supervised_keys: tuple[str, str] | None = None  # TFDS's as_supervised pair, if any
    optional: tuple[Archive, ...] = (DEVKIT_ARCHIVE,)  # read when present, cross-checked
    # split -> (its images, where the release publishes that number): the build report's check
    published: dict[str, tuple[int, str]] = dataclasses.field(default_factory=dict)

    def make_features(self):
        return self.features(list(self.classes().wnids))

    def __reduce__(self):  # pickled by name: Beam ships tasks to its workers
        return task, (self.name,)


# Each config on three lines: what it is and reads; its classes and features; its splits.
CLSLOC = Task(
    name="clsloc",
    challenge=roles.CLSLOC_CHALLENGE,
    parts=(CLSLOC_ARCHIVE,),
    classes=classes.clsloc,
    features=features.clsloc,
    supervised_keys=("image", "label"),
    plan=plans.clsloc,
    items=plans.CLSLOC_ITEMS,
    key=plans.clsloc_key,
    example=example_dicts.clsloc_example,
    published={
        "train": (1_281_167, "devkit readme (ILSVRC2015), table of images per split"),
        "validation": (50_000, "devkit readme; 50 per class in its validation ground truth"),
        "test": (100_000, "devkit readme"),
    },
    description=(
        "ILSVRC2017 classification and localization (CLS-LOC): 1,281,167 train images "
        "(544,546 with bounding boxes), 50,000 validation and 100,000 test images over 1000 "
        "classes. `label` and `objects/label` index the WNIDs in sorted order (as TFDS "
        "imagenet2012 and Keras); `annotated` tells images with an annotation XML; "
        "`blacklisted` marks the 1,762 validation images excluded from localization scoring."
    ),
)
DET = Task(
    name="det",
    challenge=roles.DET_CHALLENGE,
    parts=(DET_ARCHIVE, DET_TEST_ARCHIVE),
    classes=classes.det,
    features=features.det,
    plan=plans.det,
    items=plans.DET_ITEMS,
    key=plans.det_key,
    example=example_dicts.det_example,
    published={
        "train": (456_567, "devkit readme (ILSVRC2015), table of images per split"),
        "validation": (20_121, "devkit readme"),
        "test": (
            65_500,
            "the DET archive's test images and the 5,500 of "
            "ILSVRC2017_DET_test_new (image-net.org, 2017); Liu et al., IJCV 2020",
        ),
    },
    description=(
        "ILSVRC2017 object detection (DET): 456,567 train images (negatives without "
        "objects among them), 20,121 validation images and the 2017 test set: the DET "
        "archive's own test images and the 5,500 new ones of ILSVRC2017_DET_test_new "
        "(65,500 in all; `file_name` starts with `ILSVRC2017_test_` for the new ones), over "
        "200 classes (WNIDs in sorted order). `objects/blacklisted` marks the image/class "
        "pairs excluded from scoring."
    ),
)
TASKS = {t.name: t for t in (CLSLOC, DET)}
DEFAULT = CLSLOC  # TFDS's DEFAULT_CONFIG_NAME


def task(name: str) -> Task:
    return TASKS[name]


def archive_files() -> dict[str, Archive]:
    """Every file name some config reads an archive under -> that archive."""
    every = (a for t in TASKS.values() for a in (*t.parts, *t.optional))
    return {name: a for a in every for name in a.files}


def class_names(config: str) -> list[str]:
    """The human-readable names of `config`'s classes in label (ClassLabel) order:
    `class_names(config)[label]` names `label`, whose ClassLabel name is its WNID."""
    lst = task(config).classes()
    return [lst.names[wnid] for wnid in lst.wnids]


def readable_name(config: str, index: int) -> str:
    """The human-readable name of class `index` (ClassLabel order) of `config`."""
    lst = task(config).classes()
    return lst.names[lst.wnids[index]]
