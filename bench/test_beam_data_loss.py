"""The reproduction of Beam's FnApiRunner data loss (bench/beam_data_loss.py), run as a
program: with Beam's own fix (time limit 0) and with the package's workaround
(compat.beam_fixes) it delivers every byte it wrote. And the race itself, made certain on
Beam's own output stream: without the workaround the bytes written during a flush are lost;
with it, on the same schedule, every byte arrives."""

import json
import subprocess
import sys
import threading

from imagenet2017_tfds import compat
from tests.conftest import ROOT, build_env

SIZE_BASED = "SizeBasedBufferingClosableOutputStream"


def reproduction(out, *args: str) -> subprocess.CompletedProcess:
    """bench/beam_data_loss.py with `args`, its runs' summary written to `out`."""
    command = [sys.executable, str(ROOT / "bench" / "beam_data_loss.py"), *args, "--json", str(out)]
    return subprocess.run(command, capture_output=True, text=True, env=build_env(None), timeout=300)


def test_the_reproduction_delivers_every_byte_with_the_workaround(tmp_path):
    out = tmp_path / "runs.json"
    result = reproduction(out, "--mb", "50", "--runs", "3", "--fix", "time-limit-0")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(out.read_text())
    assert summary["stream_class"] == SIZE_BASED
    assert summary["runs"] == 3 and summary["runs_with_loss"] == 0
    assert summary["bytes_written"] == 3 * (50 << 20) and summary["bytes_lost"] == 0
    assert "0 of 3 runs lost data" in result.stdout


def test_the_package_workaround_makes_the_reproduction_lossless(tmp_path):
    # The stream compat.beam_fixes selects, driven the way the runner drives it.
    out = tmp_path / "runs.json"
    result = reproduction(
        out, "--mb", "50", "--chunk-mb", "5", "--queue-mb", "20", "--fix", "package"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (run,) = json.loads(out.read_text())["each"]
    assert run["stream_class"] == SIZE_BASED
    assert run["written"] == 50 << 20 and run["lost"] == 0 and run["missing_chunks"] == []


def _deliver_under_a_blocked_flush(time_limit_ms: int) -> tuple[str, bytes, bytes, bool]:
    """Drive Beam's own output stream, made as the runner makes it for `time_limit_ms`, on the
    schedule that loses data: the runner writes a chunk; a flush on another thread takes it
    and blocks in its callback (the send queue is full); the runner writes a second chunk;
    the callback returns. The stream's class, what was written, what reached the receiver
    (every flush and the close, in order), and whether any flush ran off the writer's thread.
    The second write waits for the flush to hold the first chunk, and the callback returns
    only after it: the schedule is certain, not load-dependent. A stream without a flush
    thread is given 3 s (three of the runner's default periods) to show none runs."""
    from apache_beam.runners.worker import data_plane

    writer = threading.get_ident()
    received, entered, release = [], threading.Event(), threading.Event()

    def send(data: bytes) -> None:  # the runner's add_to_send_queue, with a full queue
        received.append(data)
        if data and threading.get_ident() != writer and not entered.is_set():
            entered.set()
            release.wait(30)

    stream = data_plane.ClosableOutputStream.create(send, send, time_limit_ms)
    first, second = b"A" * 100_000, b"B" * 100_000
    stream.write(first)
    flushed_off_thread = entered.wait(30 if time_limit_ms else 3)
    stream.write(second)  # while the flush's callback holds the first chunk
    release.set()
    stream.flush()  # waits for a flush under way to finish, clear included
    stream.close()
    return type(stream).__name__, first + second, b"".join(received), flushed_off_thread


def test_the_runner_default_stream_loses_what_is_written_during_a_flush():
    """Without the workaround (the runner's 1000 ms limit) the bytes written while the
    periodic flush waits on the send queue are cleared unsent: the loss, made certain."""
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    with compat.beam_fixes(False):
        limit = worker_handlers.DATA_BUFFER_TIME_LIMIT_MS
    kind, written, received, flushed_off_thread = _deliver_under_a_blocked_flush(limit)
    assert (kind, flushed_off_thread) == ("TimeBasedBufferingClosableOutputStream", True)
    assert received == written[: len(written) // 2], "the second chunk was not lost"


def test_the_workaround_stream_delivers_every_byte_on_the_same_schedule():
    """With compat.beam_fixes the runner's limit is 0: Beam's size-based stream, no flush
    thread, so nothing clears a chunk behind the writer's back."""
    from apache_beam.runners.portability.fn_api_runner import worker_handlers

    with compat.beam_fixes(True):
        limit = worker_handlers.DATA_BUFFER_TIME_LIMIT_MS
    kind, written, received, flushed_off_thread = _deliver_under_a_blocked_flush(limit)
    assert (kind, flushed_off_thread) == (SIZE_BASED, False)
    assert received == written
