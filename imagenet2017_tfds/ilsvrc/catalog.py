"""One pass over a source: where every image is, and every annotation and list, parsed.

A cached catalog is used only while the source's seek index is there too (workers and Beam
read ranges through it). An annotation that does not parse is recorded in the catalog (never raised here), so the
build's Recorder decides what it does, and one scan serves a strict build, a build with
skip_bad_members and the `check` command alike. The catalog of a tarball is cached beside
its gzip index, keyed by the archive's identity (fileio.stat_key), so a second build starts
reading images at once. The cache file is a checked one (fileio.write_cache): a damaged,
truncated or foreign file is reported and the archive scanned again.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from imagenet2017_tfds.errors import AnnotationError
from imagenet2017_tfds.ilsvrc import roles, xml_annotations
from imagenet2017_tfds.internal import codec, fileio
from imagenet2017_tfds.internal.problems import Problem
from imagenet2017_tfds.sources import Entry, Source

FORMAT = 2  # bump when the catalog's content changes

Key = tuple[str, str]  # (challenge, split folder) or (challenge, list name)


@dataclass
class Catalog:
    source_name: str
    images: dict[Key, dict[str, Entry]] = field(default_factory=dict)  # -> image id -> entry
    annotations: dict[Key, dict[str, xml_annotations.Annotation]] = field(default_factory=dict)
    imagesets: dict[Key, str] = field(default_factory=dict)  # (challenge, list name) -> text
    devkit: dict[str, bytes] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)  # annotations that did not parse
    scanned: bool = field(default=False, compare=False)  # by this process (not from a cache)

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "source_name": self.source_name,
            "images": [[*k, codec.encode(list(v.values()))] for k, v in self.images.items()],
            "annotations": [
                [*k, {i: codec.encode(a) for i, a in v.items()}]
                for k, v in self.annotations.items()
            ],
            "imagesets": [[*k, v] for k, v in self.imagesets.items()],
            "devkit": {k: v.decode("latin-1") for k, v in self.devkit.items()},
            "problems": codec.encode(self.problems),
        }

    @classmethod
    def from_json(cls, value: dict) -> Catalog:
        cat = cls(value["source_name"])
        entry, annotation = codec.decoder(Entry), codec.decoder(xml_annotations.Annotation)
        for challenge, split_dir, entries in value["images"]:
            table = cat.images[(challenge, split_dir)] = {}
            for e in map(entry, entries):
                table[roles.image_id(e.path.split("/", 3)[3])] = e
        for challenge, split_dir, table in value["annotations"]:
            cat.annotations[(challenge, split_dir)] = {i: annotation(a) for i, a in table.items()}
        cat.imagesets = {(t, n): text for t, n, text in value["imagesets"]}
        cat.devkit = {k: v.encode("latin-1") for k, v in value["devkit"].items()}
        cat.problems = codec.decode(list[Problem], value["problems"])
        return cat


OnImage = Callable[[Entry, bytes], None]


class Cataloguer:
    """A catalog made one member at a time, in the source's order."""

    def __init__(self, source_name: str):
        self.cat = Catalog(source_name, scanned=True)
        self._images: dict = defaultdict(dict)
        self._parsed: dict = defaultdict(dict)

    def add(self, entry: Entry, data: bytes | None) -> roles.Role | None:
        """Records `entry` (with its bytes when it is metadata); returns its role."""
        role = roles.classify(entry.path)
        if role is None:
            return None
        cat = self.cat
        if role.kind == "image":
            self._images[(role.challenge, role.split_dir)][role.name] = entry
        elif role.kind == "annotation":
            try:
                self._parsed[(role.challenge, role.split_dir)][role.name] = xml_annotations.parse(
                    data, f"{cat.source_name}: {entry.path}"
                )
            except AnnotationError as e:
                cat.problems.append(Problem(entry.path, "annotation", str(e)))
        elif role.kind == "imageset":
            cat.imagesets[(role.challenge, role.name)] = data.decode("utf-8", "replace")
        elif role.kind == "devkit":
            cat.devkit[role.name] = data
        return role

    def so_far(self) -> Catalog:
        """The catalog of the members added until now (shares their tables)."""
        self.cat.images = dict(self._images)
        self.cat.annotations = dict(self._parsed)
        return self.cat


def scan(source: Source, progress=None, on_image: OnImage | None = None) -> Catalog:
    """Every member once, in one walk of `source`. With `on_image`, each image's bytes go to
    it (the `check` command); otherwise images are only located."""
    cataloguer = Cataloguer(source.name)
    want = (lambda path: True) if on_image else roles.is_metadata
    with source.walk() as walk:
        for member in walk:
            data = walk.read(member) if want(member.path) else None
            entry = Entry(member.offset, member.path, member.size)
            if progress:
                progress(entry)
            role = cataloguer.add(entry, data)
            if on_image and role is not None and role.kind == "image":
                on_image(entry, data)
    return cataloguer.so_far()


def _cache_file(source: Source, cache_dir) -> tuple[fileio.Path, dict] | None:
    key = source.cache_key()
    if cache_dir is None or key is None:
        return None
    return fileio.path(cache_dir) / f"catalog-{source.name}.json", {**key, "format": FORMAT}


def cached(source: Source, cache_dir) -> Catalog | None:
    """The cached catalog of `source`, if it is still valid (with its seek index)."""
    where = _cache_file(source, cache_dir)
    if where is None:
        return None
    payload = fileio.read_cache(*where)
    # The index is checked second: an index that fails its check is discarded (with a
    # notice), and the rescan this asks for writes a new one.
    if payload is not None and source.index_ready():
        return Catalog.from_json(json.loads(payload))
    return None


def keep(source: Source, cache_dir, cat: Catalog) -> None:
    """Caches `cat`, the catalog of a whole scan of `source`."""
    if where := _cache_file(source, cache_dir):
        payload = json.dumps(cat.to_json(), sort_keys=True).encode()
        fileio.write_cache(where[0], payload, where[1])


def cached_scan(source: Source, cache_dir, progress=None) -> Catalog:
    cat = cached(source, cache_dir)
    if cat is None:
        cat = scan(source, progress)
        keep(source, cache_dir, cat)
    return cat
