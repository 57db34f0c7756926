"""store.StorePath on fsspec's in-memory file system (a real fsspec file system, no server):
the path arithmetic, ranged reads and seeks, one pass shared by two readers, atomic writes.
The same code against real GCS and S3 servers: tests/test_object_stores.py."""

from __future__ import annotations

import io
import os
import threading

import fsspec
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from imagenet2017_tfds.errors import StorageError
from imagenet2017_tfds.internal import faults, fileio, store


class CountingMemory(MemoryFileSystem):
    """fsspec's memory file system under a protocol of its own, counting the bytes each
    ranged read returns (what a store would count as fetched)."""

    protocol = "countmem"
    fetched: list[tuple[str, int, int]] = []
    lock = threading.Lock()

    def cat_file(self, path, start=None, end=None, **kwargs):
        data = super().cat_file(path, start=start, end=end, **kwargs)
        with self.lock:
            self.fetched.append((path, start or 0, len(data)))
        return data


fsspec.register_implementation("countmem", CountingMemory, clobber=True)


BLOCK = 1 << 16  # the blocks these tests read in: an object of several


@pytest.fixture
def blob():
    CountingMemory.fetched.clear()
    data = os.urandom(5 * BLOCK + 123)
    path = store.StorePath("countmem://bucket/raw/archive.tar.gz")
    path.write_bytes(data)
    yield path, data
    path.fs.rm("/bucket", recursive=True)


def test_path_parts_of_a_url():
    p = store.StorePath("gs://bucket/raw//sub/")
    assert str(p) == os.fspath(p) == "gs://bucket/raw/sub"
    assert p.name == "sub" and str(p.parent) == "gs://bucket/raw"
    assert str(p / "x.tar.gz") == "gs://bucket/raw/sub/x.tar.gz"
    assert str(p.joinpath("a", "b")) == "gs://bucket/raw/sub/a/b"
    assert fileio.path("gs://bucket/x") == store.StorePath("gs://bucket/x")
    assert not isinstance(fileio.path("/tmp/x"), store.StorePath)


def test_reads_and_seeks_return_the_objects_bytes(blob):
    path, data = blob
    with path.open("rb", block=BLOCK) as f:
        assert f.seek(70000) == 70000  # the position, as rapidgzip needs (TensorFlow's: None)
        assert f.read(100) == data[70000:70100]
        assert f.seek(-50, io.SEEK_END) == len(data) - 50
        assert f.read() == data[-50:]
        assert f.seek(3) == 3 and f.read(10) == data[3:13]
    with path.open("rb", block=BLOCK) as f:
        assert f.read() == data
    assert path.stat().length == len(data)
    assert path.identity()["size"] == len(data) and path.identity()["ukey"]


def test_a_forward_read_fetches_each_block_once(blob):
    path, data = blob
    with path.open("rb", block=BLOCK) as f:
        while f.read(1000):
            pass
    assert sum(n for _, _, n in CountingMemory.fetched) == len(data)


def test_two_readers_sharing_a_pass_fetch_the_object_once(blob):
    path, data = blob
    got = {}

    def read(name):
        with path.open("rb", block=BLOCK) as f:
            got[name] = b"".join(iter(lambda: f.read(777), b""))

    with store.shared_pass(path, readers=2):
        threads = [threading.Thread(target=read, args=(n,)) for n in ("stream", "digest")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert got == {"stream": data, "digest": data}
    assert sum(n for _, _, n in CountingMemory.fetched) == len(data)


def test_a_reader_left_alone_does_not_wait_for_the_other(blob):
    """The leading reader waits once it holds `ahead` blocks the other has not taken; when the
    other will not read (its stream reused, or failed), alone() frees it."""
    path, data = blob
    done = threading.Event()
    with store.shared_pass(path, readers=2, ahead=2) as shared:

        def read():
            with path.open("rb", block=BLOCK) as f:
                f.read()
            done.set()

        t = threading.Thread(target=read)
        t.start()
        assert not done.wait(1.0)  # held back, 2 blocks ahead of a reader that never reads
        shared.alone()
        assert done.wait(30)
        t.join()


def test_an_atomic_write_appears_whole_or_not_at_all(blob):
    path, _ = blob
    target = path.parent / "record.json"
    with pytest.raises(RuntimeError), fileio.atomic_output(target) as f:
        f.write(b"half")
        raise RuntimeError("killed mid-write")
    assert not target.exists()
    fileio.write_json(target, {"a": 1})
    assert fileio.read_json(target) == {"a": 1}


def test_a_missing_object_is_a_file_not_found_error_and_a_failing_client_ours(blob):
    path, _ = blob
    with pytest.raises(FileNotFoundError):
        (path.parent / "nothing").read_bytes()
    with pytest.raises(StorageError, match=r"hdfs://x/y: .* failed"):
        store.StorePath("hdfs://x/y").exists()  # no Hadoop here: the client fails to load


def test_a_folder_is_moved_with_the_named_object_last(blob):
    """What a reader of the target can trust: once `last` is there, every object is (each
    copy in place is seen at its `object-moved` point, the object there already)."""
    path, _ = blob
    source, target = path.parent / "incomplete.x_1.0", path.parent / "1.0"
    names = ["dataset_info.json", "LICENSE", "train.tfrecord-00000-of-00001", "sub/z"]
    for name in names:
        (source / name).write_text(name)
    copied = []

    def moved(url):
        assert store.StorePath(url).read_text() == url.split("/1.0/")[1]
        copied.append(url.split("/1.0/")[1])

    with faults.armed("object-moved", moved):
        store.move_folder(source, target, last="dataset_info.json")
    assert copied[-1] == "dataset_info.json" and sorted(copied) == sorted(names)
    assert sorted(target.files()) == sorted(names)
    assert all((target / n).read_text() == n for n in names)
    assert not source.exists()


def test_a_folder_without_the_object_to_move_last_is_left_where_it_is(blob):
    path, _ = blob
    source, target = path.parent / "incomplete.y_1.0", path.parent / "2.0"
    (source / "LICENSE").write_text("x")
    with pytest.raises(
        StorageError, match=r"incomplete.y_1.0: expected dataset_info.json .* found none"
    ):
        store.move_folder(source, target, last="dataset_info.json")
    assert source.files() == {"LICENSE": 1} and not target.exists()
