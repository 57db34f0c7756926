"""A split's items cut into ranges of members that lie together in their source: the unit
of work of the local worker processes and of every Beam runner alike.
"""

from __future__ import annotations

import math

# About 16 MB of members a range: enough ranges for every worker, each small enough that
# its examples, held once in a worker's output, stay modest.
RANGE_BYTES = 16 << 20


def cut(items: list, min_ranges: int = 1) -> list[list]:
    """`items` ((Entry, Item) pairs in read order) as consecutive ranges of about
    RANGE_BYTES each, at least `min_ranges` of them (as long as there are items)."""
    if not items:
        return []
    total = sum(e.size for e, _ in items)
    n = max(1, min(len(items), max(min_ranges, math.ceil(total / RANGE_BYTES))))
    bounds = [round(i * len(items) / n) for i in range(n + 1)]
    return [items[bounds[k] : bounds[k + 1]] for k in range(n)]
