"""Everything before the first example is written: find the inputs, verify each archive
(overlapping the scan, which reads the same file), check the devkit, plan the splits."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from tqdm import auto as tqdm

from imagenet2017_tfds.errors import AnnotationError, ChecksumError
from imagenet2017_tfds.ilsvrc import catalog, checksums, devkit, inputs, kaggle, plans
from imagenet2017_tfds.ilsvrc.tasks import Task
from imagenet2017_tfds.internal import fileio, store
from imagenet2017_tfds.internal.problems import Recorder
from imagenet2017_tfds.sources import Source


@dataclass
class Prepared:
    inputs: inputs.Inputs
    splits: dict[str, plans.SplitPlan]
    recorder: Recorder = field(default_factory=Recorder)
    verified: dict[str, str] = field(default_factory=dict)  # part -> how it was verified
    passes: dict[str, int] = field(default_factory=dict)  # part -> reads of a tarball's content

    def source(self, part: str) -> Source:
        return self.inputs.parts[part]


def verifiers(
    found: inputs.Inputs,
    cache_dir,
    allow_unverified: bool,
    recorder: Recorder,
    verified: dict[str, str],
) -> dict[str, checksums.Verifier]:
    """The archives that still need a full read; a known-size mismatch or a missing digest
    goes to `recorder` at once. `verified` receives how each archive is vouched for."""
    records, origin = checksums.load()
    todo = {}
    for part, path in found.tarballs.items():
        archive = found.archives[part]
        if archive.digest == inputs.PACKAGE_COPIES:  # checked by record_catalog_problems
            verified[part] = "content: the package's copies of its data files"
            continue
        record = records.get(path.name)
        v = checksums.Verifier(path, record, origin, cache_dir)
        by_content = archive.by_content(path.name) and (record is None or not record.digests())
        try:
            if v.needs_full_read(allow_unverified or by_content):
                todo[part] = v
        except ChecksumError as e:
            recorder.problem("checksum", path.name, e)
        verified[part] = (
            ", ".join(record.digests())
            if record and record.digests() and not by_content
            else "content: validation labels and boxes"
            if by_content
            else "none (allow_unverified)"
        )
    for part in found.parts:
        verified.setdefault(part, "content: validation labels (an extracted tree has no digest)")
    return todo


def progress_bar(desc: str, total: int | None, unit: str):
    return tqdm.tqdm(
        desc=desc, total=total, unit=unit, unit_scale=True, leave=False, mininterval=1.0
    )


class Verification:
    """The full reads of the archives that need one, each in a thread beside the scan (both
    read the same file); a DigestPace keeps a digest just behind a stream that generates too."""

    def __init__(self, todo: dict[str, checksums.Verifier], paces: dict | None = None):
        self._stack = contextlib.ExitStack()
        self._jobs = []
        for part, v in todo.items():
            bar = self._stack.enter_context(
                progress_bar(f"Verifying {v.path.name}", v.path.stat().length, "B")
            )
            pace = (paces or {}).get(part)
            run = lambda v=v, bar=bar, pace=pace: v.verify(bar.update, pace)  # noqa: E731
            self._jobs.append((v, checksums.DigestThread(run)))

    def join(self, recorder: Recorder) -> None:
        """Waits for every digest; a mismatch goes to `recorder` (a build stops on it)."""
        try:
            for v, job in self._jobs:
                try:
                    job.join()
                except ChecksumError as e:
                    recorder.problem("checksum", v.path.name, e)
        finally:
            self._jobs = []
            self._stack.close()


def scan_parts(
    found: inputs.Inputs, cache_dir, on_image: catalog.OnImage | None = None
) -> dict[str, catalog.Catalog]:
    """The catalog of every part, each source scanned once (a tree may serve several parts):
    cached scans, unless the check command wants the images (`on_image`)."""
    cats: dict[str, catalog.Catalog] = {}  # source name -> its catalog
    for source in found.parts.values():
        if source.name in cats:
            continue
        with progress_bar(f"Indexing {source.name}", None, " members") as bar:
            tick = lambda _e, bar=bar: bar.update()  # noqa: E731
            if on_image is None:
                cats[source.name] = catalog.cached_scan(source, cache_dir, tick)
            else:
                cats[source.name] = catalog.scan(source, tick, on_image)
    return {part: cats[s.name] for part, s in found.parts.items()}


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
    with contextlib.ExitStack() as stack:
        # An archive in a store: its digest and its scan share the blocks fetched (one pass
        # fetches it once); once the scans are done, each digest reads on alone.
        shared = [stack.enter_context(store.shared_pass(found.tarballs.get(p))) for p in todo]
        verification = Verification(todo)
        try:
            cats = scan_parts(found, cache_dir, on_image)
        finally:
            for each in filter(None, shared):
                each.alone()
            # A digest mismatch outranks whatever the scan found: report it first.
            verification.join(recorder)
    return cats, verified


def _val_solution(found: inputs.Inputs) -> kaggle.Solution | None:
    path = found.companions.get(kaggle.VAL_SOLUTION)
    if path is None:
        return None
    return kaggle.Solution.parse(path.read_text(), str(path))


def record_catalog_problems(cats: dict[str, catalog.Catalog], found, recorder: Recorder) -> None:
    """What the scans found before any plan: annotations that did not parse, devkit files."""
    for cat in {c.source_name: c for c in cats.values()}.values():  # a tree serves several
        for p in cat.problems:
            recorder.problem(p.kind, p.member, AnnotationError(p.reason))
    for part in _by_package_copies(found, cats):
        devkit.cross_check(cats[part].devkit, found.parts[part].name, recorder)


def _by_package_copies(found: inputs.Inputs, parts) -> list[str]:
    """Those of `parts` vouched for by the package's copies of their files (the devkit)."""
    return [p for p in parts if found.archives[p].digest == inputs.PACKAGE_COPIES]


def context(found, task: Task, cats, verified, recorder: Recorder) -> plans.Context:
    # What vouches for each archive meant to have a published digest: none, or its content?
    verdicts = [v for p, v in verified.items() if found.archives[p].digest == inputs.PUBLISHED]
    no_digest = any(v.startswith(("content", "none")) for v in verdicts)
    return plans.Context(
        cats,
        recorder,
        check_ground_truth=bool(_by_package_copies(found, cats)) or no_digest,
        val_solution=_val_solution(found),
        parts=task.parts,
    )


def plan(found, task: Task, cats, verified, recorder: Recorder, once=()) -> Prepared:
    """The splits' plans from the whole catalogs (what the scans found already recorded)."""
    ctx = context(found, task, cats, verified, recorder)
    return Prepared(
        inputs=found,
        splits=task.plan(ctx),
        recorder=recorder,
        verified=verified,
        passes=passes(found, cats, once),
    )


def run(
    manual_dir,
    task: Task,
    cache_dir=None,
    allow_unverified: bool = False,
    recorder: Recorder | None = None,
    on_image: catalog.OnImage | None = None,
    found: inputs.Inputs | None = None,
) -> Prepared:
    """Everything before the first example; `found` when the caller has it already."""
    recorder = recorder or Recorder()
    found = found or locate(manual_dir, task, cache_dir)
    cats, verified = scan_and_verify(found, cache_dir, allow_unverified, recorder, on_image)
    record_catalog_problems(cats, found, recorder)
    return plan(found, task, cats, verified, recorder)


def passes(found: inputs.Inputs, cats: dict[str, catalog.Catalog], once=()) -> dict[str, int]:
    """How many times a build reads each tarball's content: the scan (unless cached) and
    generation, or once for those in `once` (read by the engine's stream)."""
    return {
        part: 1 if part in once or not cats[part].scanned else 2
        for part in found.tarballs
        if part in cats and found.archives[part].split_dirs  # else read for its lists only
    }


def locate(manual_dir, task: Task, cache_dir) -> inputs.Inputs:
    index_dir = fileio.path(cache_dir) if cache_dir else None
    what = f"imagenet2017/{task.name}"
    return inputs.locate(manual_dir, task.parts, index_dir, what, task.optional)
