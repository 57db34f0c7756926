"""The simulated cluster (imagenet2017_tfds/launch/cluster.py) for real: hosts in network
namespaces on a bridge of their own, each with its own /tmp, HOME and hostname and the
software read-only, the store bed on the bridge as a host, a host lost whole. Checked from
the hosts themselves (programs run there) and from the machine (/proc, `ip`). Needs root,
`ip`, util-linux and Go (fake-gcs-server, once)."""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from imagenet2017_tfds.launch import beam_build, cluster, stores
from imagenet2017_tfds.launch.cluster import ClusterBed, ClusterError, Listener
from tests.conftest import ENDINGS, end_body, run_body

# Needs root, and Go once (fake-gcs-server); `make test-quick` leaves out both marks.
pytestmark = [pytest.mark.engines, pytest.mark.stores]

HOSTS = ["jobmanager", "worker-1", "worker-2", "submitter"]
PYTHON = Path(sys.executable).name[:15]  # a process's name (comm) when it runs the venv's


@pytest.fixture(scope="module")
def software(tmp_path_factory):
    """A folder of software under the machine's /tmp, as a CI clone of the repository is."""
    folder = tmp_path_factory.mktemp("software")
    (folder / "tool.txt").write_text("a tool")
    return folder


@pytest.fixture(scope="module")
def shared_cluster(software):
    with ClusterBed(HOSTS, software=[software]) as bed:
        yield bed


@pytest.fixture
def bed(shared_cluster):
    """The module's cluster, its store's counts zeroed and faults off for each test."""
    shared_cluster.store.faults(None)
    shared_cluster.store.reset_counts()
    yield shared_cluster


def on(bed: ClusterBed, host: str, code: str, *args, timeout: float = 300):
    """A Python program on host; what it printed last, as JSON."""
    argv = [sys.executable, "-c", textwrap.dedent(code), *map(str, args)]
    result = bed.run(host, argv, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"on {host}: exit {result.returncode}:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def serve(bed: ClusterBed, host: str, port: int = 8000) -> subprocess.Popen:
    """Python's http.server on host's address, serving /tmp/served there (a file named
    `file` saying which host it is on); returns once it listens."""
    bed.run(host, ["sh", "-c", f"mkdir -p /tmp/served && echo {host} > /tmp/served/file"])
    command = [sys.executable, "-m", "http.server", "--bind", bed.hosts[host].address, str(port)]
    server = bed.popen(
        host, [*command, "--directory", "/tmp/served"], stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not any(found.port == port for found in bed.listening(host)):
        assert server.poll() is None, server.stderr.read()
        assert time.monotonic() < deadline, f"http.server on {host} not listening after 60 s"
        time.sleep(0.05)
    return server


FETCH = """
    import json, sys, urllib.request
    print(json.dumps([urllib.request.urlopen(u, timeout=10).read().decode() for u in sys.argv[1:]]))
"""


def machine(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout


def test_hosts_reach_each_other_by_address_and_by_name_over_the_bridge(bed):
    jobmanager, worker = bed.hosts["jobmanager"], bed.hosts["worker-1"]
    server = serve(bed, "jobmanager")
    try:
        assert bed.listening("jobmanager") == [
            Listener(jobmanager.address, 8000, server.pid, PYTHON)
        ]
        urls = [f"http://{jobmanager.address}:8000/file", "http://jobmanager:8000/file"]
        assert on(bed, "worker-1", FETCH, *urls) == ["jobmanager\n"] * 2
    finally:
        server.terminate()
        _, log = server.communicate(timeout=10)
    # The server saw worker-1's own address: the bridge, not loopback nor the machine's.
    assert re.findall(r"^(\S+) - - ", log, re.MULTILINE) == [worker.address] * 2, log


HOST_NETWORK = """
    import json, socket, subprocess, time
    out = {"hostname": socket.gethostname()}
    out["me"] = socket.gethostbyname(out["hostname"])
    out["store"] = socket.gethostbyname("storage.googleapis.com")
    ip = lambda *a: json.loads(subprocess.run(["ip", "-j", *a], capture_output=True).stdout)
    out["addresses"] = {i["ifname"]: [a["local"] for a in i["addr_info"] if a["family"] == "inet"]
                        for i in ip("addr")}
    out["routes"] = [r["dst"] for r in ip("-4", "route")]
    t = time.monotonic()
    try:  # TEST-NET-3: no route to it, so refused before a packet is sent
        socket.create_connection(("203.0.113.1", 80), timeout=5)
        out["outside"] = "connected"
    except OSError as e:
        out["outside"] = e.errno
    try:
        socket.getaddrinfo("pypi.org", 443)
        out["resolve"] = "resolved"
    except socket.gaierror:
        out["resolve"] = "gaierror"
    out["seconds"] = time.monotonic() - t
    print(json.dumps(out))
"""


def test_the_hosts_addresses_and_links_exist_only_in_their_namespaces(bed):
    hosts = [*bed.hosts.values(), bed.store_host]
    addresses = machine("ip", "-o", "addr")
    assert [h.address for h in hosts if h.address in addresses] == []
    links = {link["ifname"] for link in json.loads(machine("ip", "-j", "link"))}
    assert links.isdisjoint({cluster.BRIDGE, *(h.port for h in hosts)}), links
    routes = [
        r["dst"] for r in json.loads(machine("ip", "-j", "-4", "route", "show", "table", "all"))
    ]
    assert str(bed.subnet) not in routes
    # The switch: the bridge and one port a host, no address.
    switch = json.loads(machine("ip", "-j", "-n", bed.switch, "addr"))
    assert sorted(i["ifname"] for i in switch) == sorted(["lo", "br0", *(h.port for h in hosts)])
    assert [a for i in switch for a in i["addr_info"] if a["family"] == "inet"] == []

    worker = bed.hosts["worker-2"]
    got = on(bed, "worker-2", HOST_NETWORK)
    assert (got["hostname"], got["me"]) == ("worker-2", worker.address)
    assert got["store"] == bed.store_host.address
    assert got["addresses"] == {"lo": ["127.0.0.1"], "eth0": [worker.address]}
    assert got["routes"] == [str(bed.subnet)]  # no default route: nothing leaves the bridge
    assert (got["outside"], got["resolve"]) == (errno.ENETUNREACH, "gaierror"), got
    assert got["seconds"] < 3, got


LOOK = """
    import json, os, sys, tempfile
    name, write, extra = sys.argv[1], sys.argv[2] == "write", sys.argv[3:]
    places = ["/tmp", "/var/tmp", "/dev/shm", os.environ["HOME"]]
    if write:
        for place in places:
            with open(os.path.join(place, name), "x") as f:
                f.write("written")
    print(json.dumps({
        "seen": [os.path.exists(os.path.join(p, name)) for p in places],
        "extra": [os.path.exists(p) for p in extra],
        "home": os.environ["HOME"], "tmpdir": tempfile.gettempdir(), "cwd": os.getcwd(),
    }))
"""


def test_each_host_has_its_own_tmp_home_and_shm(bed, tmp_path):
    name = f"i2017-marker-{os.getpid()}"
    (tmp_path / "on-the-machine").write_text("pytest's")
    wrote = on(bed, "worker-1", LOOK, name, "write", tmp_path / "on-the-machine")
    assert wrote == {
        "seen": [True] * 4,
        "extra": [False],  # the machine's /tmp (pytest's folders) is not visible on a host
        "home": cluster.HOME,
        "tmpdir": "/tmp",
        "cwd": cluster.HOME,
    }
    assert on(bed, "worker-2", LOOK, name, "look")["seen"] == [False] * 4
    for place in ["/tmp", "/var/tmp", "/dev/shm", cluster.HOME]:
        assert not Path(place, name).exists()
    # Where worker-1's /tmp is, on the machine: a folder of the bed's, on disk.
    assert (bed.tmp / "worker-1" / "tmp" / name).read_text() == "written"
    assert (bed.tmp / "worker-1" / "tmp" / "home" / name).read_text() == "written"


WRITE_SOFTWARE = """
    import errno, json, os, sys
    import imagenet2017_tfds
    out = {"package": imagenet2017_tfds.__file__, "prefix": sys.prefix, "writes": {}}
    for folder in sys.argv[2:]:
        try:
            open(os.path.join(folder, "i2017-write-test"), "x").close()
            out["writes"][folder] = "written"
        except OSError as e:
            out["writes"][folder] = errno.errorcode[e.errno]
    out["tool"] = open(os.path.join(sys.argv[1], "tool.txt")).read()
    out["beside"] = sorted(os.listdir(os.path.dirname(sys.argv[1])))
    print(json.dumps(out))
"""


def test_the_software_is_read_only_on_a_host_yet_runs_there(bed, software):
    folders = [sys.prefix, beam_build.CACHE, stores.ROOT, software, Path.home(), "/etc", "/usr"]
    got = on(bed, "submitter", WRITE_SOFTWARE, software, *folders)
    assert got["package"] == str(stores.ROOT / "imagenet2017_tfds" / "__init__.py")
    assert got["prefix"] == sys.prefix  # the venv's own Python
    assert got["writes"] == {str(folder): "EROFS" for folder in folders}
    # The software under the machine's /tmp is there, read-only, alone: nothing else of the
    # folder it is in (pytest's other temporary folders) came with it.
    assert got["tool"] == "a tool"
    assert got["beside"] == [software.name]
    assert not (software / "i2017-write-test").exists()


GCS_AND_S3 = """
    import hashlib, json, os, sys
    import fsspec
    mode, urls = sys.argv[1], sys.argv[2:]
    out = {}
    for url in urls:
        fs, path = fsspec.core.url_to_fs(url)
        if mode == "write":
            data = os.urandom(300_000)
            fs.pipe_file(path, data)
        else:
            data = fs.cat_file(path)
        out[url] = hashlib.sha256(data).hexdigest()
    if mode == "read":  # and TensorFlow's own GCS client, as `tfds build` reads gs://
        import tensorflow as tf
        with tf.io.gfile.GFile(urls[0], "rb") as f:
            out["tensorflow"] = hashlib.sha256(f.read()).hexdigest()
    print(json.dumps(out))
"""


def test_clients_on_two_hosts_share_the_store_and_the_front_counts_each_host(bed):
    store = bed.store
    store.make_bucket("gcs", "shared")
    store.make_bucket("s3", "shared")
    urls = ["gs://shared/obj.bin", "s3://shared/obj.bin"]
    written = on(bed, "worker-1", GCS_AND_S3, "write", *urls)
    read = on(bed, "worker-2", GCS_AND_S3, "read", *urls, timeout=600)
    assert read.pop("tensorflow") == written[urls[0]]
    assert read == written
    counts = store.counts()
    writer, reader = bed.hosts["worker-1"].address, bed.hosts["worker-2"].address
    for url in urls:
        # One upload (gcsfs' multipart request carries the metadata on top), by worker-1.
        assert 300_000 <= counts.total("uploaded", client=writer, url=url) <= 304_096, counts
        assert counts.total("read", client=writer, url=url) == 0
        assert counts.total("uploaded", client=reader, url=url) == 0
    assert counts.total("read", client=reader, url=urls[1]) == 300_000
    assert counts.total("read", client=reader, url=urls[0]) == 600_000  # gcsfs, TensorFlow
    assert {client for clients in counts.values() for client in clients} == {writer, reader}


def test_the_store_listens_on_its_address_and_loopback_only(bed):
    address = bed.store_host.address
    found = bed.listening(cluster.STORE)
    assert sorted((x.address, x.port) for x in found) == sorted(
        [(address, 443), (address, 9000)]
        + [("127.0.0.1", port) for port in (443, 4443, 5000, 9000)]
    )
    assert {x.pid for x in found} <= set(bed.store.pids())
    assert {x.process for x in found} == {"fake-gcs-server", PYTHON}
    assert bed.listening("submitter") == []  # nothing started there


def test_an_unknown_host_is_named_with_the_known_ones(bed):
    with pytest.raises(ClusterError, match="no host 'nowhere'.*jobmanager, worker-1"):
        bed.run("nowhere", ["true"])


@pytest.mark.parametrize(
    "hosts, message",
    [
        (["Worker_1"], "expected a hostname label"),
        (["a", "a"], "given twice: a"),
        (["switch"], "the bed's own"),
        (["store"], "the bed's own"),
        ([], "one host at least"),
        ("worker", "expected a list of host names"),
    ],
)
def test_host_names_are_checked_before_anything_is_made(hosts, message):
    with pytest.raises(ClusterError, match=message):
        ClusterBed(hosts)
    ClusterBed(["store"], store=False)  # a name of its own when there is no store


def test_every_remount_of_a_host_is_a_bind_remount_and_software_under_tmp_is_staged():
    # A plain `mount -o remount,ro /` would make the machine's own file system read-only.
    software = [Path("/tmp/ci-clone"), Path("/opt/venv")]
    steps = cluster.mount_steps("h", Path("/tmp/bed"), software, Path("/run/stage"))
    commands = [" ".join(argv) for argv, _, _ in steps]
    remounts = [c for c in commands if "remount" in c]
    assert remounts and all("remount,bind,ro" in c for c in remounts), remounts
    assert "mount --rbind /tmp /run/stage/0" in commands
    staged = commands.index("mount --rbind /tmp /run/stage/0")
    covered = commands.index("mount --bind /run/stage/own/tmp /tmp")
    shown = commands.index("mount --bind /run/stage/0/ci-clone /tmp/ci-clone")
    assert staged < covered < shown < commands.index("mount -o remount,bind,ro /tmp/ci-clone")
    assert "mount --bind /opt/venv /opt/venv" in commands
    assert not any("/run/stage/1" in c for c in commands)  # nothing under /var/tmp


SLEEPERS = "sleep 600 & sleep 600 & setsid sleep 600 < /dev/null > /dev/null 2>&1 & exec sleep 600"
CONNECT = """
    import json, socket, sys
    try:
        socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()
        print(json.dumps("connected"))
    except OSError as e:
        print(json.dumps(type(e).__name__))
"""
LIST_BUCKET = """
    import json, sys
    import gcsfs
    print(json.dumps(gcsfs.GCSFileSystem().ls(sys.argv[1])))
"""


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # a zombie child of this process: ended


# Holds a connection to argv[1]:argv[2] open until a line on stdin, then says what it hears in
# 3 s: "eof" (the peer closed it), "silence", or the error (a reset).
HOLD = """
import socket, sys
held = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5)
print("connected", flush=True)
sys.stdin.readline()
held.settimeout(3)
try:
    print("eof" if held.recv(1) == b"" else "data")
except TimeoutError:
    print("silence")
except OSError as e:
    print(type(e).__name__)
"""


def test_a_lost_host_loses_every_process_and_its_link_while_the_others_work():
    with ClusterBed(["survivor", "lost", "other"]) as bed:
        bed.store.make_bucket("gcs", "still")
        lost, other = serve(bed, "lost"), serve(bed, "other")
        tree = bed.popen("lost", ["sh", "-c", SLEEPERS])
        address = bed.hosts["lost"].address
        try:
            deadline = time.monotonic() + 10  # sh starting its sleeps
            while len(bed.pids("lost")) < 6 and time.monotonic() < deadline:
                time.sleep(0.02)
            before = bed.pids("lost")  # holder, server, four sleeps (one in its own session)
            assert len(before) == 6, before
            assert on(bed, "survivor", FETCH, f"http://{address}:8000/file") == ["lost\n"]
            held = bed.popen(
                "survivor",
                [sys.executable, "-c", HOLD, address, "8000"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
            )
            assert held.stdout.readline() == "connected\n"

            killed = bed.kill_host("lost")
            # A connection to it hears nothing: no end, no reset (a host that fails).
            assert held.communicate("\n", timeout=30)[0] == "silence\n"
            assert set(before) <= set(killed)
            assert [pid for pid in before if not gone(pid)] == []
            assert lost.wait(timeout=5) == tree.wait(timeout=5) == -signal.SIGKILL
            assert bed.link_state("lost") == "DOWN" and bed.link_state("other") == "UP"
            assert bed.pids("lost") == [] and bed.listening("lost") == []
            with pytest.raises(ClusterError, match="host lost .* was lost"):
                bed.run("lost", ["true"])

            # Its address answers nothing; the others still reach each other and the store.
            assert on(bed, "survivor", CONNECT, address, 8000) in ("TimeoutError", "OSError")
            url = f"http://{bed.hosts['other'].address}:8000/file"
            assert on(bed, "survivor", FETCH, url) == ["other\n"]
            assert on(bed, "other", LIST_BUCKET, "still") == []
        finally:
            for process in (lost, other, tree):
                process.kill()
                process.communicate()


def leftovers(seen: dict, links_before: set[str]) -> list[str]:
    """What remains of a bed (cluster and its store), as sentences."""
    names = [seen["name"], seen["store"]]
    mine = lambda entry: any(entry == n or entry.startswith(f"{n}-") for n in names)  # noqa: E731
    out = [f"namespace {n}" for n in machine("ip", "netns", "list").split() if mine(n)]
    for folder in (stores.NETNS, stores.ETC_NETNS, stores.REGISTRY):
        out += [f"{folder}/{e.name}" for e in folder.iterdir() if mine(e.name)]
    out += [f"{tmp}" for tmp in seen["tmps"] if tmp.exists()]
    deadline = time.monotonic() + 5  # only for the kernel to finish the SIGKILLed ones
    while not all(gone(pid) for pid in seen["pids"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    out += [f"process {pid}" for pid in seen["pids"] if not gone(pid)]
    for mountinfo in Path("/proc").glob("[0-9]*/mountinfo"):
        try:
            text = mountinfo.read_text()
        except OSError:
            continue
        out += [f"{mountinfo}: {line}" for line in text.splitlines() if seen["name"] in line]
    links = {link["ifname"] for link in json.loads(machine("ip", "-j", "link"))}
    out += [f"link {link} in the machine's namespace" for link in links - links_before]
    return out


def watch(bed: ClusterBed) -> dict:
    """What a bed is made of, to look for after it is gone."""
    pids = [pid for host in bed.hosts for pid in bed.pids(host)] + bed.store.pids()
    return {
        "name": bed.name,
        "store": bed.store.name,
        "tmps": [bed.tmp, bed.store.tmp],
        "pids": pids,
    }


@pytest.mark.parametrize("ending", ENDINGS)
def test_the_bed_removes_everything_on_exit(ending):
    links_before = {link["ifname"] for link in json.loads(machine("ip", "-j", "link"))}
    seen = {}

    def body():
        with ClusterBed(["one", "two"]) as bed:
            # A process still running on a host at the end: stopped with the bed.
            sleeper = seen["sleeper"] = bed.popen("one", ["sleep", "300"])
            deadline = time.monotonic() + 10  # until nsenter has entered the host
            while sleeper.pid not in bed.pids("one") and time.monotonic() < deadline:
                time.sleep(0.02)
            seen.update(watch(bed))
            assert sleeper.pid in seen["pids"]
            assert seen["name"] in Path("/proc/self/mountinfo").read_text()
            end_body(ending)

    run_body(body, ending)
    assert seen["sleeper"].wait(timeout=10) == -signal.SIGTERM
    assert leftovers(seen, links_before) == []


def test_a_bed_left_by_a_killed_process_is_removed_by_the_next(tmp_path):
    links_before = {link["ifname"] for link in json.loads(machine("ip", "-j", "link"))}
    script = textwrap.dedent("""
        import json, sys, time
        from imagenet2017_tfds.launch.cluster import ClusterBed
        sys.path.insert(0, sys.argv[1])
        from test_cluster_bed import watch
        bed = ClusterBed(["one", "two"]).__enter__()
        print(json.dumps(watch(bed), default=str), flush=True)
        time.sleep(600)
    """)
    # Its temporary folders where this process does not look: found through the registry.
    (tmp_path / "elsewhere").mkdir()
    env = dict(
        os.environ,
        TMPDIR=str(tmp_path / "elsewhere"),
        PYTHONPATH=os.pathsep.join([str(stores.ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, str(Path(__file__).parent)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        seen = json.loads(owner.stdout.readline())
    finally:
        owner.kill()
        owner.wait()
    seen["tmps"] = [Path(t) for t in seen["tmps"]]
    assert all(t.parent == tmp_path / "elsewhere" for t in seen["tmps"])
    # The holders and servers outlive their owner (their own sessions): stale, not gone.
    assert Path(f"/var/run/netns/{seen['name']}-one").exists()
    assert not any(gone(pid) for pid in seen["pids"])
    with ClusterBed(["next"], store=False) as bed:
        assert bed.name != seen["name"]
        assert leftovers(seen, links_before) == []
