"""Annotation XMLs -> plain records. One parser for both dialects (CLS-LOC and DET):
children are found by tag, so DET's xmin, xmax, ymin, ymax order needs nothing special.

The parser is hardened: no DTD, no entity expansion, no network (XXE, billion laughs).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

from lxml import etree

from imagenet2017_tfds.errors import AnnotationError

_PARSER = etree.XMLParser(
    resolve_entities=False,
    no_network=True,
    load_dtd=False,
    dtd_validation=False,
    huge_tree=False,
    remove_comments=True,
    remove_pis=True,
)


@dataclass(frozen=True, slots=True)
class Box:
    name: str  # the <name> as written: a WNID, or sometimes a readable label
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    subcategory: str | None = None


@dataclass(frozen=True, slots=True)
class Annotation:
    width: float
    height: float
    objects: tuple[Box, ...]

    def to_json(self) -> list:
        return [self.width, self.height, [list(astuple(b)) for b in self.objects]]

    @classmethod
    def from_json(cls, value: list) -> Annotation:
        width, height, objects = value
        return cls(width, height, tuple(Box(*o) for o in objects))


def _number(node, tag: str, where: str) -> float:
    text = node.findtext(tag)
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise AnnotationError(
            f"{where}: expected a number in <{tag}>, found {text!r}. The annotation is "
            "damaged: fix or remove it, or build with skip_bad_members."
        ) from None
    if value != value or value in (float("inf"), float("-inf")):
        raise AnnotationError(f"{where}: <{tag}> is {text!r}, not a finite number.")
    return value


def parse(data: bytes, where: str) -> Annotation:
    """`where` names the member in messages."""
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError as e:
        raise AnnotationError(
            f"{where}: not well-formed XML ({e}). Fix or remove the file, or build with "
            "skip_bad_members."
        ) from None
    if root is None or root.tag != "annotation":
        raise AnnotationError(
            f"{where}: expected an <annotation> root element, found {getattr(root, 'tag', None)!r}."
        )
    size = root.find("size")
    if size is None:
        raise AnnotationError(f"{where}: expected a <size> element, found none.")
    width, height = _number(size, "width", where), _number(size, "height", where)
    if width <= 0 or height <= 0:
        raise AnnotationError(
            f"{where}: <size> must be positive to normalise boxes, found {width}x{height}."
        )
    objects = []
    for number, obj in enumerate(root.iterfind("object"), 1):
        here = f"{where} object {number}"
        name = (obj.findtext("name") or "").strip()
        if not name:
            raise AnnotationError(f"{here}: expected a <name>, found none.")
        box = obj.find("bndbox")
        if box is None:
            raise AnnotationError(f"{here}: expected a <bndbox>, found none.")
        sub = (obj.findtext("subcategory") or "").strip() or None
        coords = [_number(box, t, here) for t in ("xmin", "ymin", "xmax", "ymax")]
        objects.append(Box(name, *coords, subcategory=sub))
    return Annotation(width, height, tuple(objects))
