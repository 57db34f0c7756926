"""A build's plan, one value computed once: per split, the shard layout (how many shards, the
largest hashed key) and each shard's items in hashed-key order. Every executor runs it: the
build's own process and the local pool (engine/local.py) write one shard a job, and every
Beam runner (beam.py) cuts its ranges from the same items and writes the same shards, so all
write the same bytes. A local build keeps it in its work folder with the streams' records
(work.WorkFolder.keep_plan): a resumed build reads it instead of hashing and laying out again.

The plan names items by their place in the split's planned items (plans.SplitPlan.items:
part by part, each in the order its bytes lie in), which the same inputs always give.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagenet2017_tfds.engine import shards, stream


@dataclass(frozen=True)
class ShardPlan:
    split: str
    shard: int  # its number in the layout (TFDS numbers the shards that get examples)
    items: tuple[int, ...]  # places in the split's planned items, in hashed-key order
    hkeys: tuple[int, ...]  # their hashed keys


@dataclass(frozen=True)
class SplitShards:
    split: str
    num_items: int
    layout: shards.Layout | None  # None: nothing planned, no shard
    shards: tuple[ShardPlan, ...]  # in shard order, those that get an item

    def hkeys_in_item_order(self) -> list[int]:
        """The hashed key of each of the split's planned items, in their order."""
        out = [0] * self.num_items
        for shard in self.shards:
            for k, hkey in zip(shard.items, shard.hkeys, strict=True):
                out[k] = hkey
        return out


@dataclass(frozen=True)
class Plan:
    splits: tuple[SplitShards, ...]  # smallest split first: a damaged validation or test image
    # stops a build before train is written

    def split(self, name: str) -> SplitShards:
        return next(s for s in self.splits if s.split == name)

    def fits(self, prepared) -> bool:
        """Whether it is the plan of these planned splits (a kept plan read back)."""
        return sorted((s.split, s.num_items) for s in self.splits) == sorted(
            (split, len(p)) for split, p in prepared.splits.items()
        )


def split_layout(
    hasher, keys: list[str], sizes: list[int], shard_config
) -> tuple[list[int], shards.Layout | None]:
    """The hashed key of each of a split's planned examples (`keys`, their images `sizes`
    bytes), and the split's layout (None: nothing planned, no shard)."""
    hkeys = [hasher.hash_key(key) for key in keys]
    if not hkeys:
        return [], None
    return hkeys, shards.plan_layout(hkeys, shards.planned_bytes(sizes), shard_config)


def make(prepared, task, shard_config) -> Plan:
    """The plan of `prepared`'s splits for `task`, laid out by TFDS's ShardConfig."""
    hasher = stream.hashers(task)
    out = []
    for split in sorted(prepared.splits, key=lambda s: (len(prepared.splits[s]), s)):
        items = prepared.splits[split].items
        hkeys, layout = split_layout(
            hasher[split], [it.key for _, it in items], [e.size for e, _ in items], shard_config
        )
        per_shard: dict[int, list[tuple[int, int]]] = {}
        for hkey, k in sorted(zip(hkeys, range(len(items)), strict=True)):
            per_shard.setdefault(layout.shard_of(hkey), []).append((k, hkey))
        out.append(
            SplitShards(
                split=split,
                num_items=len(items),
                layout=layout,
                shards=tuple(
                    ShardPlan(
                        split=split,
                        shard=shard,
                        items=tuple(k for k, _ in chosen),
                        hkeys=tuple(h for _, h in chosen),
                    )
                    for shard, chosen in sorted(per_shard.items())
                ),
            )
        )
    return Plan(tuple(out))
