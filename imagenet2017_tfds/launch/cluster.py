"""A simulated cluster on this one machine: hosts that share nothing but a network and an
object store, for Flink and Spark across hosts.

    with ClusterBed(["jobmanager", "worker-1", "worker-2", "submitter"]) as cluster:  # root
        cluster.store.make_bucket("gcs", "bkt")                 # stores.StoreBed, on host "store"
        cluster.hosts["jobmanager"].address                     # e.g. 10.217.0.11
        cluster.run("worker-1", [sys.executable, "-c", "..."])  # a process on that host
        cluster.listening("jobmanager")                         # [Listener(address, port, ...)]
        cluster.kill_host("worker-2")                           # a lost host
        cluster.store.counts().total("read", client=cluster.hosts["worker-1"].address)

How it is built, and why:
- A switch: a network namespace (<bed>-switch) holding a Linux bridge and nothing else. Each
  host is a network namespace (<bed>-<host>) with loopback and eth0, a veth whose other end is
  a port of the bridge. Their addresses (a /24 of SUPERNET that the machine does not use) exist
  only inside these namespaces: the machine's own namespace has neither them nor the bridge,
  and no host has a route beyond the /24, so nothing a host sends leaves the machine.
- The store bed (stores.StoreBed) is the host "store": its namespace joins the bridge and its
  front listens on its address as well as on loopback. Every host's hosts file maps Google's
  storage names to it, and AWS_ENDPOINT_URL names its address. The front counts per client
  address, so per host.
- Each host has a mount and a UTS namespace of its own, held by one process (`sleep infinity`
  started by `ip netns exec NS unshare --mount --uts`, so it also has ip's binds of
  /etc/netns/NS/{hosts,resolv.conf} over /etc's and a /sys of its network namespace).
  Commands join it with `nsenter -t HOLDER -m -u -n`, so a Popen's pid is the command's own.
  In it:
  - the hostname is the host's name, which its hosts file maps to its address (Flink and
    Spark look themselves up by it); other names fail at once (resolv.conf names no server);
  - /tmp and /var/tmp are folders of its own (in the bed's temporary folder, on disk: a build's
    spill files and shards on four hosts would not fit in RAM), /dev/shm a tmpfs of its own,
    HOME is /tmp/home: no data folder is shared, with the machine or with another host;
  - the machine's root mount is read-only (a bind remount, in this mount namespace only), as is
    the software at its own path (the venv, the project's cache with the jars and Flink, the
    repository, PYTHONPATH's folders), bound again over the private /tmp when it lives there
    (a CI clone in /tmp);
  - /run/netns is unmounted: a host neither enters nor keeps alive other namespaces.
- Fetching (Maven, Go, PyPI) must happen before the hosts start: they have no route to the
  internet, and the cache is read-only there (beam_build.cached only reads a complete entry).
- kill_host: every process in the host's namespaces is stopped (SIGSTOP, until no new one
  appears), then all are killed (SIGKILL), and its bridge port is set down: a lost host, not
  a lost process. Its address then answers nothing.
- A bed registers itself as a store bed does (stores.REGISTRY) and is removed the same way
  (stores.remove_bed): on exit, also when the body raised or was interrupted, or by the next
  bed of either kind when its owner was killed (stores.remove_stale_beds).
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from imagenet2017_tfds.launch import stores
from imagenet2017_tfds.launch.stores import StoreBed, StoreError

PREFIX = stores.CLUSTER_PREFIX  # the bed's name, its namespaces', temporary folder's
SUPERNET = ipaddress.ip_network("10.217.0.0/16")  # private; a /24 of it that is free here
STORE_INDEX, FIRST_HOST_INDEX = 2, 11  # addresses in the /24: .2 the store, .11... the hosts
SWITCH = "switch"  # the switch namespace's suffix, so not a host's name
STORE = "store"  # the store bed's host name
BRIDGE = "br0"
DEVICE = "eth0"  # each host's link to the bridge
# A hostname label (RFC 1123) short enough for a namespace's name and a Java host check.
HOST_NAME = re.compile(r"[a-z][a-z0-9-]{0,30}")
HOME = "/tmp/home"
PRIVATE = ("/tmp", "/var/tmp")  # a folder of each host's own over each, on disk
# Passed from the caller's environment to a host's commands; nothing else is (its TMPDIR,
# pytest's variables, a folder of the machine's, would be wrong there).
PASSED = ("LANG", "LC_ALL", "LC_CTYPE", "TZ", "TERM", "USER", "LOGNAME", "JAVA_HOME")
READY_SECONDS = 30  # a holder is ready in milliseconds
KILL_SECONDS = 10  # for the kernel to end the killed processes
_SERIAL = itertools.count()  # beds of this process: i2017-cluster-<pid>-<n>


class ClusterError(StoreError):
    """The cluster could not start, stop or do what was asked; the message says what to do."""


@dataclass
class Host:
    """A simulated host: its name, its address on the bridge, its network namespace, its
    port on the bridge, and the process holding its mount namespace (none for the store)."""

    name: str
    address: str
    namespace: str
    port: str
    holder: subprocess.Popen | None = None
    lost: bool = False  # by kill_host


class Listener(NamedTuple):
    """A listening TCP socket: its address and port, and a process holding it (pid None and
    process "" when none was found, e.g. one exiting)."""

    address: str
    port: int
    pid: int | None
    process: str


class ClusterBed(stores.Bed):
    """Hosts in network namespaces on one bridge, with the store bed on it; see the module."""

    def __init__(
        self,
        hosts: Sequence[str],
        *,
        store: bool = True,
        backend: str = "memory",
        software: Sequence[str | os.PathLike] = (),
        ready_seconds: float = READY_SECONDS,
    ):
        """hosts: their names (hostname labels). store: a store bed on host "store".
        backend: its fake-gcs-server's (see StoreBed). software: folders every host sees
        read-only at their own path besides the venv, the cache and the repository."""
        _check_names(hosts, store)
        self.name = f"{PREFIX}{os.getpid()}-{next(_SERIAL)}"
        self.switch = f"{self.name}-{SWITCH}"
        self.host_names = list(hosts)
        self.with_store, self.backend = store, backend
        self.extra_software = [Path(p) for p in software]
        self.ready_seconds = ready_seconds
        self.hosts: dict[str, Host] = {}  # filled by start, in the order given
        self.store: StoreBed | None = None
        self.store_host: Host | None = None
        self.subnet: ipaddress.IPv4Network | None = None
        self.tmp: Path | None = None  # the hosts' own folders, the holders' logs
        self.software: list[Path] = []  # read-only on every host
        self.started_in: float | None = None  # seconds
        self._closed = False

    # -------------------------------------------------------------------- life cycle

    def start(self) -> None:
        started = time.monotonic()
        _check_tools()
        if self.with_store:
            stores.fake_gcs_binary()  # fetched before anything is made: hosts have no internet
        self.software = software_paths(self.extra_software)
        stores.remove_stale_beds()
        self.tmp = self._registered_tmp()
        self.subnet = _free_subnet()
        base = self.subnet.network_address
        for i, name in enumerate(self.host_names):
            address = str(base + FIRST_HOST_INDEX + i)
            self.hosts[name] = Host(
                name=name, address=address, namespace=f"{self.name}-{name}", port=f"p{i}"
            )
        if self.with_store:  # its namespace is the store bed's, named when it starts
            self.store_host = Host(
                name=STORE, address=str(base + STORE_INDEX), namespace="", port="p-store"
            )
        self._make_switch()
        for host in self.hosts.values():
            self._make_host(host)
        if self.with_store:
            self._start_store()
        for host in self.hosts.values():
            self._start_holder(host)
        for host in self.hosts.values():
            self._wait_holder(host)
            self._set_up_mounts(host)
        self.started_in = time.monotonic() - started

    def close(self, raising: bool = False) -> None:
        """Stops every process on every host and the store, and removes the bed; again does
        nothing. A second Ctrl-C during it is held until it is done (in the main thread)."""
        if self._closed:
            return
        self._closed = True
        errors = []
        with stores.signals_held():
            if self.store is not None:
                try:
                    self.store.close(raising=True)
                except StoreError as e:
                    errors.append(str(e))
            holders = [h.holder for h in self.hosts.values() if h.holder is not None]
            errors += stores.remove_bed(self.name, self.tmp, holders)
        if errors:
            message = f"removing the cluster bed {self.name} left: " + "; ".join(errors)
            if raising:
                raise ClusterError(message)
            print(f"cluster: {message}", file=sys.stderr)

    # -------------------------------------------------------------------- building it

    def _make_switch(self) -> None:
        switch = self.switch
        _run(["ip", "netns", "add", switch], f"creating the switch's namespace {switch}")
        _run(
            ["ip", "-n", switch, "link", "add", BRIDGE, "type", "bridge"],
            f"creating the bridge in {switch}",
        )
        _run(["ip", "-n", switch, "link", "set", BRIDGE, "up"], f"bringing up {BRIDGE}")

    def _plug(self, namespace: str, port: str, address: str) -> None:
        """A veth from the bridge (its end `port`, in the switch) to `namespace` (DEVICE there,
        with address): made in the switch and moved, so it never exists in the machine's."""
        switch, prefix = self.switch, self.subnet.prefixlen
        what = f"linking {namespace} to the bridge"
        _run(
            ["ip", "-n", switch, "link", "add", port, "type", "veth"]
            + ["peer", "name", DEVICE, "netns", namespace],
            what,
        )
        _run(["ip", "-n", switch, "link", "set", port, "master", BRIDGE, "up"], what)
        _run(["ip", "-n", namespace, "addr", "add", f"{address}/{prefix}", "dev", DEVICE], what)
        _run(["ip", "-n", namespace, "link", "set", DEVICE, "up"], what)

    def _make_host(self, host: Host) -> None:
        _run(["ip", "netns", "add", host.namespace], f"creating host {host.name}'s namespace")
        _run(["ip", "-n", host.namespace, "link", "set", "lo", "up"], "bringing up loopback")
        self._plug(host.namespace, host.port, host.address)
        etc = stores.ETC_NETNS / host.namespace
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(self._hosts_file())
        # Nothing listens on port 53 on a host: any other name is refused at once.
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
        for private in PRIVATE:
            _own(self.tmp, host, private).mkdir(parents=True, mode=0o1777)
            _own(self.tmp, host, private).chmod(0o1777)  # mkdir's mode is cut by the umask
        (_own(self.tmp, host, "/tmp") / HOME.removeprefix("/tmp/")).mkdir(mode=0o700)

    def _hosts_file(self) -> str:
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
        if self.store_host is not None:
            names = " ".join([STORE, *stores.GOOGLE_HOSTS])
            lines.append(f"{self.store_host.address} {names}")
        lines += [f"{h.address} {h.name}" for h in self.hosts.values()]
        return "\n".join(lines) + "\n"

    def _start_store(self) -> None:
        host = self.store_host
        network = stores.Network(
            name=STORE,
            address=host.address,
            join=lambda namespace: self._plug(namespace, host.port, host.address),
            hosts={h.name: h.address for h in self.hosts.values()},
        )
        self.store = StoreBed(backend=self.backend, network=network)
        self.store.__enter__()
        host.namespace = self.store.name

    def _start_holder(self, host: Host) -> None:
        command = ["ip", "netns", "exec", host.namespace, "unshare", "--mount", "--uts"]
        command += ["--propagation", "private", "sleep", "infinity"]
        with open(self.tmp / f"{host.name}.holder.log", "wb") as log:
            host.holder = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # not in the caller's Ctrl-C: close stops it
            )

    def _wait_holder(self, host: Host) -> None:
        """Until the holder is `sleep` (ip and unshare have made its namespaces)."""
        deadline = time.monotonic() + self.ready_seconds
        while time.monotonic() < deadline:
            if host.holder.poll() is not None:
                log = (self.tmp / f"{host.name}.holder.log").read_text(errors="replace")
                raise ClusterError(
                    f"the process holding host {host.name}'s namespaces exited with status "
                    f"{host.holder.returncode} (expected it to sleep until the bed ends): "
                    f"{log.strip()[-2000:]}; it needs root and `unshare` (util-linux)"
                )
            if _comm(host.holder.pid) == "sleep":
                return
            time.sleep(0.005)
        raise ClusterError(
            f"the process holding host {host.name}'s namespaces did not get ready within "
            f"{self.ready_seconds:.0f} s (expected `sleep`, found {_comm(host.holder.pid)!r})"
        )

    def _set_up_mounts(self, host: Host) -> None:
        stage = stores.REGISTRY / self.name / "stage"
        for place in ["own", *map(str, range(len(PRIVATE)))]:
            (stage / place).mkdir(parents=True, exist_ok=True)
        steps = mount_steps(host.name, self.tmp, self.software, stage)
        for argv, what, required in steps:
            base = ["nsenter", "-t", str(host.holder.pid), "-m", "-u", "-n", "--"]
            result = subprocess.run(base + argv, capture_output=True, text=True, timeout=60)
            if result.returncode != 0 and required:
                raise ClusterError(
                    f"setting up host {host.name}: {what} failed: `{shlex.join(argv)}` "
                    f"exited with {result.returncode} (expected 0): {result.stderr.strip()}; "
                    "it needs root with CAP_SYS_ADMIN (in a container: a privileged one)"
                )

    # -------------------------------------------------------------------- using it

    def env(self, host: str, env: dict[str, str] | None = None) -> dict[str, str]:
        """The whole environment of a command on host: the store clients' (when there is a
        store), HOME and TMPDIR of the host, the venv first on PATH, the repository on
        PYTHONPATH, the project's cache (read-only), a few of the caller's (PASSED), then
        env's."""
        from imagenet2017_tfds.launch import beam_build

        self._host(host)
        python = os.pathsep.join(filter(None, [str(stores.ROOT), os.environ.get("PYTHONPATH")]))
        path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
        out = {k: os.environ[k] for k in PASSED if k in os.environ}
        out.update(PATH=path, PYTHONPATH=python, HOME=HOME, TMPDIR="/tmp")
        out["IMAGENET2017_CACHE"] = str(beam_build.CACHE)
        if self.store is not None:
            out.update(self.store.network_env)
        out.update(env or {})
        return out

    def command(
        self,
        host: str,
        argv: Sequence[str | os.PathLike],
        env: dict[str, str] | None = None,
        cwd: str | None = None,
    ) -> list[str]:
        """argv run on host (in its namespaces) with self.env(host, env), in cwd (a path as
        the host sees it; default its HOME)."""
        holder = self._host(host).holder
        variables = [f"{k}={v}" for k, v in self.env(host, env).items()]
        # nsenter -m puts the command in "/": env -C goes to cwd once on the host (nsenter's
        # own --wd=DIR would look DIR up on the machine).
        return [
            *("nsenter", "-t", str(holder.pid), "-m", "-u", "-n", "--"),
            *("env", "-i", "-C", cwd or HOME, *variables),
            *map(str, argv),
        ]

    def run(self, host: str, argv, **kwargs) -> subprocess.CompletedProcess:
        """subprocess.run of argv on host; env (added to the host's) and cwd as in command,
        the other keyword arguments go to subprocess.run."""
        command = self.command(host, argv, kwargs.pop("env", None), kwargs.pop("cwd", None))
        return subprocess.run(command, **kwargs)

    def popen(self, host: str, argv, **kwargs) -> subprocess.Popen:
        """subprocess.Popen of argv on host, as run; its pid is the command's own process,
        which is in the host's namespaces a moment after this returns (nsenter enters them,
        then executes the command): 5 times in 50 here, pids(host) right after missed it."""
        command = self.command(host, argv, kwargs.pop("env", None), kwargs.pop("cwd", None))
        return subprocess.Popen(command, **kwargs)

    def pids(self, host: str) -> list[int]:
        """Every process on host (in its network or mount namespace), its holder too."""
        return _processes_in(self._namespace_ids(self._host(host, lost_ok=True)))

    def kill_host(self, name: str) -> list[int]:
        """Loses host `name`: its port on the bridge set down, then every process in its
        namespaces stopped, then all killed together (SIGKILL). The pids killed. Unplugged
        first, as a host that fails: the other hosts hear nothing from it, not even the
        closing of its connections (which the kernel sends for a killed process), and learn
        of the loss only by their own timeouts."""
        host = self._host(name)
        ids = self._namespace_ids(host)
        _run(["ip", "-n", self.switch, "link", "set", host.port, "down"], f"unplugging {name}")
        host.lost = True
        killed = _kill_together(ids)
        host.holder.wait(timeout=KILL_SECONDS)
        return killed

    def link_state(self, name: str) -> str:
        """The operational state of host name's port on the bridge: "UP" or "DOWN"."""
        host = self._any_host(name)
        out = _run(["ip", "-j", "-n", self.switch, "link", "show", host.port], "reading a link")
        return json.loads(out)[0]["operstate"]

    def listening(self, name: str) -> list[Listener]:
        """Every listening TCP socket in the network namespace of host name (or "store"),
        with the processes holding it, from the namespace's /proc/net/tcp{,6}."""
        host = self._any_host(name)
        namespace = _namespace_id(stores.NETNS / host.namespace)
        pids = _processes_in({namespace}, kinds=("net",))
        if not pids:
            return []
        sockets = _listening_sockets(pids[0])
        found, owned = set(), set()
        for pid in pids:
            for inode in _socket_inodes(pid) & set(sockets):
                found.add(Listener(*sockets[inode], pid, _comm(pid)))
                owned.add(inode)
        found |= {Listener(*sockets[i], None, "") for i in set(sockets) - owned}
        return sorted(found, key=lambda x: (x.address, x.port, x.pid or 0))

    def _host(self, name: str, lost_ok: bool = False) -> Host:
        """A host of the bed, running (or lost, when lost_ok)."""
        if name not in self.hosts:
            raise ClusterError(
                f"no host {name!r} in the cluster {self.name}: expected one of "
                f"{', '.join(self.hosts) or 'none (the bed has not started)'}"
            )
        host = self.hosts[name]
        if host.lost and not lost_ok:
            raise ClusterError(
                f"host {name} of {self.name} was lost (kill_host): nothing runs there"
            )
        if host.holder is None or (host.holder.poll() is not None and not host.lost):
            raise ClusterError(
                f"host {name} of {self.name} is not running (its holder is "
                f"{'not started' if host.holder is None else 'gone'}): the bed was closed, or "
                "its process was killed from outside"
            )
        return host

    def _any_host(self, name: str) -> Host:
        if self.store_host is not None and name == STORE:
            return self.store_host
        return self._host(name, lost_ok=True)

    def _namespace_ids(self, host: Host) -> set[tuple[int, int]]:
        ids = {_namespace_id(stores.NETNS / host.namespace)}
        if host.holder is not None and host.holder.poll() is None:
            ids.add(_namespace_id(Path(f"/proc/{host.holder.pid}/ns/mnt")))
        return ids


# ------------------------------------------------------------------------------------------
# Pure parts: names, addresses, mounts.


def _check_names(hosts: Sequence[str], store: bool) -> None:
    if isinstance(hosts, str):
        raise ClusterError(f"hosts {hosts!r}: expected a list of host names, not one string")
    hosts = list(hosts)
    reserved = {SWITCH, *([STORE] if store else [])}
    for name in hosts:
        if not isinstance(name, str) or not HOST_NAME.fullmatch(name):
            raise ClusterError(
                f"host name {name!r}: expected a hostname label, lower case letters, digits "
                "and '-' starting with a letter, at most 31 characters"
            )
        if name in reserved:
            raise ClusterError(f"host name {name!r} is the bed's own ({', '.join(reserved)})")
    duplicates = sorted({n for n in hosts if hosts.count(n) > 1})
    if duplicates:
        raise ClusterError(f"host names given twice: {', '.join(duplicates)}")
    if not hosts:
        raise ClusterError("a cluster bed needs one host at least; none was given")
    if len(hosts) > 255 - FIRST_HOST_INDEX:
        raise ClusterError(f"{len(hosts)} hosts: at most {255 - FIRST_HOST_INDEX} fit a /24")


def software_paths(extra: Sequence[Path] = ()) -> list[Path]:
    """What every host sees read-only at its own path: the venv (and the Python it was made
    from), the project's cache, the repository, PYTHONPATH's folders, and extra; real paths,
    those inside another left out (its mount covers them)."""
    from imagenet2017_tfds.launch import beam_build

    paths = [sys.prefix, sys.base_prefix, beam_build.CACHE, stores.ROOT, *extra]
    paths += os.environ.get("PYTHONPATH", "").split(os.pathsep)
    real = sorted({Path(os.path.realpath(p)) for p in paths if p and os.path.isdir(p)})
    kept: list[Path] = []
    for path in real:
        if path == Path("/"):
            continue  # the root is read-only on a host anyway
        if not any(path.is_relative_to(k) for k in kept):
            kept.append(path)
    return kept


def mount_steps(
    name: str, tmp: Path, software: Sequence[Path], stage: Path
) -> list[tuple[list[str], str, bool]]:
    """The commands that make a host's mount namespace, in order, as (argv, what it is for,
    whether a failure is fatal). stage/own, stage/<i>: empty folders where the host's own
    folders and PRIVATE[i] of the machine are kept in view while the private folders are
    covered (the bed's temporary folder is usually under the machine's /tmp)."""
    steps = [(["hostname", name], "naming the host", True)]
    hidden = {p: [s for s in software if s.is_relative_to(p)] for p in PRIVATE}
    for i, private in enumerate(PRIVATE):
        if hidden[private]:
            what = f"keeping the software under {private} in view"
            steps.append((["mount", "--rbind", private, str(stage / str(i))], what, True))
    own = stage / "own"
    steps.append(
        (["mount", "--bind", str(tmp / name), str(own)], "keeping its folders in view", True)
    )
    for private in PRIVATE:
        folder = str(own / _own(tmp, name, private).name)
        steps.append((["mount", "--bind", folder, private], f"giving it its own {private}", True))
    steps.append((["umount", "--lazy", str(own)], "putting its folders away", True))
    shm = ["mount", "-t", "tmpfs", "-o", "mode=1777,nosuid,nodev", f"{PREFIX}shm", "/dev/shm"]
    steps.append((shm, "giving it its own /dev/shm", True))
    for i, private in enumerate(PRIVATE):
        for path in hidden[private]:
            kept = str(stage / str(i) / path.relative_to(private))
            what = f"showing {path} over its own {private}"
            steps.append((["mkdir", "-p", str(path)], what, True))
            steps.append((["mount", "--bind", kept, str(path)], what, True))
        if hidden[private]:
            what = f"putting away the machine's {private}"
            steps.append((["umount", "--lazy", str(stage / str(i))], what, True))
    shown = {path for paths in hidden.values() for path in paths}
    for path in software:
        if path not in shown:
            steps.append((["mount", "--bind", str(path), str(path)], f"showing {path}", True))
    # Always with `bind`: a plain remount would make the machine's own file system read-only.
    readonly = [*map(str, software), "/", "/etc/hosts", "/etc/resolv.conf"]
    for path in readonly:
        remount = ["mount", "-o", "remount,bind,ro", path]
        steps.append((remount, f"making {path} read-only", True))
    # Other beds' namespaces: not for a host to enter, nor to keep alive after their deletion.
    steps.append((["umount", "--lazy", "/run/netns"], "hiding /run/netns", False))
    return steps


def _own(tmp: Path, host: Host | str, private: str) -> Path:
    """The folder of the bed's temporary folder that is `private` on host."""
    name = host if isinstance(host, str) else host.name
    return tmp / name / private.strip("/").replace("/", "-")


def _free_subnet() -> ipaddress.IPv4Network:
    """The first /24 of SUPERNET that no route or address of the machine overlaps, so that
    the hosts' addresses are never the machine's."""
    used = []
    for args in (["route", "show", "table", "all"], ["addr", "show"]):
        for entry in json.loads(_run(["ip", "-j", "-4", *args], "reading the machine's routes")):
            if entry.get("dst") not in (None, "default"):
                used.append(ipaddress.ip_network(entry["dst"], strict=False))
            for info in entry.get("addr_info", []):
                used.append(ipaddress.ip_network(f"{info['local']}/{info['prefixlen']}", False))
    for candidate in SUPERNET.subnets(new_prefix=24):
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise ClusterError(
        f"every /24 of {SUPERNET} overlaps a route or address of this machine: expected one "
        "free for the simulated hosts; change cluster.SUPERNET"
    )


# ------------------------------------------------------------------------------------------
# Processes, namespaces, sockets (/proc).


def _check_tools() -> None:
    if os.geteuid() != 0:
        raise ClusterError(
            "the cluster bed needs root (namespaces, mounts, a bridge); this process runs as "
            f"uid {os.geteuid()}: run it as root (sudo)"
        )
    tools = {"ip": "iproute2", "hostname": "hostname"}
    tools |= dict.fromkeys(["nsenter", "unshare", "mount", "umount"], "util-linux")
    for tool, package in tools.items():
        if shutil.which(tool) is None:
            raise ClusterError(f"the cluster bed needs `{tool}` on PATH: install {package}")


def _run(argv: list[str], what: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        raise ClusterError(
            f"{what} failed: `{shlex.join(argv)}` exited with {result.returncode} (expected "
            f"0): {result.stderr.strip()}; it needs root with CAP_SYS_ADMIN and CAP_NET_ADMIN "
            "(in a container: a privileged one)"
        )
    return result.stdout


def _namespace_id(path: Path) -> tuple[int, int]:
    """A namespace's identity (device and inode of its nsfs file)."""
    try:
        st = os.stat(path)
    except OSError as e:
        raise ClusterError(f"no namespace at {path} ({e}): the bed was removed") from None
    return st.st_dev, st.st_ino


def _processes_in(ids: set[tuple[int, int]], kinds=("net", "mnt")) -> list[int]:
    """The live processes in any of the namespaces ids (zombies have none)."""
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        for kind in kinds:
            try:
                st = os.stat(f"/proc/{entry.name}/ns/{kind}")
            except OSError:
                break  # ended, or a zombie
            if (st.st_dev, st.st_ino) in ids:
                found.append(int(entry.name))
                break
    return sorted(found)


def _kill_together(ids: set[tuple[int, int]]) -> list[int]:
    """Every process in the namespaces stopped (again until no new one appears: a stopped
    process forks no more), then all killed; their pids."""
    stopped: set[int] = set()
    while new := set(_processes_in(ids)) - stopped:
        for pid in new:
            _signal(pid, signal.SIGSTOP)
        stopped |= new
    for pid in stopped:
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + KILL_SECONDS
    while left := _processes_in(ids):
        if time.monotonic() > deadline:
            raise ClusterError(f"processes {left} still running {KILL_SECONDS} s after SIGKILL")
        for pid in left:  # a fork that was under way when its parent stopped
            _signal(pid, signal.SIGKILL)
        time.sleep(0.01)
    return sorted(stopped)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def _listening_sockets(pid: int) -> dict[int, tuple[str, int]]:
    """inode -> (address, port) of the listening TCP sockets in pid's network namespace."""
    out = {}
    for table in ("tcp", "tcp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            address, port = fields[1].split(":")
            out[int(fields[9])] = (_address(address), int(port, 16))
    return out


def _address(hexadecimal: str) -> str:
    """/proc/net/tcp's address: 32-bit words in the machine's (little-endian) order."""
    raw = bytes.fromhex(hexadecimal)
    raw = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return str(ipaddress.ip_address(raw))


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return inodes
    for fd in fds:
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[len("socket:[") : -1]))
    return inodes
