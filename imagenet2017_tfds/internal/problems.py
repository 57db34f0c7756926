"""One record of what a build found wrong or left out, whichever stage found it.

Every stage (the catalog scan, the devkit check, the split plans, the image checks in the
main process or a Beam worker) reports into a `Recorder`. Its mode says what a problem does:
`strict` raises it (the default), `skip` logs and records it and leaves the member out
(skip_bad_members), `collect` records every problem (the `check` command). A fatal problem (a list or
a whole archive missing) raises in every mode but collect. A notice is never
an error: the member is kept, and the notice is recorded (a DET image no list names).
Records have one shape everywhere: (member, kind, reason), kept in the dataset's metadata.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import astuple, dataclass, field

from imagenet2017_tfds.errors import Imagenet2017Error

STRICT, SKIP, COLLECT = "strict", "skip", "collect"

# kind -> what it means, for reports
KINDS = {
    "checksum": "archive size or digest differs from the checksums file",
    "archive": "archive unreadable (truncated or corrupt)",
    "devkit": "devkit file differs from the package's copy",
    "list": "an ImageSets list is missing or malformed",
    "missing": "listed in ImageSets, but the archive holds no such image",
    "extra": "an image no ImageSets list names",
    "annotation": "annotation XML damaged or missing",
    "label": "a class name or label that is not the release's",
    "image": "image damaged, truncated or not decodable",
    "unlisted": "an image no list names, kept (DET)",
}


@dataclass(frozen=True, order=True)
class Problem:
    member: str  # the member path below ILSVRC/, or the file
    kind: str  # a key of KINDS
    reason: str  # the full message


@dataclass
class Recorder:
    mode: str = STRICT
    # Members left out (skip), and in collect mode every problem, fatal ones included.
    problems: list[Problem] = field(default_factory=list)
    notices: list[Problem] = field(default_factory=list)
    quiet: bool = False  # in a worker process: the main process logs what it merges

    @classmethod
    def for_build(cls, skip_bad_members: bool) -> Recorder:
        return cls(SKIP if skip_bad_members else STRICT)

    def problem(self, kind: str, member: str, error: Imagenet2017Error) -> None:
        """A member the build cannot use: raise (strict) or leave it out and record it."""
        if self.mode == STRICT:
            raise error
        if self.mode == SKIP and not self.quiet:
            logging.warning("Skipping %s: %s", member, error)
        self.problems.append(Problem(member, kind, str(error)))

    def fatal(self, kind: str, member: str, error: Imagenet2017Error) -> None:
        """A problem no skip can get round (a list or a whole archive missing): raise, but
        in collect mode, which records it."""
        if self.mode != COLLECT:
            raise error
        self.problems.append(Problem(member, kind, str(error)))

    def notice(self, kind: str, member: str, reason: str) -> None:
        """Something worth knowing that stops nothing: the member is kept."""
        self.notices.append(Problem(member, kind, reason))

    def merge(self, other: Recorder, log: bool = False) -> None:
        """Adds what `other` recorded; with `log`, logs its skipped members as this process's
        own."""
        if log and self.mode == SKIP:
            for p in other.problems:
                logging.warning("Skipping %s: %s", p.member, p.reason)
        self.problems += other.problems
        self.notices += other.notices

    def problem_members(self) -> set[str]:
        return {p.member for p in self.problems}

    def to_json(self) -> dict:
        return {
            "problems": [list(astuple(p)) for p in sorted(set(self.problems))],
            "notices": [list(astuple(p)) for p in sorted(set(self.notices))],
        }

    @classmethod
    def from_json(cls, value: dict, mode: str = STRICT) -> Recorder:
        return cls(
            mode,
            [Problem(*p) for p in value.get("problems", ())],
            [Problem(*p) for p in value.get("notices", ())],
        )

    def summary(self, first: int = 3) -> list[tuple[str, int, list[str]]]:
        """(kind, count, first members) per kind, problems then notices."""
        rows = []
        for records in (self.problems, self.notices):
            counts = Counter(p.kind for p in records)
            for kind in sorted(counts, key=list(KINDS).index):
                members = sorted({p.member for p in records if p.kind == kind})
                rows.append((kind, counts[kind], members[:first]))
        return rows
