"""What the dataset's metadata.json keeps of a build: the classes' readable names, where each
input came from and how it was verified, what was skipped, and what was kept though
unlisted."""

from __future__ import annotations

import logging

from imagenet2017_tfds.engine.prepare import Prepared
from imagenet2017_tfds.ilsvrc import tasks
from imagenet2017_tfds.internal.problems import Recorder


def record(meta: dict, config_name: str, prepared: Prepared, recorder: Recorder) -> None:
    # Readable names aligned with the labels; the ClassLabel names stay WNIDs.
    meta["class_names"] = tasks.class_names(config_name)
    meta["inputs"] = {
        part: {"release": prepared.inputs.releases[part], "verified": prepared.verified[part]}
        for part in sorted(prepared.inputs.parts)
    }
    for part, passes in prepared.passes.items():  # reads of each tarball's content
        meta["inputs"][part]["passes"] = passes
    records = recorder.to_json()
    meta["skipped_members"] = [[m, f"{k}: {r}"] for m, k, r in records["problems"]]
    meta["unlisted_members"] = [m for m, k, _ in records["notices"] if k == "unlisted"]
    if recorder.problems:
        print(
            f"Skipped {len(records['problems'])} bad members (skip_bad_members); listed "
            "in metadata.json under skipped_members.",
            flush=True,
        )
    if meta["unlisted_members"]:
        logging.warning(
            "%d images no list names were kept (first: %s); listed in metadata.json "
            "under unlisted_members.",
            len(meta["unlisted_members"]),
            meta["unlisted_members"][0],
        )
