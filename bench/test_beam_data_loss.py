"""The reproduction of Beam's FnApiRunner data loss (bench/beam_data_loss.py), run as a
program: with Beam's own fix (time limit 0) and with the package's workaround
(compat.beam_fixes) it delivers every byte it wrote."""

import json
import subprocess
import sys

from tests.conftest import ROOT, build_env

SIZE_BASED = "SizeBasedBufferingClosableOutputStream"


def test_the_reproduction_delivers_every_byte_with_the_workaround(tmp_path):
    out = tmp_path / "runs.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "beam_data_loss.py"), "--mb", "50", "--runs", "3",
         "--fix", "time-limit-0", "--json", str(out)],
        capture_output=True, text=True, env=build_env(None), timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(out.read_text())
    assert summary["stream_class"] == SIZE_BASED
    assert summary["runs"] == 3 and summary["runs_with_loss"] == 0
    assert summary["bytes_written"] == 3 * (50 << 20) and summary["bytes_lost"] == 0
    assert "0 of 3 runs lost data" in result.stdout


def test_the_package_workaround_makes_the_reproduction_lossless(tmp_path):
    # The stream compat.beam_fixes selects, driven the way the runner drives it.
    out = tmp_path / "runs.json"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "beam_data_loss.py"), "--mb", "50", "--chunk-mb", "5",
         "--queue-mb", "20", "--fix", "package", "--json", str(out)],
        capture_output=True, text=True, env=build_env(None), timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = json.loads(out.read_text())["each"]
    assert run["stream_class"] == SIZE_BASED
    assert run["written"] == 50 << 20 and run["lost"] == 0 and run["missing_chunks"] == []
