"""ranges.cut: a split's items as consecutive ranges of about RANGE_BYTES, the unit of work of
the local workers and of Beam."""

from __future__ import annotations

import pytest

from imagenet2017_tfds.engine import ranges
from imagenet2017_tfds.ilsvrc.example_dicts import Item
from imagenet2017_tfds.sources import Entry

MB = 1 << 20
RANGE = ranges.RANGE_BYTES


def items(sizes: list[int]) -> list[tuple[Entry, Item]]:
    out, offset = [], 512
    for k, size in enumerate(sizes):
        path = f"Data/CLS-LOC/train/n01440764/n01440764_{k}.JPEG"
        out.append((Entry(offset, path, size), Item(f"key{k}", path, path.rsplit("/", 1)[1])))
        offset += 512 + size
    return out


def test_nothing_to_cut_gives_no_range():
    assert ranges.cut([]) == []
    assert ranges.cut([], min_ranges=4) == []


@pytest.mark.parametrize(
    ("sizes", "min_ranges", "count"),
    [
        ([100_000] * 10, 1, 1),  # 1 MB in all: one range
        ([100_000] * 10, 3, 3),  # at least as many as asked
        ([RANGE // 5] * 16, 1, 4),  # 3.2 ranges' bytes: 4
        ([3 * RANGE, MB], 1, 2),  # never more ranges than items
        ([MB] * 3, 8, 3),
    ],
)
def test_ranges_cover_every_item_once_in_order(sizes, min_ranges, count):
    given = items(sizes)
    cut = ranges.cut(given, min_ranges)
    assert len(cut) == count
    assert [pair for r in cut for pair in r] == given  # consecutive, in read order
    assert all(cut)  # no empty range
    lengths = [len(r) for r in cut]
    assert max(lengths) - min(lengths) <= 1  # as even as the count allows


def test_a_range_of_small_members_stays_near_range_bytes():
    given = items([100_000] * 1000)  # 100 MB of 100 kB members
    cut = ranges.cut(given)
    total = sum(e.size for e, _ in given)
    assert len(cut) == -(-total // ranges.RANGE_BYTES)
    for r in cut:
        assert sum(e.size for e, _ in r) <= ranges.RANGE_BYTES
