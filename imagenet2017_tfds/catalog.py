"""One pass over a source: where every image is, and every annotation and list, parsed.

The catalog of a tarball is cached beside its gzip index, keyed by the archive's path, size
and modification time, so a second build starts reading images at once.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field

from etils import epath

from imagenet2017_tfds import annotations, fileio, layout
from imagenet2017_tfds.errors import AnnotationError
from imagenet2017_tfds.sources import Entry, Source

FORMAT = 1  # bump when the catalog's content changes


@dataclass
class Catalog:
    label: str
    # (task, split_dir) -> image id -> entry
    images: dict[tuple[str, str], dict[str, Entry]] = field(default_factory=dict)
    # (task, split_dir) -> image id -> annotation
    annotations: dict[tuple[str, str], dict[str, annotations.Annotation]] = field(
        default_factory=dict
    )
    # (task, list name) -> text
    imagesets: dict[tuple[str, str], str] = field(default_factory=dict)
    devkit: dict[str, bytes] = field(default_factory=dict)
    # members left out under skip_bad_members: (member path, reason)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "label": self.label,
            "images": [
                [*k, [[e.offset, e.path, e.size] for e in v.values()]]
                for k, v in self.images.items()
            ],
            "annotations": [
                [*k, {i: a.to_json() for i, a in v.items()}] for k, v in self.annotations.items()
            ],
            "imagesets": [[*k, v] for k, v in self.imagesets.items()],
            "devkit": {k: v.decode("latin-1") for k, v in self.devkit.items()},
            "skipped": self.skipped,
        }

    @classmethod
    def from_json(cls, value: dict) -> Catalog:
        cat = cls(value["label"])
        for task, split_dir, entries in value["images"]:
            cat.images[(task, split_dir)] = {
                layout.image_id(p.split("/", 3)[3]): Entry(o, p, s) for o, p, s in entries
            }
        for task, split_dir, table in value["annotations"]:
            cat.annotations[(task, split_dir)] = {
                i: annotations.Annotation.from_json(a) for i, a in table.items()
            }
        cat.imagesets = {(t, n): text for t, n, text in value["imagesets"]}
        cat.devkit = {k: v.encode("latin-1") for k, v in value["devkit"].items()}
        cat.skipped = [tuple(s) for s in value["skipped"]]
        return cat


def scan(source: Source, skip_bad_members: bool = False, progress=None) -> Catalog:
    cat = Catalog(source.label)
    images: dict = defaultdict(dict)
    notes: dict = defaultdict(dict)
    for entry, data in source.scan(layout.is_metadata):
        if progress:
            progress(entry)
        role = layout.classify(entry.path)
        if role is None:
            continue
        where = f"{source.label}: {entry.path}"
        if role.kind == "image":
            images[(role.task, role.split_dir)][role.name] = entry
        elif role.kind == "annotation":
            try:
                notes[(role.task, role.split_dir)][role.name] = annotations.parse(data, where)
            except AnnotationError as e:
                if not skip_bad_members:
                    raise
                logging.warning("Skipping %s", e)
                cat.skipped.append((entry.path, str(e)))
        elif role.kind == "imageset":
            cat.imagesets[(role.task, role.name)] = data.decode("utf-8", "replace")
        elif role.kind == "devkit":
            cat.devkit[role.name] = data
    cat.images = dict(images)
    cat.annotations = dict(notes)
    return cat


def cached_scan(
    source: Source, cache_dir, skip_bad_members: bool = False, progress=None
) -> Catalog:
    key = source.cache_key()
    if cache_dir is None or key is None:
        return scan(source, skip_bad_members, progress)
    path = epath.Path(cache_dir) / f"catalog-{source.label}.json"
    key = {**key, "format": FORMAT, "skip_bad_members": skip_bad_members}
    cached = fileio.read_json(path)
    if cached and cached.get("key") == key:
        return Catalog.from_json(cached["catalog"])
    cat = scan(source, skip_bad_members, progress)
    fileio.write_json(path, {"key": key, "catalog": cat.to_json()})
    return cat
