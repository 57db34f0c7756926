"""The conversion benchmark (`make bench`): one run measures the reference (gzip -dc), the
floor (md5 + fastest decompression), md5sum, the peer (a straightforward TFDS port), our
build (first, and with the verdict cached), and our Beam path with 1 and 2 workers. Each
several times; medians as MB/s of compressed input and as a ratio to gzip -dc; peak RSS of
every process tree and peak temporary disk. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

try:
    import psutil
except ImportError:
    sys.exit(
        "bench/bench.py measures memory and CPU with psutil, which is not installed: "
        "pip install 'imagenet2017-tfds[bench]'"
    )

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.corpus import ORDERS, write_corpus  # noqa: E402

BIN = Path(sys.executable).parent
LAUNCHER = (
    ROOT / "imagenet2017_tfds" / "launch" / "beam_build.py"
)  # the local-engine launcher (`make beam-build`)
START_UP = "tfds build start-up (--help)"
DECODE_TRAIN = "ours: cached, decode_train"
ONE_WORKER = "ours: cached, 1 worker"
FLOOR = "floor: md5 + rapidgzip"
FIRST_AF = "ours: first build, annotations first"
FLINK_1, FLINK_2 = "ours: Flink 1 worker", "ours: Flink 2 workers"


def process_kind(cmdline: list[str]) -> str:
    """What a process of a Beam build is, by its command line (the launcher's)."""
    if cmdline and os.path.basename(cmdline[0]) == "java":
        return "JVM"
    if any(a.startswith("--harness_of=") or a.endswith("sdk_worker_main") for a in cmdline):
        return "SDK workers"  # the harness, one per worker (beam_boot's child)
    if any(a.endswith("beam_boot.py") for a in cmdline):
        return "SDK worker boots"
    if any(a.endswith("/tfds") for a in cmdline) and "build" in cmdline:
        return "tfds build"
    if any(a.endswith("beam_build.py") for a in cmdline):
        return "launcher"
    return "other"


def _sample_tree(proc: psutil.Process, cpu: dict, each: dict | None = None) -> int:
    """RSS of the process tree now; records each process's CPU seconds in `cpu`, and with
    `each`, pid -> {kind, peak rss, cpu} (the kind from the latest command line: a child is
    first seen with its parent's, before it execs)."""
    total = 0
    try:
        tree = [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return 0
    for p in tree:
        with contextlib.suppress(psutil.Error):
            rss = p.memory_info().rss
            total += rss
            t = p.cpu_times()
            cpu[p.pid] = t.user + t.system
            if each is not None:
                seen = each.setdefault(p.pid, {"rss": 0, "kind": "other"})
                seen.update(cpu=cpu[p.pid], rss=max(seen["rss"], rss))
                cmdline = p.cmdline()  # empty once the process has ended
                if cmdline:
                    seen["kind"] = process_kind(cmdline)
    return total


def _machine_cpu() -> float:
    """CPU seconds every process of the machine has used so far (all cores)."""
    t = psutil.cpu_times()
    return (
        t.user + t.system + getattr(t, "nice", 0) + getattr(t, "irq", 0) + getattr(t, "softirq", 0)
    )


def by_kind(each: dict) -> dict:
    """kind -> processes, CPU seconds (all of them), peak RSS of the largest one."""
    out: dict[str, dict] = {}
    for seen in each.values():
        k = out.setdefault(seen["kind"], {"processes": 0, "cpu_s": 0.0, "peak_rss_mb": 0.0})
        k["processes"] += 1
        k["cpu_s"] += seen["cpu"]
        k["peak_rss_mb"] = max(k["peak_rss_mb"], seen["rss"] / 1e6)
    return out


def _disk(top: Path, exclude: Path) -> int:
    total = 0
    for folder, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if Path(folder, d) != exclude]
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(folder, name)).st_size

    return total


class RunFailed(RuntimeError):
    def __init__(self, message: str, last_line: str):
        super().__init__(message)
        self.last_line = last_line


def run(command, env=None, disk=None, shell=False) -> dict:
    """Runs one command: wall seconds, peak RSS of its process tree, peak bytes written under
    disk = (work dir, corpus dir to leave out): outputs, caches and temporary files."""
    peak = {"rss": 0, "disk": 0}
    cpu: dict[int, float] = {}  # pid -> last CPU seconds seen (children gone are kept)
    each: dict[int, dict] = {}  # pid -> kind, peak RSS, CPU seconds
    baseline = _disk(*disk) if disk else 0
    machine_cpu = _machine_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen(
        command, env=env, shell=shell, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        ps = psutil.Process(proc.pid)
    except psutil.Error:  # already gone
        ps = None
    done = threading.Event()

    def sample():
        tick = 0
        while not done.is_set():
            if ps is not None:
                peak["rss"] = max(peak["rss"], _sample_tree(ps, cpu, each))
            if disk and tick % 5 == 0:
                peak["disk"] = max(peak["disk"], _disk(*disk) - baseline)
            tick += 1
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    if proc.returncode != 0:
        lines = err.decode(errors="replace").strip().splitlines() or ["(no output)"]
        raise RunFailed(f"{command} failed:\n" + "\n".join(lines[-40:]), lines[-1])
    root = cpu.pop(proc.pid, 0.0)
    # The machine is shared: what other processes took meanwhile (all of its CPU less ours).
    others = max(0.0, _machine_cpu() - machine_cpu - root - sum(cpu.values()))
    return {
        "seconds": seconds,
        "rss": peak["rss"],
        "disk": peak["disk"],
        "cpu_root": root,
        "cpu_children": sum(cpu.values()),
        "by_kind": by_kind(each),
        "cpu_others": others,
    }


def _kinds(runs: list[dict]) -> dict:
    """Per kind of process: the CPU of the median run, the largest RSS over the runs."""
    median = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    return {
        kind: dict(v, peak_rss_mb=max(r["by_kind"].get(kind, v)["peak_rss_mb"] for r in runs))
        for kind, v in median["by_kind"].items()
    }


def read_passes(data_dir: Path) -> int | None:
    """How many times the build read the CLS-LOC archive (its metadata.json)."""
    for meta in data_dir.glob("imagenet2017/clsloc/*/metadata.json"):
        return json.loads(meta.read_text())["inputs"]["clsloc"].get("passes")
    return None


def _phase(row: dict, start_up: dict) -> dict:
    """The generation phase of a build: less the CLI's start-up, in seconds and CPU."""
    seconds = row["seconds"] - start_up["seconds"]
    cpu = row["cpu_s_main_process"] + row["cpu_s_child_processes"] - start_up["cpu_s_main_process"]
    return {"seconds": seconds, "cpu_s": cpu, "cores_used": cpu / seconds if seconds > 0 else None}


def workers_speedup(one: dict, workers: dict, start_up: dict | None) -> dict:
    """A worker process per core against one, whole builds and their generation phases."""
    out = {"workers": os.cpu_count(), "speedup": one["seconds"] / workers["seconds"]}
    if start_up is None:
        return out
    p1, pn = _phase(one, start_up), _phase(workers, start_up)
    if p1["seconds"] > 0 and pn["seconds"] > 0 and pn["cpu_s"] > 0:
        out.update(
            one_worker_phase=p1,
            workers_phase=pn,
            phase_speedup=p1["seconds"] / pn["seconds"],
            # No schedule beats the workers' CPU spread over every core.
            phase_bound=p1["seconds"] / (pn["cpu_s"] / os.cpu_count()),
        )
    return out


def measure(name: str, make, reps: int, env, work: Path, corpus: Path, mb: float) -> dict:
    """`reps` runs of one measurement; any failed run (a Beam run's too) fails the benchmark."""
    runs = []
    for i in range(reps):
        command, shell = make(i)
        runs.append(run(command, env=env, shell=shell, disk=(work, corpus)))
        for scratch in work.glob("*[0-9]"):
            shutil.rmtree(scratch, ignore_errors=True)
    seconds = statistics.median(r["seconds"] for r in runs)
    return {
        "name": name,
        "seconds": seconds,
        "all_seconds": [r["seconds"] for r in runs],
        "mb_per_s": mb / seconds,
        "peak_rss_mb": max(r["rss"] for r in runs) / 1e6,
        "peak_disk_mb": max(r["disk"] for r in runs) / 1e6,
        "cpu_s_main_process": statistics.median(r["cpu_root"] for r in runs),
        "cpu_s_child_processes": statistics.median(r["cpu_children"] for r in runs),
        "by_kind": _kinds(runs),
        "cpu_s_other_processes": statistics.median(r["cpu_others"] for r in runs),
    }


@dataclass
class Corpus:
    """The benchmark's corpora and the environment every measured command runs in."""

    work: Path
    folder: Path  # annotations last (the order `tar` gives)
    annotations_first: Path  # the same members, Annotations and ImageSets before Data
    archive: Path
    mb: float  # the archive's compressed size
    env: dict
    cached: Path  # the download dir whose verdict, catalog and index the cached runs reuse

    @classmethod
    def write(cls, work: Path, size_mb: float) -> Corpus:
        shutil.rmtree(work, ignore_errors=True)
        folder = work / "corpus"
        archive = write_corpus(folder, size_mb)
        annotations_first = work / "corpus-annotations-first"
        write_corpus(annotations_first, size_mb, order="annotations_first")
        env = dict(
            os.environ,
            PYTHONPATH=str(ROOT),
            IMAGENET2017_CHECKSUMS=str(folder / "checksums.tsv"),
            TF_CPP_MIN_LOG_LEVEL="2",
            TMPDIR=str(work / "tmp"),
        )
        (work / "tmp").mkdir()
        mb = archive.stat().st_size / 1e6
        return cls(work, folder, annotations_first, archive, mb, env, work / "cached-downloads")

    def tfds_build(self, data_dir, *extra, cached=False, manual_dir=None, config="clsloc") -> list:
        command = [str(BIN / "tfds"), "build", "imagenet2017", "--imports", "imagenet2017_tfds"]
        command += ["--config", config, "--manual_dir", str(manual_dir or self.folder)]
        command += ["--data_dir", str(data_dir), *extra]
        return command + ["--download_dir", str(self.cached)] if cached else command

    def flink_build(self, data_dir: Path, workers: int, manual_dir=None, download_dir=None) -> list:
        command = [sys.executable, str(LAUNCHER), "--runner", "flink", "--workers", str(workers)]
        command += ["--manual_dir", str(manual_dir or self.folder), "--data_dir", str(data_dir)]
        command += ["--download_dir", str(download_dir or self.cached), "--timeout", "3600"]
        return command + ["--timeline", f"{data_dir}.timeline.json"]


# ------------------------------------------------------------------ the measurements
# Each gives the command of repetition i (and whether it runs in a shell), in the table's order.

DIRECT = "--beam_pipeline_options=runner=DirectRunner,direct_running_mode=multi_processing,direct_num_workers="


def gzip_reference(c: Corpus, i: int):
    return f"gzip -dc '{c.archive}' > /dev/null", True


def md5sum(c: Corpus, i: int):
    return ["md5sum", str(c.archive)], False


def verify(c: Corpus, i: int):
    return [sys.executable, "-m", "imagenet2017_tfds.tools.cli", "verify", str(c.folder)], False


def cached_verdict_check(c: Corpus, i: int):
    program = ROOT / "bench" / "cached_verdict.py"
    return [sys.executable, str(program), str(c.archive), str(c.cached / "imagenet2017")], False


def floor(c: Corpus, i: int):
    return [sys.executable, str(ROOT / "bench" / "floor.py"), str(c.archive)], False


def start_up(c: Corpus, i: int):
    # What every `tfds build` pays before any builder code runs: TFDS's CLI imports
    # TensorFlow and Apache Beam at start (tensorflow_datasets/scripts/cli/convert_format_utils).
    return [str(BIN / "tfds"), "build", "--help"], False


def peer(c: Corpus, i: int):
    command = [sys.executable, str(ROOT / "bench" / "peer.py"), "--manual_dir", str(c.folder)]
    return command + ["--data_dir", str(c.work / f"peer{i}")], False


def first_build(c: Corpus, i: int):
    return c.tfds_build(c.work / f"first{i}"), False


def first_build_annotations_first(c: Corpus, i: int):
    sums = f"IMAGENET2017_CHECKSUMS={c.annotations_first / 'checksums.tsv'}"
    data_dir = c.work / f"firstaf{i}"
    return ["env", sums, *c.tfds_build(data_dir, manual_dir=c.annotations_first)], False


def verdict_cached(c: Corpus, i: int):
    return c.tfds_build(c.work / f"second{i}", cached=True), False


def one_worker(c: Corpus, i: int):
    # The generation phase (verdict and scan cached) in this process alone: against the row
    # above (a worker process per core), the speed-up of the workers.
    config = '{"name": "clsloc", "workers": 1}'
    return c.tfds_build(c.work / f"one{i}", cached=True, config=config), False


def decode_train(c: Corpus, i: int):
    # Validation and test images are always decoded once; this decodes every train image too.
    config = '{"name": "clsloc", "decode_train": true}'
    return c.tfds_build(c.work / f"decode{i}", cached=True, config=config), False


def beam_1_worker(c: Corpus, i: int):
    return c.tfds_build(c.work / f"beam1-{i}", DIRECT + "1", cached=True), False


def beam_2_workers(c: Corpus, i: int):
    return c.tfds_build(c.work / f"beam2-{i}", DIRECT + "2", cached=True), False


# Beam's Flink job server with its embedded cluster, SDK workers as processes, the package
# staged from setup.py: `make beam-build RUNNER=flink` (LAUNCHER).
def flink_1_worker(c: Corpus, i: int):
    return c.flink_build(c.work / f"flink1-{i}", 1), False


def flink_2_workers(c: Corpus, i: int):
    return c.flink_build(c.work / f"flink2-{i}", 2), False


GZIP, VERDICT_CACHED = "gzip -dc (reference)", "ours: verdict cached"
BEAM_1, BEAM_2 = "ours: Beam 1 worker", "ours: Beam 2 workers"
MEASUREMENTS = {
    GZIP: gzip_reference,
    "md5sum": md5sum,
    "ours: verify (md5 alone)": verify,
    "ours: cached verdict check": cached_verdict_check,
    FLOOR: floor,
    START_UP: start_up,
    "peer: md5 + TFDS iter_archive": peer,
    "ours: first build": first_build,
    FIRST_AF: first_build_annotations_first,
    VERDICT_CACHED: verdict_cached,
    ONE_WORKER: one_worker,
    DECODE_TRAIN: decode_train,
    BEAM_1: beam_1_worker,
    BEAM_2: beam_2_workers,
    FLINK_1: flink_1_worker,
    FLINK_2: flink_2_workers,
}
# The measurements that reuse the warm download dir.
CACHED = {VERDICT_CACHED, "ours: cached verdict check", BEAM_1, BEAM_2, FLINK_1, FLINK_2}


def warm_up(c: Corpus, skip: set[str], flink_scaling: bool) -> None:
    """Fills the download dir the cached runs reuse, and fetches Flink's job server before
    any timing."""
    if not CACHED.issubset(skip):
        command = c.tfds_build(c.work / "warm", cached=True)
        subprocess.run(command, env=c.env, check=True, capture_output=True)
    if flink_scaling or not {FLINK_1, FLINK_2} <= skip:
        fetch = [sys.executable, str(LAUNCHER), "--fetch_only"]
        subprocess.run(fetch, env=c.env, check=True, capture_output=True)


def write_scaled(
    c: Corpus, folder: Path, size: float, order: str = ORDERS[0]
) -> tuple[dict, float]:
    """A corpus of about `size` MB in `folder`: the environment whose checksums know it, and
    its archive's MB."""
    write_corpus(folder, size, order=order)
    env = dict(c.env, IMAGENET2017_CHECKSUMS=str(folder / "checksums.tsv"))
    return env, (folder / "ILSVRC2017_CLS-LOC.tar.gz").stat().st_size / 1e6


def first_builds_by_size(c: Corpus, sizes: list[float], reps: int) -> list[dict]:
    """First builds of corpora of each size, in each member order: time, reads, peak RSS."""
    scaling = []
    for order in ORDERS:
        for size in sizes:
            folder = c.work / f"scale-{size:g}"
            env, mb = write_scaled(c, folder, size, order)
            runs = []
            for i in range(reps):
                command = c.tfds_build(c.work / f"scale{i}", manual_dir=folder)
                runs.append(run(command, env=env, disk=(c.work, folder)))
                passes = read_passes(c.work / f"scale{i}")
                shutil.rmtree(c.work / f"scale{i}", ignore_errors=True)
            scaling.append(
                {
                    "order": order,
                    "corpus_mb": mb,
                    "passes": passes,
                    "seconds": statistics.median(r["seconds"] for r in runs),
                    "peak_rss_mb": max(r["rss"] for r in runs) / 1e6,
                }
            )
            shutil.rmtree(folder, ignore_errors=True)
    return scaling


def flink_builds_by_size(c: Corpus, sizes: list[float], reps: int) -> list[dict]:
    """Flink builds with 1 and 2 workers of corpora of each size, verdict and scan cached by a
    default build first: between two sizes, the rate the fixed start-up does not hide."""
    out = []
    for size in sizes:
        folder, downloads = c.work / f"flink-scale-{size:g}", c.work / "flink-scale-downloads"
        env, mb = write_scaled(c, folder, size)
        warm = c.tfds_build(c.work / "flink-scale-warm", manual_dir=folder)
        subprocess.run(
            [*warm, "--download_dir", str(downloads)], env=env, check=True, capture_output=True
        )
        for workers in (1, 2):
            runs = []
            for i in range(reps):
                data_dir = c.work / f"flink-scale{i}"
                command = c.flink_build(data_dir, workers, folder, downloads)
                runs.append(run(command, env=env))
                shutil.rmtree(data_dir, ignore_errors=True)
            seconds = statistics.median(r["seconds"] for r in runs)
            out.append({"workers": workers, "corpus_mb": mb, "seconds": seconds})
        for scratch in (folder, downloads, c.work / "flink-scale-warm"):
            shutil.rmtree(scratch, ignore_errors=True)
    return out


# ------------------------------------------------------------------ what the rows give together


def flink_timelines(by_name: dict, work: Path) -> None:
    """Each Flink row's median timeline: when the job was submitted, its workers up, it ended
    (the launcher's --timeline)."""
    for name, prefix in [(FLINK_1, "flink1-"), (FLINK_2, "flink2-")]:
        steps = [json.loads(p.read_text()) for p in sorted(work.glob(f"{prefix}*.timeline.json"))]
        if name in by_name and steps:
            by_name[name]["timeline"] = {
                k: statistics.median(s[k] for s in steps if s.get(k) is not None)
                for k in steps[0]
                if any(s.get(k) is not None for s in steps)
            }


def flink_speedup(by_name: dict) -> dict | None:
    f1, f2 = (by_name.get(n) for n in (FLINK_1, FLINK_2))
    if not (f1 and f2 and f1["seconds"] and f2["seconds"]):
        return None
    cached_s = (by_name.get(VERDICT_CACHED) or {}).get("seconds")
    out = {
        "speedup_2_vs_1": f1["seconds"] / f2["seconds"],
        "one_worker_vs_default_path": f1["seconds"] / cached_s if cached_s else None,
        "largest_process_rss_mb": max(
            k["peak_rss_mb"] for r in (f1, f2) for k in r["by_kind"].values()
        ),
    }
    steps = f1.get("timeline") or {}
    if steps.get("workers_up") and steps.get("job_finished"):
        # Amdahl with the 1-worker timeline: at best a second worker halves the time the
        # workers run; the rest (start-up, verification, submission, finalizing) stays.
        job = steps["job_finished"] - steps["workers_up"]
        out["speedup_bound"] = f1["seconds"] / (f1["seconds"] - job / 2)
    return out


def decode_train_cost(by_name: dict, corpus: Path) -> dict | None:
    """What decoding every train image once costs, over the same cached build."""
    cached, decode = by_name.get(VERDICT_CACHED), by_name.get(DECODE_TRAIN)
    if not (cached and decode and cached["seconds"] and decode["seconds"]):
        return None
    extra = decode["seconds"] - cached["seconds"]
    images = json.loads((corpus / "counts.json").read_text())["train"]
    return {"extra_seconds": extra, "images": images, "ms_per_image": 1000 * extra / images}


def bound(by_name: dict) -> dict | None:
    """No `tfds build` of this corpus can beat starting the CLI and then reading the file once
    at the floor's speed (and it must also write every byte as shards)."""
    gzip, up, fl = (by_name.get(n) for n in (GZIP, START_UP, FLOOR))
    if not (gzip and up and fl):
        return None
    best = up["seconds"] + fl["seconds"]
    return {"seconds": best, "ratio_to_gzip": gzip["seconds"] / best}


def flink_marginal(by_size: list[dict]) -> dict | None:
    """Per worker count, extra MB over extra seconds between the smallest and the largest
    corpus; 2 workers against 1 on that rate."""
    rates = {}
    for workers in (1, 2):
        sizes = [s for s in by_size if s["workers"] == workers]
        if len(sizes) < 2 or sizes[-1]["seconds"] <= sizes[0]["seconds"]:
            return None
        small, large = sizes[0], sizes[-1]
        rates[workers] = (large["corpus_mb"] - small["corpus_mb"]) / (
            large["seconds"] - small["seconds"]
        )
    return {
        "mb_per_s_1_worker": rates[1],
        "mb_per_s_2_workers": rates[2],
        "speedup_2_vs_1": rates[2] / rates[1],
    }


def steady_states(scaling: list[dict], gzip_rate: float | None) -> dict:
    """Per member order, the rate once start-up is paid: extra MB over extra seconds between
    the smallest and the largest corpus."""
    out = {}
    for order in ORDERS:
        sizes = [sc for sc in scaling if sc["order"] == order]
        if len(sizes) < 2:
            continue
        small, large = sizes[0], sizes[-1]
        steady = (large["corpus_mb"] - small["corpus_mb"]) / (large["seconds"] - small["seconds"])
        out[steady_state_key(order)] = {
            "mb_per_s": steady,
            "ratio_to_gzip": steady / gzip_rate if gzip_rate else None,
            "fixed_seconds": small["seconds"] - small["corpus_mb"] / steady,
            "rss_growth": large["peak_rss_mb"] / small["peak_rss_mb"] - 1,
        }
    return out


def steady_state_key(order: str) -> str:
    return "steady_state" if order == "annotations_last" else f"steady_state_{order}"


def results(
    c: Corpus, reps: int, rows: list[dict], scaling: list[dict], flink_sizes: list[dict]
) -> dict:
    """The JSON: the rows against gzip -dc, and what they give together."""
    by_name = {r["name"]: r for r in rows}
    reference = by_name[GZIP]["seconds"] if GZIP in by_name else None
    for row in rows:
        row["ratio_to_gzip"] = reference / row["seconds"] if reference else None
    gzip_rate = c.mb / reference if reference else None
    for sc in scaling:  # a whole first build, start-up included, against gzip -dc's rate
        sc["ratio_to_gzip"] = sc["corpus_mb"] / sc["seconds"] / gzip_rate if gzip_rate else None
    flink_timelines(by_name, c.work)
    b1, b2 = by_name.get(BEAM_1), by_name.get(BEAM_2)
    machine = {
        "cores": os.cpu_count(),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    result = {
        "corpus_mb": c.mb,
        "reps": reps,
        "machine": machine,
        "rows": rows,
        "beam_speedup_2_vs_1": b1["seconds"] / b2["seconds"] if b1 and b2 else None,
        "scaling": scaling,
        "flink_by_size": flink_sizes,
    }
    cached, one = by_name.get(VERDICT_CACHED), by_name.get(ONE_WORKER)
    derived = {
        "flink": flink_speedup(by_name),
        "decode_train": decode_train_cost(by_name, c.folder),
        "workers_speedup": workers_speedup(one, cached, by_name.get(START_UP))
        if cached and one and cached["seconds"] and one["seconds"]
        else None,
        "bound": bound(by_name),
        "flink_marginal": flink_marginal(flink_sizes),
    }
    result.update({k: v for k, v in derived.items() if v is not None})
    result.update(steady_states(scaling, gzip_rate))
    return result


# ------------------------------------------------------------------ the report


def print_table(result: dict) -> None:
    machine = result["machine"]
    print(
        f"corpus {result['corpus_mb']:.0f} MB compressed; {machine['cores']} cores, "
        f"{machine['memory_gb']} GiB; median of {result['reps']}"
    )
    print(
        f"| {'measurement':32s} | {'s':>7s} | {'MB/s':>7s} | {'× gzip -dc':>10s} | "
        f"{'peak RSS MB':>11s} | {'peak disk MB':>16s} |"
    )
    print(f"|{'-' * 34}|{'-' * 9}|{'-' * 9}|{'-' * 12}|{'-' * 13}|{'-' * 18}|")
    for r in result["rows"]:
        ratio = f"{r['ratio_to_gzip']:.2f}" if r["ratio_to_gzip"] else "-"
        print(
            f"| {r['name']:32s} | {r['seconds']:7.2f} | {r['mb_per_s']:7.1f} | {ratio:>10s} | "
            f"{r['peak_rss_mb']:11.0f} | {r['peak_disk_mb']:16.0f} |"
        )
    for r in result["rows"]:
        if r["cpu_s_child_processes"] > 1:
            print(
                f"{r['name']}: CPU s in the main process {r['cpu_s_main_process']:.1f}, "
                f"in child processes {r['cpu_s_child_processes']:.1f}"
            )


def print_derived(result: dict) -> None:
    if "bound" in result:
        b = result["bound"]
        print(
            f"bound for any `tfds build` of this corpus (start-up + floor): {b['seconds']:.2f} s "
            f"= {b['ratio_to_gzip']:.2f}x gzip -dc"
        )
    if "workers_speedup" in result:
        w = result["workers_speedup"]
        print(f"generation with {w['workers']} worker processes vs 1: {w['speedup']:.2f}x")
        if "phase_speedup" in w:
            p1, pn = w["one_worker_phase"], w["workers_phase"]
            print(
                f"  after start-up: 1 worker {p1['seconds']:.2f} s, {p1['cpu_s']:.1f} CPU s "
                f"({p1['cores_used']:.2f} cores); {w['workers']} workers {pn['seconds']:.2f} s, "
                f"{pn['cpu_s']:.1f} CPU s ({pn['cores_used']:.2f} cores); speed-up "
                f"{w['phase_speedup']:.2f}x, at most {w['phase_bound']:.2f}x on these cores"
            )
    if "decode_train" in result:
        d = result["decode_train"]
        print(
            f"decode_train: +{d['extra_seconds']:.2f} s for {d['images']} train images, "
            f"{d['ms_per_image']:.2f} ms an image"
        )
    if result["beam_speedup_2_vs_1"]:
        print(f"Beam speed-up, 2 workers vs 1: {result['beam_speedup_2_vs_1']:.2f}x")


def print_flink(result: dict) -> None:
    for r in result["rows"]:
        if "Flink" in r["name"] and r["seconds"]:
            kinds = ", ".join(
                f"{k} ({v['processes']}) {v['cpu_s']:.1f} s / {v['peak_rss_mb']:.0f} MB"
                for k, v in sorted(r["by_kind"].items())
            )
            print(f"{r['name']}: CPU s / peak RSS of the largest process, by kind: {kinds}")
            if r.get("timeline"):
                steps = ", ".join(f"{k} {v:.1f}" for k, v in r["timeline"].items())
                print(f"{r['name']}: seconds from the launch (median): {steps}")
            busy = r["cpu_s_other_processes"] / r["seconds"]
            print(
                f"{r['name']}: other processes of the machine meanwhile: "
                f"{r['cpu_s_other_processes']:.1f} CPU s, {busy:.1f} of its cores"
            )
    if "flink" in result:
        f = result["flink"]
        vs = f"{f['one_worker_vs_default_path']:.2f}x" if f["one_worker_vs_default_path"] else "-"
        most = f"{f['speedup_bound']:.2f}x" if f.get("speedup_bound") else "-"
        print(
            f"Flink speed-up, 2 workers vs 1: {f['speedup_2_vs_1']:.2f}x (at most {most} "
            f"from the 1-worker timeline); 1 worker vs the default path (verdict cached): "
            f"{vs} its time; largest process: {f['largest_process_rss_mb']:.0f} MB"
        )
    if "flink_marginal" in result:
        m = result["flink_marginal"]
        sizes = sorted({b["corpus_mb"] for b in result["flink_by_size"]})
        print(
            f"Flink between {sizes[0]:.0f} and {sizes[-1]:.0f} MB: 1 worker "
            f"{m['mb_per_s_1_worker']:.1f} MB/s, 2 workers {m['mb_per_s_2_workers']:.1f} MB/s, "
            f"speed-up {m['speedup_2_vs_1']:.2f}x"
        )


def print_scaling(result: dict) -> None:
    for sc in result["scaling"]:
        ratio = f"{sc['ratio_to_gzip']:.2f}x gzip -dc" if sc["ratio_to_gzip"] else "-"
        print(
            f"ours: first build, {sc['order']}, {sc['corpus_mb']:.0f} MB corpus: "
            f"{sc['seconds']:.2f} s ({ratio}), archive read {sc['passes']}x, "
            f"peak RSS {sc['peak_rss_mb']:.0f} MB"
        )
    for order in ORDERS:
        if (st := result.get(steady_state_key(order))) is not None:
            ratio = f"{st['ratio_to_gzip']:.2f}" if st["ratio_to_gzip"] else "-"
            print(
                f"steady state, {order} (between those sizes): {st['mb_per_s']:.1f} MB/s = "
                f"{ratio}x gzip -dc; fixed cost {st['fixed_seconds']:.1f} s; peak RSS growth "
                f"{st['rss_growth'] * 100:+.1f} %"
            )


def sizes_mb(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=float, default=1024, help="compressed corpus size")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument(
        "--workdir", default=os.path.join(tempfile.gettempdir(), "imagenet2017-bench")
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "results.json"))
    parser.add_argument("--smoke", action="store_true", help="tiny corpus, one repetition")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=list(MEASUREMENTS),
        metavar="NAME",
        help="a row of the table not to measure (repeatable; names hold commas, so one a flag)",
    )
    parser.add_argument("--skip-rows", action="store_true", help="no row of the table")
    parser.add_argument(
        "--scaling",
        type=sizes_mb,
        default="512,1600,2048",
        help="corpus sizes (MB) for peak RSS against size and the steady-state rate; '' skips",
    )
    parser.add_argument(
        "--flink-scaling",
        type=sizes_mb,
        default="512,2048",
        help="corpus sizes (MB) for Flink's marginal rate with 1 and 2 workers; '' skips",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.size_mb, args.reps, args.scaling, args.flink_scaling = 3, 1, [2, 4], [2, 4]
    args.skip = set(MEASUREMENTS) if args.skip_rows else set(args.skip)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    c = Corpus.write(Path(args.workdir), args.size_mb)
    warm_up(c, args.skip, bool(args.flink_scaling))
    rows = [
        measure(name, lambda i, make=make: make(c, i), args.reps, c.env, c.work, c.folder, c.mb)
        for name, make in MEASUREMENTS.items()
        if name not in args.skip
    ]
    scaling = first_builds_by_size(c, args.scaling, args.reps)
    flink = flink_builds_by_size(c, args.flink_scaling, args.reps)
    result = results(c, args.reps, rows, scaling, flink)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print_table(result)
    print_derived(result)
    print_flink(result)
    print_scaling(result)
    print(f"JSON: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
