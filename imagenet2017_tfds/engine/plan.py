"""A split's shard layout, from the plan alone: every executor (the local pool, the build's
own process, every Beam runner) lays out the same shards from the same hashed keys, so all
write the same bytes."""

from __future__ import annotations

from imagenet2017_tfds.engine import shards


def split_layout(hasher, keys: list[str], sizes: list[int],
                 shard_config) -> tuple[list[int], shards.Layout | None]:  # fmt: skip
    """The hashed key of each of a split's planned examples (`keys`, their images `sizes`
    bytes), and the split's layout (None: nothing planned, no shard)."""
    hkeys = [hasher.hash_key(key) for key in keys]
    if not hkeys:
        return [], None
    return hkeys, shards.plan_layout(hkeys, shards.planned_bytes(sizes), shard_config)
