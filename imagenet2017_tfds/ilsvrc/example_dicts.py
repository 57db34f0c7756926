"""Annotation + image -> the feature dict of one example. Pure functions, no TensorFlow.

Boxes: divided by the XML's <size> (the size the annotator saw), min/max swapped when
inverted, clipped to [0, 1]; a box with no area left is dropped. Output order (ymin, xmin,
ymax, xmax) is TFDS's BBoxFeature order.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagenet2017_tfds.ilsvrc import classes
from imagenet2017_tfds.ilsvrc.xml_annotations import Annotation, Box

BBox = tuple[float, float, float, float]


def _clip(v: float) -> float:
    return min(max(v, 0.0), 1.0)


def normalise(box: Box, width: float, height: float) -> BBox | None:
    xmin, xmax = sorted((box.xmin / width, box.xmax / width))
    ymin, ymax = sorted((box.ymin / height, box.ymax / height))
    xmin, xmax, ymin, ymax = _clip(xmin), _clip(xmax), _clip(ymin), _clip(ymax)
    if xmax <= xmin or ymax <= ymin:
        return None
    return (ymin, xmin, ymax, xmax)


@dataclass(frozen=True, slots=True)
class Item:
    """One example to write: where its bytes are and everything known without them."""

    key: str
    path: str  # member path below ILSVRC/ (names the member in messages)
    file_name: str
    label: int = -1  # clsloc: ClassLabel index, -1 when unknown (test)
    annotation: Annotation | None = None
    blacklisted: bool = False  # clsloc validation: excluded from localization scoring
    blacklisted_wnids: frozenset[str] = frozenset()  # det validation: per (image, class)


def kept_boxes(item: Item) -> list[tuple[Box, BBox]]:
    """Each annotated box with its normalised bbox, those with no area left dropped."""
    ann = item.annotation
    if ann is None:
        return []
    pairs = ((box, normalise(box, ann.width, ann.height)) for box in ann.objects)
    return [(box, bbox) for box, bbox in pairs if bbox is not None]


def clsloc_example(item: Item, image: bytes) -> dict:
    objects = [
        {"bbox": bb, "label": classes.clsloc_object_label(box.name, item.label)}
        for box, bb in kept_boxes(item)
    ]
    return {
        "image": image,
        "label": item.label,
        "file_name": item.file_name,
        "annotated": item.annotation is not None,
        "blacklisted": item.blacklisted,
        "objects": _columns(objects, ("bbox", "label")),
    }


def det_example(item: Item, image: bytes) -> dict:
    objects = [
        {
            "bbox": bb,
            "label": classes.det_object_label(box.name, item.path),
            "subcategory": box.subcategory or "",
            "blacklisted": box.name in item.blacklisted_wnids,
        }
        for box, bb in kept_boxes(item)
    ]
    return {
        "image": image,
        "file_name": item.file_name,
        "annotated": item.annotation is not None,
        "objects": _columns(objects, ("bbox", "label", "subcategory", "blacklisted")),
    }


def _columns(objects: list[dict], names: tuple[str, ...]) -> dict:
    """Sequence features take a dict of lists; an empty one must still name every column."""
    return {name: [o[name] for o in objects] for name in names}
