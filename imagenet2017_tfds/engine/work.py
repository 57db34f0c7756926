"""What a build has completed on disk, so that a killed build continues where it stopped.

One folder a build, named by the digest of everything that decides its output: each
input's identity (an archive's path, size, times, inode; a tree's catalog), the config, the
options that change what is written, the file format and shard settings, and this format's
version. Other input can never reuse it. It holds, in the order a build makes them:
`stream-<part>.json` (an archive's catalog, once its stream and its digest are done), the
buckets, and each finished shard with its record `<split>-<shard>.json`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass

from etils import epath

from imagenet2017_tfds import catalog, fileio

FORMAT = 2  # bump when what the folder holds changes


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


class Work:
    def __init__(self, root: str):
        self.root = root
        self.buckets = os.path.join(root, "buckets")
        self.shards = os.path.join(root, "shards")

    @classmethod
    def for_build(cls, cache_dir, name: str, inputs: dict, settings: dict) -> Work:
        return cls(
            os.path.join(os.fspath(cache_dir), "work", f"{name}-{identity(inputs, settings)}")
        )

    # ------------------------------------------------ the stream of each archive

    def _stream_file(self, part: str) -> epath.Path:
        return epath.Path(self.root) / f"stream-{part}.json"

    def _read(self, path: epath.Path):
        """A record of this folder (a checked cache file: a damaged one is discarded, with a
        notice, and what it recorded done again)."""
        data = fileio.read_cache(path, {"work": os.path.basename(self.root)})
        return json.loads(data) if data is not None else None

    def _write(self, path: epath.Path, value) -> None:
        fileio.write_cache(path, json.dumps(value, sort_keys=True).encode(),
                           {"work": os.path.basename(self.root)})  # fmt: skip

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

    # ------------------------------------------------ shards

    def shard_file(self, split: str, shard: int, suffix: str) -> str:
        os.makedirs(self.shards, exist_ok=True)
        return os.path.join(self.shards, f"{split}-{shard:05d}.{suffix}")

    def _record_file(self, split: str, shard: int) -> epath.Path:
        return epath.Path(self.shards) / f"{split}-{shard:05d}.json"

    def done(self, split: str, shard: int, suffix: str) -> Shard | None:
        value = self._read(self._record_file(split, shard))
        if not value:
            return None
        path = self.shard_file(split, shard, suffix)
        found = os.path.getsize(path) if os.path.exists(path) else None
        if found != value["file_bytes"]:  # recorded whole, then damaged
            fileio.notice(
                path, f"{found} bytes, {value['file_bytes']} recorded", "it is written again"
            )
            return None
        return Shard(split, shard, value["num_examples"], value["num_bytes"], value["recorded"])

    def keep_shard(self, shard: Shard, suffix: str) -> None:
        """Records a written shard as complete, once its file is on disk."""
        path = self.shard_file(shard.split, shard.shard, suffix)
        fileio.make_durable([path])
        self._write(self._record_file(shard.split, shard.shard), {
            "num_examples": shard.num_examples, "num_bytes": shard.num_bytes,
            "recorded": shard.recorded, "file_bytes": os.path.getsize(path),
        })  # fmt: skip

    def free_bucket(self, name: str) -> None:
        path = os.path.join(self.buckets, name)
        if os.path.exists(path):
            os.unlink(path)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
