"""The store bed (imagenet2017_tfds/launch/stores.py) for real: fake-gcs-server (Go, built
with `go install`) and moto's S3 server behind the bed's front, in a network namespace of
their own, reached by unmodified clients started inside it: gcsfs, s3fs and TensorFlow's own
GCS file system (which calls https://www.googleapis.com and https://storage.googleapis.com,
compiled in). Real bytes go through; the front's counts and injected faults are checked
against what the clients did; the bed leaves nothing behind and nothing listens outside it.
Needs root, `ip` and Go."""

from __future__ import annotations

import hashlib
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

from imagenet2017_tfds.launch import stores
from imagenet2017_tfds.launch.stores import StoreBed
from tests.conftest import ENDINGS, end_body, run_body

# Needs root, and Go once (fake-gcs-server); `make test-quick` leaves out both marks.
pytestmark = [pytest.mark.engines, pytest.mark.stores]

LOCAL = "127.0.0.1"  # the address the clients inside the namespace connect from


@pytest.fixture(scope="module")
def shared_bed():
    with StoreBed() as bed:
        yield bed


@pytest.fixture
def bed(shared_bed):
    """The module's bed, its counts zeroed and faults off for each test."""
    shared_bed.faults(None)
    shared_bed.reset_counts()
    yield shared_bed
    shared_bed.faults(None)


def client(bed: StoreBed, code: str, *args, timeout: float = 300):
    """A Python client inside the bed's namespace; what it printed last, as JSON."""
    argv = [sys.executable, "-c", textwrap.dedent(code), *map(str, args)]
    result = bed.run(argv, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"client exited {result.returncode}:\n{result.stderr[-4000:]}"
    return json.loads(result.stdout.strip().splitlines()[-1])


def payload(tmp_path: Path, name: str, size: int) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / "up" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path, data


# A client that lists a folder and reads a range of one object, by fsspec (gcsfs or s3fs).
LIST_AND_READ = """
    import hashlib, json, sys
    import fsspec
    folder, obj, start, end = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    fs, _ = fsspec.core.url_to_fs(folder)
    listed = sorted(fs.ls(folder, detail=False))
    part = fs.cat_file(obj, start=start, end=end)
    print(json.dumps({"listed": listed, "sha256": hashlib.sha256(part).hexdigest(),
                      "size": len(part), "class": type(fs).__name__}))
"""


@pytest.mark.parametrize("scheme", ["gs", "s3"])
def test_a_client_writes_lists_and_reads_a_range_and_the_front_counts_it(bed, tmp_path, scheme):
    store, fs_class = {"gs": ("gcs", "GCSFileSystem"), "s3": ("s3", "S3FileSystem")}[scheme]
    bucket = f"rw-{scheme}"
    bed.make_bucket(store, bucket)
    local, data = payload(tmp_path, "x.bin", 300_000)
    payload(tmp_path, "sub/y.bin", 10)
    written = bed.upload(tmp_path / "up", f"{scheme}://{bucket}/raw/")
    obj = f"{scheme}://{bucket}/raw/x.bin"
    assert sorted(written) == [f"{scheme}://{bucket}/raw/sub/y.bin", obj]
    uploaded = bed.counts().total("uploaded", store=store, url=obj)
    # gcsfs sends a small file as one multipart request: its metadata part comes on top.
    assert len(data) <= uploaded <= len(data) + 4096, uploaded
    bed.reset_counts()

    got = client(bed, LIST_AND_READ, f"{scheme}://{bucket}/raw", obj, 1000, 201_000)
    assert got["class"] == fs_class
    assert got["listed"] == [f"{bucket}/raw/sub", f"{bucket}/raw/x.bin"]
    assert (got["size"], got["sha256"]) == (200_000, hashlib.sha256(data[1000:201_000]).hexdigest())
    counts = bed.counts()
    assert list(counts) == [store] and list(counts[store]) == [LOCAL], counts
    # The range read's bytes, exactly, under that object and that client.
    assert counts.total("read", store=store, client=LOCAL, url=obj, method="GET") == 200_000
    assert counts.total("read", prefix=f"{scheme}://{bucket}/raw/sub") == 0
    assert counts.total("requests", url=f"{scheme}://{bucket}", method="GET") >= 1  # the listing
    assert counts.total("uploaded") == 0

    out = tmp_path / "down"
    files = bed.download(f"{scheme}://{bucket}/raw", out)
    assert sorted(Path(f).relative_to(out).as_posix() for f in files) == ["sub/y.bin", "x.bin"]
    assert (out / "x.bin").read_bytes() == data


TENSORFLOW = """
    import json, sys
    import tensorflow as tf
    root, source = sys.argv[1], sys.argv[2]
    data = open(source, "rb").read()
    gfile = tf.io.gfile
    out = {}
    gfile.makedirs(root + "/dir")
    with gfile.GFile(root + "/dir/a.bin", "wb") as f:
        f.write(data[:1000])
        f.write(data[1000:])
    # An empty object: TensorFlow sends `Transfer-Encoding: identity`, Go's server answers 501.
    with gfile.GFile(root + "/dir/empty", "wb") as f:
        f.write(b"")
    out["glob"] = sorted(gfile.glob(root + "/dir/*"))
    out["sizes"] = {name: gfile.stat(root + "/dir/" + name).length for name in ("a.bin", "empty")}
    out["isdir"] = gfile.isdir(root + "/dir")
    gfile.rename(root + "/dir/a.bin", root + "/dir/b.bin")
    out["after_rename"] = [gfile.exists(root + "/dir/a.bin"), gfile.exists(root + "/dir/b.bin")]
    with gfile.GFile(root + "/dir/b.bin", "rb") as f:
        f.seek(5000)
        out["read_back"] = f.read(100) == data[5000:5100]
    records = [b"record %d " % i * (i + 1) for i in range(50)]
    with tf.io.TFRecordWriter(root + "/records.tfrecord") as writer:
        for record in records:
            writer.write(record)
    read = [r.numpy() for r in tf.data.TFRecordDataset(root + "/records.tfrecord")]
    out["records"] = read == records
    print(json.dumps(out))
"""

GCSFS_FIND = """
    import hashlib, json, sys, urllib.request
    import gcsfs
    fs = gcsfs.GCSFileSystem()
    found = fs.find(sys.argv[1], detail=True)
    out = {name: [info["size"], hashlib.sha256(fs.cat_file(name)).hexdigest()]
           for name, info in found.items()}
    # The folder marker tf.io.gfile.makedirs wrote: an object of its own, as in GCS.
    url = "https://storage.googleapis.com/storage/v1/b/" + sys.argv[2]
    out["marker"] = json.load(urllib.request.urlopen(url))["size"]
    print(json.dumps(out))
"""


def test_tensorflow_gcs_file_system_through_the_front(bed, tmp_path):
    bed.make_bucket("gcs", "tf-bucket")
    source, data = payload(tmp_path, "a.bin", 200_000)
    root = "gs://tf-bucket/tf"
    got = client(bed, TENSORFLOW, root, source, timeout=600)
    assert got == {
        "glob": [f"{root}/dir/a.bin", f"{root}/dir/empty"],
        "sizes": {"a.bin": len(data), "empty": 0},
        "isdir": True,
        "after_rename": [False, True],
        "read_back": True,
        "records": True,
    }
    counts = bed.counts()
    # TensorFlow reads objects from storage.googleapis.com/BUCKET/OBJECT: counted as reads.
    assert counts.total("read", client=LOCAL, url="gs://tf-bucket/tf/records.tfrecord") > 0
    assert counts.total("read", url="gs://tf-bucket/tf/dir/b.bin") >= 100
    assert counts.total("uploaded", url="gs://tf-bucket/tf/dir/a.bin") == len(data)
    assert counts.total(status=501) == 0 and counts.total(status=502) == 0, counts

    # gcsfs sees what TensorFlow wrote (makedirs' folder markers too).
    seen = client(bed, GCSFS_FIND, "tf-bucket/tf", "tf-bucket/o/tf%2Fdir%2F")
    assert seen.pop("marker") == "0"
    digest = hashlib.sha256(data).hexdigest()
    assert seen["tf-bucket/tf/dir/b.bin"] == [len(data), digest]
    assert seen["tf-bucket/tf/dir/empty"] == [0, hashlib.sha256(b"").hexdigest()]
    assert "tf-bucket/tf/dir/a.bin" not in seen
    assert seen["tf-bucket/tf/records.tfrecord"][0] > 50


READ_THRICE = """
    import hashlib, json, sys
    import fsspec
    fs, path = fsspec.core.url_to_fs(sys.argv[1])
    digests = [hashlib.sha256(fs.cat_file(path)).hexdigest(),
               hashlib.sha256(fs.cat_file(path, start=10, end=70_010)).hexdigest()]
    with fs.open(path, "rb", block_size=2**16) as f:  # several ranged reads
        digests.append(hashlib.sha256(f.read()).hexdigest())
    print(json.dumps(digests))
"""


def test_every_third_request_failing_with_503_gcsfs_still_reads_the_right_bytes(bed, tmp_path):
    bed.make_bucket("gcs", "faulty")
    local, data = payload(tmp_path, "obj.bin", 150_000)
    (url,) = bed.upload(local, "gs://faulty/")
    expected = [hashlib.sha256(d).hexdigest() for d in (data, data[10:70_010], data)]

    bed.reset_counts()
    bed.faults(503, every=3, store="gcs")
    assert client(bed, READ_THRICE, url) == expected
    counts = bed.counts()
    failed = counts.total(status=503)
    assert failed >= 2, counts  # the reads take 6 requests at least
    assert counts.total("faults") == failed == counts.total("requests") // 3  # every third
    assert counts.total("read", url=url) >= 2 * len(data) + 70_000

    bed.faults(None)
    bed.reset_counts()
    assert client(bed, READ_THRICE, url) == expected
    counts = bed.counts()
    assert counts.total(status=503) == 0 and counts.total("faults") == 0, counts
    assert counts.total("requests") >= 3


def test_dropped_connections_and_matched_faults(bed, tmp_path):
    bed.make_bucket("s3", "drops")
    local, data = payload(tmp_path, "obj.bin", 100_000)
    (url,) = bed.upload(local, "s3://drops/")
    other, _ = payload(tmp_path, "other.bin", 1000)
    (other_url,) = bed.upload(other, "s3://drops/")

    # Every second GET of obj.bin closed unanswered: botocore retries it.
    bed.reset_counts()
    bed.faults(503, drop_every=2, match="/drops/obj.bin", method="GET")
    assert client(bed, READ_THRICE, url)[0] == hashlib.sha256(data).hexdigest()
    counts = bed.counts()
    assert counts.total("dropped", url=url, method="GET") >= 1, counts
    assert counts.total("dropped") == counts.total("dropped", url=url)
    assert counts.total(status=503) == 0

    # Only the first 2 matching requests answered 503 (times=2), the other object untouched.
    bed.faults(503, every=1, match="/drops/obj.bin", times=2)
    bed.reset_counts()
    assert client(bed, READ_THRICE, url)[0] == hashlib.sha256(data).hexdigest()
    assert client(bed, LIST_AND_READ, "s3://drops", other_url, 0, 10)["size"] == 10
    counts = bed.counts()
    assert counts.total(status=503) == 2 == counts.total(status=503, url=url), counts
    assert counts.total("faults", url=other_url) == 0


CHUNKED_PUT = """
    import hashlib, http.client, json, os, sys
    import botocore.session
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    data, path = os.urandom(1_000_003), "/chunked/obj.bin"
    endpoint = os.environ["AWS_ENDPOINT_URL"]
    request = AWSRequest(method="PUT", url=endpoint + path,
                         headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
    S3SigV4Auth(botocore.session.get_session().get_credentials(), "s3", "us-east-1").add_auth(request)
    conn = http.client.HTTPConnection(*endpoint.split("//")[1].split(":"))
    conn.putrequest("PUT", path, skip_accept_encoding=True)
    for k, v in request.headers.items():
        conn.putheader(k, v)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    for i in range(0, len(data), 99_991):
        part = data[i:i + 99_991]
        conn.send(b"%x\\r\\n%s\\r\\n" % (len(part), part))
    conn.send(b"0\\r\\n\\r\\n")
    status = conn.getresponse().status
    print(json.dumps([status, hashlib.sha256(data).hexdigest()]))
"""


def test_a_chunked_request_body_streams_through_the_front(bed):
    bed.make_bucket("s3", "chunked")
    status, digest = client(bed, CHUNKED_PUT)
    assert status == 200
    assert bed.counts().total("uploaded", url="s3://chunked/obj.bin") == 1_000_003
    got = client(bed, LIST_AND_READ, "s3://chunked", "s3://chunked/obj.bin", 0, 1_000_003)
    assert got["sha256"] == digest


def test_the_filesystem_backend_keeps_objects_in_the_temporary_folder(tmp_path):
    local, data = payload(tmp_path, "x.bin", 50_000)
    with StoreBed(backend="filesystem") as bed:
        bed.make_bucket("gcs", "on-disk")
        assert bed.upload(local, "gs://on-disk/a/") == ["gs://on-disk/a/x.bin"]
        assert (bed.tmp / "gcs-data" / "on-disk" / "a" / "x.bin").read_bytes() == data
        bed.download("gs://on-disk/a/x.bin", tmp_path / "down.bin")
        assert (tmp_path / "down.bin").read_bytes() == data
    with pytest.raises(stores.StoreError, match="expected 'memory' or 'filesystem'"):
        StoreBed(backend="disk")


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # a zombie child of this process: ended


def assert_removed(name: str, tmp: Path, pids: list[int]) -> None:
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert name not in listed.split(), listed
    assert not Path(f"/etc/netns/{name}").exists()
    assert not Path(f"/var/run/netns/{name}").exists()
    assert not tmp.exists()
    assert not (stores.REGISTRY / name).exists()
    deadline = time.monotonic() + 5  # only for the kernel to finish the SIGKILLed ones
    while not all(gone(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [pid for pid in pids if not gone(pid)] == []


@pytest.mark.parametrize("ending", ENDINGS)
def test_the_bed_removes_everything_on_exit(ending):
    seen = {}

    def body():
        with StoreBed() as bed:
            # A client still running inside at the end: stopped with the servers.
            sleeper = subprocess.Popen(bed.command(["sleep", "300"]))
            deadline = time.monotonic() + 10
            while sleeper.pid not in bed.pids() and time.monotonic() < deadline:
                time.sleep(0.02)
            seen.update(name=bed.name, tmp=bed.tmp, pids=bed.pids(), sleeper=sleeper)
            assert len(seen["pids"]) == 4, seen  # fake-gcs-server, moto, the front, sleep
            assert Path(f"/etc/netns/{bed.name}/hosts").exists()
            end_body(ending)

    run_body(body, ending)
    assert seen["sleeper"].wait(timeout=10) == -signal.SIGTERM
    assert_removed(seen["name"], seen["tmp"], seen["pids"])


def test_a_bed_left_by_a_killed_process_is_removed_by_the_next(tmp_path):
    script = (
        "import time\nfrom imagenet2017_tfds.launch.stores import StoreBed\n"
        "bed = StoreBed().__enter__()\n"
        "print(bed.name, bed.tmp, *bed.pids(), flush=True)\ntime.sleep(600)\n"
    )
    # Its temporary folder where this process does not look: found through the registry.
    (tmp_path / "elsewhere").mkdir()
    env = dict(
        os.environ,
        TMPDIR=str(tmp_path / "elsewhere"),
        PYTHONPATH=os.pathsep.join([str(stores.ROOT), os.environ.get("PYTHONPATH", "")]),
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        name, tmp, *pids = owner.stdout.readline().split()
    finally:
        owner.kill()
        owner.wait()
    assert name.startswith(stores.PREFIX) and len(pids) == 3
    assert Path(tmp).parent == tmp_path / "elsewhere"
    # The servers outlive their owner (their own sessions): the bed is stale, not gone.
    assert Path(f"/var/run/netns/{name}").exists() and not gone(int(pids[0]))
    with StoreBed() as bed:
        assert bed.name != name
        assert_removed(name, Path(tmp), [int(p) for p in pids])


def listeners(*prefix: str) -> set[tuple[str, str]]:
    """Listening TCP and UDP sockets (ss, in the namespace of `prefix`): (address:port,
    owning processes)."""
    out = subprocess.run([*prefix, "ss", "-ltunpH"], capture_output=True, text=True, check=True)
    found = set()
    for line in out.stdout.splitlines():
        fields = line.split()
        found.add((fields[4], " ".join(fields[6:])))
    return found


def test_nothing_listens_or_reaches_outside_the_namespace():
    before = listeners()
    with StoreBed() as bed:
        inside = listeners("ip", "netns", "exec", bed.name)
        addresses = sorted(address for address, _ in inside)
        assert addresses == sorted(f"127.0.0.1:{port}" for port in (443, 4443, 5000, 9000))
        pids = bed.pids()
        new = listeners() - before
        ours = [
            (a, who) for a, who in new if any(f"pid={pid}," in who for pid in [*pids, os.getpid()])
        ]
        assert ours == [], new
        # Only loopback in there: an address outside is unreachable, a name unresolvable.
        links = bed.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
        assert re.findall(r"^\d+: (\S+):", links, re.MULTILINE) == ["lo"]
        probe = bed.run(
            [
                sys.executable,
                "-c",
                textwrap.dedent("""
            import json, socket, time
            out, t = {}, time.monotonic()
            try:
                socket.create_connection(("8.8.8.8", 53), timeout=5)
                out["connect"] = "connected"
            except OSError as e:
                out["connect"] = type(e).__name__
            try:
                socket.getaddrinfo("pypi.org", 443)
                out["resolve"] = "resolved"
            except OSError as e:
                out["resolve"] = type(e).__name__
            out["google"] = socket.gethostbyname("storage.googleapis.com")
            out["seconds"] = time.monotonic() - t
            print(json.dumps(out))
        """),
            ],
            capture_output=True,
            text=True,
        )
        got = json.loads(probe.stdout)
        assert got["connect"] == "OSError" and got["resolve"] == "gaierror", got
        assert got["google"] == "127.0.0.1" and got["seconds"] < 3, got


def test_the_module_starts_a_bed_in_the_foreground_until_ctrl_c():
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(stores.ROOT), os.environ.get("PYTHONPATH", "")])
    )
    command = [sys.executable, "-m", "imagenet2017_tfds.launch.stores"]
    shown = subprocess.run([*command, "--help"], capture_output=True, text=True, env=env)
    assert shown.returncode == 0 and "Ctrl-C" in shown.stdout
    process = subprocess.Popen(
        [*command, "--bucket", "gs://manual", "--bucket", "s3://manual"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C"):
                break
        text = "".join(lines)
        name = re.search(r"namespace ([\w-]+)", text).group(1)
        assert f"export AWS_ENDPOINT_URL=http://127.0.0.1:{stores.S3_PORT}" in text, text
        assert Path(f"/var/run/netns/{name}").exists()
        tmp = Path(re.search(r"temporary folder (\S+)", text).group(1))
        pids = stores._netns_pids(name)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    assert_removed(name, tmp, pids)
