"""How many worker processes a build may use: the CPUs and memory this process may have.

`os.cpu_count()` counts the machine's cores, not the ones this process may run on: a
container with a CPU quota, a `taskset`, a batch scheduler's cpuset or a memory limit give
less, and one worker a core then means workers fighting for a slice of a core or being killed
for memory. The answer here is the smallest of the CPU affinity and the cgroup quotas (v1 and
v2), and workers are cut further so that they fit the memory still available (MemAvailable and
the cgroup limits). Plain Python: nothing here imports TensorFlow or TFDS.

Every cgroup file is read leniently: a missing or malformed one is no limit, never an error,
since no build should fail for a file the kernel or a container runtime laid out differently.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

PROC_ROOT = "/proc"
CGROUP_ROOT = "/sys/fs/cgroup"

# cgroup v1 writes "no limit" as the largest page-aligned counter (9223372036854771712 with
# 4 KiB pages, other values with other page sizes): anything from an exbibyte up is none.
_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class CpuLimits:
    """What bounds the CPUs: the affinity mask, and the cgroup quota (None: no quota)."""

    affinity: int
    quota: int | None

    @property
    def usable(self) -> int:
        return self.affinity if self.quota is None else min(self.affinity, self.quota)


@dataclass(frozen=True)
class WorkerCount:
    """Worker processes for a build, and why that many: `reason` is for the build's log."""

    count: int
    cpus: int  # usable CPUs
    memory: int | None  # bytes available, None if not known
    reason: str


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _int(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _membership(proc_root: str) -> tuple[str | None, dict[str, str]]:
    """This process's cgroups from /proc/self/cgroup: the v2 path, and each v1 controller's."""
    v2, v1 = None, {}
    for line in (_read(Path(proc_root, "self", "cgroup")) or "").splitlines():
        fields = line.split(":", 2)
        if len(fields) != 3:
            continue
        hierarchy, controllers, path = fields
        if hierarchy == "0" and controllers == "":
            v2 = path
        else:
            for controller in controllers.split(","):
                v1.setdefault(controller, path)
    return v2, v1


def _v2_mount(cgroup_root: str) -> Path | None:
    """The unified hierarchy: the cgroup root itself, or `unified/` beside v1's (hybrid)."""
    for mount in (Path(cgroup_root), Path(cgroup_root, "unified")):
        if mount.joinpath("cgroup.controllers").is_file():
            return mount
    return None


def _v1_mount(cgroup_root: str, controller: str) -> Path | None:
    """A v1 controller's mount: `cpu/`, or one named for several controllers (`cpu,cpuacct`)."""
    root = Path(cgroup_root)
    if root.joinpath(controller).is_dir():
        return root.joinpath(controller)
    try:
        names = sorted(p.name for p in root.iterdir() if p.is_dir())
    except OSError:
        return None
    for name in names:
        if controller in name.split(","):
            return root.joinpath(name)
    return None


def _walk_up(mount: Path, path: str) -> list[Path]:
    """The cgroup's folder and each parent's up to the mount: a parent's limit binds too.

    A folder that does not exist is skipped: in a container without its own cgroup namespace
    /proc/self/cgroup names the host's path, while the mount's root already is this cgroup.
    """
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:  # outside the namespace's root: only the mount's own files are ours
        parts = []
    return [mount.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _quota(quota: int | None, period: int | None) -> int | None:
    if quota is None or period is None or quota <= 0 or period <= 0:
        return None
    return max(1, math.ceil(quota / period))


def _v2_cpu_quota(text: str | None) -> int | None:
    """cpu.max is "QUOTA PERIOD" in microseconds, QUOTA "max" for none."""
    fields = (text or "").split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return _quota(_int(fields[0]), _int(fields[1]))


def _smallest(values) -> int | None:
    known = [v for v in values if v is not None]
    return min(known) if known else None


def cgroup_cpu_quota(proc_root: str = PROC_ROOT, cgroup_root: str = CGROUP_ROOT) -> int | None:
    """CPUs the cgroup quotas allow (rounded up, at least 1), the smallest on the way to the
    root in v2 and v1 alike; None if no quota applies."""
    v2_path, v1_paths = _membership(proc_root)
    quotas = []
    v2 = _v2_mount(cgroup_root)
    if v2 is not None and v2_path is not None:
        quotas += [_v2_cpu_quota(_read(d / "cpu.max")) for d in _walk_up(v2, v2_path)]
    v1 = _v1_mount(cgroup_root, "cpu")
    if v1 is not None and "cpu" in v1_paths:
        for d in _walk_up(v1, v1_paths["cpu"]):
            period = _int(_read(d / "cpu.cfs_period_us"))
            quotas.append(_quota(_int(_read(d / "cpu.cfs_quota_us")), period))  # -1: none
    return _smallest(quotas)


def _affinity() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def cpu_limits(proc_root: str = PROC_ROOT, cgroup_root: str = CGROUP_ROOT) -> CpuLimits:
    """The affinity and the cgroup quota, apart, so that a log can say which one bound."""
    return CpuLimits(_affinity(), cgroup_cpu_quota(proc_root, cgroup_root))


def usable_cpus(proc_root: str = PROC_ROOT, cgroup_root: str = CGROUP_ROOT) -> int:
    """The CPUs this process may use: its affinity, capped by the cgroup quotas."""
    return cpu_limits(proc_root, cgroup_root).usable


def mem_available(proc_root: str = PROC_ROOT) -> int | None:
    """MemAvailable from /proc/meminfo in bytes: the kernel's estimate of what can be had
    without swapping (free memory plus the page cache it can drop)."""
    for line in (_read(Path(proc_root, "meminfo")) or "").splitlines():
        fields = line.split()
        if len(fields) == 3 and fields[0] == "MemAvailable:" and fields[2] == "kB":
            kib = _int(fields[1])
            return kib * 1024 if kib is not None and kib >= 0 else None
    return None


def _headroom(limit: int | None, usage: int | None) -> int | None:
    if limit is None or limit < 0 or limit >= _UNLIMITED:
        return None
    return max(0, limit - (usage or 0))  # usage not known: the limit is all we know


def cgroup_memory_headroom(
    proc_root: str = PROC_ROOT, cgroup_root: str = CGROUP_ROOT
) -> int | None:
    """Bytes the cgroups still allow (limit minus usage), the smallest on the way to the root;
    None if no limit applies."""
    v2_path, v1_paths = _membership(proc_root)
    rooms = []
    v2 = _v2_mount(cgroup_root)
    if v2 is not None and v2_path is not None:
        for d in _walk_up(v2, v2_path):
            limit = _read(d / "memory.max")  # "max": none
            limit = None if limit is None or limit.strip() == "max" else _int(limit)
            rooms.append(_headroom(limit, _int(_read(d / "memory.current"))))
    v1 = _v1_mount(cgroup_root, "memory")
    if v1 is not None and "memory" in v1_paths:
        for d in _walk_up(v1, v1_paths["memory"]):
            limit = _int(_read(d / "memory.limit_in_bytes"))
            rooms.append(_headroom(limit, _int(_read(d / "memory.usage_in_bytes"))))
    return _smallest(rooms)


def available_memory(proc_root: str = PROC_ROOT, cgroup_root: str = CGROUP_ROOT) -> int | None:
    """Bytes this process may still use: the smaller of MemAvailable and what the cgroups
    allow; None if neither is known."""
    return _smallest([mem_available(proc_root), cgroup_memory_headroom(proc_root, cgroup_root)])


def _size(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.0f} MB"


def _cpus(n: int) -> str:
    return f"{n} CPU" if n == 1 else f"{n} CPUs"


def worker_count(
    setting: int,
    per_worker_bytes: int,
    reserve_bytes: int = 0,
    *,
    proc_root: str = PROC_ROOT,
    cgroup_root: str = CGROUP_ROOT,
) -> WorkerCount:
    """Workers for a `workers` setting: a positive one as asked; 0 one per usable CPU, as many
    as fit `count * per_worker_bytes + reserve_bytes` in the available memory, at least 1."""
    if setting < 0:
        raise ValueError(
            f"workers is {setting}: it is 0 (one per usable CPU, as many as fit in memory) or "
            "the number of worker processes (1: the main process only)."
        )
    if per_worker_bytes <= 0 or reserve_bytes < 0:
        raise ValueError(
            f"a worker's memory must be positive and the reserve not negative, not "
            f"per_worker_bytes={per_worker_bytes}, reserve_bytes={reserve_bytes}"
        )
    cpus = cpu_limits(proc_root, cgroup_root)
    memory = available_memory(proc_root, cgroup_root)
    usable = cpus.usable

    def fit(count: int, reason: str) -> WorkerCount:
        return WorkerCount(count=count, cpus=usable, memory=memory, reason=reason)

    if setting > 0:
        return fit(setting, f"{setting} asked for ({_cpus(usable)} usable)")
    reason = (
        f"{_cpus(usable)} usable (affinity {cpus.affinity}, cgroup quota {cpus.quota or 'none'})"
    )
    if memory is None:
        return fit(usable, f"{reason}; available memory not known")
    fits = max(0, memory - reserve_bytes) // per_worker_bytes
    if fits >= usable:
        return fit(usable, reason)
    kept = f", {_size(reserve_bytes)} kept back," if reserve_bytes else ""
    if fits == 0:  # one worker still: the build runs, slowly or swapping, rather than not
        why = f"{_size(memory)} available{kept} where a worker needs {_size(per_worker_bytes)}"
        return fit(1, f"1 of {usable} usable CPUs: {why}")
    why = f"{_size(memory)} available{kept} at {_size(per_worker_bytes)} a worker"
    return fit(fits, f"{fits} of {usable} usable CPUs: {why}")
