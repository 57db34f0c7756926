"""What the dataset's metadata.json keeps of a build: the classes' readable names, where each
input came from, its size and the digests it was verified against, what was skipped, what was
kept though unlisted, the members re-encoded; when the build ends, its options, the package's
version, when it ended and how long it took (`ended`, which also writes the build's report).

Everything but `built_at` and `duration_seconds` is the same for every build of the same
input with the same options, whatever the executor."""

from __future__ import annotations

import datetime
import logging
import time

from imagenet2017_tfds.engine.prepare import Prepared
from imagenet2017_tfds.ilsvrc import checksums, tasks
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
    known, _ = checksums.load()  # what prepare verified the archives against
    for part, path in sorted(prepared.inputs.tarballs.items()):
        meta["inputs"][part]["size"] = path.stat().length
        record = known.get(path.name)
        digests = record.digests() if record else {}
        if digests and prepared.verified[part] == ", ".join(digests):
            meta["inputs"][part]["digest"] = digests
    records = recorder.to_json()
    meta["skipped_members"] = [[m, f"{k}: {r}"] for m, k, r in records["problems"]]
    meta["unlisted_members"] = [m for m, k, _ in records["notices"] if k == "unlisted"]
    meta["reencoded_members"] = [[m, r] for m, k, r in records["notices"] if k == "reencoded"]
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


def ended(builder, options: tuple[str, ...], started: float, numbers: dict | None) -> None:
    """The build's last facts in its metadata (TFDS writes metadata.json after this): its
    options, the package's version, when it ended and how long it took; then its report, from
    the numbers its executors computed (None: the `report` option is off)."""
    import imagenet2017_tfds
    from imagenet2017_tfds import report

    config = builder.builder_config
    meta = builder.info.metadata
    meta["options"] = {name: getattr(config, name) for name in options}
    meta["package_version"] = imagenet2017_tfds.__version__
    meta["built_at"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    meta["duration_seconds"] = round(time.time() - started, 1)
    report.of_build(builder.data_dir, config.name, numbers, builder.info)
