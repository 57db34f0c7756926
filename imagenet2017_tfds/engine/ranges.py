"""A split's items cut into ranges of members that lie together in their source: the unit
of work of the local worker processes and of every Beam runner alike.
"""

from __future__ import annotations

import math

# About 512 MB of members a range (of a Beam build; the local pool cuts its own jobs). A range
# read from an archive starts at the gzip index's checkpoint before its first member and ends
# in the chunk holding its last one (rapidgzip's, about 4 MB apart): about a chunk read by two
# ranges at every cut, plus a store's block at each end (store.RANGE_BLOCK): about 8 MB a
# range whatever its size, so large ranges keep the workers' fetches within a few percent of
# the archive (1.032 times it beyond the verifying pass, 1.6 GB corpus:
# bench/results-stores-2026-12-06.json). Examples leave a worker through files (beam.py), so
# a range is not held in memory; 155 GB still gives about 300 ranges to spread over workers.
RANGE_BYTES = 512 << 20


def cut(items: list, min_ranges: int = 1) -> list[list]:
    """`items` ((Entry, Item) pairs in read order) as consecutive ranges of about
    RANGE_BYTES each, at least `min_ranges` of them (as long as there are items)."""
    if not items:
        return []
    total = sum(e.size for e, _ in items)
    n = max(1, min(len(items), max(min_ranges, math.ceil(total / RANGE_BYTES))))
    bounds = [round(i * len(items) / n) for i in range(n + 1)]
    return [items[bounds[k] : bounds[k + 1]] for k in range(n)]
