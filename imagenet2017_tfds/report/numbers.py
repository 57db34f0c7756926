"""The numbers of one split of a built dataset, fed one example at a time.

Plain Python, no TensorFlow: whoever holds the examples feeds them (the standalone report
reads the shards; a build can feed what it writes), one `SplitNumbers` per shard or worker,
merged afterwards. Every field is a count or a keyed choice, so a merge in any order gives the
same numbers, and the sample is the examples whose file names hash lowest, so two builds of the
same input give the same page.
"""

from __future__ import annotations

import array
import base64
import hashlib
import math
import re
from collections import Counter
from dataclasses import dataclass, field

from imagenet2017_tfds.ilsvrc import images

# Fixed bin edges, so that numbers from several workers add up bin by bin.
AREA_BINS = 20  # a box's area over its image's, in [0, 1]
ASPECT_RANGE = (-4.0, 4.0)  # log2(box width / box height, in pixels)
ASPECT_BINS = 16
SAMPLE = 12  # examples per split on the page
_VAL_INDEX = re.compile(r"ILSVRC2012_val_(\d{8})\.")


@dataclass
class Sampled:
    """One example shown on the page: its image bytes and what is drawn over them."""

    key: str  # sha256 of the file name: the sample's order
    file_name: str
    label: int  # -1: none (test, or a config without an image label)
    boxes: list[tuple[float, float, float, float]]  # (ymin, xmin, ymax, xmax)
    box_labels: list[int]
    width: int
    height: int
    image: bytes = field(repr=False)  # b"": not kept (read from `where` when shown)
    where: tuple[str, int] | None = None  # its shard file and its place there, if known


# SplitNumbers' fields that add up in a merge: counts, and lists of counts bin by bin.
_COUNTS = (
    "examples",
    "boxes",
    "without_boxes",
    "annotated",
    "blacklisted",
    "unlabelled",
    "unsized",
    "devkit_checked",
)
_BINS = ("per_class", "area", "aspect")


@dataclass
class SplitNumbers:
    split: str
    num_classes: int
    examples: int = 0
    boxes: int = 0
    without_boxes: int = 0  # DET: the negatives
    annotated: int = 0
    blacklisted: int = 0  # images (a config with an image label), else objects
    unlabelled: int = 0  # examples of a config with an image label whose label is -1
    image_labels: bool = False  # per_class counts images (an image label), else objects
    per_class: list[int] = field(default_factory=list)  # images per label, else objects
    boxes_per_image: Counter = field(default_factory=Counter)
    area: list[int] = field(default_factory=list)
    aspect: list[int] = field(default_factory=list)
    sizes: Counter = field(default_factory=Counter)  # (width, height) from the JPEG header
    unsized: int = 0  # images whose header gave no size (never in a correct build)
    # Validation of a config with an image label, against the devkit's ground truth:
    devkit_checked: int = 0
    devkit_disagrees: list[tuple[str, int, int]] = field(default_factory=list)
    sample: list[Sampled] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.per_class = self.per_class or [0] * self.num_classes
        self.area = self.area or [0] * AREA_BINS
        self.aspect = self.aspect or [0] * ASPECT_BINS

    def add(
        self,
        example: dict,
        ground_truth: tuple[int, ...] | None = None,
        where: tuple[str, int] | None = None,
    ) -> None:
        """One example as TFDS decodes it (or as the build's feature dict holds it), its
        image as encoded bytes. `ground_truth`: the devkit's label of validation image i at
        position i-1, for a split it applies to. `where`: its shard file and its place there
        (a build: a sampled image can be read back from there instead of kept)."""
        objects = example["objects"]
        # As stored: a box is float32 in the shards, so the build's float64 feature dict and
        # a parsed record give the same numbers.
        bboxes = [tuple(array.array("f", box)) for box in objects.get("bbox", ())]
        box_labels = [int(v) for v in objects.get("label", ())]
        name = _text(example["file_name"])
        sniffed = images.sniff(example["image"])
        width, height = sniffed.width, sniffed.height
        n = len(bboxes)
        self.examples += 1
        self.boxes += n
        self.without_boxes += n == 0
        self.annotated += bool(example["annotated"])
        self.boxes_per_image[n] += 1
        if width and height:
            self.sizes[(width, height)] += 1
        else:
            self.unsized += 1
        # What a config holds, told by its features: an image label (CLS-LOC), or only box
        # labels (DET); a blacklist of images, or of objects.
        label = -1
        if "label" in example:
            self.image_labels = True
            label = int(example["label"])
            if label >= 0:
                self.per_class[label] += 1
            else:
                self.unlabelled += 1
            self.blacklisted += bool(example["blacklisted"])
            match = _VAL_INDEX.match(name)
            if ground_truth is not None and label >= 0 and match:
                self.devkit_checked += 1
                expected = ground_truth[int(match.group(1)) - 1]
                if expected != label:
                    self.devkit_disagrees.append((name, label, expected))
        else:
            for v in box_labels:
                self.per_class[v] += 1
            self.blacklisted += sum(bool(v) for v in objects.get("blacklisted", ()))
        for ymin, xmin, ymax, xmax in bboxes:
            area = (ymax - ymin) * (xmax - xmin)
            self.area[min(int(area * AREA_BINS), AREA_BINS - 1)] += 1
            if width and height and ymax > ymin:
                self.aspect[_aspect_bin((xmax - xmin) * width / ((ymax - ymin) * height))] += 1
        key = hashlib.sha256(name.encode()).hexdigest()
        if len(self.sample) < SAMPLE or key < self.sample[-1].key:
            shown = Sampled(
                key=key,
                file_name=name,
                label=label,
                boxes=bboxes,
                box_labels=box_labels,
                width=width,
                height=height,
                image=bytes(example["image"]),
                where=where,
            )
            self.sample = sorted([*self.sample, shown], key=lambda s: s.key)[:SAMPLE]

    def merge(self, other: SplitNumbers) -> SplitNumbers:
        """These numbers and `other`'s (of the same split, other examples) together."""
        if (other.split, other.num_classes) != (self.split, self.num_classes):
            raise ValueError(f"merging {other.split} into {self.split}")
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in _BINS:
            setattr(
                self,
                name,
                [a + b for a, b in zip(getattr(self, name), getattr(other, name), strict=True)],
            )
        self.image_labels |= other.image_labels
        self.boxes_per_image += other.boxes_per_image
        self.sizes += other.sizes
        self.devkit_disagrees = sorted(self.devkit_disagrees + other.devkit_disagrees)
        self.sample = sorted(self.sample + other.sample, key=lambda s: s.key)[:SAMPLE]
        return self

    def to_json(self) -> dict:
        """Every number, in a fixed order (the sample by file name only)."""
        return {
            "examples": self.examples,
            "boxes": self.boxes,
            "without_boxes": self.without_boxes,
            "annotated": self.annotated,
            "blacklisted": self.blacklisted,
            "unlabelled": self.unlabelled,
            "per_class": self.per_class,
            "per_class_counts": "images" if self.image_labels else "objects",
            "boxes_per_image": {str(k): v for k, v in sorted(self.boxes_per_image.items())},
            "area_histogram": {"edges": area_edges(), "counts": self.area},
            "aspect_histogram": {"log2_edges": aspect_edges(), "counts": self.aspect},
            "sizes": [[w, h, n] for (w, h), n in sorted(self.sizes.items())],
            "unsized": self.unsized,
            "sample": [s.file_name for s in self.sample],
        }

    def to_state(self, images: bool = True) -> dict:
        """Everything, for `from_state` (a file, a record of the work folder): the sample's
        images too (base64) with `images`, else only where they are."""
        names = ("split", "num_classes", "image_labels", *_COUNTS, *_BINS)
        state = {name: getattr(self, name) for name in names}
        state["boxes_per_image"] = sorted(self.boxes_per_image.items())
        state["sizes"] = [[w, h, n] for (w, h), n in sorted(self.sizes.items())]
        state["devkit_disagrees"] = [list(d) for d in self.devkit_disagrees]
        state["sample"] = [
            [
                s.key,
                s.file_name,
                s.label,
                [list(b) for b in s.boxes],
                s.box_labels,
                s.width,
                s.height,
                base64.b64encode(s.image).decode() if images else "",
                list(s.where) if s.where else None,
            ]
            for s in self.sample
        ]
        return state

    @classmethod
    def from_state(cls, state: dict) -> SplitNumbers:
        state = dict(state)
        boxes_per_image = Counter(dict((int(k), v) for k, v in state.pop("boxes_per_image")))
        sizes = Counter({(w, h): n for w, h, n in state.pop("sizes")})
        disagrees = [tuple(d) for d in state.pop("devkit_disagrees")]
        sample = [
            Sampled(
                key=key,
                file_name=name,
                label=label,
                boxes=[tuple(b) for b in boxes],
                box_labels=box_labels,
                width=width,
                height=height,
                image=base64.b64decode(image),
                where=tuple(where) if where else None,
            )
            for key, name, label, boxes, box_labels, width, height, image, where in state.pop(
                "sample"
            )
        ]
        return cls(
            **state,
            boxes_per_image=boxes_per_image,
            sizes=sizes,
            devkit_disagrees=disagrees,
            sample=sample,
        )


def area_edges() -> list[float]:
    return [i / AREA_BINS for i in range(AREA_BINS + 1)]


def aspect_edges() -> list[float]:
    low, high = ASPECT_RANGE
    return [low + (high - low) * i / ASPECT_BINS for i in range(ASPECT_BINS + 1)]


def _aspect_bin(ratio: float) -> int:
    low, high = ASPECT_RANGE
    position = (math.log2(ratio) - low) / (high - low) * ASPECT_BINS
    return min(max(int(math.floor(position)), 0), ASPECT_BINS - 1)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
