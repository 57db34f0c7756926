"""Everything before the first example is written: find the inputs, verify each archive
(overlapping the scan, which reads the same file), check the devkit, plan the splits."""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

from etils import epath
from tqdm import auto as tqdm

from imagenet2017_tfds import catalog, checksums, devkit, inputs, plans
from imagenet2017_tfds.plans import SplitPlan
from imagenet2017_tfds.sources import Source


@dataclass
class Prepared:
    inputs: inputs.Inputs
    splits: dict[str, SplitPlan]
    unparsable: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """Members left out under skip_bad_members before generation, with the reason."""
        seen = dict(self.unparsable)
        for plan in self.splits.values():
            for member, reason in plan.skipped:
                seen[member] = reason
        return sorted(seen.items())

    def source(self, split: str) -> Source:
        return self.inputs.parts[self.splits[split].source_part]


def verifiers(
    found: inputs.Inputs, cache_dir, allow_unverified: bool
) -> dict[str, checksums.Verifier]:
    """The archives that still need a full read; raises at once on a known-size mismatch."""
    records, origin = checksums.load()
    todo = {}
    for part, path in found.tarballs.items():
        if part == "devkit":
            continue  # no published digest: checked by content (devkit.check)
        v = checksums.Verifier(path, records.get(path.name), origin, cache_dir)
        if v.check_known(allow_unverified):
            todo[part] = v
    return todo


def _progress_bar(desc: str, total: int | None, unit: str):
    return tqdm.tqdm(
        desc=desc, total=total, unit=unit, unit_scale=True, leave=False, mininterval=1.0
    )


def scan_and_verify(
    found: inputs.Inputs, cache_dir, allow_unverified: bool, skip_bad_members: bool
):
    todo = verifiers(found, cache_dir, allow_unverified)
    cats: dict[int, catalog.Catalog] = {}
    with contextlib.ExitStack() as stack:
        jobs = []
        for v in todo.values():
            bar = stack.enter_context(
                _progress_bar(f"Verifying {v.path.name}", v.path.stat().length, "B")
            )
            jobs.append(checksums.Background(lambda v=v, bar=bar: v.verify(bar.update)))
        try:
            for source in {id(s): s for s in found.parts.values()}.values():
                with _progress_bar(f"Indexing {source.label}", None, " members") as bar:
                    cats[id(source)] = catalog.cached_scan(
                        source,
                        cache_dir,
                        skip_bad_members,
                        progress=lambda _e, bar=bar: bar.update(),
                    )
        finally:
            # A digest mismatch outranks whatever the scan found: report it first.
            for job in jobs:
                job.join()
    return {part: cats[id(s)] for part, s in found.parts.items()}


def prepare(
    manual_dir, config: str, cache_dir=None, allow_unverified=False, skip_bad_members=False
) -> Prepared:
    index_dir = epath.Path(cache_dir) if cache_dir else None
    found = inputs.locate(manual_dir, config, index_dir)
    cats = scan_and_verify(found, cache_dir, allow_unverified, skip_bad_members)
    if "devkit" in cats:
        devkit.check(cats["devkit"].devkit, found.parts["devkit"].label)
    if config == "clsloc":
        splits = plans.clsloc(cats["clsloc"], skip_bad_members, devkit_present="devkit" in cats)
    else:
        same = found.parts["det"] is found.parts["det_test"]
        splits = plans.det(cats["det"], cats["det_test"], same, skip_bad_members)
    unparsable = [s for cat in {id(c): c for c in cats.values()}.values() for s in cat.skipped]
    return Prepared(found, splits, unparsable)
