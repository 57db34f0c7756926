"""The proof that `compat.beam_fixes` stops Beam's FnApiRunner from losing examples: repeated
DirectRunner builds (2 worker processes) of the benchmark corpus, with a few runs that have
the workaround disabled interleaved among them, to show the loss still happens without it.

    python bench/beam_proof.py --runs 20 --unpatched 4 [--corpus DIR] [--work DIR]

Each build is `tfds build imagenet2017 ... --beam_pipeline_options=runner=DirectRunner,
direct_num_workers=2,direct_running_mode=multi_processing` in its own process, started through
this file's `child` command: the same CLI entry point as the `tfds` script, plus a trace of the
stream class the runner actually creates for every bundle input it sends
(`data_plane.ClosableOutputStream.create`) and of the time limit its data servicer was given.
Variants: `patched` (the package as it is), `unpatched` (`compat.beam_fixes` made a no-op),
`locked-write` (the other candidate: `write` holding `_flush_lock`, for timing).

A build that loses examples fails on the package's completeness check ("N examples written,
M planned"); this counts exit statuses and that line. Writes JSON and a markdown summary.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DIRECT = "runner=DirectRunner,direct_num_workers=2,direct_running_mode=multi_processing"
VARIANTS = ("patched", "unpatched", "locked-write")
LOSS_LINE = "examples written"


# ------------------------------------------------------------------ inside the build process


@contextlib.contextmanager
def _locked_write(use_beam: bool):
    """The other candidate workaround, for timing only: the runner keeps its time-based
    stream, whose `write` now waits for the periodic flush's get() + _clear()."""
    from apache_beam.runners.worker import data_plane

    cls = data_plane.TimeBasedBufferingClosableOutputStream
    unlocked = cls.write

    def write(self, b, *args):
        with self._flush_lock:
            return unlocked(self, b, *args)

    cls.write = write
    try:
        yield
    finally:
        del cls.write  # back to the inherited C method


def child(variant: str, trace_file: str, argv: list[str]) -> int:
    import tensorflow_datasets  # noqa: F401  (first: importing it registers the builder)
    from apache_beam.runners.portability.fn_api_runner import worker_handlers
    from apache_beam.runners.worker import data_plane

    from imagenet2017_tfds import compat

    trace = {
        "variant": variant,
        "streams": Counter(),
        "servicer_time_limit_ms": [],
        "bytes_written": 0,
        "bytes_sent": 0,
        "streams_short": 0,
        "largest_message": 0,
    }
    create = data_plane.ClosableOutputStream.create

    def traced_create(close_callback, flush_callback, data_buffer_time_limit_ms):
        # Per stream: the bytes the runner writes, against the bytes the stream hands to the
        # data channel's send queue (its callbacks); a gap is data the stream dropped.
        counts = {"written": 0, "sent": 0}

        def counted(callback):
            def send(data):
                counts["sent"] += len(data)
                trace["largest_message"] = max(trace["largest_message"], len(data))
                return callback(data)

            return send

        def close():
            unwrapped_close()
            trace["bytes_written"] += counts["written"]
            trace["bytes_sent"] += counts["sent"]
            trace["streams_short"] += counts["sent"] < counts["written"]

        stream = create(counted(close_callback), counted(flush_callback), data_buffer_time_limit_ms)
        unwrapped_write, unwrapped_close = stream.write, stream.close

        def write(b, *args):
            counts["written"] += len(b)
            return unwrapped_write(b, *args)

        stream.write, stream.close = write, close  # what fn_runner calls on this instance
        trace["streams"][type(stream).__name__] += 1
        return stream

    servicer_init = data_plane.BeamFnDataServicer.__init__

    def traced_servicer_init(self, data_buffer_time_limit_ms=0):
        # GrpcServer.__init__ passes worker_handlers.DATA_BUFFER_TIME_LIMIT_MS here: the
        # limit every input stream of this runner gets.
        trace["servicer_time_limit_ms"].append(data_buffer_time_limit_ms)
        servicer_init(self, data_buffer_time_limit_ms)

    data_plane.ClosableOutputStream.create = staticmethod(traced_create)
    data_plane.BeamFnDataServicer.__init__ = traced_servicer_init
    if variant == "unpatched":
        compat.beam_fixes = lambda use_beam: contextlib.nullcontext()
    elif variant == "locked-write":
        compat.beam_fixes = _locked_write
    from tensorflow_datasets.scripts.cli.main import launch_cli

    sys.argv = ["tfds", *argv]
    try:
        return launch_cli()
    finally:
        trace["time_limit_ms_after"] = worker_handlers.DATA_BUFFER_TIME_LIMIT_MS
        Path(trace_file).write_text(json.dumps(trace))


# ------------------------------------------------------------------ the launcher


def build(variant: str, corpus: Path, data_dir: Path, cache: Path, log: Path, env: dict) -> dict:
    from bench.bench import _sample_tree

    trace_file = log.with_suffix(".trace.json")
    command = [sys.executable, __file__, "child", variant, str(trace_file), "--", "build"]
    command += ["imagenet2017", "--imports", "imagenet2017_tfds", "--config", "clsloc"]
    command += ["--manual_dir", str(corpus), "--data_dir", str(data_dir)]
    command += ["--download_dir", str(cache), f"--beam_pipeline_options={DIRECT}"]
    load = os.getloadavg()[0]
    peak, cpu, done = [0], {}, threading.Event()
    start = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        import psutil

        ps = psutil.Process(proc.pid)

        def sample():
            while not done.wait(0.1):
                peak[0] = max(peak[0], _sample_tree(ps, cpu))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        status = proc.wait()
        done.set()
        sampler.join()
    seconds = time.perf_counter() - start
    text = log.read_text(errors="replace")
    lost = [line.strip() for line in text.splitlines() if LOSS_LINE in line]
    trace = json.loads(trace_file.read_text()) if trace_file.exists() else {}
    splits = {}
    for info in data_dir.glob("imagenet2017/clsloc/*/dataset_info.json"):
        for split in json.loads(info.read_text()).get("splits", []):
            splits[split["name"]] = sum(int(n) for n in split["shardLengths"])
    return {
        "variant": variant,
        "exit_status": status,
        "seconds": round(seconds, 2),
        "peak_rss_mb": round(peak[0] / 1e6),
        "load_1min_at_start": load,
        "loss_lines": lost[:3],
        "examples": splits,
        "log": str(log),
        "streams": trace.get("streams"),
        "servicer_time_limit_ms": trace.get("servicer_time_limit_ms"),
        "time_limit_ms_after": trace.get("time_limit_ms_after"),
        "runner_bytes_written": trace.get("bytes_written"),
        "runner_bytes_sent": trace.get("bytes_sent"),
        "runner_streams_short": trace.get("streams_short"),
        "largest_message_mb": round(trace.get("largest_message", 0) / 2**20),
    }


def schedule(runs: int, unpatched: int, locked_write: int = 0) -> list[str]:
    """`runs` patched builds with the other variants spread evenly among them."""
    extra = [
        v
        for k in range(max(unpatched, locked_write))
        for v, n in (("unpatched", unpatched), ("locked-write", locked_write))
        if k < n
    ]
    total = runs + len(extra)
    slots = {int((k + 0.5) * total / len(extra)): v for k, v in enumerate(extra)} if extra else {}
    return [slots.get(i, "patched") for i in range(total)]


def summarize(results: list[dict], command: str) -> tuple[dict, str]:
    by = {}
    for variant in VARIANTS:
        rows = [r for r in results if r["variant"] == variant]
        if not rows:
            continue
        ok = [r for r in rows if r["exit_status"] == 0]
        by[variant] = {
            "builds": len(rows),
            "passed": len(ok),
            "failed": len(rows) - len(ok),
            "lost_examples": sum(1 for r in rows if r["loss_lines"]),
            "dropped_by_stream": sum(1 for r in rows if r["runner_streams_short"]),
            "bytes_dropped": sum(
                (r["runner_bytes_written"] or 0) - (r["runner_bytes_sent"] or 0) for r in rows
            ),
            "median_seconds_passed": statistics.median(r["seconds"] for r in ok) if ok else None,
            "median_peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in rows),
            "stream_classes": sorted({c for r in rows for c in (r["streams"] or {})}),
            "servicer_time_limit_ms": sorted(
                {t for r in rows for t in r["servicer_time_limit_ms"] or []}
            ),
        }
    lines = [
        f"Command (each build): `{command}`", "",
        "| variant | builds | passed | failed | failed with lost examples | builds whose runner "
        "streams dropped bytes | bytes dropped | median s (passed) | median peak RSS MB "
        "| input stream class the runner used | servicer time limit ms |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for variant, s in by.items():
        secs = f"{s['median_seconds_passed']:.1f}" if s["median_seconds_passed"] else "-"
        lines.append(
            f"| {variant} | {s['builds']} | {s['passed']} | {s['failed']} | {s['lost_examples']} "
            f"| {s['dropped_by_stream']} | {s['bytes_dropped']} | {secs} | {s['median_peak_rss_mb']:.0f} | {', '.join(s['stream_classes'])} "
            f"| {', '.join(map(str, s['servicer_time_limit_ms']))} |"
        )
    lines += ["", "| # | variant | exit | s | peak RSS MB | load | runner bytes written / sent "
              "| largest message MB | examples per split / loss |",
              "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for i, r in enumerate(results, 1):
        what = r["loss_lines"][0][-160:] if r["loss_lines"] else json.dumps(r["examples"])
        lines.append(
            f"| {i} | {r['variant']} | {r['exit_status']} | {r['seconds']:.1f} "
            f"| {r['peak_rss_mb']} | {r['load_1min_at_start']:.1f} "
            f"| {r['runner_bytes_written']} / {r['runner_bytes_sent']} "
            f"| {r['largest_message_mb']} | {what} |"
        )
    return by, "\n".join(lines) + "\n"


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        variant, trace_file, dashdash, *rest = argv[1:]
        assert dashdash == "--" and variant in VARIANTS, argv
        return child(variant, trace_file, rest)
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20, help="patched builds")
    parser.add_argument("--unpatched", type=int, default=4, help="unpatched builds among them")
    parser.add_argument("--locked-write", type=int, default=0, help="builds of that candidate")
    parser.add_argument("--size-mb", type=float, default=1024, help="corpus size, if written")
    parser.add_argument("--corpus", help="a corpus from bench/corpus.py (written if absent)")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "beam-proof"))
    parser.add_argument("--out", default=str(ROOT / "bench" / "beam-proof.json"))
    parser.add_argument(
        "--load",
        type=int,
        default=0,
        help="busy processes beside the builds (the machine's own load counts too)",
    )
    args = parser.parse_args(argv)

    from bench.corpus import write_corpus

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    corpus = Path(args.corpus) if args.corpus else work / "corpus"
    if not (corpus / "checksums.tsv").exists():
        write_corpus(corpus, args.size_mb)
    cache = work / "cache"
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT),
        IMAGENET2017_CHECKSUMS=str(corpus / "checksums.tsv"),
        TF_CPP_MIN_LOG_LEVEL="2",
        PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
    )
    tfds = str(Path(sys.executable).parent / "tfds")
    # Warm the shared cache (verdict, gzip index, catalog): every build then starts at the
    # pipeline, as the benchmark's Beam rows do.
    warm = [tfds, "build", "imagenet2017", "--imports", "imagenet2017_tfds", "--config", "clsloc"]
    warm += ["--manual_dir", str(corpus), "--data_dir", str(work / "warm")]
    subprocess.run([*warm, "--download_dir", str(cache)], env=env, check=True, capture_output=True)
    shutil.rmtree(work / "warm", ignore_errors=True)
    command = (
        f"IMAGENET2017_CHECKSUMS=CORPUS/checksums.tsv PYTHONPATH=REPO tfds build imagenet2017 "
        f"--imports imagenet2017_tfds --config clsloc --manual_dir CORPUS --data_dir D "
        f"--download_dir CACHE --beam_pipeline_options={DIRECT}"
    )
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
    try:
        results = run_builds(args, corpus, cache, work, env, command)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    by, markdown = summarize(results, command)
    print(markdown)
    patched = by.get("patched", {})
    return 0 if patched.get("failed") == 0 else 1


def run_builds(args, corpus: Path, cache: Path, work: Path, env: dict, command: str) -> list[dict]:
    results = []
    order = schedule(args.runs, args.unpatched, args.locked_write)
    for i, variant in enumerate(order, 1):
        data_dir = work / f"data{i}"
        result = build(variant, corpus, data_dir, cache, work / f"build{i:02d}.log", env)
        shutil.rmtree(data_dir, ignore_errors=True)
        results.append(result)
        print(
            f"{i}/{len(order)} {variant}: exit {result['exit_status']}, {result['seconds']:.1f} s, "
            f"streams {result['streams']}, {result['loss_lines'][:1] or result['examples']}",
            flush=True,
        )
        by, markdown = summarize(results, command)
        out = Path(args.out)
        out.write_text(
            json.dumps(
                {
                    "corpus_mb": sum(f.stat().st_size for f in corpus.glob("*.tar.gz")) / 1e6,
                    "cores": os.cpu_count(),
                    "busy_processes": args.load,
                    "summary": by,
                    "builds": results,
                },
                indent=2,
            )
            + "\n"
        )
        out.with_suffix(".md").write_text(markdown)
    return results


if __name__ == "__main__":
    sys.exit(main())
