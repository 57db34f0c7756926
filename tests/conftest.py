"""Shared fixtures: miniature releases and real builds of them (the slow part, done once)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TFDS = str(Path(sys.executable).parent / "tfds")


def build_env(checksums: Path | None) -> dict:
    # Beam's worker pool starts `python` from PATH: make it this venv's.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    # The repository first; what PYTHONPATH held after it (`make test-oldest` puts an older
    # TFDS there).
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=pythonpath, TF_CPP_MIN_LOG_LEVEL="2", PATH=path)
    if checksums is not None:
        env["IMAGENET2017_CHECKSUMS"] = str(checksums)
    return env


def tfds_build(
    config, manual_dir, data_dir, checksums, *extra, imports=True, cwd=ROOT, check=True, env=None
):
    """The real `tfds build` command, in its own process, as a user runs it (`env`: more
    environment, such as IMAGENET2017_FAULTS)."""
    command = [TFDS, "build", "imagenet2017", "--config", config]
    command += ["--manual_dir", str(manual_dir), "--data_dir", str(data_dir), *extra]
    if imports:
        command += ["--imports", "imagenet2017_tfds"]
    result = subprocess.run(
        command,
        env={**build_env(checksums), **(env or {})},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed:\n{result.stderr[-6000:]}")
    return result


def api_build(manual_dir, data_dir, config="clsloc", checksums=None, monkeypatch=None, **options):
    """A build through TFDS's Python API in this process, as a user's program runs it."""
    import tensorflow_datasets as tfds

    import imagenet2017_tfds

    if checksums is not None:
        monkeypatch.setenv("IMAGENET2017_CHECKSUMS", str(checksums))
    cfg = imagenet2017_tfds.Imagenet2017Config(name=config, **options) if options else config
    builder = tfds.builder("imagenet2017", config=cfg, data_dir=str(data_dir))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=None if manual_dir is None else str(manual_dir)
        )
    )
    return builder


# `imagenet2017-tfds` as a command line of this Python (the tests' PYTHONPATH, no install).
CLI = (sys.executable, "-m", "imagenet2017_tfds.tools.cli")


def pip_install(*args) -> None:
    """`pip install -q ARGS` into this Python's reach (a --target), quietly; raises on failure."""
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", *args], check=True, capture_output=True
    )


def cli(*args, env=None):
    """`imagenet2017-tfds <args>` in its own process; its output."""
    result = subprocess.run(
        [*CLI, *map(str, args)],
        env=env or build_env(None),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


ENDINGS = ["returns", "raises", "interrupted"]


def end_body(ending: str) -> None:
    """The end of a with-block's body, as a test of ENDINGS wants it."""
    if ending == "raises":
        raise RuntimeError("the body failed")
    if ending == "interrupted":
        raise KeyboardInterrupt


def run_body(body, ending: str) -> None:
    """body(), which ends with end_body(ending), expecting its exception."""
    if ending == "returns":
        body()
    else:
        with pytest.raises(RuntimeError if ending == "raises" else KeyboardInterrupt):
            body()


def parse_table(text: str, config: str) -> dict[str, list[str]]:
    """The rows of `stats`' table for `config`, by split."""
    block = text.split(f"imagenet2017/{config}\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return {line.split()[0]: line.split() for line in block[1:]}


@pytest.fixture
def ctrl_c_reaches_children():
    """The processes a Ctrl-C test starts get SIGINT as from a terminal, even when the suite
    itself runs with SIGINT ignored (a shell's background job, which children inherit)."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, before)


@pytest.fixture(scope="session", autouse=True)
def scratch_tmpdir(tmp_path_factory):
    """The system temporary folder, for this session only: Beam leaves its `beam-temp*`
    folders there. Inside pytest's own temporary tree they go when pytest prunes old runs,
    not into /tmp forever. Builds in subprocesses inherit it through TMPDIR."""
    scratch = tmp_path_factory.mktemp("scratch")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TMPDIR", str(scratch))
        mp.setattr(tempfile, "tempdir", str(scratch))
        yield scratch


@pytest.fixture(scope="session")
def tarball_release(tmp_path_factory):
    from imagenet2017_tfds import testing

    return testing.write_release(tmp_path_factory.mktemp("tarballs"), form="tarball")


@pytest.fixture(scope="session")
def tree_release(tmp_path_factory):
    from imagenet2017_tfds import testing

    return testing.write_release(tmp_path_factory.mktemp("tree"), form="tree")


@pytest.fixture(scope="session")
def flat_tree_release(tmp_path_factory):
    from imagenet2017_tfds import testing

    return testing.write_release(tmp_path_factory.mktemp("flat"), form="tree", ilsvrc_prefix=False)


@pytest.fixture(scope="session")
def cli_builds(tarball_release, tmp_path_factory):
    """Both configs built from the tarballs with `tfds build --imports`."""
    data_dir = tmp_path_factory.mktemp("cli-data")
    for config in ("clsloc", "det"):
        tfds_build(config, tarball_release.manual_dir, data_dir, tarball_release.checksums)
    return data_dir


@pytest.fixture(scope="session")
def array_record_builds(tarball_release, tmp_path_factory):
    """Both configs built from the tarballs with `--file_format array_record`."""
    data_dir = tmp_path_factory.mktemp("array-record-data")
    for config in ("clsloc", "det"):
        tfds_build(
            config,
            tarball_release.manual_dir,
            data_dir,
            tarball_release.checksums,
            "--file_format",
            "array_record",
        )
    return data_dir


@pytest.fixture(scope="session")
def wheel(tmp_path_factory):
    """The project's wheel, built once."""
    out = tmp_path_factory.mktemp("wheel")
    # From a copy of what the wheel is made of: setuptools builds in the source folder, and a
    # build/ left there by an earlier build would ship files since removed.
    source = out / "source"
    source.mkdir()
    for name in ("setup.py", "README.md", "pyproject.toml", "imagenet2017_tfds"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copyfile
        kwargs = (
            {"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree else {}
        )
        copy(ROOT / name, source / name, **kwargs)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(source),
        ],
        check=True,
        capture_output=True,
        cwd=out,
    )
    (path,) = out.glob("imagenet2017_tfds-*.whl")
    return path
