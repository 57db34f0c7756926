"""What one object written through gcsfs costs the bed's fake-gcs-server, by the object's size
(alone, as root: python bench/store_uploads.py).

Why: in bench/cluster.py the store's CPU grows faster than the corpus (9 to 13 times for 4
times the corpus: bench/results-cluster-2026-12-07b.json, the store host's cpu_seconds). A
Beam build writes each bundle's examples to one spill file in the data dir (beam.py), through
gcsfs, so the larger a range the larger its object; fake-gcs-server (v1.56.1,
fakestorage/upload.go, uploadFileContent) appends each chunk of a resumable upload to the
object and computes the md5 and crc32c of the whole object so far, so its CPU for one object
grows with the square of its size. This measures that on a store bed of its own, with
nothing else running in it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.cluster import kind  # noqa: E402
from bench.stores import processes_cpu  # noqa: E402
from imagenet2017_tfds.launch.stores import StoreBed  # noqa: E402

BUCKET = "i2017-bench-uploads"
# Written as the package writes a spill file: fsspec's open(..., "wb"), in 4 MiB writes.
_WRITE = r"""
import os, sys
import fsspec
url, mb = sys.argv[1], int(sys.argv[2])
block = os.urandom(4 << 20)
fs, path = fsspec.core.url_to_fs(url)
with fs.open(path, "wb") as f:
    for _ in range(mb // 4):
        f.write(block)
"""


def server_cpu(bed: StoreBed) -> float:
    """CPU seconds fake-gcs-server has used so far."""
    return processes_cpu([pid for pid in bed.pids() if kind(pid) == "fake-gcs-server"])


def write(bed: StoreBed, mb: int) -> dict:
    url = f"gs://{BUCKET}/object-{mb}"
    before, started = server_cpu(bed), time.monotonic()
    done = bed.run([sys.executable, "-c", _WRITE, url, str(mb)], capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"bench/store_uploads.py: writing {url} failed:\n{done.stderr[-3000:]}")
    seconds, cpu = time.monotonic() - started, server_cpu(bed) - before
    requests = bed.counts().total(url=url)
    return {"mb": mb, "server_cpu_s": cpu, "seconds": seconds, "requests": requests}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes-mb", default="100,200,400")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "store_uploads.json"))
    args = parser.parse_args(argv)
    with StoreBed() as bed:
        bed.make_bucket("gcs", BUCKET)
        rows = [write(bed, int(mb)) for mb in args.sizes_mb.split(",")]
    for row in rows:
        row["server_cpu_s_per_mb"] = row["server_cpu_s"] / row["mb"]
        print(json.dumps(row), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
