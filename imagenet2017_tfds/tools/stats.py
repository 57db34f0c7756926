"""`imagenet2017-tfds stats`: what a built dataset holds, per split, without decoding images:
a table of the numbers the build report computes (report.numbers)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass


@dataclass
class SplitStats:
    split: str
    examples: int = 0
    boxes: int = 0
    without_boxes: int = 0
    annotated: int = 0
    blacklisted: int = 0  # images (a config with an image label), else objects
    classes: Counter | None = None  # images per image label, else objects per box label

    def row(self) -> list[str]:
        counts = sorted(self.classes.values()) if self.classes else [0]
        per_image = self.boxes / self.examples if self.examples else 0.0
        return [
            self.split,
            str(self.examples),
            f"{per_image:.2f}",
            str(self.without_boxes),
            str(self.annotated),
            str(self.blacklisted),
            str(len(self.classes or ())),
            f"{counts[0]}/{counts[len(counts) // 2]}/{counts[-1]}",
        ]


HEADER = [
    "split",
    "examples",
    "boxes/image",
    "no boxes",
    "annotated",
    "blacklisted",
    "classes",
    "min/median/max per class",
]


def collect(data_dir: str, config: str) -> list[SplitStats]:
    """Each split's row, from the numbers the build report reads (report.shards)."""
    from imagenet2017_tfds.report import shards

    return [
        SplitStats(
            split=split,
            examples=n.examples,
            boxes=n.boxes,
            without_boxes=n.without_boxes,
            annotated=n.annotated,
            blacklisted=n.blacklisted,
            classes=Counter({i: c for i, c in enumerate(n.per_class) if c}),
        )
        for split, n in shards.read(data_dir, config).items()
    ]


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)
