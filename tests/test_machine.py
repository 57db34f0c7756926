"""Fitting workers to the machine: CPUs from the affinity and the cgroup quotas (v1, v2,
nested, hybrid), memory from MemAvailable and the cgroup limits, read from fake /proc and
cgroup trees; and the affinity for real, through `taskset`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imagenet2017_tfds.internal import machine
from tests.conftest import ROOT

GB, MB = 10**9, 10**6
V1_NONE = "9223372036854771712"  # what cgroup v1 reads back for "no limit" (4 KiB pages)


def tree(tmp_path: Path, cgroup: str, files: dict[str, str | bytes], meminfo: str | None = None):
    """A fake /proc (self/cgroup, meminfo) and cgroup root: `files` maps paths under the
    cgroup root to their text (or bytes). Returns the two roots as the functions take them."""
    proc, cgroups = tmp_path / "proc", tmp_path / "cgroup"
    (proc / "self").mkdir(parents=True)
    cgroups.mkdir()
    (proc / "self" / "cgroup").write_text(cgroup)
    if meminfo is not None:
        (proc / "meminfo").write_text(meminfo)
    for name, text in files.items():
        (cgroups / name).parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            (cgroups / name).write_bytes(text)
        else:
            (cgroups / name).write_text(text)
    return {"proc_root": str(proc), "cgroup_root": str(cgroups)}


def v2(tmp_path, path="/job", meminfo=None, **files):
    """A pure cgroup v2 machine, this process in `path`."""
    return tree(tmp_path, f"0::{path}\n", {"cgroup.controllers": "cpu memory\n", **files}, meminfo)


def meminfo(available_kib: int) -> str:
    return f"MemTotal:       16000000 kB\nMemFree:         1000000 kB\nMemAvailable:   {available_kib} kB\n"


@pytest.fixture
def eight_cpus(monkeypatch):
    """An affinity of 8 CPUs, whatever runs the tests, so that only the cgroups bind."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))


# CPUs -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cpu_max", "cpus"),
    [
        ("max 100000\n", 8),  # no quota
        ("200000 100000\n", 2),
        ("150000 100000\n", 2),  # 1.5 CPUs: a second worker still has half a CPU
        ("50000 100000\n", 1),  # half a CPU: still one
        ("1600000 100000\n", 8),  # a quota above the affinity: the affinity binds
        ("400000 200000\n", 2),  # another period
    ],
)
def test_v2_cpu_max(tmp_path, eight_cpus, cpu_max, cpus):
    roots = v2(tmp_path, **{"job/cpu.max": cpu_max})
    assert machine.usable_cpus(**roots) == cpus


def test_v2_nested_limits_take_the_smallest_on_the_way_up(tmp_path, eight_cpus):
    files = {
        "a/cpu.max": "300000 100000\n",
        "a/b/cpu.max": "max 100000\n",  # none here, but its parent's binds
        "a/b/c/cpu.max": "500000 100000\n",
        "a/b/c/d/cpu.max": "600000 100000\n",
        "other/cpu.max": "100000 100000\n",  # a sibling's: not ours
    }
    roots = v2(tmp_path, "/a/b/c/d", **files)
    assert machine.cgroup_cpu_quota(**roots) == 3
    assert machine.usable_cpus(**roots) == 3
    assert machine.cpu_limits(**roots) == machine.CpuLimits(affinity=8, quota=3)


def test_v2_deeper_smaller_limit_wins(tmp_path, eight_cpus):
    files = {"a/cpu.max": "400000 100000\n", "a/b/cpu.max": "100000 100000\n"}
    assert machine.usable_cpus(**v2(tmp_path, "/a/b", **files)) == 1


def test_container_path_missing_under_its_mount_reads_the_mount_root(tmp_path, eight_cpus):
    # Without a cgroup namespace /proc/self/cgroup names the host's path; the container's
    # mount root is its own cgroup.
    roots = v2(tmp_path, "/system.slice/docker-abc.scope", **{"cpu.max": "200000 100000\n"})
    assert machine.usable_cpus(**roots) == 2


@pytest.mark.parametrize("mount", ["cpu,cpuacct", "cpu"])
@pytest.mark.parametrize(
    ("quota", "period", "cpus"),
    [("-1", "100000", 8), ("200000", "100000", 2), ("250000", "100000", 3), ("1000", "100000", 1)],
)
def test_v1_cfs_quota(tmp_path, eight_cpus, mount, quota, period, cpus):
    cgroup = "12:memory:/job\n11:cpu,cpuacct:/job\n1:name=systemd:/job\n"
    files = {f"{mount}/job/cpu.cfs_quota_us": quota, f"{mount}/job/cpu.cfs_period_us": period}
    assert machine.usable_cpus(**tree(tmp_path, cgroup, files)) == cpus


def test_v1_parent_quota_binds(tmp_path, eight_cpus):
    files = {
        "cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
        "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
        "cpu,cpuacct/slurm/cpu.cfs_quota_us": "400000\n",
        "cpu,cpuacct/slurm/cpu.cfs_period_us": "100000\n",
        "cpu,cpuacct/slurm/job1/cpu.cfs_quota_us": "-1\n",
        "cpu,cpuacct/slurm/job1/cpu.cfs_period_us": "100000\n",
    }
    roots = tree(tmp_path, "4:cpu,cpuacct:/slurm/job1\n", files)
    assert machine.usable_cpus(**roots) == 4


def test_hybrid_v1_and_v2_take_the_smaller(tmp_path, eight_cpus):
    # systemd's hybrid layout: v1 controllers beside the unified hierarchy under unified/.
    cgroup = "4:cpu,cpuacct:/job\n0::/job\n"
    files = {
        "cpu,cpuacct/job/cpu.cfs_quota_us": "500000\n",
        "cpu,cpuacct/job/cpu.cfs_period_us": "100000\n",
        "unified/cgroup.controllers": "cpu\n",
        "unified/job/cpu.max": "300000 100000\n",
    }
    assert machine.usable_cpus(**tree(tmp_path, cgroup, files)) == 3


@pytest.mark.parametrize(
    "cpu_max",
    [
        "",
        "\n",
        "garbage\n",
        "abc 100000\n",
        "200000 abc\n",
        "200000 0\n",  # a zero period
        "0 100000\n",
        "-200000 100000\n",
        "200000 100000 7\n",
        "200000\n",
        "2.5 1\n",
        b"\xff\xfe not UTF-8",
    ],
)
def test_malformed_cpu_max_is_no_limit(tmp_path, eight_cpus, cpu_max):
    assert machine.usable_cpus(**v2(tmp_path, **{"job/cpu.max": cpu_max})) == 8


def test_malformed_v1_files_are_no_limit(tmp_path, eight_cpus):
    files = {
        "cpu/job/cpu.cfs_quota_us": "lots\n",
        "cpu/job/cpu.cfs_period_us": "100000\n",
        "cpu/cpu.cfs_quota_us": "200000\n",
        "cpu/cpu.cfs_period_us": "\n",
    }
    assert machine.usable_cpus(**tree(tmp_path, "3:cpu:/job\n", files)) == 8


def test_a_cpu_max_that_is_a_folder_is_no_limit(tmp_path, eight_cpus):
    roots = v2(tmp_path)
    (tmp_path / "cgroup" / "job" / "cpu.max").mkdir(parents=True)
    assert machine.usable_cpus(**roots) == 8


@pytest.mark.parametrize(
    "cgroup", ["", "nonsense\n", "0::\n", "::\n", "x:y\n", "0::/../../elsewhere\n", "\n\n"]
)
def test_malformed_or_missing_membership_is_no_limit(tmp_path, eight_cpus, cgroup):
    roots = tree(tmp_path, cgroup, {"cgroup.controllers": "cpu\n"})
    assert machine.usable_cpus(**roots) == 8
    assert machine.available_memory(**roots) is None


def test_nothing_there_at_all(tmp_path, eight_cpus):
    roots = {"proc_root": str(tmp_path / "no-proc"), "cgroup_root": str(tmp_path / "no-cgroup")}
    assert machine.usable_cpus(**roots) == 8
    assert machine.available_memory(**roots) is None


def test_outside_the_namespace_root_reads_only_the_mount(tmp_path, eight_cpus):
    # A path above the namespace's root ("/../sibling") must not lead out of the mount.
    roots = v2(tmp_path, "/../sibling", **{"cpu.max": "400000 100000\n"})
    (tmp_path / "sibling").mkdir()
    (tmp_path / "sibling" / "cpu.max").write_text("100000 100000\n")
    assert machine.usable_cpus(**roots) == 4


def test_this_machine():
    cpus = machine.usable_cpus()
    assert 1 <= cpus <= (os.cpu_count() or 1)
    assert cpus <= len(os.sched_getaffinity(0))
    memory = machine.available_memory()
    assert memory is not None and 0 < memory <= os.sysconf("SC_PAGE_SIZE") * os.sysconf(
        "SC_PHYS_PAGES"
    )


def _taskset(cpus: str) -> str:
    taskset = shutil.which("taskset")
    if taskset is None:
        pytest.fail("taskset is not installed (it is in util-linux: apt-get install util-linux)")
    code = "from imagenet2017_tfds.internal import machine; print(machine.usable_cpus())"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [taskset, "-c", cpus, sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"taskset -c {cpus} failed:\n{result.stderr}"
    return result.stdout.strip()


def test_taskset_one_cpu_is_one():
    assert _taskset("0") == "1"


def test_taskset_two_cpus_is_two():
    assert (os.cpu_count() or 1) >= 2, "this test needs a machine with two cores"
    assert _taskset("0,1") == "2"


# Memory -----------------------------------------------------------------------------------


def test_meminfo_alone(tmp_path):
    roots = tree(tmp_path, "", {}, meminfo(2_000_000))
    assert machine.mem_available(roots["proc_root"]) == 2_000_000 * 1024
    assert machine.available_memory(**roots) == 2_000_000 * 1024


@pytest.mark.parametrize(
    "text",
    [
        "",
        "MemTotal: 100 kB\n",
        "MemAvailable: lots kB\n",
        "MemAvailable: 5 MB\n",
        "MemAvailable: -5 kB\n",
        "MemAvailable:\n",
    ],
)
def test_malformed_meminfo_is_not_known(tmp_path, text):
    assert machine.available_memory(**tree(tmp_path, "", {}, text)) is None


def test_v2_limit_minus_usage_below_mem_available(tmp_path):
    files = {"job/memory.max": str(4 * GB), "job/memory.current": str(3 * GB)}
    roots = v2(tmp_path, meminfo=meminfo(8_000_000), **files)
    assert machine.cgroup_memory_headroom(**roots) == 1 * GB
    assert machine.available_memory(**roots) == 1 * GB


def test_mem_available_below_the_cgroup_headroom(tmp_path):
    files = {"job/memory.max": str(100 * GB), "job/memory.current": str(1 * GB)}
    roots = v2(tmp_path, meminfo=meminfo(1_000_000), **files)
    assert machine.available_memory(**roots) == 1_000_000 * 1024


def test_v2_max_is_no_limit(tmp_path):
    files = {"job/memory.max": "max\n", "job/memory.current": str(3 * GB)}
    roots = v2(tmp_path, meminfo=meminfo(1_000_000), **files)
    assert machine.cgroup_memory_headroom(**roots) is None
    assert machine.available_memory(**roots) == 1_000_000 * 1024


def test_v2_nested_memory_takes_the_smallest_headroom(tmp_path):
    files = {
        "a/memory.max": str(10 * GB),
        "a/memory.current": str(9 * GB),  # 1 GB left up here
        "a/b/memory.max": str(4 * GB),
        "a/b/memory.current": str(1 * GB),  # 3 GB in here
        "a/b/c/memory.max": "max\n",
        "a/b/c/memory.current": str(1 * GB),
    }
    assert machine.available_memory(**v2(tmp_path, "/a/b/c", **files)) == 1 * GB


def test_usage_over_the_limit_leaves_nothing(tmp_path):
    files = {"job/memory.max": str(1 * GB), "job/memory.current": str(2 * GB)}
    assert machine.available_memory(**v2(tmp_path, **files)) == 0


def test_v2_limit_without_usage_is_the_limit(tmp_path):
    files = {"job/memory.max": str(2 * GB), "job/memory.current": "garbage\n"}
    assert machine.available_memory(**v2(tmp_path, **files)) == 2 * GB


@pytest.mark.parametrize("limit", ["", "lots\n", "-1\n", "1.5G\n", b"\xff"])
def test_malformed_memory_max_is_no_limit(tmp_path, limit):
    files = {"job/memory.max": limit, "job/memory.current": str(GB)}
    assert machine.available_memory(**v2(tmp_path, meminfo=meminfo(1000), **files)) == 1000 * 1024


@pytest.mark.parametrize(
    ("limit", "headroom"),
    [(V1_NONE, None), ("9223372036854775807", None), (str(6 * GB), 4 * GB), ("junk", None)],
)
def test_v1_memory(tmp_path, limit, headroom):
    cgroup = "9:memory:/process_api/abc\n4:cpu,cpuacct:/\n"
    files = {
        "memory/memory.limit_in_bytes": V1_NONE,  # the root: no limit
        "memory/memory.usage_in_bytes": str(50 * GB),
        "memory/process_api/abc/memory.limit_in_bytes": limit,
        "memory/process_api/abc/memory.usage_in_bytes": str(2 * GB),
    }
    roots = tree(tmp_path, cgroup, files)
    assert machine.cgroup_memory_headroom(**roots) == headroom
    assert machine.available_memory(**roots) == headroom


# Workers ----------------------------------------------------------------------------------


def test_a_setting_is_taken_as_given(tmp_path, eight_cpus):
    roots = v2(tmp_path, meminfo=meminfo(1000), **{"job/cpu.max": "200000 100000"})
    fit = machine.worker_count(5, 600 * MB, **roots)
    assert fit == machine.WorkerCount(
        count=5, cpus=2, memory=1000 * 1024, reason="5 asked for (2 CPUs usable)"
    )


def test_one_per_usable_cpu_when_memory_is_plenty(tmp_path, eight_cpus):
    roots = v2(tmp_path, meminfo=meminfo(16_000_000), **{"job/cpu.max": "200000 100000"})
    fit = machine.worker_count(0, 600 * MB, **roots)
    assert (fit.count, fit.cpus, fit.memory) == (2, 2, 16_000_000 * 1024)
    assert fit.reason == "2 CPUs usable (affinity 8, cgroup quota 2)"


def test_the_affinity_named_when_no_quota(tmp_path, eight_cpus):
    fit = machine.worker_count(0, 600 * MB, **tree(tmp_path, "", {}))
    assert fit == machine.WorkerCount(
        8, 8, None, "8 CPUs usable (affinity 8, cgroup quota none); available memory not known"
    )


def test_memory_caps_the_count(tmp_path, eight_cpus):
    files = {"job/memory.max": str(2 * GB), "job/memory.current": str(100 * MB)}
    fit = machine.worker_count(0, 600 * MB, **v2(tmp_path, meminfo=meminfo(8_000_000), **files))
    assert fit == machine.WorkerCount(
        3, 8, 1900 * MB, "3 of 8 usable CPUs: 1.9 GB available at 600 MB a worker"
    )


def test_the_reserve_is_kept_back(tmp_path, eight_cpus):
    files = {"job/memory.max": str(2 * GB), "job/memory.current": str(100 * MB)}
    roots = v2(tmp_path, meminfo=meminfo(8_000_000), **files)
    fit = machine.worker_count(0, 600 * MB, 700 * MB, **roots)
    assert fit.count == 2  # 2 * 600 MB + 700 MB <= 1.9 GB < 3 * 600 MB + 700 MB
    assert (
        fit.reason == "2 of 8 usable CPUs: 1.9 GB available, 700 MB kept back, at 600 MB a worker"
    )


def test_exactly_enough_memory_for_every_cpu(tmp_path, eight_cpus):
    roots = tree(tmp_path, "", {}, meminfo(8 * 600 * 1000))  # 8 * 600 * 1024000 bytes
    fit = machine.worker_count(0, 600 * 1024000, 0, **roots)
    assert (fit.count, fit.reason) == (8, "8 CPUs usable (affinity 8, cgroup quota none)")


def test_too_little_memory_still_gives_one_worker(tmp_path, eight_cpus):
    files = {"job/memory.max": str(1 * GB), "job/memory.current": str(800 * MB)}
    fit = machine.worker_count(0, 600 * MB, **v2(tmp_path, meminfo=meminfo(8_000_000), **files))
    assert fit == machine.WorkerCount(
        1, 8, 200 * MB, "1 of 8 usable CPUs: 200 MB available where a worker needs 600 MB"
    )


def test_a_reserve_above_the_memory_gives_one_worker(tmp_path, eight_cpus):
    fit = machine.worker_count(0, 600 * MB, 3 * GB, **tree(tmp_path, "", {}, meminfo(1_000_000)))
    assert fit.count == 1
    assert fit.reason.endswith("1.0 GB available, 3.0 GB kept back, where a worker needs 600 MB")


def test_memory_caps_through_the_real_functions(monkeypatch):
    # The defaults read this machine: with memory for two workers, two at most.
    monkeypatch.setattr(machine, "available_memory", lambda *a, **k: 2 * GB)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(4)))
    monkeypatch.setattr(machine, "cgroup_cpu_quota", lambda *a, **k: None)
    fit = machine.worker_count(0, 1 * GB)
    assert (fit.count, fit.cpus, fit.memory) == (2, 4, 2 * GB)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-1, MB), "workers is -1: it is 0"),
        ((0, 0), "a worker's memory must be positive"),
        ((0, MB, -1), "the reserve not negative"),
    ],
)
def test_bad_arguments_say_what_is_expected(args, message):
    with pytest.raises(ValueError, match=message):
        machine.worker_count(*args)
