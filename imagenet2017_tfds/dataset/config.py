"""The builder's configs and their options: `tfds build imagenet2017 --config '{"name":
"clsloc", "skip_bad_members": true}'`. Each shipped config carries its Task (ilsvrc/tasks.py:
its archives, lists and features); an option changes how a build runs, never the config's
name or data dir."""

from __future__ import annotations

import dataclasses

import tensorflow_datasets as tfds

from imagenet2017_tfds.errors import ConsistencyError
from imagenet2017_tfds.ilsvrc import tasks

# The fields --config's JSON may set beside the name.
OPTIONS = (
    "skip_bad_members",
    "allow_unverified",
    "decode_train",
    "workers",
    "skip_space_check",
    "scratch_dir",
    "report",
)


@dataclasses.dataclass(eq=False)
class Imagenet2017Config(tfds.core.BuilderConfig):
    """A config and its options: --config '{"name": "clsloc", "skip_bad_members": true}'."""

    task: tasks.Task | None = None
    skip_bad_members: bool = False  # skip (and record) damaged members instead of stopping
    allow_unverified: bool = False  # accept archives with no known digest in the checksums file
    decode_train: bool = False  # decode every train image fully too (validation, test always)
    workers: int = 0  # worker processes: 0 as many as the CPUs and memory allow, 1 none
    skip_space_check: bool = False  # build even where the disk seems too small for it
    scratch_dir: str | None = None  # local folder for the work when the data is in a store
    report: bool = True  # write report.html and report.json beside dataset_info.json

    def decoded_splits(self, splits) -> frozenset[str]:
        """Splits whose images are all decoded once: validation and test always (about
        170,000 images), train when `decode_train` asks for it."""
        return frozenset(s for s in splits if s != "train" or self.decode_train)

    def refuse_cut_build(self, download_config) -> None:
        """Every split is checked against the release's lists, and a first build may verify
        an archive only as it reads it to the end: a build cut short proves nothing."""
        cut = download_config.max_examples_per_split
        if cut is not None:
            raise ConsistencyError(
                f"imagenet2017/{self.name} builds every example: max_examples_per_split={cut} "
                "would keep a dataset the release's lists cannot vouch for. Build without it; "
                "to try the builder quickly, `make demo` builds a miniature release in a minute."
            )


SHIPPED = tuple(
    Imagenet2017Config(name=t.name, description=t.description, task=t) for t in tasks.TASKS.values()
)


def with_options(config):
    """A requested config carrying options, as the shipped config of its name with them;
    any other config unchanged (the same object)."""
    if isinstance(config, Imagenet2017Config):
        shipped = {c.name: c for c in SHIPPED}.get(config.name)
        if shipped is not None and config is not shipped:
            return dataclasses.replace(shipped, **{k: getattr(config, k) for k in OPTIONS})
    return config
