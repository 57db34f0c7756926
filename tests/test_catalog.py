"""The catalog of a source, over a hand-built in-memory source: what one scan finds, what it
records instead of raising, and its cache."""

from __future__ import annotations

import contextlib

from imagenet2017_tfds import testing
from imagenet2017_tfds.ilsvrc import catalog
from imagenet2017_tfds.ilsvrc.example_dicts import Item
from imagenet2017_tfds.ilsvrc.xml_annotations import Annotation, Box
from imagenet2017_tfds.internal import codec
from imagenet2017_tfds.internal.problems import Problem
from imagenet2017_tfds.sources import Entry, Source

XML = testing.clsloc_xml("n01440764", "n01440764_1", (50, 40), [("n01440764", 1, 2, 30, 35)])


class Memory(Source):
    """Members in a given order, offsets as a tarball would give them."""

    def __init__(self, members: dict[str, bytes], key=None):
        self.name, self.members, self.key, self.scans = "memory.tar.gz", members, key, 0

    @contextlib.contextmanager
    def walk(self):
        self.scans += 1
        self.last_walk = MemoryWalk(self.members)
        yield self.last_walk

    def read(self, entries):
        return ((e, self.members[e.path]) for e in entries)

    def cache_key(self):
        return self.key


class MemoryWalk:
    """A walk of Memory: each member an Entry (a base.Member), read only when asked for."""

    def __init__(self, members: dict[str, bytes]):
        self.members, self.read_paths = members, []

    def __iter__(self):
        for offset, (path, data) in enumerate(self.members.items()):
            yield Entry(offset * 512, path, len(data))

    def read(self, member):
        self.read_paths.append(member.path)
        return self.members[member.path]


MEMBERS = {
    "Data/CLS-LOC/train/n01440764/n01440764_1.JPEG": b"jpeg1",
    "Annotations/CLS-LOC/train/n01440764/n01440764_1.xml": XML,
    "Annotations/CLS-LOC/val/ILSVRC2012_val_00000001.xml": b"<annotation><size>",
    "ImageSets/CLS-LOC/train_cls.txt": b"n01440764/n01440764_1 1\n",
    "Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG": b"jpeg2",
    "devkit/data/map_det.txt": b"n02672831 1 accordion\n",
    "somewhere/else.txt": b"ignored",
}


def test_one_scan_finds_images_annotations_lists_and_devkit_files():
    cat = catalog.scan(Memory(MEMBERS))
    assert cat.images[("CLS-LOC", "train")] == {
        "n01440764/n01440764_1": Entry(0, "Data/CLS-LOC/train/n01440764/n01440764_1.JPEG", 5)
    }
    assert list(cat.images[("CLS-LOC", "val")]) == ["ILSVRC2012_val_00000001"]
    assert cat.annotations[("CLS-LOC", "train")]["n01440764/n01440764_1"] == Annotation(
        50.0, 40.0, (Box("n01440764", 1.0, 2.0, 30.0, 35.0),)
    )
    assert cat.imagesets == {("CLS-LOC", "train_cls"): "n01440764/n01440764_1 1\n"}
    assert cat.devkit == {"map_det.txt": b"n02672831 1 accordion\n"}


def test_an_annotation_that_does_not_parse_is_recorded_not_raised():
    cat = catalog.scan(Memory(MEMBERS))
    (problem,) = cat.problems
    assert (problem.member, problem.kind) == (
        "Annotations/CLS-LOC/val/ILSVRC2012_val_00000001.xml",
        "annotation",
    )
    assert "not well-formed XML" in problem.reason
    assert ("CLS-LOC", "val") not in cat.annotations


def test_image_bytes_reach_the_check_when_asked_and_only_then():
    seen, source = [], Memory(MEMBERS)
    catalog.scan(source, on_image=lambda e, data: seen.append((e.path, data)))
    assert seen == [
        ("Data/CLS-LOC/train/n01440764/n01440764_1.JPEG", b"jpeg1"),
        ("Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG", b"jpeg2"),
    ]
    assert source.last_walk.read_paths == list(MEMBERS)  # every member read: the check sees all


def test_a_scan_reads_the_metadata_and_only_locates_the_images():
    source = Memory(MEMBERS)
    cat = catalog.scan(source)
    assert source.last_walk.read_paths == [
        "Annotations/CLS-LOC/train/n01440764/n01440764_1.xml",
        "Annotations/CLS-LOC/val/ILSVRC2012_val_00000001.xml",
        "ImageSets/CLS-LOC/train_cls.txt",
        "devkit/data/map_det.txt",
    ]
    assert cat.images[("CLS-LOC", "val")]["ILSVRC2012_val_00000001"] == Entry(
        4 * 512, "Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG", 5
    )


def test_the_catalog_round_trips_through_its_json():
    cat = catalog.scan(Memory(MEMBERS))
    again = catalog.Catalog.from_json(cat.to_json())
    assert again == cat


def test_a_cached_catalog_is_reused_while_the_key_holds(tmp_path):
    source = Memory(MEMBERS, key={"path": "/x", "size": 1, "mtime": 2})
    first = catalog.cached_scan(source, tmp_path)
    assert catalog.cached_scan(source, tmp_path) == first and source.scans == 1
    source.key = {"path": "/x", "size": 1, "mtime": 3}  # the archive changed
    catalog.cached_scan(source, tmp_path)
    assert source.scans == 2
    assert catalog.cached_scan(Memory(MEMBERS), tmp_path) == first  # no key: never cached


def test_one_codec_serves_every_record():
    item = Item(
        "k",
        "p",
        "f",
        3,
        Annotation(1.0, 2.0, (Box("n", 1, 2, 3, 4, "s"),)),
        True,
        frozenset({"b", "a"}),
    )
    pairs = [(Entry(1, "p", 2), item)]
    encoded = codec.encode(pairs)
    assert encoded[0][1][-1] == ["a", "b"]  # sets sorted: the same input, the same bytes
    assert codec.decode(list[tuple[Entry, Item]], encoded) == pairs
    assert codec.decode(Item, codec.encode(Item("k", "p", "f"))) == Item("k", "p", "f")
    assert codec.decode(list[Problem], [["m", "image", "r"]]) == [Problem("m", "image", "r")]
