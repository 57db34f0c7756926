"""The build lock (filelock): a second build waits and says so, leftovers of a killed build go
under the lock, concurrent builds on one data_dir write the bytes of one build, and the
package imports and loads a dataset where `fcntl` does not exist."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import tensorflow_datasets as tfds

from tests.conftest import ROOT, TFDS, build_env, tfds_build
from tests.support import readback

HOLD = """
import sys, time, pathlib
from imagenet2017_tfds.internal import locking
config_dir, release = sys.argv[1], pathlib.Path(sys.argv[2])
with locking.build_lock(config_dir):
    print("acquired", time.time(), flush=True)
    while not release.exists():
        time.sleep(0.05)
print("released", time.time(), flush=True)
"""


def _holder(config_dir, release):
    return subprocess.Popen(
        [sys.executable, "-c", HOLD, str(config_dir), str(release)],
        env=build_env(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(predicate, what: str, timeout: float = 60) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_second_build_waits_says_so_and_removes_leftovers_under_the_lock(tmp_path):
    config_dir = tmp_path / "imagenet2017" / "clsloc"
    first = _holder(config_dir, tmp_path / "release-first")
    assert first.stdout.readline().startswith("acquired"), first.stderr.read()
    # A killed build's folder appears while the first build holds the lock.
    leftover = config_dir / "incomplete.ABC123" / "1.0.0"
    leftover.mkdir(parents=True)
    (leftover / "imagenet2017-train.tfrecord-00000-of-00001").write_bytes(b"partial")
    second = _holder(config_dir, tmp_path / "release-second")
    waiting = second.stdout.readline()
    assert waiting == f"Waiting: another build of this dataset holds {config_dir}/.build.lock.\n"
    time.sleep(1)
    assert second.poll() is None  # still waiting
    assert leftover.exists()  # not touched without the lock
    (tmp_path / "release-first").touch()
    released_at = float(first.stdout.readline().split()[1])
    acquired = second.stdout.readline().split()
    assert acquired[0] == "acquired" and float(acquired[1]) >= released_at
    assert not (config_dir / "incomplete.ABC123").exists()
    (tmp_path / "release-second").touch()
    assert first.wait(60) == 0 and second.wait(60) == 0, second.stderr.read()


def test_a_free_lock_is_taken_at_once_and_says_nothing(tmp_path, capsys):
    from imagenet2017_tfds.internal import locking

    config_dir = tmp_path / "imagenet2017" / "det"
    (config_dir / "incomplete.XYZ").mkdir(parents=True)
    (config_dir / "1.0.0").mkdir()  # a built version is never touched
    with locking.build_lock(str(config_dir)):
        assert sorted(p.name for p in config_dir.iterdir()) == [".build.lock", "1.0.0"]
    assert capsys.readouterr().out == ""
    with locking.build_lock(str(config_dir)):  # released: taken again at once
        pass


def test_the_package_imports_and_loads_a_dataset_without_fcntl(cli_builds, tmp_path):
    """As on Windows: `fcntl` cannot be imported. TFDS's import pulls in our builder, and so
    the build lock; loading a built dataset and taking the lock both work."""
    code = f"""
import sys
sys.modules["fcntl"] = None  # `import fcntl` now raises ImportError
import imagenet2017_tfds
import tensorflow_datasets as tfds
assert "imagenet2017_tfds.internal.locking" in sys.modules
ds = tfds.load("imagenet2017/det", split="validation", data_dir={str(cli_builds)!r})
print(sum(1 for _ in ds))
from imagenet2017_tfds.internal import locking
with locking.build_lock({str(tmp_path / "lockdir")!r}):
    print("locked")
"""
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=dict(build_env(None), TF_CPP_MIN_LOG_LEVEL="3"),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split() == ["10", "locked"]
    assert os.path.exists(tmp_path / "lockdir")


def test_concurrent_builds_on_one_data_dir_do_not_corrupt_each_other(tarball_release, tmp_path):
    data = tmp_path / "data"
    command = [TFDS, "build", "imagenet2017", "--imports", "imagenet2017_tfds", "--config"]
    command += ["clsloc", "--manual_dir", str(tarball_release.manual_dir), "--data_dir", str(data)]
    env = build_env(tarball_release.checksums)
    processes = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=600)[0].decode(errors="replace") for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    tfds_build("clsloc", tarball_release.manual_dir, tmp_path / "clean", tarball_release.checksums)
    assert readback.shard_bytes(data, "clsloc") == readback.shard_bytes(
        tmp_path / "clean", "clsloc"
    )
    assert (
        tfds.builder("imagenet2017/clsloc", data_dir=str(data)).info.splits["train"].num_examples
        == 14
    )
    assert not list((data / "imagenet2017" / "clsloc").glob("incomplete.*"))
