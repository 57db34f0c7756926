"""A test bed of object stores on loopback: Google Cloud Storage and S3, reached by unmodified
clients (gcsfs, s3fs, TensorFlow's own GCS file system), with no traffic leaving the machine.

    with StoreBed() as bed:            # root only
        bed.make_bucket("gcs", "bkt")
        bed.upload("folder", "gs://bkt/raw/")
        bed.run([sys.executable, "-c", "import gcsfs; print(gcsfs.GCSFileSystem().ls('bkt'))"])
        bed.counts().total("read", url="gs://bkt/raw/x")

How it is built, and why:
- A network namespace of its own (`ip netns add i2017-store-<pid>-<n>`) with only `lo` in it.
  Clients run inside it (`ip netns exec NAME ...`: `bed.command`, `bed.run`), so they cannot
  reach anything outside it: nothing a test does can leave the machine, whatever it resolves.
- TensorFlow's GCS client has no endpoint setting: it calls https://www.googleapis.com and
  https://storage.googleapis.com, compiled in. `ip netns exec` bind-mounts the files of
  /etc/netns/NAME/ over /etc/ for the command it runs, so the bed's `hosts` there maps both
  names to the namespace's 127.0.0.1, and its `resolv.conf` names a DNS server that is not
  there, so any other name fails at once instead of timing out.
- On 127.0.0.1:443 inside the namespace, a front of our own (this module, `--front`) answers
  TLS with a certificate for both names, signed by a CA the bed makes; clients trust it through
  SSL_CERT_FILE (Python's ssl, aiohttp), REQUESTS_CA_BUNDLE (requests, google-auth) and
  CURL_CA_BUNDLE (TensorFlow's libcurl). It forwards to fake-gcs-server (Go, built once with
  `go install` into the project's cache) on plain http. A second port of the front, plain http,
  forwards to moto's S3 server; S3 clients get AWS_ENDPOINT_URL.
- The front counts what passes, per store, client address, object and method (requests,
  bytes uploaded, bytes of object data read), and injects faults (an error status, or a
  dropped connection, on every Nth matching request) without forwarding the request.
  It is driven through a Unix socket (/run/i2017-store/NAME/control.sock): Unix sockets are
  files, so the test process, outside the namespace, reaches it (`bed.counts()`,
  `bed.faults(...)`).
- It also mends two things between TensorFlow and fake-gcs-server: TensorFlow sends
  `Transfer-Encoding: identity` on an empty upload, which Go's server refuses (501 Not
  Implemented), and fake-gcs-server builds a resumable upload's Location from the request it
  got (http://): the front drops that header and sends the scheme the client used
  (X-Forwarded-Proto, which fake-gcs-server honours, and a rewrite of what still says http://).

- On a network (`StoreBed(network=Network(...))`, what launch/cluster.py's simulated hosts
  share): the namespace also gets a link to it, joined by the network's own code before the
  servers start, and the front listens on that address too, with a certificate covering it.
  Clients on other hosts of the network use `bed.network_env`: the CA where they can read it
  (the registry folder, as they do not see this machine's temporary folders) and S3 at the
  address; their own hosts files map Google's names to it. The front counts per client
  address, so per host.

Everything runs as root (namespaces, port 443). The bed stops every process in its namespace,
deletes it, /etc/netns/NAME, /run/i2017-store/NAME and its temporary folder (certificates,
logs, fake-gcs-server's objects with backend="filesystem") on exit, also when the body raised
or was interrupted; a bed left by a killed process is removed by the next one started on the machine.
`python -m imagenet2017_tfds.launch.stores` starts one in the foreground for manual use.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import http.server
import itertools
import json
import os
import shlex
import shutil
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit, urlunsplit

PREFIX = "i2017-store-"  # namespaces, /etc/netns/ folders and temporary folders of beds
# A simulated cluster's (launch/cluster.py): named, registered and removed as a store bed is,
# its namespaces being <bed>-<part>. Known here so that any bed removes stale ones of both.
CLUSTER_PREFIX = "i2017-cluster-"
PREFIXES = (PREFIX, CLUSTER_PREFIX)
# A folder per bed (gone at reboot, as the namespaces are): `tmp`, the path of its temporary
# folder, and its front's control socket, here as a Unix socket's path has at most 107 bytes
# and a temporary folder's can be longer (pytest's).
REGISTRY = Path("/run/i2017-store")
NETNS = Path("/var/run/netns")  # `ip netns`'s named namespaces
ETC_NETNS = Path("/etc/netns")  # files `ip netns exec` binds over /etc's
GOOGLE_HOSTS = ("www.googleapis.com", "storage.googleapis.com")
FAKE_GCS = "github.com/fsouza/fake-gcs-server"
FAKE_GCS_VERSION = "v1.56.1"
# Inside the namespace only, so fixed: no other process can hold them.
HTTPS_PORT = 443  # the front, TLS, Google's names
S3_PORT = 9000  # the front, plain http, for S3 clients
GCS_UPSTREAM = ("127.0.0.1", 4443)  # fake-gcs-server
S3_UPSTREAM = ("127.0.0.1", 5000)  # moto
# A bed is ready in about a second; moto imports much of botocore, which a busy machine slows.
READY_SECONDS = 60
STOP_SECONDS = 5  # after SIGTERM, before SIGKILL
CHUNK = 256 * 1024  # bodies stream through the front in pieces of this size
PROBE_HEADER = "X-I2017-Store-Probe"  # the bed's own readiness checks: not counted, no faults
ROOT = Path(__file__).resolve().parents[2]  # the folder the package is imported from
_SERIAL = itertools.count()  # beds of this process: i2017-store-<pid>-<n>


class StoreError(RuntimeError):
    """The bed could not start, stop or do what was asked; the message says what to do."""


@dataclass(frozen=True)
class Network:
    """A network the bed's namespace joins beside its loopback (launch/cluster.py's bridge).
    join(namespace) plugs that namespace in with `address` (no prefix length) before any server
    starts; `name` is the bed's host name there and `hosts` (name -> address) the others', for
    its hosts file and the front's certificate."""

    name: str
    address: str
    join: Callable[[str], None]
    hosts: Mapping[str, str] = field(default_factory=dict)


# ------------------------------------------------------------------------------------------
# The bed: namespace, servers, front; used from the test process (outside the namespace).


class Bed:
    """What a store bed and a cluster bed share: a context manager that starts the bed (and
    removes what it made if starting fails, Ctrl-C too) and removes it on exit; and the
    bed's own temporary folder, registered under its name."""

    name: str

    def start(self) -> None:
        raise NotImplementedError

    def close(self, raising: bool = False) -> None:
        raise NotImplementedError

    def __enter__(self):
        try:
            self.start()
        except BaseException:  # KeyboardInterrupt too: nothing may stay behind
            self.close()
            raise
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close(raising=kind is None)

    def _registered_tmp(self) -> Path:
        """A new temporary folder named after the bed, and where it is, for a later process
        removing the bed as stale (its TMPDIR may differ: pytest's, another user's)."""
        tmp = Path(tempfile.mkdtemp(prefix=f"{self.name}-"))
        (REGISTRY / self.name).mkdir(parents=True, mode=0o700)
        (REGISTRY / self.name / "tmp").write_text(str(tmp))
        return tmp


class StoreBed(Bed):
    """GCS and S3 on the loopback of a private network namespace; see the module's doc."""

    def __init__(
        self,
        backend: str = "memory",
        ready_seconds: float = READY_SECONDS,
        network: Network | None = None,
    ):
        """backend: fake-gcs-server's. "memory" (objects in its RAM) behaves as GCS does;
        "filesystem" (objects as files in the bed's temporary folder) drops folder markers
        (objects named "x/", which tf.io.gfile.makedirs writes) and refuses an object whose
        name is another's prefix ("a" beside "a/b": 500, `file exists`). Both hold an object
        whole in RAM while it is written. network: one to join as well (see Network)."""
        if backend not in ("memory", "filesystem"):
            raise StoreError(f"backend {backend!r}: expected 'memory' or 'filesystem'")
        self.backend = backend
        self.ready_seconds = ready_seconds
        self.name = f"{PREFIX}{os.getpid()}-{next(_SERIAL)}"
        self.tmp: Path | None = None  # certificates, logs, fake-gcs-server's objects
        self.control = REGISTRY / self.name / "control.sock"  # the front's
        self.processes: dict[str, subprocess.Popen] = {}
        self.network = network
        self.env: dict[str, str] = {}  # the clients' inside the namespace (see start)
        self.network_env: dict[str, str] = {}  # the clients' elsewhere on the network
        self.started_in: float | None = None  # seconds
        self._closed = False

    # -------------------------------------------------------------------- life cycle

    def start(self) -> None:
        started = time.monotonic()
        _check_tools()
        binary = fake_gcs_binary()  # built once per machine, before anything is created
        remove_stale_beds()
        self.tmp = self._registered_tmp()
        network = self.network
        tls = make_certificates(
            self.tmp,
            names=[network.name] if network else [],
            addresses=[network.address] if network else [],
        )
        _ip("netns", "add", self.name, what=f"creating the network namespace {self.name}")
        _ip(
            "netns",
            "exec",
            self.name,
            "ip",
            "link",
            "set",
            "lo",
            "up",
            what=f"bringing up loopback in {self.name}",
        )
        if network is not None:
            network.join(self.name)
        self._write_etc()
        backend = ["-backend", self.backend]
        if self.backend == "filesystem":
            (self.tmp / "gcs-data").mkdir()
            backend += ["-filesystem-root", str(self.tmp / "gcs-data")]
        self._spawn(
            "fake-gcs-server",
            [
                str(binary),
                "-scheme",
                "http",
                "-host",
                GCS_UPSTREAM[0],
                "-port",
                str(GCS_UPSTREAM[1]),
                *backend,
                "-public-host",
                "storage.googleapis.com",
                # Where its JSON points (selfLink, mediaLink): through the front, as a client saw it.
                "-external-url",
                "https://storage.googleapis.com",
                "-log-level",
                "warn",
            ],
        )
        self._spawn(
            "moto",
            [sys.executable, "-m", "moto.server", "-H", S3_UPSTREAM[0], "-p", str(S3_UPSTREAM[1])],
        )
        config = {
            "https_port": HTTPS_PORT,
            "s3_port": S3_PORT,
            "gcs_upstream": GCS_UPSTREAM,
            "s3_upstream": S3_UPSTREAM,
            "cert": str(tls["cert"]),
            "key": str(tls["key"]),
            "ca": str(tls["ca"]),
            "control": str(self.control),
            "addresses": ["127.0.0.1", *([network.address] if network else [])],
        }
        (self.tmp / "front.json").write_text(json.dumps(config))
        pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        self._spawn(
            "front",
            [
                sys.executable,
                "-m",
                "imagenet2017_tfds.launch.stores",
                "--front",
                str(self.tmp / "front.json"),
            ],
            env=dict(os.environ, PYTHONPATH=pythonpath),
        )
        self.env = _client_env(str(tls["ca"]), "127.0.0.1")
        if network is not None:
            # Hosts elsewhere do not see this machine's temporary folders: the CA goes where
            # they can read it, removed with the bed's registry folder.
            ca = shutil.copy(tls["ca"], REGISTRY / self.name / "ca.pem")
            self.network_env = _client_env(str(ca), network.address)
        self._wait_ready()
        self.started_in = time.monotonic() - started

    def _write_etc(self) -> None:
        """The namespace's hosts and resolv.conf (`ip netns exec` binds them over /etc's)."""
        etc = ETC_NETNS / self.name
        etc.mkdir(parents=True, exist_ok=True)
        names = " ".join(GOOGLE_HOSTS)
        # The machine's own name too, as every hosts file has it: Flink's JobManager looks it
        # up (InetAddress.getLocalHost) and stops when it cannot.
        lines = [f"127.0.0.1 localhost {socket.gethostname()} {names}", "::1 localhost"]
        if self.network is not None:
            hosts = {**self.network.hosts, self.network.name: self.network.address}
            lines += [f"{address} {name}" for name, address in hosts.items()]
        (etc / "hosts").write_text("\n".join(lines) + "\n")
        # Nothing listens on port 53 in the namespace: a lookup is refused at once.
        (etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")

    def close(self, raising: bool = False) -> None:
        """Stops everything in the namespace and removes the bed; again does nothing. A second
        Ctrl-C during it is held until it is done (in the main thread)."""
        if self._closed:
            return
        self._closed = True
        with signals_held():
            errors = remove_bed(self.name, self.tmp, list(self.processes.values()))
        if errors:
            message = f"removing the store bed {self.name} left: " + "; ".join(errors)
            if raising:
                raise StoreError(message)
            print(f"stores: {message}", file=sys.stderr)

    def _spawn(self, name: str, argv: list[str], env: dict | None = None) -> None:
        assert self.tmp is not None
        with open(self.tmp / f"{name}.log", "wb") as log:
            self.processes[name] = subprocess.Popen(
                ["ip", "netns", "exec", self.name, *argv],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=env,
            )

    def _wait_ready(self) -> None:
        """Until the front answers and finds, from inside the namespace, fake-gcs-server and
        moto answering and itself reachable by Google's names over verified TLS."""
        deadline = time.monotonic() + self.ready_seconds
        status: dict | str = "no answer yet"
        while time.monotonic() < deadline:
            for name, process in self.processes.items():
                if process.poll() is not None:
                    raise StoreError(
                        f"{name} exited with status {process.returncode} while the store bed "
                        f"{self.name} started (it should keep serving):\n{self._logs()}"
                    )
            if self.control.exists():
                try:
                    status = self._control({"op": "probe"}, timeout=10)
                except (OSError, StoreError) as e:
                    status = f"control socket: {e}"
                else:
                    if all(value == "ok" for value in status.values()):
                        return
                    if any(value.startswith("fatal") for value in status.values()):
                        break
            time.sleep(0.05)
        raise StoreError(
            f"the store bed {self.name} did not get ready (waited up to "
            f"{self.ready_seconds:.0f} s): expected every check 'ok', found {status} (a "
            f"gaierror on the front: /etc/netns/{self.name}/hosts was not used, as when "
            "/etc/hosts is missing or nsswitch.conf's hosts line lacks `files`); the logs:\n"
            f"{self._logs()}"
        )

    def _logs(self, lines: int = 25) -> str:
        out = []
        for name in self.processes:
            path = self.tmp / f"{name}.log"
            text = path.read_text(errors="replace") if path.exists() else ""
            out.append(f"--- {name} ({path}):\n" + "\n".join(text.splitlines()[-lines:]))
        return "\n".join(out)

    # -------------------------------------------------------------------- clients

    def command(self, argv: list[str]) -> list[str]:
        """argv run inside the namespace with the clients' environment (self.env)."""
        return [
            "ip",
            "netns",
            "exec",
            self.name,
            "env",
            *(f"{k}={v}" for k, v in self.env.items()),
            *map(str, argv),
        ]

    def run(self, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
        """subprocess.run of argv inside the namespace (keyword arguments go to it)."""
        return subprocess.run(self.command(argv), **kwargs)

    def pids(self) -> list[int]:
        """Every process in the namespace: the servers and any client still running."""
        return _netns_pids(self.name)

    def make_bucket(self, store: str, name: str) -> None:
        """A bucket in 'gcs' or 's3', made by the front straight on the server (not counted)."""
        self._control({"op": "make_bucket", "store": store, "name": name})

    def upload(self, local: str | os.PathLike, url: str, timeout: float = 600) -> list[str]:
        """A file to url (into it when url ends with '/'), or a folder's files under url, by
        gcsfs or s3fs inside the namespace; the URLs written."""
        return self._transfer("upload", str(local), url, timeout)

    def download(self, url: str, local: str | os.PathLike, timeout: float = 600) -> list[str]:
        """An object to local (into it when it is a folder), or every object under url into
        the folder local, by gcsfs or s3fs inside the namespace; the files written."""
        return self._transfer("download", url, str(local), timeout)

    def _transfer(self, direction: str, source: str, target: str, timeout: float) -> list[str]:
        argv = [sys.executable, "-c", _TRANSFER, direction, source, target]
        result = self.run(argv, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise StoreError(
                f"{direction} {source} -> {target} in {self.name} failed (exit "
                f"{result.returncode}; expected 0):\n{result.stderr[-3000:]}"
            )
        return json.loads(result.stdout.strip().splitlines()[-1])

    # -------------------------------------------------------------------- the front

    def counts(self) -> Counts:
        """What the front has forwarded since it started or was last reset (see Counts)."""
        return Counts(self._control({"op": "counts"}))

    def reset_counts(self) -> None:
        self._control({"op": "reset"})

    def faults(
        self,
        status: int | None = 503,
        every: int | None = None,
        *,
        drop_every: int | None = None,
        match: str | None = None,
        method: str | None = None,
        store: str | None = None,
        times: int | None = None,
    ) -> None:
        """From now on, of the requests that match (URL containing `match`, e.g.
        'https://storage.googleapis.com/b/x' or 'http://127.0.0.1:9000/b/x'; `method`;
        `store` 'gcs' or 's3'), every `every`-th is answered with `status` and every
        `drop_every`-th has its connection closed unanswered (the drop wins when both fall on
        one request), `times` faults at most; none is forwarded. `faults(None)` ends them."""
        if status is None:
            self._control({"op": "faults", "rule": None})
            return
        if every is None and drop_every is None:
            raise StoreError("faults() needs every=N or drop_every=N (faults(None) ends them)")
        rule = {
            "status": status,
            "every": every,
            "drop_every": drop_every,
            "match": match,
            "method": method,
            "store": store,
            "times": times,
        }
        self._control({"op": "faults", "rule": rule})

    def _control(self, message: dict, timeout: float = 60) -> dict:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(self.control))
            sock.sendall(json.dumps(message).encode() + b"\n")
            reply = sock.makefile("rb").readline()
        if not reply:
            raise StoreError(f"the front of {self.name} closed its control socket unanswered")
        answer = json.loads(reply)
        if "error" in answer:
            raise StoreError(f"the front of {self.name}: {answer['error']}")
        return answer["result"]


def _client_env(ca: str, s3_host: str) -> dict[str, str]:
    """What a client of the bed needs: `ca`, the bed's CA file as the client sees it, and the
    address of the front's S3 port (127.0.0.1 inside the namespace)."""
    # What each client needs: without it, a client fails or is slow as said.
    # gcsfs needs neither STORAGE_EMULATOR_HOST (its default endpoint is
    # https://storage.googleapis.com, which the hosts file brings here) nor a token: with
    # no credentials found it falls back to anonymous requests.
    no_proxy = ",".join(dict.fromkeys(["127.0.0.1", "localhost", s3_host, *GOOGLE_HOSTS]))
    return {
        # Python's ssl (aiohttp, so gcsfs): else CERTIFICATE_VERIFY_FAILED. requests (what
        # google-auth refreshes tokens with) reads its own variable.
        "SSL_CERT_FILE": ca,
        "REQUESTS_CA_BUNDLE": ca,
        # TensorFlow's libcurl: else `libcurl code 60` on every request, 10 retries each.
        "CURL_CA_BUNDLE": ca,
        # gcsfs 2026.x: else GCSFileSystem is ExtendedGcsFileSystem, which asks the Storage
        # Control API (gRPC, storage.googleapis.com:443) for each bucket's layout and does
        # not cache a failed answer: a warning per operation, and with credentials at hand
        # a gRPC call to the front (HTTP/1.1 only) retried per operation.
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        # gcsfs: else google-auth pings the metadata server (3 tries, 1 s and 2 s apart,
        # each failing at once here) and gcsfs tries its "cloud" method: seconds per
        # GCSFileSystem. Both want "true" in lower case. TensorFlow needs it not: its
        # lookup of metadata.google.internal fails at once (the bed's resolv.conf).
        "NO_GCE_CHECK": "true",
        # TensorFlow works without it (an empty bearer token), but then looks for a
        # credentials file before each request and logs at INFO that it found none.
        "GOOGLE_AUTH_TOKEN_FOR_TESTING": "test",
        # S3 clients (botocore >= 1.31 reads AWS_ENDPOINT_URL) to the front's S3 port;
        # moto takes any key. botocore picks path-style URLs for an endpoint given by IP.
        "AWS_ENDPOINT_URL": f"http://{s3_host}:{S3_PORT}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        # A proxy set for the machine would be unreachable from the namespace.
        "NO_PROXY": no_proxy,
        "no_proxy": no_proxy,
    }


class Counts(dict):
    """counts[store][client address][object URL][method] -> {"requests", "read" (bytes of
    object data in 2xx answers to GETs), "uploaded" (request body bytes), "response_bytes"
    (all answer body bytes), "faults" (answered by fault injection), "dropped" (closed by it),
    "status": {"200": n, ...}}. Object URLs are gs://bucket/object, gs://bucket for a bucket's
    own requests (listings, bucket metadata) and gs:// for the rest; s3:// the same."""

    def total(
        self,
        field: str = "requests",
        *,
        store=None,
        client=None,
        url=None,
        prefix=None,
        method=None,
        status=None,
    ) -> int:
        """The sum of field over the records that match; with status, the requests answered
        with it (field is then ignored)."""
        total = 0
        for s, clients in self.items():
            for c, objects in clients.items():
                for u, methods in objects.items():
                    for m, record in methods.items():
                        if (
                            store not in (None, s)
                            or client not in (None, c)
                            or url not in (None, u)
                            or method not in (None, m)
                            or (prefix is not None and not u.startswith(prefix))
                        ):
                            continue
                        if status is not None:
                            total += record["status"].get(str(status), 0)
                        else:
                            total += record[field]
        return total


# A client of the bed: gcsfs or s3fs through fsspec, with lists of paths on both sides so
# fsspec expands nothing and the mapping is ours. Prints the paths written, as JSON.
_TRANSFER = r"""
import json, os, sys
import fsspec

direction, source, target = sys.argv[1:4]
if direction == "upload":
    fs, root = fsspec.core.url_to_fs(target)
    if os.path.isdir(source):
        local = sorted(os.path.join(d, f) for d, _, files in os.walk(source) for f in files)
        remote = [root.rstrip("/") + "/" + os.path.relpath(p, source).replace(os.sep, "/")
                  for p in local]
    else:
        local = [source]
        inside = target.endswith("/")
        remote = [root.rstrip("/") + "/" + os.path.basename(source) if inside else root]
    fs.put(local, remote)
    print(json.dumps([fs.unstrip_protocol(p) for p in remote]))
else:
    fs, root = fsspec.core.url_to_fs(source)
    if fs.isfile(root):
        remote = [root]
        inside = os.path.isdir(target) or target.endswith(os.sep)
        local = [os.path.join(target, root.rsplit("/", 1)[-1]) if inside else target]
    else:
        # Not folder markers (objects named "x/", tf.io.gfile.makedirs'): no data.
        remote = sorted(p for p in fs.find(root) if not p.endswith("/"))
        local = [os.path.join(target, *p[len(root.rstrip("/")) + 1:].split("/")) for p in remote]
    for p in local:
        os.makedirs(os.path.dirname(os.path.abspath(p)), exist_ok=True)
    fs.get(remote, local)
    print(json.dumps(local))
"""


# ------------------------------------------------------------------------------------------
# Tools, certificates, namespaces.


def _check_tools() -> None:
    if os.geteuid() != 0:
        raise StoreError(
            "the store bed needs root (network namespaces, /etc/netns, port 443); this process "
            f"runs as uid {os.geteuid()}: run it as root (sudo)"
        )
    if shutil.which("ip") is None:
        raise StoreError("the store bed needs `ip` on PATH, which is not there: install iproute2")
    # Go only to build fake-gcs-server once: beam_build.run_tool says so if it is missing.


def fake_gcs_binary() -> Path:
    """fake-gcs-server, built with `go install` from the Go module proxy into the project's
    cache once per machine (under a lock, like Prism)."""
    from imagenet2017_tfds.launch import beam_build

    def build(folder: Path) -> None:
        env = dict(os.environ, GOBIN=str(folder), GOFLAGS="-mod=mod")
        beam_build.run_tool(
            ["go", "install", f"{FAKE_GCS}@{FAKE_GCS_VERSION}"],
            "building fake-gcs-server with go install",
            1800,
            env=env,
        )

    return beam_build.cached(f"fake-gcs-server-{FAKE_GCS_VERSION}", build) / "fake-gcs-server"


def make_certificates(folder: Path, names=(), addresses=()) -> dict[str, Path]:
    """A CA of the bed's own and the front's certificate for Google's names (and `names`,
    `addresses`: the bed's on a network), signed by it: folder/ca.pem (what clients trust),
    front.pem, front.key. EC keys: made in milliseconds."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    valid = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))

    def name(text: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])

    def certificate(subject, public_key, issuer, signer, extensions):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(valid[0])
            .not_valid_after(valid[1])
        )
        for extension, critical in extensions:
            builder = builder.add_extension(extension, critical=critical)
        return builder.sign(signer, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = name(f"{PREFIX}test-ca")
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca = certificate(
        ca_name,
        ca_key.public_key(),
        ca_name,
        ca_key,
        [
            (x509.BasicConstraints(ca=True, path_length=0), True),
            (
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                True,
            ),
            (ca_ski, False),
        ],
    )
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    alt = [
        *(x509.DNSName(h) for h in (*GOOGLE_HOSTS, "localhost", *names)),
        *(x509.IPAddress(ipaddress.ip_address(a)) for a in ("127.0.0.1", *addresses)),
    ]
    leaf = certificate(
        name(GOOGLE_HOSTS[1]),
        key.public_key(),
        ca_name,
        ca_key,
        [
            (x509.BasicConstraints(ca=False, path_length=None), True),
            (x509.SubjectAlternativeName(alt), False),
            (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False),
            (x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False),
            (x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), False),
        ],
    )
    paths = {"ca": folder / "ca.pem", "cert": folder / "front.pem", "key": folder / "front.key"}
    paths["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths["cert"].write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    paths["key"].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


def _ip(*args: str, what: str) -> str:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise StoreError(
            f"{what} failed: `ip {' '.join(args)}` exited with "
            f"{result.returncode} (expected 0): {result.stderr.strip()}; network "
            "namespaces need root with CAP_SYS_ADMIN (in a container: a "
            "privileged one)"
        )
    return result.stdout


@contextlib.contextmanager
def signals_held():
    """Ctrl-C and SIGTERM held (in the main thread) until the block ends, then delivered: a
    bed's removal is not cut short. Nested blocks restore the mask they found."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _netns_pids(name: str) -> list[int]:
    result = subprocess.run(
        ["ip", "netns", "pids", name], capture_output=True, text=True, timeout=30
    )
    return [int(p) for p in result.stdout.split()] if result.returncode == 0 else []


def _bed_entries(folder: Path, name: str) -> list[str]:
    """The bed's entries in folder: NAME (a store bed's namespace) and NAME-<part> (a
    cluster's: its switch and hosts)."""
    try:
        entries = [entry.name for entry in folder.iterdir()]
    except OSError:
        return []
    return sorted(e for e in entries if e == name or e.startswith(f"{name}-"))


def remove_bed(name: str, tmp: Path | None, processes: list[subprocess.Popen]) -> list[str]:
    """Stops every process in the bed's namespaces (SIGTERM, then SIGKILL), deletes them,
    their /etc/netns folders and the temporary folder (tmp, else the one registered); what
    could not be done, as sentences."""
    errors = []
    registered = REGISTRY / name
    if tmp is None and (registered / "tmp").exists():
        tmp = Path((registered / "tmp").read_text().strip())
        if not tmp.name.startswith(f"{name}-"):  # only ever a folder the bed made
            print(
                f"stores: {registered} names {tmp}, not a folder of {name}: left alone",
                file=sys.stderr,
            )
            tmp = None
    namespaces = _bed_entries(NETNS, name)

    def running() -> set[int]:
        return {pid for namespace in namespaces for pid in _netns_pids(namespace)}

    pids = running() | {p.pid for p in processes if p.poll() is None}
    for sig, wait in ((signal.SIGTERM, STOP_SECONDS), (signal.SIGKILL, STOP_SECONDS)):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while pids and time.monotonic() < deadline:
            for process in processes:
                process.poll()  # reaps the bed's own children
            pids = {pid for pid in pids if _alive(pid)} | running()
            if pids:
                time.sleep(0.02)
    if pids:
        errors.append(f"processes {sorted(pids)} still running after SIGKILL")
    for namespace in namespaces:
        result = subprocess.run(
            ["ip", "netns", "delete", namespace], capture_output=True, text=True
        )
        if result.returncode != 0:
            errors.append(f"`ip netns delete {namespace}`: {result.stderr.strip()}")
    for entry in _bed_entries(ETC_NETNS, name):
        shutil.rmtree(ETC_NETNS / entry, ignore_errors=True)
        if (ETC_NETNS / entry).exists():
            errors.append(f"{ETC_NETNS / entry} could not be removed")
    if tmp is not None:
        shutil.rmtree(tmp, ignore_errors=True)
        if tmp.exists():
            errors.append(f"{tmp} could not be removed")
    if not errors:  # else the next bed tries again
        shutil.rmtree(registered, ignore_errors=True)
    return errors


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _started_at(pid: int) -> float | None:
    """When the process started (seconds since the epoch, to the clock tick), from /proc."""
    try:
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
        boot = next(
            int(line.split()[1])
            for line in Path("/proc/stat").read_text().splitlines()
            if line.startswith("btime ")
        )
    except (OSError, IndexError, ValueError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _owner_gone(name: str, created: float) -> bool:
    """Whether the process named in a bed's name (<prefix><pid>-<n>) has ended: not running,
    or the pid now belongs to a process started after the bed was made (a reused pid)."""
    prefix = next((p for p in PREFIXES if name.startswith(p)), None)
    try:
        pid = int(name[len(prefix) :].split("-")[0]) if prefix else None
    except ValueError:
        pid = None
    if pid is None:
        return False  # not one of ours
    if pid == os.getpid():
        return False
    started = _started_at(pid) if _alive(pid) else None
    return started is None or started > created + 2  # btime has a resolution of 1 s


def remove_stale_beds() -> list[str]:
    """Removes the beds (store beds and clusters: namespaces, /etc/netns folders, temporary
    folders) whose creating process has ended; their names."""
    found: dict[str, float] = {}
    temporary = Path(tempfile.gettempdir())  # for a bed that did not get as far as REGISTRY
    places = [NETNS, ETC_NETNS, REGISTRY, temporary]
    for place in places:
        with contextlib.suppress(OSError):
            for entry in place.iterdir():
                for prefix in PREFIXES:
                    if not entry.name.startswith(prefix):
                        continue
                    # Temporary folders are named <bed>-<random>, a cluster's namespaces
                    # <bed>-<part>.
                    bed = prefix + "-".join(entry.name[len(prefix) :].split("-")[:2])
                    with contextlib.suppress(OSError):
                        stamp = entry.stat().st_ctime
                        found[bed] = min(found.get(bed, stamp), stamp)
    removed = []
    for bed, created in sorted(found.items()):
        if not _owner_gone(bed, created):
            continue
        tmps = list(temporary.glob(f"{bed}-*"))
        errors = remove_bed(bed, None, [])
        for tmp in tmps:
            shutil.rmtree(tmp, ignore_errors=True)
        if errors:
            print(f"stores: removing the stale bed {bed}: {'; '.join(errors)}", file=sys.stderr)
        removed.append(bed)
    return removed


# ------------------------------------------------------------------------------------------
# The front: runs inside the namespace (`--front CONFIG`), standard library only.

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
}
# Query keys of S3 requests on an object that are not its data (ACLs, parts, tags, ...).
S3_SUBRESOURCES = {
    "acl",
    "attributes",
    "legal-hold",
    "retention",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "restore",
    "select",
}


def gcs_target(method: str, host: str, path: str, query: str) -> tuple[str, bool]:
    """The object URL a GCS request is about and whether it reads object data. The JSON API
    (/storage/v1/b/B/o/O, O escaped; /download/..., media when alt=media; /upload/... with
    the name in the query) and the XML-style host (storage.googleapis.com/B/O: TensorFlow's
    reads)."""
    params = parse_qs(query)
    for api in ("/storage/v1/b", "/download/storage/v1/b", "/upload/storage/v1/b"):
        if path != api and not path.startswith(api + "/"):
            continue
        rest = path[len(api) + 1 :].split("/")
        if not rest[0]:
            return "gs://", False
        bucket = unquote(rest[0])
        if len(rest) >= 3 and rest[1] == "o" and rest[2]:
            # An escaped name is one segment; an unescaped one runs up to the operation.
            end = next(
                (
                    i
                    for i in range(3, len(rest))
                    if rest[i] in ("rewriteTo", "copyTo", "compose", "acl")
                ),
                len(rest),
            )
            name = unquote("/".join(rest[2:end]))
            media = method == "GET" and (
                api.startswith("/download") or params.get("alt") == ["media"]
            )
            return f"gs://{bucket}/{name}", media
        if api.startswith("/upload") and "name" in params:
            return f"gs://{bucket}/{params['name'][0]}", False
        return f"gs://{bucket}", False
    if host.split(":")[0].lower() == "storage.googleapis.com" and not path.startswith(
        ("/batch/", "/_internal/")
    ):
        bucket, _, name = path.lstrip("/").partition("/")
        if not bucket:
            return "gs://", False
        if name:
            return f"gs://{unquote(bucket)}/{unquote(name)}", method == "GET"
        return f"gs://{unquote(bucket)}", False
    return "gs://", False


def s3_target(method: str, host: str, path: str, query: str) -> tuple[str, bool]:
    """The object URL of a path-style S3 request (/bucket/key; what botocore sends to an
    endpoint given by IP address) and whether it reads object data."""
    params = parse_qs(query, keep_blank_values=True)
    bucket, _, key = path.lstrip("/").partition("/")
    if not bucket:
        return "s3://", False
    if not key:
        return f"s3://{unquote(bucket)}", False
    media = method == "GET" and not (S3_SUBRESOURCES & set(params))
    return f"s3://{unquote(bucket)}/{unquote(key)}", media


def _fault_body(store: str, status: int) -> tuple[str, bytes]:
    if store == "s3":  # SlowDown: what S3 sends when it sheds load; botocore retries it
        code = {500: "InternalError", 503: "SlowDown"}.get(status, "ServiceUnavailable")
        return "application/xml", (
            f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code>"
            "<Message>fault injected by the store bed</Message></Error>"
        ).encode()
    body = {
        "error": {
            "code": status,
            "message": "fault injected by the store bed",
            "errors": [
                {
                    "reason": "backendError",
                    "domain": "global",
                    "message": "fault injected by the store bed",
                }
            ],
        }
    }
    return "application/json; charset=UTF-8", json.dumps(body).encode()


class Front:
    """The front's state, shared by its servers' threads: counts and the fault rule."""

    def __init__(self, config: dict):
        self.config = config
        self.lock = threading.Lock()
        self.counts: dict = {}
        self.rule: dict | None = None
        self.seen = 0  # requests the rule matched
        self.fired = 0  # faults it caused

    def record(
        self,
        store: str,
        client: str,
        url: str,
        method: str,
        *,
        status=None,
        read=0,
        uploaded=0,
        response_bytes=0,
        fault=None,
    ) -> None:
        with self.lock:
            leaf = (
                self.counts.setdefault(store, {})
                .setdefault(client, {})
                .setdefault(url, {})
                .setdefault(method, None)
            )
            if leaf is None:
                leaf = self.counts[store][client][url][method] = {
                    "requests": 0,
                    "read": 0,
                    "uploaded": 0,
                    "response_bytes": 0,
                    "faults": 0,
                    "dropped": 0,
                    "status": {},
                }
            leaf["requests"] += 1
            leaf["read"] += read
            leaf["uploaded"] += uploaded
            leaf["response_bytes"] += response_bytes
            if fault == "drop":
                leaf["dropped"] += 1
            elif fault is not None:
                leaf["faults"] += 1
            if status is not None:
                leaf["status"][str(status)] = leaf["status"].get(str(status), 0) + 1

    def decide(self, store: str, method: str, url: str) -> str | int | None:
        """None (forward it), 'drop', or the status to answer with."""
        with self.lock:
            rule = self.rule
            if (
                rule is None
                or rule["store"] not in (None, store)
                or rule["method"] not in (None, method)
                or (rule["match"] is not None and rule["match"] not in url)
            ):
                return None
            self.seen += 1
            if rule["times"] is not None and self.fired >= rule["times"]:
                return None
            if rule["drop_every"] and self.seen % rule["drop_every"] == 0:
                self.fired += 1
                return "drop"
            if rule["every"] and self.seen % rule["every"] == 0:
                self.fired += 1
                return rule["status"]
            return None

    # ------------------------------------------------------------ control channel

    def control(self, message: dict):
        op = message.get("op")
        if op == "counts":
            with self.lock:
                return json.loads(json.dumps(self.counts))  # a copy, taken under the lock
        if op == "reset":
            with self.lock:
                self.counts = {}
            return None
        if op == "faults":
            with self.lock:
                self.rule, self.seen, self.fired = message.get("rule"), 0, 0
            return None
        if op == "probe":
            return self.probe()
        if op == "make_bucket":
            return self.make_bucket(message["store"], message["name"])
        raise ValueError(f"unknown op {op!r} (expected counts, reset, faults, probe, make_bucket)")

    def probe(self) -> dict[str, str]:
        """Each server answering, checked from inside the namespace; the front through
        Google's name (the hosts file) and the bed's CA, as a client reaches it. A port of
        the front is tried once its upstream answers."""
        gcs, s3 = self.config["gcs_upstream"], self.config["s3_upstream"]
        tls = ssl.create_default_context(cafile=self.config["ca"])
        checks = [
            (
                "fake-gcs-server",
                None,
                http.client.HTTPConnection(*gcs, timeout=5),
                "/_internal/healthcheck",
            ),
            ("moto", None, http.client.HTTPConnection(*s3, timeout=5), "/"),
            (
                "front https",
                "fake-gcs-server",
                http.client.HTTPSConnection(
                    GOOGLE_HOSTS[1], self.config["https_port"], timeout=5, context=tls
                ),
                "/storage/v1/b",
            ),
            (
                "front s3",
                "moto",
                http.client.HTTPConnection("127.0.0.1", self.config["s3_port"], timeout=5),
                "/",
            ),
        ]
        # On a network, the front as other hosts reach it: by its address there.
        for address in self.config["addresses"][1:]:
            checks += [
                (
                    f"front https on {address}",
                    "fake-gcs-server",
                    http.client.HTTPSConnection(
                        address, self.config["https_port"], timeout=5, context=tls
                    ),
                    "/storage/v1/b",
                ),
                (
                    f"front s3 on {address}",
                    "moto",
                    http.client.HTTPConnection(address, self.config["s3_port"], timeout=5),
                    "/",
                ),
            ]
        out = {}
        for name, after, conn, path in checks:
            if after is not None and out[after] != "ok":
                out[name] = f"waiting for {after}"
                continue
            try:
                conn.request("GET", path, headers={PROBE_HEADER: "1"})
                response = conn.getresponse()
                response.read()
                out[name] = "ok" if response.status < 500 else f"status {response.status}"
            except (OSError, http.client.HTTPException) as e:
                out[name] = f"{type(e).__name__}: {e}"
                # Once the front listens, these do not pass with time: the hosts file or the
                # certificate is wrong.
                if isinstance(e, socket.gaierror | ssl.SSLCertVerificationError):
                    out[name] = "fatal: " + out[name]
            finally:
                conn.close()
        return out

    def make_bucket(self, store: str, name: str) -> None:
        if store == "gcs":
            host, port = self.config["gcs_upstream"]
            method, path, body = "POST", "/storage/v1/b?project=test", json.dumps({"name": name})
        elif store == "s3":
            host, port = self.config["s3_upstream"]
            method, path, body = "PUT", "/" + quote(name), ""
        else:
            raise ValueError(f"store {store!r}: expected 'gcs' or 's3'")
        conn = http.client.HTTPConnection(host, port, timeout=30)
        conn.request(method, path, body=body.encode(), headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        text = response.read().decode(errors="replace")
        conn.close()
        if response.status >= 300:
            raise ValueError(
                f"making the {store} bucket {name!r}: the server answered "
                f"{response.status} (expected 200): {text[:500]}"
            )


class _Server(http.server.ThreadingHTTPServer):
    """One listening port of the front: the store it serves, its upstream, TLS or not."""

    daemon_threads = True
    block_on_close = False
    request_queue_size = 128

    def __init__(self, front: Front, store: str, address: str, port: int, upstream, tls=None):
        self.front, self.store, self.upstream, self.tls = front, store, tuple(upstream), tls
        self.scheme = "https" if tls else "http"
        super().__init__((address, port), _Handler)

    def server_bind(self):
        # HTTPServer's own looks the address up (getfqdn); nothing to learn from DNS here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def handle_error(self, request, client_address):
        kind, value = sys.exc_info()[:2]
        _log(f"{self.store} {client_address[0]}: connection ended: {kind.__name__}: {value}")


class _Handler(http.server.BaseHTTPRequestHandler):
    """Forwards one client connection's requests to the upstream over one kept-alive
    connection of its own, streaming bodies both ways, counting, injecting faults."""

    protocol_version = "HTTP/1.1"  # keep-alive, chunked answers
    server_version = "i2017-store-front"
    timeout = 300  # an idle kept-alive connection, or a client silent mid-body, is closed
    # An answer's head and body are separate writes: with Nagle's algorithm the body waited
    # for the client's delayed ACK of the head, 40 ms a request.
    disable_nagle_algorithm = True

    def setup(self):
        self.upstream: http.client.HTTPConnection | None = None
        if self.server.tls is not None:  # the handshake in this connection's own thread
            self.request.settimeout(30)
            self.request = self.server.tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def finish(self):
        with contextlib.suppress(OSError):
            super().finish()
        if self.upstream is not None:
            self.upstream.close()

    def log_message(self, format, *args):  # noqa: A002 (BaseHTTPRequestHandler's name)
        _log(f"{self.server.store} {self.client_address[0]}: {format % args}")

    def log_request(self, code="-", size="-"):
        pass  # _forward logs each request with its bytes and time

    def do_GET(self):
        self._forward()

    do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_GET

    def _forward(self) -> None:
        started = time.monotonic()
        server, front = self.server, self.server.front
        store, method, client = server.store, self.command, self.client_address[0]
        host = self.headers.get("Host") or "{}:{}".format(*server.upstream)
        split = urlsplit(self.path)  # origin form, or absolute form from a proxy-minded client
        target = urlunsplit(("", "", split.path or "/", split.query, ""))
        url = f"{server.scheme}://{host}{target}"
        parse = gcs_target if store == "gcs" else s3_target
        obj, media = parse(method, host, split.path, split.query)
        probe = PROBE_HEADER in self.headers
        fault = None if probe else front.decide(store, method, url)
        if fault == "drop":
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            front.record(store, client, obj, method, fault=fault)
            _log(f"{store} {client}: {method} {url} -> dropped (fault)")
            return
        if fault is not None:
            uploaded = sum(len(chunk) for chunk in self._request_body())
            kind, body = _fault_body(store, fault)
            self.send_response_only(fault)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if method == "HEAD":
                body = b""
            self.wfile.write(body)
            front.record(
                store,
                client,
                obj,
                method,
                status=fault,
                uploaded=uploaded,
                response_bytes=len(body),
                fault=fault,
            )
            _log(f"{store} {client}: {method} {url} -> {fault} (fault)")
            return
        if store == "gcs" and method == "POST" and split.path.startswith("/batch/storage/"):
            self._batch(host, client, url, started)
            return
        status, uploaded, sent, captured = None, 0, 0, None
        try:
            response, uploaded = self._send_upstream(method, target, host, client)
            status = response.status
            headers = [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP]
            headers = [
                (k, self._client_location(v, host) if k.lower() == "location" else v)
                for k, v in headers
            ]
            no_body = method == "HEAD" or status in (204, 304) or 100 <= status < 200
            length = response.getheader("Content-Length")
            chunked = not no_body and length is None and self.request_version == "HTTP/1.1"
            # An upload's answer names the object when the request did not (multipart).
            if store == "gcs" and obj.count("/") < 3 and split.path.startswith("/upload/"):
                captured = bytearray()
            self.send_response_only(status, response.reason)
            for k, v in headers:
                self.send_header(k, v)
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            elif not no_body and length is None:
                self.send_header("Connection", "close")  # an HTTP/1.0 client: ends with EOF
            self.end_headers()
            while not no_body:
                data = response.read1(CHUNK)
                if not data:
                    break
                if captured is not None and len(captured) < 1 << 20:
                    captured += data
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                else:
                    self.wfile.write(data)
                sent += len(data)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            if response.length:  # the upstream's body was cut short, so is the client's
                self.close_connection = True
            if response.length or response.will_close:
                self._drop_upstream()
            else:
                # read1 does not mark a response read to its length as done: without this,
                # the connection refuses the next request (ResponseNotReady).
                response.close()
        except (OSError, http.client.HTTPException) as e:
            # The client or the upstream went away mid-request: neither connection can be
            # reused (unread bytes), and the client gets what it got, or a 502 if nothing.
            self._drop_upstream()
            self.close_connection = True
            if status is None and not isinstance(e, _ClientGone):
                with contextlib.suppress(OSError):
                    self.send_error(502, f"store bed front: upstream failed: {e}")
                status = 502
            _log(f"{store} {client}: {method} {url}: {type(e).__name__}: {e}")
        if captured:
            with contextlib.suppress(ValueError, TypeError, KeyError):
                answer = json.loads(bytes(captured))
                obj = f"gs://{answer['bucket']}/{answer['name']}"
        if not probe:
            ok = status is not None and 200 <= status < 300
            front.record(
                store,
                client,
                obj,
                method,
                status=status,
                uploaded=uploaded,
                read=sent if media and ok else 0,
                response_bytes=sent,
            )
            _log(
                f"{store} {client}: {method} {url} -> {status} up {uploaded} down {sent} "
                f"{time.monotonic() - started:.3f}s"
            )

    def _batch(self, host: str, client: str, url: str, started: float) -> None:
        """GCS's batch endpoint (gcsfs deletes through it), which fake-gcs-server answers with
        400 for each part: each part's request is sent to it on its own, each counted as a
        request of its object, and the answers put together in one multipart answer as GCS
        does (one part per request, in order)."""
        front = self.server.front
        body = b"".join(self._request_body())
        kind = self.headers.get("Content-Type", "")
        boundary = kind.partition("boundary=")[2].strip().strip('"').encode()
        answer_boundary = f"batch_{os.urandom(8).hex()}"
        answers = []
        for part in body.split(b"--" + boundary)[1:]:
            part = part.replace(b"\r\n", b"\n").strip(b"\n")
            if not part or part.startswith(b"--"):
                continue
            head, _, inner = part.partition(b"\n\n")
            content_id = ""
            for line in head.decode(errors="replace").splitlines():
                if line.lower().startswith("content-id:"):
                    content_id = line.split(":", 1)[1].strip().strip("<>")
            request_line, _, rest = inner.partition(b"\n")
            method, path = request_line.decode().split(" ")[:2]
            lines, _, inner_body = rest.partition(b"\n\n")
            headers = dict(
                line.split(":", 1) for line in lines.decode().splitlines() if ":" in line
            )
            headers = {k.strip(): v.strip() for k, v in headers.items()}
            headers["Content-Length"] = str(len(inner_body.strip()))
            where = urlsplit(path)
            obj, _ = gcs_target(method, host, where.path, where.query)
            conn = http.client.HTTPConnection(*self.server.upstream, timeout=60)
            try:
                conn.request(method, path, body=inner_body.strip(), headers=headers)
                response = conn.getresponse()
                data = response.read()
            finally:
                conn.close()
            front.record(
                "gcs", client, obj, method, status=response.status, response_bytes=len(data)
            )
            if response.status == 404 and obj.count("/") >= 3:
                # GCS's own words, which clients look for ("Not Found" is the server's).
                said = f"No such object: {obj[len('gs://') :]}"
                data = json.dumps(
                    {
                        "error": {
                            "code": 404,
                            "message": said,
                            "errors": [{"message": said, "domain": "global", "reason": "notFound"}],
                        }
                    }
                ).encode()
            answers.append(
                f"--{answer_boundary}\r\nContent-Type: application/http\r\n"
                f"Content-ID: <response-{content_id}>\r\n\r\n"
                f"HTTP/1.1 {response.status} {response.reason}\r\n"
                f"Content-Type: application/json; charset=UTF-8\r\n"
                f"Content-Length: {len(data)}\r\n\r\n".encode()
                + data
                + b"\r\n"
            )
        answers.append(f"--{answer_boundary}--\r\n".encode())
        out = b"".join(answers)
        self.send_response_only(200)
        self.send_header("Content-Type", f"multipart/mixed; boundary={answer_boundary}")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
        _log(
            f"gcs {client}: POST {url} -> 200 (a batch of {len(answers) - 1}, each sent on "
            f"its own) {time.monotonic() - started:.3f}s"
        )

    def _client_location(self, location: str, host: str) -> str:
        """A Location the upstream made from its own address or scheme (fake-gcs-server's
        resumable upload URL: http://) made the one the client used."""
        parts = urlsplit(location)
        upstream = "{}:{}".format(*self.server.upstream)
        if parts.scheme == "http" and parts.netloc in (upstream, host):
            return urlunsplit((self.server.scheme, host, parts.path, parts.query, parts.fragment))
        return location

    def _request_body(self):
        """The request's body, decoded, in pieces: Content-Length or chunked. TensorFlow's
        `Transfer-Encoding: identity` (an empty upload) means no length was given: no body."""
        encoding = self.headers.get("Transfer-Encoding", "").lower()
        if "chunked" in encoding:
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise _ClientGone("client closed in the middle of a chunked body")
                size = int(line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65536).strip():  # trailers, up to the blank line
                        pass
                    return
                yield from self._read_exactly(size)
                self.rfile.readline(1024)  # the CRLF after the chunk
        else:
            yield from self._read_exactly(int(self.headers.get("Content-Length") or 0))

    def _read_exactly(self, size: int):
        while size > 0:
            data = self.rfile.read(min(size, CHUNK))
            if not data:
                raise _ClientGone(f"client closed with {size} bytes of body unsent")
            size -= len(data)
            yield data

    def _send_upstream(self, method: str, target: str, host: str, client: str):
        """The request to the upstream, its body streamed; (response, body bytes). A bodiless
        request on a kept-alive connection the upstream closed is sent again on a new one."""
        encoding = self.headers.get("Transfer-Encoding")
        chunked = "chunked" in (encoding or "").lower()
        if encoding is not None and not chunked:
            _log(f"{self.server.store} {client}: Transfer-Encoding: {encoding} dropped")
        has_length = self.headers.get("Content-Length") is not None
        framed = chunked or has_length or "Transfer-Encoding" in self.headers
        # Nothing of the client's consumed before the upstream fails: it can be sent again.
        again = not chunked and int(self.headers.get("Content-Length") or 0) == 0
        for attempt in (1, 2):
            reused = self.upstream is not None
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection(*self.server.upstream, timeout=600)
            conn = self.upstream
            try:
                conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
                for k, v in self.headers.items():
                    if k.lower() not in HOP_BY_HOP and k.lower() != "content-length":
                        conn.putheader(k, v)
                if "Host" not in self.headers:
                    conn.putheader("Host", host)
                conn.putheader("X-Forwarded-For", client)
                conn.putheader("X-Forwarded-Proto", self.server.scheme)
                if chunked:
                    conn.putheader("Transfer-Encoding", "chunked")
                elif has_length or framed or method in ("POST", "PUT", "PATCH"):
                    conn.putheader("Content-Length", self.headers.get("Content-Length") or "0")
                conn.endheaders()
                uploaded = 0
                if framed:
                    for data in self._request_body():
                        conn.send(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
                        uploaded += len(data)
                    if chunked:
                        conn.send(b"0\r\n\r\n")
                return conn.getresponse(), uploaded
            except (ConnectionError, http.client.RemoteDisconnected):
                self._drop_upstream()
                if attempt == 2 or not reused or not again:
                    raise
        raise AssertionError("unreachable")

    def _drop_upstream(self) -> None:
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None


class _ClientGone(ConnectionError):
    """The client closed before its request's body was all read: nobody to answer."""


class _ControlHandler(socketserver.StreamRequestHandler):
    """JSON lines on the Unix socket: {"op": ...} in, {"result": ...} or {"error": ...} out."""

    def handle(self):
        for line in self.rfile:
            try:
                answer = {"result": self.server.front.control(json.loads(line))}
            except Exception as e:  # an answer, not a dead control thread
                answer = {"error": f"{type(e).__name__}: {e}"}
            self.wfile.write(json.dumps(answer).encode() + b"\n")


class _ControlServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    block_on_close = False


def _log(line: str) -> None:
    sys.stderr.write(f"{time.strftime('%H:%M:%S')} {line}\n")
    sys.stderr.flush()


def serve_front(config_path: str) -> None:
    """The front's process: its two ports in threads, the control socket in this one."""
    config = json.loads(Path(config_path).read_text())
    front = Front(config)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(config["cert"], config["key"])
    # HTTP/1.1 only: a gRPC client asking for h2 is refused at the handshake, not left waiting.
    tls.set_alpn_protocols(["http/1.1"])
    servers = []
    # Loopback, and the bed's address on a network when it has one: never 0.0.0.0.
    for address in config["addresses"]:
        servers += [
            _Server(front, "gcs", address, config["https_port"], config["gcs_upstream"], tls),
            _Server(front, "s3", address, config["s3_port"], config["s3_upstream"]),
        ]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    with contextlib.suppress(FileNotFoundError):
        os.unlink(config["control"])
    control = _ControlServer(config["control"], _ControlHandler)
    control.front = front
    os.chmod(config["control"], 0o600)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    addresses = ", ".join(config["addresses"])
    _log(
        f"front on {addresses}: https on port {config['https_port']} -> "
        f"{config['gcs_upstream']}, http on port {config['s3_port']} -> "
        f"{config['s3_upstream']}, control {config['control']}"
    )
    control.serve_forever()


# ------------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m imagenet2017_tfds.launch.stores",
        description="Start a store bed in the foreground (as root): fake GCS (fake-gcs-server "
        "behind a TLS front for www.googleapis.com and storage.googleapis.com) and S3 (moto) "
        "on the loopback of a network namespace of its own. Prints the namespace and the "
        "clients' environment; Ctrl-C removes it all.",
    )
    parser.add_argument(
        "--bucket",
        action="append",
        default=[],
        metavar="URL",
        help="a bucket to make at start: gs://NAME or s3://NAME (repeatable)",
    )
    parser.add_argument("--front", metavar="CONFIG", help=argparse.SUPPRESS)  # the bed's own
    args = parser.parse_args(argv)
    if args.front:
        serve_front(args.front)
        return 0
    # Ctrl-C and SIGTERM unwind the bed, also when started with SIGINT ignored (`cmd &`).
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.default_int_handler)
    try:
        with StoreBed() as bed:
            for url in args.bucket:
                scheme, _, name = url.partition("://")
                if scheme not in ("gs", "s3") or not name:
                    raise StoreError(f"--bucket {url}: expected gs://NAME or s3://NAME")
                bed.make_bucket("gcs" if scheme == "gs" else "s3", name.strip("/"))
            exports = "\n".join(f"export {k}={shlex.quote(v)}" for k, v in bed.env.items())
            example = "import gcsfs; print(gcsfs.GCSFileSystem().ls('BUCKET'))"
            print(
                f"store bed up in {bed.started_in:.1f} s; namespace {bed.name}; "
                f"temporary folder {bed.tmp} (the servers' logs)\n"
                f"clients run inside it (ip netns exec {bed.name} ...) with:\n{exports}\n"
                f"e.g. {shlex.join(bed.command([sys.executable, '-c', example]))}\n"
                f"control socket (JSON lines; ops: counts, reset, faults, make_bucket): "
                f'{bed.control}\n  e.g. echo \'{{"op": "counts"}}\' | '
                f"socat - UNIX-CONNECT:{bed.control}\nCtrl-C stops it.",
                flush=True,
            )
            while True:
                signal.pause()
    except KeyboardInterrupt:
        print("stores: stopped", file=sys.stderr)
        return 0
    except StoreError as e:
        print(f"stores: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
