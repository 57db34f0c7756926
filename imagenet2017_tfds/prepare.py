"""Everything before the first example is written: find the inputs, verify each archive
(overlapping the scan, which reads the same file), check the devkit, plan the splits."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from etils import epath
from tqdm import auto as tqdm

from imagenet2017_tfds import catalog, checksums, devkit, inputs, kaggle, plans
from imagenet2017_tfds.errors import AnnotationError, ChecksumError
from imagenet2017_tfds.problems import Recorder
from imagenet2017_tfds.sources import Source
from imagenet2017_tfds.tasks import Task


@dataclass
class Prepared:
    inputs: inputs.Inputs
    splits: dict[str, plans.SplitPlan]
    recorder: Recorder = field(default_factory=Recorder)
    verified: dict[str, str] = field(default_factory=dict)  # part -> how it was verified

    def source(self, part: str) -> Source:
        return self.inputs.parts[part]


# Releases with no published digest; verified by their content instead (see kaggle.py).
CONTENT_VERIFIED = (kaggle.TARBALL,)


def verifiers(
    found: inputs.Inputs, cache_dir, allow_unverified: bool, recorder: Recorder,
    verified: dict[str, str],
) -> dict[str, checksums.Verifier]:  # fmt: skip
    """The archives that still need a full read; a known-size mismatch or a missing digest
    goes to `recorder` at once. `verified` receives how each archive is vouched for."""
    records, origin = checksums.load()
    todo = {}
    for part, path in found.tarballs.items():
        if part == "devkit":
            verified[part] = "content: the package's copies of its data files"
            continue
        record = records.get(path.name)
        v = checksums.Verifier(path, record, origin, cache_dir)
        by_content = path.name in CONTENT_VERIFIED and (record is None or not record.digests())
        try:
            if v.check_known(allow_unverified or by_content):
                todo[part] = v
        except ChecksumError as e:
            recorder.problem("checksum", path.name, e)
        verified[part] = (
            ", ".join(record.digests()) if record and record.digests() and not by_content
            else "content: validation labels and boxes" if by_content
            else "none (allow_unverified)"
        )  # fmt: skip
    for part in found.parts:
        verified.setdefault(part, "content: validation labels (an extracted tree has no digest)")
    return todo


def _progress_bar(desc: str, total: int | None, unit: str):
    return tqdm.tqdm(
        desc=desc, total=total, unit=unit, unit_scale=True, leave=False, mininterval=1.0
    )


def scan_and_verify(
    found: inputs.Inputs,
    cache_dir,
    allow_unverified: bool,
    recorder: Recorder,
    on_image: catalog.OnImage | None = None,
):
    """The catalog of every part; verification runs beside the scan. With `on_image` (the
    check command) every image's bytes go to it and nothing is cached."""
    verified: dict[str, str] = {}
    todo = verifiers(found, cache_dir, allow_unverified, recorder, verified)
    cats: dict[int, catalog.Catalog] = {}
    with contextlib.ExitStack() as stack:
        jobs = []
        for v in todo.values():
            bar = stack.enter_context(
                _progress_bar(f"Verifying {v.path.name}", v.path.stat().length, "B")
            )
            jobs.append((v, checksums.Background(lambda v=v, bar=bar: v.verify(bar.update))))
        try:
            for source in {id(s): s for s in found.parts.values()}.values():
                with _progress_bar(f"Indexing {source.name}", None, " members") as bar:
                    tick = lambda _e, bar=bar: bar.update()  # noqa: E731
                    if on_image is None:
                        cats[id(source)] = catalog.cached_scan(source, cache_dir, tick)
                    else:
                        cats[id(source)] = catalog.scan(source, tick, on_image)
        finally:
            # A digest mismatch outranks whatever the scan found: report it first.
            for v, job in jobs:
                try:
                    job.join()
                except ChecksumError as e:
                    recorder.problem("checksum", v.path.name, e)
    return {part: cats[id(s)] for part, s in found.parts.items()}, verified


def _val_solution(found: inputs.Inputs) -> kaggle.Solution | None:
    path = found.companions.get(kaggle.VAL_SOLUTION)
    if path is None:
        return None
    return kaggle.Solution.parse(path.read_text(), str(path))


def prepare(
    manual_dir,
    task: Task,
    cache_dir=None,
    allow_unverified: bool = False,
    recorder: Recorder | None = None,
    on_image: catalog.OnImage | None = None,
) -> Prepared:
    recorder = recorder or Recorder()
    index_dir = epath.Path(cache_dir) if cache_dir else None
    found = inputs.locate(manual_dir, task.parts, index_dir, f"imagenet2017/{task.name}")
    cats, verified = scan_and_verify(found, cache_dir, allow_unverified, recorder, on_image)
    for cat in {id(c): c for c in cats.values()}.values():
        for p in cat.problems:  # annotations that did not parse
            recorder.problem(p.kind, p.member, AnnotationError(p.reason))
    if "devkit" in cats:
        devkit.check(cats["devkit"].devkit, found.parts["devkit"].name, recorder)
    no_digest = any(v.startswith(("content", "none")) for p, v in verified.items() if p != "devkit")
    ctx = plans.Context(
        cats,
        recorder,
        check_ground_truth="devkit" in cats or no_digest,
        val_solution=_val_solution(found),
    )
    return Prepared(found, task.plan(ctx), recorder, verified)
