"""Builds of manual folders through the engine in this process, one after the other, each
one's memory measured: a JSON line a folder with the error it raised (type, message) or the
examples it built, and how far the peak resident set grew over the build (Linux's VmHWM,
reset before each build). The archives' digests are unknown (allow_unverified).

    python -m tests.support.measured_build CONFIG CACHE MANUAL...
"""

from __future__ import annotations

import json
import os
import sys


def _status(field: str) -> int:
    """A /proc/self/status field, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    with open("/proc/self/clear_refs", "w") as f:  # "5": VmHWM back to VmRSS (Linux 4.0)
        f.write("5")


def main(config: str, cache: str, *manuals: str) -> None:
    import tensorflow_datasets as tfds

    from imagenet2017_tfds.engine import local
    from imagenet2017_tfds.errors import Imagenet2017Error
    from imagenet2017_tfds.ilsvrc import tasks
    from imagenet2017_tfds.internal.problems import Recorder

    options = local.Options(
        allow_unverified=True,
        workers=1,
        skip_space_check=True,
        shard_config=tfds.download.DownloadConfig().get_shard_config(),
    )
    for k, manual in enumerate(manuals):
        _reset_peak()
        before = _status("VmRSS")
        outcome: dict = {"manual": manual}
        try:
            built = local.build(
                manual,
                tasks.task(config),
                os.path.join(cache, str(k)),
                Recorder.for_build(False),
                options,
            )
            outcome["built"] = {s: sum(x.num_examples for x in v) for s, v in built.shards.items()}
        except Imagenet2017Error as e:
            outcome["error"] = [type(e).__name__, str(e)]
        outcome["peak_growth"] = _status("VmHWM") - before
        print(json.dumps(outcome), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
