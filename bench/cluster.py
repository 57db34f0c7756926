"""The simulated cluster's benchmark (`make bench`; alone, as root: python bench/cluster.py).

The corpus of bench/corpus.py (config clsloc) built from gs:// into gs:// four ways, on one
simulated cluster (launch/cluster.py: hosts as network namespaces, the store bed on a host of
its own):
- launcher: `beam-build --runner flink` on host submitter, with its own Flink (embedded in
  its job server, on loopback): one host does everything;
- 1 worker host: a Flink 1.19 JobManager on host jobmanager and one TaskManager of 2 slots
  on worker-1, the launcher on submitter with --flink_master;
- 2 worker hosts: the same with a TaskManager of 1 slot on each of worker-1 and worker-2;
- 2 Spark worker hosts: a Spark 3.5 master on the head host and a worker of 1 core on each
  of worker-1 and worker-2 (launch/spark_cluster.py), the launcher on submitter with
  --spark_master: the same ranges fetched by another engine's executors.
Every run has 2 SDK workers (Flink slots, Spark executors): only where they run changes. Every run reads its
archive from the same store, so the store's CPU is in all four, and the launcher's run is
the one-host baseline of the same data path (from local disk it would compare the store too).
det is not built: bench/corpus.py makes a CLS-LOC archive only.

What each run reports:
- seconds: the launcher's, from its start to its exit (the verifying pass, the job and the
  finished dataset's move included); timeline: its job_submitted and job_finished;
- marginal rate: with two corpus sizes or more, the extra MB of archive over the extra
  seconds between the smallest and the largest, per run: what one more MB costs once the
  fixed part (JVMs, TensorFlow's import in each worker, submission, finishing) is paid, the
  fixed part itself as fixed_seconds; job_mb_per_s: the archive's MB over the job's seconds
  (job_submitted to job_finished), available from one size;
- fetched: the archive bytes each host fetched, by the store's own counts per client
  address. On the cluster the submitter's are the verifying pass (checksum and scan in one
  fetch: 1.0 times the archive), the worker hosts' their ranges; beyond_verifying_vs_archive
  is their sum over the archive's size. The launcher's host does both: its ranges are what it
  fetched beyond one archive;
- cpu_seconds: per host (and the store's host), the CPU of its processes during the run,
  summed from /proc (utime + stime, sampled every SAMPLE_SECONDS; a process living less than
  that is missed), by kind of process, and each host's peak resident memory (the largest sum
  of its processes' RSS in a sample); machine from /proc/stat, other the rest (this script,
  the kernel's threads, any other load on the machine); least_memory_available_gb, the
  machine's least MemAvailable during the run;
- cpu_bound_mb_per_s: the machine's cores over the CPU seconds the bed spent per MB: the rate
  the run would have if the cores were its only limit; bed_cores: the bed's CPU seconds over
  the run's seconds, the cores it got. Every host shares the machine's cores, so a second
  worker host adds no core: a ratio of seconds between two runs is about their ratio of
  bed_cores over their ratio of CPU per MB (`ratios`), not a ratio of hosts;
- shards: the md5 of every shard (the store's own, per object); identical across the runs of
  one size or the benchmark fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.corpus import write_corpus  # noqa: E402
from imagenet2017_tfds.launch import flink_cluster, spark_cluster  # noqa: E402
from imagenet2017_tfds.launch.cluster import ClusterBed  # noqa: E402
from imagenet2017_tfds.launch.cluster_build import fetch, submit_command  # noqa: E402

HEAD = "jobmanager"  # the Flink JobManager's host, or the Spark master's
HOSTS = [HEAD, "worker-1", "worker-2", "submitter"]
SUBMITTER = "submitter"
STORE = "store"  # the store bed's host, for its CPU
# Run -> its runner and the hosts of its workers (none: the launcher's own Flink on submitter).
RUNS = {
    "launcher": ("flink", []),
    "1 worker host": ("flink", ["worker-1"]),
    "2 worker hosts": ("flink", ["worker-1", "worker-2"]),
    "2 Spark worker hosts": ("spark", ["worker-1", "worker-2"]),
}
WORKERS = 2  # SDK workers, Flink slots or Spark executors: the same in every run
BUCKET = "i2017-bench-cluster"
ARCHIVE = "ILSVRC2017_CLS-LOC.tar.gz"
CONFIG = "clsloc"
TIMEOUT = 3600  # the launcher's --timeout
SAMPLE_SECONDS = 0.5
SMALL_MB = [16.0]  # --small: one size, minutes; no marginal rate from one size
SIZES_MB = [400.0, 1600.0]
# A process's kind, by what its command line holds (the first match).
KINDS = [
    ("StandaloneSessionClusterEntrypoint", "Flink JobManager"),
    ("TaskManagerRunner", "Flink TaskManager"),
    ("FlinkJobServerDriver", "Beam job server"),
    ("SparkJobServerDriver", "Beam job server"),
    ("CoarseGrainedExecutorBackend", "Spark executor"),  # before Worker: it names Worker@
    ("org.apache.spark.deploy.master.Master", "Spark master"),
    ("org.apache.spark.deploy.worker.Worker", "Spark worker"),
    ("tfds build", "tfds build"),  # before beam_boot: its pipeline options name the boot
    ("beam_boot", "SDK workers"),
    ("imagenet2017_tfds.tools.cli", "launcher"),
    ("fake-gcs-server", "fake-gcs-server"),
    ("launch.stores --front", "store front"),
    ("moto.server", "moto"),
]

# Run inside the store's namespace (gcsfs): the md5 of each shard under a data dir, or a
# prefix removed (the memory backend holds every object in RAM).
_STORE_SCRIPT = r"""
import json, sys
import fsspec
op, url = sys.argv[1:3]
fs, root = fsspec.core.url_to_fs(url)
if op == "digests":
    found = fs.find(root, detail=True) if fs.exists(root) else {}
    print(json.dumps({p.rsplit("/", 1)[-1]: d.get("md5Hash") for p, d in found.items()
                      if ".tfrecord-" in p}))
elif fs.exists(root):
    fs.rm(root, recursive=True)
    print("{}")
else:
    print("{}")
"""


# ------------------------------------------------------------------------------ CPU


def ticks(pid: int) -> tuple[int, int] | None:
    """(start time, utime + stime) of pid in clock ticks, None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[19]), int(fields[11]) + int(fields[12])


def rss(pid: int) -> int:
    """Resident bytes of pid (0 once it is gone)."""
    try:
        pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError):
        return 0
    return pages * os.sysconf("SC_PAGE_SIZE")


def memory_available() -> int:
    """The machine's MemAvailable, in bytes: how close the run came to its memory's end."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def kind(pid: int) -> str:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "?"
    return next((k for mark, k in KINDS if mark in cmdline), cmdline.split(" ", 1)[0] or "?")


def machine_busy_ticks() -> int:
    """Every core's busy time so far (/proc/stat: all but idle and iowait)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return sum(fields) - fields[3] - fields[4]


class CpuSampler(threading.Thread):
    """The CPU each host's processes use from start() to stop(): processes already running
    count from their first sample, new ones from zero."""

    def __init__(self, bed: ClusterBed):
        super().__init__(daemon=True)
        self.bed = bed
        self.first: dict[tuple, int] = {}  # (host, pid, start time) -> ticks at first sample
        self.last: dict[tuple, int] = {}
        self.kinds: dict[tuple, str] = {}
        self.peak_rss: dict[str, int] = {}  # host -> the largest sum of its processes' RSS
        self.least_available = memory_available()
        self.done = threading.Event()

    def host_pids(self) -> dict[str, list[int]]:
        found = {host: self.bed.pids(host) for host in HOSTS}
        found[STORE] = self.bed.store.pids()
        return found

    def sample(self, baseline: bool = False) -> None:
        self.least_available = min(self.least_available, memory_available())
        for host, pids in self.host_pids().items():
            resident = sum(map(rss, pids))
            self.peak_rss[host] = max(self.peak_rss.get(host, 0), resident)
            for pid in pids:
                if (seen := ticks(pid)) is None:
                    continue
                key = (host, pid, seen[0])
                self.first.setdefault(key, seen[1] if baseline else 0)
                self.last[key] = seen[1]
                # Read each time: a child seen between its fork and its exec has its
                # parent's command line (the launcher's, for `tfds build`).
                if (now := kind(pid)) != "?" or key not in self.kinds:
                    self.kinds[key] = now

    def start(self) -> None:
        self.machine = machine_busy_ticks()
        self.sample(baseline=True)
        super().start()

    def run(self) -> None:
        while not self.done.wait(SAMPLE_SECONDS):
            self.sample()

    def stop(self) -> dict:
        self.done.set()
        self.join()
        self.sample()
        return self.report(machine_busy_ticks() - self.machine)

    def report(self, machine_ticks: int) -> dict:
        tick = os.sysconf("SC_CLK_TCK")
        hosts: dict[str, dict] = {}
        for key, last in self.last.items():
            used = (last - self.first[key]) / tick
            host = hosts.setdefault(key[0], {"total": 0.0, "by_kind": {}})
            host["total"] += used
            host["by_kind"][self.kinds[key]] = host["by_kind"].get(self.kinds[key], 0.0) + used
        for name, host in hosts.items():
            host["by_kind"] = {k: round(v, 2) for k, v in host["by_kind"].items() if v > 0}
            host["total"] = round(host["total"], 2)
            host["peak_rss_gb"] = round(self.peak_rss.get(name, 0) / 1e9, 3)
        bed = sum(h["total"] for h in hosts.values())
        machine = machine_ticks / tick
        rounded = {"bed": bed, "machine": machine, "other": machine - bed}
        out = {"hosts": hosts, **{k: round(v, 2) for k, v in rounded.items()}}
        out["least_memory_available_gb"] = round(self.least_available / 1e9, 3)
        return out


# ------------------------------------------------------------------------------ the store


def store_script(bed: ClusterBed, op: str, url: str) -> dict:
    result = bed.store.run(
        [sys.executable, "-c", _STORE_SCRIPT, op, url], capture_output=True, text=True, timeout=600
    )
    if result.returncode != 0:
        sys.exit(f"bench/cluster.py: {op} {url} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def upload_corpus(bed: ClusterBed, work: Path, size_mb: float) -> dict:
    """The corpus of size_mb written here and uploaded (the archive into TAG/raw/, its
    checksums beside: the submitter sees no folder of this machine's); its URLs and size."""
    tag = f"corpus-{size_mb:g}mb"
    folder = work / tag
    archive = write_corpus(folder, size_mb)
    base = f"gs://{BUCKET}/{tag}"
    bed.store.upload(archive, f"{base}/raw/")
    bed.store.upload(folder / "checksums.tsv", f"{base}/checksums.tsv")
    corpus = {"size_mb": size_mb, "base": base, "bytes": archive.stat().st_size}
    for path in folder.iterdir():  # uploaded: the machine's disk is not needed for it
        path.unlink()
    folder.rmdir()
    return corpus


# ------------------------------------------------------------------------------ a build


def launcher_command(corpus: dict, run: str, runner: str, master: str | None) -> list[str]:
    """The launcher on the submitter (cluster_build.submit_command): with master, submitting
    to that cluster of runner's; else with its own Flink. Nothing staged in every run: the
    workers import the package from its folder, which every host sees, so that no run pays
    for an sdist the others do not."""
    raw = f"{corpus['base']}/raw"
    command = submit_command(runner, master, CONFIG, raw, run, workers=WORKERS, timeout=TIMEOUT)
    return command + ["--timeline", "/tmp/timeline.json"]


def build(bed: ClusterBed, corpus: dict, name: str, master: str | None) -> dict:
    """One build on the submitter, timed, its CPU sampled on every host and its fetches
    counted by the store; what it reports (see the module)."""
    run = f"gs://{BUCKET}/{name.replace(' ', '-')}-{corpus['size_mb']:g}mb"
    env = {"IMAGENET2017_CHECKSUMS": f"{corpus['base']}/checksums.tsv", "TF_CPP_MIN_LOG_LEVEL": "2"}
    bed.run(SUBMITTER, ["rm", "-rf", "/tmp/beam-work", "/tmp/timeline.json"], check=True)
    bed.store.reset_counts()
    sampler = CpuSampler(bed)
    sampler.start()
    started = time.monotonic()
    command = launcher_command(corpus, run, RUNS[name][0], master)
    result = bed.run(SUBMITTER, command, env=env, cwd=str(ROOT), capture_output=True, text=True)
    seconds = time.monotonic() - started
    cpu = sampler.stop()
    if result.returncode != 0:
        sys.exit(f"bench/cluster.py: the {name} build failed:\n{result.stderr[-6000:]}")
    row = {"run": name, "corpus_mb": corpus["bytes"] / 1e6, "seconds": round(seconds, 2)}
    row["timeline"] = timeline(bed)
    row.update(fetched(bed, corpus, run, master is None))
    row["cpu_seconds"] = cpu
    row["shards"] = store_script(bed, "digests", f"{run}/data")
    store_script(bed, "remove", run)
    return row


def timeline(bed: ClusterBed) -> dict:
    done = bed.run(SUBMITTER, ["cat", "/tmp/timeline.json"], capture_output=True, text=True)
    return json.loads(done.stdout) if done.returncode == 0 else {}


def fetched(bed: ClusterBed, corpus: dict, run: str, one_host: bool) -> dict:
    """The archive bytes each host fetched, what it uploaded, and the ranges' share."""
    counts = bed.store.counts()
    url = f"{corpus['base']}/raw/{ARCHIVE}"
    size = corpus["bytes"]
    by_host = {h: counts.total("read", client=bed.hosts[h].address, url=url) for h in HOSTS}
    uploaded = {h: counts.total("uploaded", client=bed.hosts[h].address) for h in HOSTS}
    if one_host:  # one pass to verify, the rest the ranges (the cluster runs show the split)
        beyond = by_host[SUBMITTER] - size
    else:
        beyond = sum(v for h, v in by_host.items() if h != SUBMITTER)
    return {
        "archive_bytes": size,
        "fetched": by_host,
        "submitter_vs_archive": by_host[SUBMITTER] / size,
        "beyond_verifying_vs_archive": beyond / size,
        "uploaded": uploaded,
        "requests": counts.total(),
    }


# ------------------------------------------------------------------------------ the runs


def runs_of(bed: ClusterBed, corpora: list[dict], name: str, logs: Path) -> list[dict]:
    """Every corpus built by run `name`, on a cluster of its own (started for it and stopped
    after, so no run's JVMs take CPU from another's)."""
    runner, workers = RUNS[name]
    if not workers:
        return [build(bed, corpus, name, None) for corpus in corpora]
    slots = WORKERS // len(workers)
    folder = logs / name.replace(" ", "-")
    folder.mkdir(parents=True, exist_ok=True)
    if runner == "flink":
        flink = flink_cluster.start(bed, HEAD, workers, log_dir=folder, slots=slots)
        cluster, master = flink, flink.rest
    else:
        spark = spark_cluster.start(bed, HEAD, workers, log_dir=folder, cores=slots)
        cluster, master = spark, spark.url
    try:
        return [build(bed, corpus, name, master) for corpus in corpora]
    finally:
        cluster.stop()
        end_leftovers(bed, [HEAD, *workers])


def end_leftovers(bed: ClusterBed, hosts: list[str]) -> None:
    """The SDK workers a TaskManager leaves (kept a minute after the job): killed by pid, so
    the next run's CPU is its own."""
    for host in hosts:
        holder = bed.hosts[host].holder.pid
        for pid in bed.pids(host):
            if pid != holder:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def derive(rows: list[dict], cores: int) -> None:
    """Each row's job rate, CPU per MB and the rate its CPU alone would allow."""
    for row in rows:
        mb, cpu = row["corpus_mb"], row["cpu_seconds"]
        steps = row["timeline"]
        if steps.get("job_submitted") is not None and steps.get("job_finished") is not None:
            row["job_mb_per_s"] = mb / (steps["job_finished"] - steps["job_submitted"])
        row["bed_cpu_s_per_mb"] = cpu["bed"] / mb
        row["cpu_bound_mb_per_s"] = cores / row["bed_cpu_s_per_mb"]
        row["machine_busy_cores"] = cpu["machine"] / row["seconds"]
        # The cores the bed got: with its CPU per MB, what sets its rate on shared cores.
        row["bed_cores"] = cpu["bed"] / row["seconds"]


def marginal(rows: list[dict]) -> dict:
    """Per run: the extra MB over the extra seconds from the smallest corpus to the largest,
    and the fixed seconds that rate leaves; and the CPU per extra MB (the cause)."""
    out = {}
    for name in RUNS:
        mine = sorted((r for r in rows if r["run"] == name), key=lambda r: r["corpus_mb"])
        if len(mine) < 2 or mine[-1]["seconds"] <= mine[0]["seconds"]:
            continue
        small, large = mine[0], mine[-1]
        extra_mb = large["corpus_mb"] - small["corpus_mb"]
        rate = extra_mb / (large["seconds"] - small["seconds"])
        cpu = (large["cpu_seconds"]["bed"] - small["cpu_seconds"]["bed"]) / extra_mb
        out[name] = {
            "mb_per_s": rate,
            "fixed_seconds": small["seconds"] - small["corpus_mb"] / rate,
            "bed_cpu_s_per_extra_mb": cpu,
        }
    return out


def ratios(result: dict) -> dict:
    """Each cluster run against the launcher and 2 hosts against 1: of the marginal rates
    (or, from one size, of the largest corpus's seconds) and of the CPU per MB, their cause."""
    largest = max(r["corpus_mb"] for r in result["runs"])
    by_run = {r["run"]: r for r in result["runs"] if r["corpus_mb"] == largest}
    rates = result["marginal"]
    out = {}
    pairs = [("1 worker host", "launcher"), ("2 worker hosts", "launcher")]
    pairs += [("2 worker hosts", "1 worker host"), ("2 Spark worker hosts", "2 worker hosts")]
    for a, b in pairs:
        if a not in by_run or b not in by_run:  # a run left out (--runs)
            continue
        pair = {"seconds_ratio": by_run[b]["seconds"] / by_run[a]["seconds"]}
        pair["cpu_per_mb_ratio"] = by_run[a]["bed_cpu_s_per_mb"] / by_run[b]["bed_cpu_s_per_mb"]
        pair["bed_cores_ratio"] = by_run[a]["bed_cores"] / by_run[b]["bed_cores"]
        if a in rates and b in rates:
            pair["marginal_rate_ratio"] = rates[a]["mb_per_s"] / rates[b]["mb_per_s"]
        out[f"{a} vs {b}"] = pair
    return out


def identical(rows: list[dict]) -> dict:
    """Per corpus size, whether every run's shards have the same names and md5s."""
    out = {}
    for mb in sorted({r["corpus_mb"] for r in rows}):
        shards = [r["shards"] for r in rows if r["corpus_mb"] == mb]
        same = all(s == shards[0] for s in shards)
        out[f"{mb:.1f}"] = same and bool(shards[0]) and None not in shards[0].values()
    return out


def print_row(row: dict) -> None:
    gb = {h: round(v / 1e9, 3) for h, v in row["fetched"].items() if v}
    cpu = {h: v["total"] for h, v in row["cpu_seconds"]["hosts"].items()}
    print(
        f"{row['run']}, {row['corpus_mb']:.0f} MB: {row['seconds']:.1f} s; fetched (GB) {gb}; "
        f"beyond the verifying pass {row['beyond_verifying_vs_archive']:.3f}x; CPU s {cpu}, "
        f"other {row['cpu_seconds']['other']}",
        flush=True,
    )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sizes-mb",
        default=",".join(f"{s:g}" for s in SIZES_MB),
        help="corpus sizes (MB); two or more give the marginal rate",
    )
    parser.add_argument("--small", action="store_true", help=f"one corpus of {SMALL_MB[0]:g} MB")
    parser.add_argument(
        "--runs", default=",".join(RUNS), help=f"the runs to make, of: {', '.join(RUNS)}"
    )
    parser.add_argument("--work", default="/tmp/imagenet2017-bench-cluster")
    parser.add_argument("--out", default=str(ROOT / "bench" / "out" / "cluster.json"))
    args = parser.parse_args(argv)
    args.sizes = SMALL_MB if args.small else [float(s) for s in args.sizes_mb.split(",") if s]
    args.runs = [r for r in args.runs.split(",") if r]
    unknown = [r for r in args.runs if r not in RUNS]
    if unknown:
        parser.error(f"--runs {unknown[0]!r}: expected some of {', '.join(RUNS)}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    work = Path(args.work)
    subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir(parents=True)
    cores = os.cpu_count()
    result: dict = {"config": CONFIG, "workers": WORKERS, "cores": cores}
    result["load_before"] = os.getloadavg()
    for runner in ("flink", "spark"):  # before the hosts exist: they have no internet
        fetch(runner)
    with ClusterBed(HOSTS) as bed:
        bed.store.make_bucket("gcs", BUCKET)
        corpora = [upload_corpus(bed, work, size) for size in args.sizes]
        rows = []
        for name in args.runs:
            for row in runs_of(bed, corpora, name, work / "logs"):
                print_row(row)
                rows.append(row)
    derive(rows, cores)
    result.update(runs=rows, marginal=marginal(rows))
    result["ratios"], result["identical"] = ratios(result), identical(rows)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: result[k] for k in ("marginal", "ratios", "identical")}, indent=1))
    subprocess.run(["rm", "-rf", str(work)], check=True)
    if not all(result["identical"].values()):
        sys.exit("bench/cluster.py: the runs' shards differ (see 'shards' in " + args.out + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
