"""A failure during the shard jobs is the package's own error, naming the member or the
worker, whichever process notices it first, and it is the only traceback the user sees (no
pipe error, KeyError or library error printed ahead of it by the build or its workers):
a worker raising mid-job (a damaged train image), the build's process raising while the
workers are busy (a validation image TensorFlow cannot decode), a worker killed mid-range.
Nothing loads after any of them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

from imagenet2017_tfds import errors, testing
from tests.conftest import ROOT, api_build, build_env, tfds_build
from tests.support import readback
from tests.support.mutate import rewrite
from tests.support.readback import assert_nothing_loads

TRAIN = "Data/CLS-LOC/train/n01440764/n01440764_9999.JPEG"
VAL = "Data/CLS-LOC/val/ILSVRC2012_val_00000001.JPEG"
FOREIGN = (
    "BrokenPipeError",
    "KeyError",
    "RuntimeError",
    "EOFError",
    "ConnectionResetError",
    "UnpicklingError",
    "Cancelled",
)
TRACEBACK = "Traceback (most recent call last)"


def assert_only_ours(stderr: str, error: str, *named: str) -> str:
    """One traceback in `stderr`, ending in the package's `error` naming each of `named`;
    no trace of another exception anywhere. Returns the traceback."""
    assert stderr.count(TRACEBACK) == 1, stderr[-6000:]
    shown = stderr[stderr.index(TRACEBACK) :]
    last = [line for line in shown.splitlines() if line.strip()][-1]
    assert last.startswith("imagenet2017_tfds.") and f".{error}: " in last, last
    assert all(n in last for n in named), (named, last)
    assert not [word for word in FOREIGN if word in stderr], stderr[-6000:]
    return shown


@pytest.fixture
def release(tmp_path):
    return testing.write_release(tmp_path / "manual", form="tarball", parts=("clsloc",))


def test_a_worker_failing_mid_job_is_the_only_traceback_the_cli_prints(release, tmp_path):
    sums = rewrite(release, "clsloc", {TRAIN: b"\xff\xd8\xff\xe0 not really a jpeg"})
    config = json.dumps({"name": "clsloc", "workers": 2})
    result = tfds_build(config, release.manual_dir, tmp_path / "data", sums, check=False)
    assert result.returncode != 0
    shown = assert_only_ours(result.stderr, "ImageError", testing.CLSLOC, TRAIN)
    assert "imagenet2017_tfds/engine/pool.py" in shown  # a worker's error, raised here
    assert_nothing_loads(tmp_path / "data")


def test_the_build_failing_while_its_workers_are_busy_is_the_only_traceback(
    release, tmp_path, monkeypatch, capfd
):
    # A Huffman table no decoder accepts: stored as it is (its markers are whole), then
    # refused by TensorFlow's decoder in the build's process, while train is being written.
    image = release.members["clsloc"][VAL]
    at = image.index(b"\xff\xc4")
    sums = rewrite(release, "clsloc", {VAL: image[: at + 5] + b"\xff" * 16 + image[at + 21 :]})
    with pytest.raises(errors.ImageError, match=VAL) as e:
        api_build(
            release.manual_dir,
            tmp_path / "data",
            checksums=sums,
            monkeypatch=monkeypatch,
            workers=2,
        )
    printed = "".join(traceback.format_exception(e.value))
    workers = capfd.readouterr().err  # the workers' stderr is this process's
    assert_only_ours(workers + printed, "ImageError", VAL)
    assert_nothing_loads(tmp_path / "data")


def _killed(manual, data, faults: str, checksums) -> subprocess.CompletedProcess:
    """tests/support/killed_build.py with two workers, its faults armed by the environment."""
    return subprocess.run(
        [sys.executable, "-m", "tests.support.killed_build", str(manual), str(data), "2"],
        env={**build_env(checksums), "IMAGENET2017_FAULTS": faults},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_worker_killed_mid_range_is_named_and_the_rerun_gives_the_same_bytes(
    cli_builds, tarball_release, tmp_path
):
    manual, data = tarball_release.manual_dir, tmp_path / "data"
    # Each worker killed as it serializes the third example of its range (the build's own
    # process serializes none: the workers write every shard).
    first = _killed(manual, data, "example-serialized:kill@3", tarball_release.checksums)
    assert first.returncode == 1, first.stderr[-3000:]
    assert_only_ours(first.stderr, "WorkerError", f"was killed by signal {signal.SIGKILL.name}")
    assert_nothing_loads(data)
    # The stream was complete: the rerun refuses to read the archive, and needs not.
    again = _killed(manual, data, "archive-read:fail", tarball_release.checksums)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "read by an earlier run of this build; reusing it" in again.stderr
    assert readback.shard_bytes(data, "clsloc") == readback.shard_bytes(cli_builds, "clsloc")


def test_a_job_a_worker_cannot_read_is_reported_not_printed(tmp_path, monkeypatch, capfd):
    from imagenet2017_tfds.engine import pool

    p = pool.Pool(1)
    try:
        p.start()  # its workers know the import path as it is now
        (tmp_path / "elsewhere.py").write_text("class Part:\n    pass\n")
        monkeypatch.syspath_prepend(str(tmp_path))
        import elsewhere

        with pytest.raises(pool.WorkerError, match=r"cannot read the job .*ModuleNotFoundError"):
            list(p.run([elsewhere.Part()]))
    finally:
        p.close()
    assert TRACEBACK not in capfd.readouterr().err


def test_ctrl_c_is_the_builds_to_answer_not_its_workers(capfd, ctrl_c_reaches_children):
    """The terminal sends SIGINT to the whole process group: the workers ignore it from
    their first statements, so the user sees the build's KeyboardInterrupt, not one more
    traceback a worker."""
    from imagenet2017_tfds.engine import pool

    def ignores_sigint(pid: int) -> bool:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigIgn:"):
                return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
        return False

    p = pool.Pool(2, ("clsloc",))
    try:
        procs = p.start()
        deadline = time.monotonic() + 60
        while not all(ignores_sigint(w.pid) for w in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
        for w in procs:
            w.send_signal(signal.SIGINT)
        time.sleep(1)  # the features load meanwhile: a KeyboardInterrupt would end them
        assert [w.poll() for w in procs] == [None, None]
    finally:
        p.close()
    assert [w.returncode for w in procs] == [0, 0]
    err = capfd.readouterr().err
    assert TRACEBACK not in err and "KeyboardInterrupt" not in err, err


BUILD_KILLED_WHILE_ITS_WORKER_IS_BUSY = """
import os, signal, sys, threading, time
sys.path.insert(0, sys.argv[1])
import slow
from imagenet2017_tfds.engine import pool

p = pool.Pool(1)
(worker,) = p.start()
threading.Thread(target=lambda: list(p.run([slow.Job()])), daemon=True).start()
print(worker.pid, flush=True)
time.sleep(2)  # the worker is busy with its job
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_builds_workers_end_when_the_build_is_killed(tmp_path):
    """SIGKILL (the OOM killer) of the build's process ends its workers at once: one left
    running would go on writing and freeing buckets beside the rerun of the same build."""
    (tmp_path / "slow.py").write_text(
        "import time\n\nclass Job:\n    def __init__(self):\n        self.seconds = 120\n\n"
        "    def __setstate__(self, state):\n        time.sleep(state['seconds'])\n"
    )
    build = subprocess.Popen(
        [sys.executable, "-c", BUILD_KILLED_WHILE_ITS_WORKER_IS_BUSY, str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    worker = int(build.stdout.readline())
    assert build.wait(timeout=120) == -signal.SIGKILL

    def running() -> bool:
        try:
            state = Path(f"/proc/{worker}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return False
        return state not in ("Z", "X")

    deadline = time.monotonic() + 10
    while running() and time.monotonic() < deadline:
        time.sleep(0.1)
    still = running()
    if still:
        os.kill(worker, signal.SIGKILL)
    assert not still, "the worker went on after its build was killed"
