"""The object-store row of `make bench` (alone, as root: python bench/stores.py).

The benchmark corpus built from gs:// against the same build from local disk, each in the
same run, on the local engine and on Beam's DirectRunner, every folder in the store; the
storage test bed (imagenet2017_tfds.launch.stores: fake-gcs-server behind a counting TLS
front, in a network namespace) counts what each build fetched and sent.

What each row says:
- seconds, and the ratio to the local build of the same engine: the store's server and front
  share the machine's cores with the build, so this ratio states that cost, not a network's:
  `store_cpu_seconds` is the CPU the store's processes used during the build, `build_cpu_seconds`
  the build's own;
- archive_read_vs_size: bytes of the archive the server sent, over its size. The local engine
  reads it once (the stream and its digest share one fetch: store.shared_pass); Beam reads it
  once to verify and scan, then its workers read their ranges: `ranges_vs_size` is what they
  fetched beyond that first pass;
- requests: to the archive, and in all (the caches, TFDS's files, the shards' uploads);
- uploaded_vs_shards: bytes sent to the store over the bytes of the finished shards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.corpus import write_corpus  # noqa: E402
from imagenet2017_tfds.launch.stores import StoreBed  # noqa: E402

BIN = Path(sys.executable).parent
BUCKET = "i2017-bench"
ARCHIVE = "ILSVRC2017_CLS-LOC.tar.gz"
DIRECT = "runner=DirectRunner,direct_num_workers={workers},direct_running_mode=multi_processing"


def build_command(manual: str, data: str, download: str, beam_workers: int | None) -> list[str]:
    command = [
        str(BIN / "tfds"),
        "build",
        "imagenet2017",
        "--imports",
        "imagenet2017_tfds",
        "--config",
        "clsloc",
        "--manual_dir",
        manual,
        "--data_dir",
        data,
        "--download_dir",
        download,
    ]
    if beam_workers:
        command.append("--beam_pipeline_options=" + DIRECT.format(workers=beam_workers))
    return command


def timed(command: list[str], env: dict) -> tuple[float, float]:
    """Wall seconds, and the CPU seconds of the command and every process it waited for."""
    start, cpu = time.perf_counter(), _children_cpu()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"bench/stores.py: {' '.join(command)} failed:\n{result.stderr[-4000:]}")
    return time.perf_counter() - start, _children_cpu() - cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def processes_cpu(pids: list[int]) -> float:
    """CPU seconds the processes used so far (utime + stime, /proc/PID/stat)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def shard_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*.tfrecord-*"))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=float, default=1600)
    parser.add_argument("--beam-workers", type=int, default=2)
    parser.add_argument("--work", default="/tmp/imagenet2017-bench-stores")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "stores.json"))
    parser.add_argument("--skip", default="", help="comma-separated: local,beam")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    work = Path(args.work)
    shutil.rmtree(work, ignore_errors=True)
    archive = write_corpus(work / "corpus", args.size_mb)
    size = archive.stat().st_size
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        TF_CPP_MIN_LOG_LEVEL="2",
        IMAGENET2017_CHECKSUMS=str(archive.parent / "checksums.tsv"),
    )
    engines = {"local": None, "beam": args.beam_workers}
    out: dict = {"corpus_gb": size / 1e9, "beam_workers": args.beam_workers, "engines": {}}
    for engine, workers in engines.items():
        if engine in skip:
            continue
        folder = work / f"local-{engine}"
        local = build_command(
            str(archive.parent), str(folder / "data"), str(folder / "downloads"), workers
        )
        seconds, cpu = timed(local, env)
        row = {"local_seconds": seconds, "local_cpu_seconds": cpu}
        shards = shard_bytes(folder / "data")
        shutil.rmtree(folder)
        with StoreBed() as bed:
            bed.make_bucket("gcs", BUCKET)
            bed.upload(archive, f"gs://{BUCKET}/raw/")
            bed.reset_counts()
            run = f"gs://{BUCKET}/{engine}"
            command = bed.command(
                build_command(f"gs://{BUCKET}/raw", f"{run}/data", f"{run}/downloads", workers)
            )
            scratch = {"IMAGENET2017_SCRATCH": str(work / f"scratch-{engine}")}
            servers = bed.pids()
            before = processes_cpu(servers)
            seconds, cpu = timed(command, {**env, **scratch})
            row.update(
                store_seconds=seconds,
                build_cpu_seconds=cpu,
                store_cpu_seconds=processes_cpu(servers) - before,
            )
            counts = bed.counts()
        read = counts.total("read", url=f"gs://{BUCKET}/raw/{ARCHIVE}")
        row.update(
            store_vs_local=row["store_seconds"] / row["local_seconds"],
            archive_read_vs_size=read / size,
            archive_requests=counts.total(url=f"gs://{BUCKET}/raw/{ARCHIVE}"),
            requests=counts.total(),
            uploaded_vs_shards=counts.total("uploaded", prefix=f"{run}/data/") / shards,
        )
        if workers:
            row["ranges_vs_size"] = (read - size) / size
        out["engines"][engine] = row
        shutil.rmtree(work / f"scratch-{engine}", ignore_errors=True)
        print(f"{engine}: {json.dumps(row)}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
