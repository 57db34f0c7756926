"""What differs between the two configs, carried by each config as TFDS's `VocConfig` carries
its data: the archives it needs, its classes, its plan and its example function. Plain
Python: the builder adds the TFDS features. A new config is a new Task, not edits elsewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from imagenet2017_tfds import classes, example_dicts, features, layout, plans


@dataclass(frozen=True)
class Task:
    name: str  # the config name
    challenge: str  # the ILSVRC task folder: CLS-LOC or DET
    parts: tuple[str, ...]  # the archives it needs (inputs.ARCHIVES keys)
    classes: Callable[[], classes.ClassList]
    plan: Callable[[plans.Context], dict[str, plans.SplitPlan]]
    items: dict[str, tuple[str, plans.ItemStep]]  # split folder -> (split, its image's item)
    example: Callable[[example_dicts.Item, bytes], dict]
    key: Callable[[str, str], str]  # (split, member path) -> the example's key
    features: Callable[[list[str]], object]  # class names -> its tfds FeaturesDict

    def make_features(self):
        return self.features(list(self.classes().wnids))

    def __reduce__(self):  # pickled by name: Beam ships tasks to its workers
        return task, (self.name,)


CLSLOC = Task("clsloc", layout.CLSLOC_CHALLENGE, ("clsloc",), classes.clsloc, plans.clsloc,
              plans.CLSLOC_ITEMS, example_dicts.clsloc_example, plans.clsloc_key,
              features.clsloc)  # fmt: skip
DET = Task("det", layout.DET_CHALLENGE, ("det", "det_test"), classes.det, plans.det, plans.DET_ITEMS,
           example_dicts.det_example, plans.det_key, features.det)  # fmt: skip
TASKS = {t.name: t for t in (CLSLOC, DET)}


def task(name: str) -> Task:
    return TASKS[name]
