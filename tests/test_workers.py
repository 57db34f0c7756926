"""Generation on every core: worker processes read, check and serialize ranges of members;
the main process only writes. The same bytes as one process, whatever the number of workers."""

from __future__ import annotations

import io
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from imagenet2017_tfds import prepare, problems, tasks, workers
from imagenet2017_tfds.examples import Item
from imagenet2017_tfds.sources import Entry, Loaded
from tests import readback
from tests.conftest import ROOT, build_env
from tests.test_failures import api_build


@pytest.mark.parametrize("config", ["clsloc", "det"])
@pytest.mark.parametrize("count", [1, 3])
def test_any_number_of_workers_writes_the_same_bytes(
    config, count, cli_builds, tarball_release, tmp_path, monkeypatch
):
    api_build(tarball_release.manual_dir, tmp_path, config, tarball_release.checksums,
              monkeypatch, workers=count)  # fmt: skip
    assert readback.shard_bytes(tmp_path, config) == readback.shard_bytes(cli_builds, config)


def test_a_script_without_a_main_guard_builds_with_workers(tarball_release, tmp_path):
    # Workers never re-run the user's main module, as multiprocessing's spawn would.
    script = tmp_path / "train.py"
    script.write_text(
        "import tensorflow_datasets as tfds\n"
        "import imagenet2017_tfds\n"
        "print('script ran', flush=True)\n"
        "config = imagenet2017_tfds.Imagenet2017Config(name='clsloc', workers=2)\n"
        f"builder = tfds.builder('imagenet2017', config=config, data_dir={str(tmp_path)!r})\n"
        "builder.download_and_prepare(download_config=tfds.download.DownloadConfig("
        f"manual_dir={str(tarball_release.manual_dir)!r}))\n"
        "print(builder.info.splits['train'].num_examples)\n"
    )
    result = subprocess.run(
        [sys.executable, str(script)], env=build_env(tarball_release.checksums),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines.count("script ran") == 1 and lines[-1] == "14"


def test_a_worker_that_dies_is_named(tarball_release, monkeypatch):
    monkeypatch.setenv("IMAGENET2017_CHECKSUMS", str(tarball_release.checksums))
    prepared = prepare.prepare(tarball_release.manual_dir, tasks.CLSLOC)
    parts = prepared.splits["train"].parts
    pool = workers.Pool(2)
    try:
        for proc in pool._start():
            proc.kill()
        with pytest.raises(RuntimeError, match=r"a worker process \(pid \d+\) ended unexpectedly"):
            jobs = pool.jobs(tasks.CLSLOC, prepared.inputs.parts, parts, "strict", decode=False)
            list(pool.run(jobs, problems.Recorder()))
    finally:
        pool.close()


def test_workers_default_to_one_per_core():
    import os

    assert workers.count(0) == os.cpu_count()
    assert workers.count(1) == 1 and workers.count(5) == 5


def big_jobs_run() -> None:
    """Six jobs of four ~0.6 MB images through two workers; prints the keys that came back."""
    pixels = np.random.default_rng(0).integers(0, 256, (900, 900, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "JPEG", quality=95)
    image = out.getvalue()
    assert len(image) > 500_000
    jobs = []
    for j in range(6):
        entries = [Entry(k, f"Data/CLS-LOC/test/ILSVRC2012_test_{j}{k:07d}.JPEG", len(image))
                   for k in range(4)]  # fmt: skip
        items = [(e, Item(f"test/{j}-{k}", e.path, e.path.rsplit("/", 1)[1]))
                 for k, e in enumerate(entries)]  # fmt: skip
        jobs.append(workers.Job(tasks.CLSLOC, Loaded("big", dict.fromkeys(entries, image)),
                                items, "strict", False))  # fmt: skip
    pool = workers.Pool(2)
    try:
        print(" ".join(k for k, _ in pool.run(jobs, problems.Recorder())))
    finally:
        pool.close()


def test_jobs_carrying_megabytes_of_images_flow_both_ways_without_stalling():
    """A one-read build's jobs carry their images, each many times a pipe's buffer, and
    their results come back as large: sending must not wait on a worker that waits for its
    results to be read (it did: the first 1 GB one-read build hung). In its own process, so
    a stall fails the test instead of hanging the suite."""
    command = [sys.executable, "-c", "from tests.test_workers import big_jobs_run; big_jobs_run()"]
    try:
        result = subprocess.run(command, env=build_env(None), cwd=ROOT, capture_output=True,
                                text=True, timeout=600)  # fmt: skip
    except subprocess.TimeoutExpired:
        pytest.fail("the pool stalled with jobs and results in its pipes")
    assert result.returncode == 0, result.stderr[-3000:]
    expected = [f"test/{j}-{k}" for j in range(6) for k in range(4)]
    assert result.stdout.split() == expected
