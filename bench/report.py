"""What the build report costs: a build that writes it against one that does not, and the
standalone report against `stats` on one built dataset, in one run.

    python bench/report.py [--mb 200] [--reps 3] [--skip builds,standalone]
                           [--out bench/out/results-report-DATE.json]

Writes a CLS-LOC corpus (bench/corpus.py). First (`builds`) `tfds build` with the report (its
numbers computed as the shards are written, the page written at the end) and with
`{"report": false}`, in turns (which goes first alternates by rep), each a first build into a
fresh data dir: the median of each and their ratio (`build_report_over_no_report`, #30's
target at most 1.03; `build_paired_ratio_median`, the median of each rep's two builds' ratio;
`build_cpu_report_over_no_report`, of the CPU seconds of the build and its workers). Then (`standalone`) it builds it once and times, in
turns, on the same shards (warm in the page cache after a first read of each):
- `imagenet2017-tfds report` (its shards read in parallel, parsed without TensorFlow);
- `imagenet2017-tfds stats`, which reads through the report's code since #30;
- the `stats` of before #30 (`--tfdata`, below): its counts through `tfds.builder` and tf.data
  with the image left undecoded, as `stats.collect` read them (a lighter loop than it ran),
  the baseline #30 names.
Each a fresh process, as a user runs it; wall seconds and the CPU seconds of the process and
its children. The ratios are of medians, measured in the same run.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def tfdata_stats(data_dir: str, config: str) -> None:
    """The counts `stats` printed before #30, read the way it read them (TFRecord)."""
    from collections import Counter

    import tensorflow_datasets as tfds

    import imagenet2017_tfds  # noqa: F401  (registers the builder)

    builder = tfds.builder(f"imagenet2017/{config}", data_dir=data_dir)
    wanted = {k: v for k, v in builder.info.features.items() if k != "image"}
    for split in builder.info.splits:
        ds = builder.as_dataset(split=split, decoders=tfds.decode.PartialDecoding(wanted))
        examples = boxes = 0
        classes = Counter()
        for ex in tfds.as_numpy(ds):
            examples += 1
            boxes += len(ex["objects"]["label"])
            if ex["label"] >= 0:
                classes[int(ex["label"])] += 1
        print(split, examples, boxes, len(classes))


def timed(command: list[str], env: dict) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": round(wall, 3), "cpu": round(cpu, 3)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=float, default=200)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--skip", default="", help="comma-separated: builds, standalone")
    parser.add_argument("--tfdata", nargs=2, metavar=("DATA_DIR", "CONFIG"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.tfdata:
        tfdata_stats(*args.tfdata)
        return 0
    from bench import corpus

    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench-report-"))
    archive = corpus.write_corpus(work / "corpus", args.mb)
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        TF_CPP_MIN_LOG_LEVEL="2",
        IMAGENET2017_CHECKSUMS=str(work / "corpus" / "checksums.tsv"),
    )
    skip = set(filter(None, args.skip.split(",")))
    result = {
        "what": "a build with its report against one without, and the standalone report "
        "against stats on one built dataset (bench/report.py)",
        "date": datetime.date.today().isoformat(),
        "cpus": len(os.sched_getaffinity(0)),
        "corpus_mb": round(archive.stat().st_size / 1e6, 1),
    }
    if "builds" not in skip:
        result.update(builds(work, env, args.reps))
    if "standalone" not in skip:
        result.update(standalone(work, env, args.reps))
    out = Path(args.out or ROOT / "bench" / "out" / f"results-report-{result['date']}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    shown = (
        "build_report_over_no_report",
        "build_paired_ratio_median",
        "build_cpu_report_over_no_report",
        "report_over_stats",
    )
    print(json.dumps({k: result[k] for k in shown if k in result}), f"-> {out}")
    return 0


def _build_command(work: Path, data: Path, config: str) -> list[str]:
    tfds = str(Path(sys.executable).parent / "tfds")
    build = [tfds, "build", "imagenet2017", "--imports", "imagenet2017_tfds", "--config"]
    return build + [config, "--manual_dir", str(work / "corpus"), "--data_dir", str(data)]


def builds(work: Path, env: dict, reps: int) -> dict:
    """First builds with the report and without, in turns, each into a fresh data dir."""
    configs = {
        "build_report": '{"name": "clsloc"}',
        "build_no_report": '{"name": "clsloc", "report": false}',
    }
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    for rep in range(reps):
        order = list(configs) if rep % 2 == 0 else list(reversed(configs))
        for name in order:
            data = work / f"{name}-{rep}"
            runs[name].append(timed(_build_command(work, data, configs[name]), env))
            reports = list(data.glob("imagenet2017/clsloc/*/report.json"))
            if len(reports) != (name == "build_report"):
                raise SystemExit(f"{name}: {len(reports)} report.json written in {data}")
            print(name, runs[name][-1], flush=True)
            shutil.rmtree(data)
    median = {name: statistics.median(r["wall"] for r in rs) for name, rs in runs.items()}
    cpu = {name: statistics.median(r["cpu"] for r in rs) for name, rs in runs.items()}
    paired = [
        round(a["wall"] / b["wall"], 3)
        for a, b in zip(runs["build_report"], runs["build_no_report"], strict=True)
    ]
    return {
        "build_runs": runs,
        "build_median_wall": median,
        "build_median_cpu": cpu,
        "build_report_over_no_report": round(median["build_report"] / median["build_no_report"], 3),
        "build_cpu_report_over_no_report": round(cpu["build_report"] / cpu["build_no_report"], 3),
        # Each rep's two builds ran back to back, under the same load from elsewhere on the
        # machine: the median of their ratios sees less of that load than the ratio of medians.
        "build_paired_ratios": paired,
        "build_paired_ratio_median": round(statistics.median(paired), 3),
    }


def standalone(work: Path, env: dict, reps: int) -> dict:
    """The standalone report, stats and the stats of before #30 on one built dataset."""
    data = work / "data"
    print("building", data, flush=True)
    built = timed(_build_command(work, data, "clsloc"), env)
    cli = [sys.executable, "-m", "imagenet2017_tfds.tools.cli"]
    commands = {
        "report": [*cli, "report", str(data), "--config", "clsloc", "-o", str(work / "r.html")],
        "stats": [*cli, "stats", str(data), "--config", "clsloc"],
        "stats_tfdata": [sys.executable, __file__, "--tfdata", str(data), "clsloc"],
    }
    runs: dict[str, list[dict]] = {name: [] for name in commands}
    for command in commands.values():  # the shards into the page cache, each program once
        timed(command, env)
    for _ in range(reps):
        for name, command in commands.items():
            runs[name].append(timed(command, env))
            print(name, runs[name][-1], flush=True)
    median = {name: statistics.median(r["wall"] for r in rs) for name, rs in runs.items()}
    shards = sorted(p.name for p in data.glob("imagenet2017/clsloc/*/*.tfrecord-*"))
    numbers = json.loads((work / "r.json").read_text())
    return {
        "examples": {s: v["examples"] for s, v in numbers["splits"].items()},
        "shards": len(shards),
        "shard_mb": round(
            sum(p.stat().st_size for p in data.glob("imagenet2017/clsloc/*/*.tfrecord-*")) / 1e6, 1
        ),
        "build": built,
        "runs": runs,
        "median_wall": median,
        "report_over_stats": round(median["report"] / median["stats"], 3),
        "report_over_stats_tfdata": round(median["report"] / median["stats_tfdata"], 3),
    }


if __name__ == "__main__":
    sys.exit(main())
