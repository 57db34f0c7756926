"""What a build has completed on disk, so that a killed build continues where it stopped.

One folder a build, named by the digest of everything that decides its output: each
input's identity (an archive's path, size, times, inode; a tree's catalog), the config, the
options that change what is written, the file format and shard settings, and this format's
version. Other input can never reuse it. It holds, in the order a build makes them:
`stream-<part>.json` (an archive's catalog, once its stream and its digest are done), the
buckets, `plan.json` (the build's plan, engine/plan.py), each shard being written (`<split>-<shard>.<suffix>.partial`) with its checkpoint
`<split>-<shard>.partial.json` (how far the file is on disk; the buckets behind it may be
freed), and each finished shard with its record `<split>-<shard>.json` (its counts, what it
recorded, the report's numbers of its examples: their sample's images stay in the shard file).
Every record is on
disk before what it allows to be deleted is deleted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

from imagenet2017_tfds.ilsvrc import catalog
from imagenet2017_tfds.internal import codec, faults, fileio

if TYPE_CHECKING:  # engine/plan.py imports TFDS, which imports the builder, then this module
    from imagenet2017_tfds.engine import plan as plan_lib

FORMAT = 5  # bump when what the folder holds changes


def identity(inputs: dict, settings: dict) -> str:
    text = json.dumps({"format": FORMAT, "inputs": inputs, "settings": settings}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class Shard:
    split: str
    shard: int
    num_examples: int
    num_bytes: int
    recorded: dict
    numbers: dict | None = None  # the report's numbers of its examples (SplitNumbers.to_state)


def _size(path: str) -> int | None:
    return os.path.getsize(path) if os.path.exists(path) else None


def _bytes(size: int | None) -> str:
    return "missing" if size is None else f"{size} bytes"


def partial_path(path: str) -> str:
    """Where a shard file is written until it is complete."""
    return f"{path}.partial"


@dataclass(frozen=True)
class Checkpoint:
    """How far a TFRecord shard being written is on disk: its first `file_bytes` bytes hold
    the examples of its job's first `items` items (those left out included), and the job had
    recorded `recorded` by then. A rerun truncates the file there and goes on."""

    items: int
    file_bytes: int
    num_examples: int
    num_bytes: int
    last_hkey: int
    recorded: dict


@dataclass(frozen=True)
class Frees:
    """The buckets a shard's job frees on its way, each once a checkpoint covers every item
    that reads it: (items, bucket names) pairs, `items` ascending. No other shard still to
    write reads them."""

    work: str  # the WorkFolder's root
    shard: int
    after: tuple[tuple[int, tuple[str, ...]], ...]


class WorkFolder:
    def __init__(self, root: str):
        self.root = root
        self.buckets = os.path.join(root, "buckets")
        self.shards = os.path.join(root, "shards")

    @classmethod
    def for_build(cls, cache_dir, name: str, inputs: dict, settings: dict) -> WorkFolder:
        return cls(
            os.path.join(os.fspath(cache_dir), "work", f"{name}-{identity(inputs, settings)}")
        )

    # ------------------------------------------------ the stream of each archive

    def _stream_file(self, part: str) -> fileio.Path:
        return fileio.path(self.root) / f"stream-{part}.json"

    def _read(self, path: fileio.Path):
        """A record of this folder (a checked cache file: a damaged one is discarded, with a
        notice, and what it recorded done again)."""
        data = fileio.read_cache(path, {"work": os.path.basename(self.root)})
        return json.loads(data) if data is not None else None

    def _write(self, path: fileio.Path, value) -> bool:
        """A record, on disk when this returns True (what it records may then be freed)."""
        return fileio.write_cache(
            path,
            json.dumps(value, sort_keys=True).encode(),
            {"work": os.path.basename(self.root)},
            durable=True,
        )

    def streamed(self, part: str) -> catalog.Catalog | None:
        value = self._read(self._stream_file(part))
        if not value or not self._buckets_present(value.get("buckets", {})):
            return None
        return catalog.Catalog.from_json(value["catalog"])

    def _buckets_present(self, sizes: dict) -> bool:
        for name, size in sizes.items():
            path = os.path.join(self.buckets, name)
            if os.path.exists(path) and os.path.getsize(path) != size:
                return False  # changed since: the stream cannot be trusted
        return True  # a bucket gone was freed after every shard it served was written

    def keep_stream(self, part: str, cat: catalog.Catalog, bucket_sizes: dict[str, int]) -> None:
        self._write(self._stream_file(part), {"catalog": cat.to_json(), "buckets": bucket_sizes})

    # ------------------------------------------------ the plan

    def _plan_file(self) -> fileio.Path:
        return fileio.path(self.root) / "plan.json"

    def plan(self) -> plan_lib.Plan | None:
        """The plan an earlier run of this build kept."""
        from imagenet2017_tfds.engine import plan as plan_lib

        value = self._read(self._plan_file())
        return codec.decode(plan_lib.Plan, value) if value else None

    def keep_plan(self, plan: plan_lib.Plan) -> None:
        self._write(self._plan_file(), codec.encode(plan))

    # ------------------------------------------------ shards

    def shard_file(self, split: str, shard: int, suffix: str) -> str:
        os.makedirs(self.shards, exist_ok=True)
        return os.path.join(self.shards, f"{split}-{shard:05d}.{suffix}")

    def _record_file(self, split: str, shard: int) -> fileio.Path:
        return fileio.path(self.shards) / f"{split}-{shard:05d}.json"

    def partial_file(self, split: str, shard: int, suffix: str) -> str:
        return partial_path(self.shard_file(split, shard, suffix))

    def _checkpoint_file(self, split: str, shard: int) -> fileio.Path:
        return fileio.path(self.shards) / f"{split}-{shard:05d}.partial.json"

    def checkpoint(self, split: str, shard: int, suffix: str) -> Checkpoint | None:
        """How far an earlier run wrote this shard, if its file still holds that much (a
        shard moved into place but not recorded when the build was killed is moved back: it
        holds at least as much)."""
        value = self._read(self._checkpoint_file(split, shard))
        if not value:
            return None
        path, whole = self.partial_file(split, shard, suffix), self.shard_file(split, shard, suffix)
        if not os.path.exists(path) and os.path.exists(whole):
            os.replace(whole, path)
        if (found := _size(path)) is None or found < value["file_bytes"]:
            fileio.notice(
                path,
                f"{_bytes(found)}, {value['file_bytes']} recorded as written",
                "the shard is written again",
            )
            return None
        return Checkpoint(**value)

    def keep_checkpoint(self, split: str, shard: int, checkpoint: Checkpoint) -> bool:
        """Records how far a shard is (its file's bytes already on disk); False: it cannot be
        recorded, and nothing it covers may be freed."""
        return self._write(self._checkpoint_file(split, shard), dataclasses.asdict(checkpoint))

    def done(self, split: str, shard: int, suffix: str) -> Shard | None:
        value = self._read(self._record_file(split, shard))
        if not value:
            return None
        path = self.shard_file(split, shard, suffix)
        if (found := _size(path)) != value["file_bytes"]:  # recorded whole, then damaged
            fileio.notice(
                path, f"{_bytes(found)}, {value['file_bytes']} recorded", "it is written again"
            )
            return None
        return Shard(
            split=split,
            shard=shard,
            num_examples=value["num_examples"],
            num_bytes=value["num_bytes"],
            recorded=value["recorded"],
            numbers=value.get("numbers"),
        )

    def keep_shard(self, shard: Shard, suffix: str) -> bool:
        """Records a written shard as complete, once its file is on disk; False: it cannot
        be recorded, and what it read may not be freed."""
        path = self.shard_file(shard.split, shard.shard, suffix)
        fileio.make_durable([path])
        if not self._write(
            self._record_file(shard.split, shard.shard),
            {
                "num_examples": shard.num_examples,
                "num_bytes": shard.num_bytes,
                "recorded": shard.recorded,
                "numbers": shard.numbers,
                "file_bytes": os.path.getsize(path),
            },
        ):
            return False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._checkpoint_file(shard.split, shard.shard))
        faults.point("shard-kept")
        return True

    def free_bucket(self, name: str) -> None:
        path = os.path.join(self.buckets, name)
        if os.path.exists(path):
            os.unlink(path)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
