"""The workaround for Beam's FnApiRunner losing a bundle's input (compat.beam_fixes): refused on
a Beam it was not verified on, applied for a Beam build only and undone after, every bundle of
a real build sent through the stream it selects (the reproduction's own tests:
bench/test_beam_data_loss.py); and a TFDS whose internals changed, refused at import naming
its version and what changed."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from collections import Counter
from pathlib import Path

import apache_beam
import pytest
import tensorflow_datasets  # noqa: F401  (before the package: importing it registers the builder)
from apache_beam.runners.portability.fn_api_runner import worker_handlers
from apache_beam.runners.worker import data_plane

from imagenet2017_tfds import compat
from tests.conftest import ROOT, build_env
from tests.support import readback

SIZE_BASED = "SizeBasedBufferingClosableOutputStream"
BEAM_DEFAULT_MS = worker_handlers.DATA_BUFFER_TIME_LIMIT_MS


def test_beam_default_is_the_time_based_stream_the_workaround_replaces():
    # If Beam's default became 0, the workaround would be moot: this says so.
    assert BEAM_DEFAULT_MS > 0
    stream = data_plane.ClosableOutputStream.create(None, None, BEAM_DEFAULT_MS)
    try:
        assert type(stream).__name__ == "TimeBasedBufferingClosableOutputStream"
    finally:
        stream.close()


def test_an_unverified_beam_version_is_refused_naming_it(monkeypatch):
    monkeypatch.setattr(apache_beam, "__version__", "2.99.0")
    with pytest.raises(compat.CompatError) as e, compat.beam_fixes(True):
        pass
    message = str(e.value)
    assert "apache-beam 2.99.0 is installed" in message
    assert f"verified on apache-beam {', '.join(compat.BEAM_VERIFIED)}" in message
    assert f"pip install apache-beam=={compat.BEAM_VERIFIED[-1]}" in message
    assert "compat.BEAM_VERIFIED" in message and "bench/" not in message
    assert worker_handlers.DATA_BUFFER_TIME_LIMIT_MS == BEAM_DEFAULT_MS


def test_the_installed_beam_is_verified_and_its_names_are_as_expected():
    assert apache_beam.__version__ in compat.BEAM_VERIFIED
    assert compat._beam_problems(worker_handlers, data_plane) == []


def test_changed_beam_names_are_each_reported():
    class Server:
        def __init__(self):
            self.limit = 1000  # reads no module constant

    fake_handlers = types.SimpleNamespace(DATA_BUFFER_TIME_LIMIT_MS="1000", GrpcServer=Server)
    fake_plane = types.SimpleNamespace()
    problems = compat._beam_problems(fake_handlers, fake_plane)
    assert len(problems) == 3
    assert "DATA_BUFFER_TIME_LIMIT_MS is no longer an int" in problems[0]
    assert "GrpcServer.__init__ no longer reads" in problems[1]
    assert "no longer returns a SizeBasedBufferingClosableOutputStream" in problems[2]


def test_the_setting_is_applied_for_a_beam_build_only_and_restored_after_a_failure():
    with compat.beam_fixes(False):
        assert worker_handlers.DATA_BUFFER_TIME_LIMIT_MS == BEAM_DEFAULT_MS
    with pytest.raises(RuntimeError, match="mid-build"), compat.beam_fixes(True):
        assert worker_handlers.DATA_BUFFER_TIME_LIMIT_MS == 0
        raise RuntimeError("mid-build")
    assert worker_handlers.DATA_BUFFER_TIME_LIMIT_MS == BEAM_DEFAULT_MS


def test_a_direct_runner_build_sends_every_bundle_through_the_size_based_stream(
    tarball_release, cli_builds, tmp_path, monkeypatch
):
    """A real multi-process DirectRunner build in this process: the runner's data servicer is
    created here, so the stream classes it creates are seen here."""
    import tensorflow_datasets as tfds
    from apache_beam.options.pipeline_options import PipelineOptions

    import imagenet2017_tfds  # noqa: F401

    streams, limits = Counter(), []
    create = data_plane.ClosableOutputStream.create
    servicer_init = data_plane.BeamFnDataServicer.__init__

    def traced_create(close_callback, flush_callback, data_buffer_time_limit_ms):
        stream = create(close_callback, flush_callback, data_buffer_time_limit_ms)
        streams[type(stream).__name__] += 1
        return stream

    def traced_servicer_init(self, data_buffer_time_limit_ms=0):
        limits.append(data_buffer_time_limit_ms)
        servicer_init(self, data_buffer_time_limit_ms)

    monkeypatch.setattr(data_plane.ClosableOutputStream, "create", staticmethod(traced_create))
    monkeypatch.setattr(data_plane.BeamFnDataServicer, "__init__", traced_servicer_init)
    for name, value in build_env(tarball_release.checksums).items():
        if os.environ.get(name) != value:  # the worker processes inherit this environment
            monkeypatch.setenv(name, value)
    options = PipelineOptions(
        runner="DirectRunner", direct_num_workers=2, direct_running_mode="multi_processing"
    )
    builder = tfds.builder("imagenet2017/clsloc", data_dir=str(tmp_path))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=str(tarball_release.manual_dir), beam_options=options
        )
    )
    assert limits == [0]  # one runner, given the workaround's limit
    assert set(streams) == {SIZE_BASED} and streams[SIZE_BASED] > 0
    assert worker_handlers.DATA_BUFFER_TIME_LIMIT_MS == BEAM_DEFAULT_MS
    assert readback.records(tmp_path, "clsloc") == readback.records(cli_builds, "clsloc")


# ---------------------------------------------------------------- a TFDS whose internals changed

CHANGES = {  # file of TFDS -> (text, what a later release has instead)
    "version.py": ("_MINOR_VERSION = '9'", "_MINOR_VERSION = '99'"),
    # One parameter more (a changed signature) and a method renamed (a missing name).
    "core/shuffle.py": (
        "    max_hkey: Optional[int] = None,\n",
        "    max_hkey: Optional[int] = None,\n    salt: Optional[str] = None,\n",
    ),
    "core/dataset_info.py": ("def initialize_from_bucket(self)", "def initialize_from_gcs(self)"),
}


def _tfds_copy(folder: Path, changes: dict[str, tuple[str, str]]) -> Path:
    """The installed TFDS as a folder of links to its files, except the files of `changes`,
    copied with each change made: a TFDS release that changed what the package relies on."""
    import tensorflow_datasets as tfds

    def mirror(source: Path, target: Path) -> None:
        target.mkdir(parents=True)
        for entry in source.iterdir():
            relative = entry.relative_to(real).as_posix()
            if entry.name == "__pycache__":  # compiled from the originals: not for the copies
                continue
            if entry.is_dir() and any(c.startswith(relative + "/") for c in changes):
                mirror(entry, target / entry.name)
            elif relative in changes:
                old, new = changes[relative]
                text = entry.read_text()
                assert text.count(old) == 1, (relative, old)
                (target / entry.name).write_text(text.replace(old, new))
            else:
                (target / entry.name).symlink_to(entry)

    real = Path(tfds.__file__).parent
    mirror(real, folder / "tensorflow_datasets")
    return folder


def _import_with(tfds_folder: Path) -> subprocess.CompletedProcess:
    env = dict(build_env(None), PYTHONDONTWRITEBYTECODE="1")
    env["PYTHONPATH"] = os.pathsep.join([str(tfds_folder), env["PYTHONPATH"]])
    code = "import tensorflow_datasets as t, imagenet2017_tfds\nprint(t.__file__, t.__version__)"
    return subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600
    )


def test_a_tfds_whose_internals_changed_is_refused_at_import_naming_what_changed(tmp_path):
    import tensorflow_datasets as tfds

    # The copy as it is imports: the refusal below is the changes', not the copy's.
    same = _import_with(_tfds_copy(tmp_path / "same", {"version.py": CHANGES["version.py"]}))
    assert same.returncode == 0, same.stderr[-3000:]
    major, _, patch = tfds.__version__.split(".")
    later = f"{major}.99.{patch}"
    assert same.stdout.split() == [str(tmp_path / "same/tensorflow_datasets/__init__.py"), later]
    changed = _import_with(_tfds_copy(tmp_path / "changed", CHANGES))
    assert changed.returncode == 1
    assert changed.stderr.strip().splitlines()[-1] == (
        f"imagenet2017_tfds.compat.CompatError: tensorflow-datasets {later} is not a version "
        "imagenet2017_tfds supports: shuffle.get_bucket_number(hkey, num_buckets, max_hkey) "
        "changed; DatasetInfo.initialize_from_bucket() changed. Install a version within the "
        "bounds setup.py gives (pip install imagenet2017-tfds pulls one), or report this so the "
        "package can follow."
    ), changed.stderr[-3000:]
