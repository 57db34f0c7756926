"""`imagenet2017-tfds check`: one scan of the release, every problem a build would stop on.

The same stages as a build (locate, verify, scan, devkit, plans) report into a Recorder that
collects instead of raising, and every image is judged as the build judges it (its header,
its end marker; validation and test images decoded fully). A build's own errors still name
the first problem; this names them all before a long build.
"""

from __future__ import annotations

from dataclasses import dataclass

from imagenet2017_tfds.engine import prepare
from imagenet2017_tfds.errors import ImageError
from imagenet2017_tfds.ilsvrc import images, roles
from imagenet2017_tfds.ilsvrc.tasks import Task
from imagenet2017_tfds.internal.problems import COLLECT, KINDS, Recorder
from imagenet2017_tfds.sources import Entry


@dataclass
class Report:
    task: Task
    recorder: Recorder
    images: int

    @property
    def status(self) -> int:
        """Non-zero when a build would stop (a notice stops nothing)."""
        return 1 if self.recorder.problems else 0

    def table(self) -> str:
        rec = self.recorder
        verdict = (
            f"{len(rec.problems)} problems: a build would stop (or skip them with skip_bad_members)"
            if rec.problems
            else "no problem: a build would succeed"
        )
        lines = [f"imagenet2017/{self.task.name}: {self.images} images checked; {verdict}."]
        rows = [("kind", "count", "meaning", "first members")]
        for kind, count, first in rec.summary():
            rows.append((kind, str(count), KINDS[kind], ", ".join(first)))
        if len(rows) > 1:
            widths = [max(len(r[i]) for r in rows) for i in range(3)]
            for row in rows:
                cells = [c.ljust(w) for c, w in zip(row[:3], widths, strict=True)]
                lines.append("  ".join([*cells, row[3]]).rstrip())
        return "\n".join(lines)


def run(manual_dir, task: Task, allow_unverified=False, decode_train=False) -> Report:
    recorder = Recorder(COLLECT)
    count = 0

    def on_image(entry: Entry, data: bytes) -> None:
        nonlocal count
        role = roles.classify(entry.path)
        if role is None or role.challenge != task.challenge:
            return
        count += 1
        try:
            stored = images.storable_jpeg(data, entry.path)
            if role.split_dir != "train" or decode_train:
                images.check_decodes(stored, entry.path)
        except ImageError as e:
            recorder.problem("image", entry.path, e)

    prepare.run(manual_dir, task, None, allow_unverified, recorder, on_image)
    return Report(task=task, recorder=recorder, images=count)
