"""Apache Beam's FnApiRunner loses part of a bundle's input: a reproduction with Beam alone.

The runner sends a bundle's input to a worker through the stream that
`data_plane.ClosableOutputStream.create(close, flush, worker_handlers.DATA_BUFFER_TIME_LIMIT_MS)`
returns (`fn_runner.BundleManager._send_input_to_worker` writes each buffered chunk into it).
With a time limit above 0 that is a `TimeBasedBufferingClosableOutputStream`: a thread flushes
it every limit with `flush_callback(self.get()); self._clear()` under `_flush_lock`, while
`write` takes no lock, so a chunk written while the callback waits on the send queue is
cleared without being sent. This program writes numbered chunks into that stream, drains the
flushes at a gRPC-like rate through a byte-bounded queue (as `_GrpcDataChannel` does), and
reports the bytes written against the bytes delivered, and which chunks went missing.

    python bench/beam_data_loss.py [--mb 900] [--runs 5] [--fix none|time-limit-0|locked-write|package]

Exit status 1 if any run lost a byte. No imagenet2017_tfds code is involved, except with
`--fix package`: the package's own workaround (compat.beam_fixes) around the runs.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import json
import resource
import statistics
import struct
import sys
import threading
import time
from dataclasses import asdict, dataclass

FIXES = ("none", "time-limit-0", "locked-write", "package")


class ByteBoundedQueue:
    """A FIFO that blocks `put` while it holds `max_bytes` (one item may exceed it), like
    the data channel's send queue; written here so the program needs only Beam's stream."""

    def __init__(self, max_bytes: int):
        self._items: collections.deque = collections.deque()
        self._bytes = 0
        self._max = max_bytes
        self._cond = threading.Condition()

    def put(self, item: bytes | None) -> None:
        size = len(item or b"")
        with self._cond:
            self._cond.wait_for(lambda: not self._items or self._bytes + size <= self._max)
            self._items.append(item)
            self._bytes += size
            self._cond.notify_all()

    def get(self) -> bytes | None:
        with self._cond:
            self._cond.wait_for(lambda: self._items)
            item = self._items.popleft()
            self._bytes -= len(item or b"")
            self._cond.notify_all()
            return item


@dataclass
class Run:
    stream_class: str
    written: int
    delivered: int
    missing_chunks: list[int]
    seconds: float
    flushes: int  # messages the consumer received
    largest_flush: int  # bytes in the largest: one gRPC message, capped at 2 GB by protobuf

    @property
    def lost(self) -> int:
        return self.written - self.delivered


def apply_fix(fix: str, worker_handlers, data_plane) -> None:
    """The candidate workarounds, applied for this process (this program only)."""
    if fix == "time-limit-0":
        # ClosableOutputStream.create then returns the size-based stream: no flush thread.
        worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = 0
    elif fix == "locked-write":
        cls = data_plane.TimeBasedBufferingClosableOutputStream
        unlocked = cls.write

        def write(self, b, *args):
            with self._flush_lock:  # the periodic flush's get() and _clear() hold it
                return unlocked(self, b, *args)

        cls.write = write


def one_run(
    total_mb: int,
    chunk_mb: float,
    drain_mb_s: float,
    queue_mb: int,
    pause_s: float,
    worker_handlers,
    data_plane,
) -> Run:
    chunk_size = int(chunk_mb * (1 << 20))
    n_chunks = max(1, (total_mb << 20) // chunk_size)
    sent = ByteBoundedQueue(queue_mb << 20)
    delivered = [0]
    seen: list[int] = []
    sizes: list[int] = []

    def drain() -> None:  # the gRPC sender: slower than a memory copy
        while (data := sent.get()) is not None:
            time.sleep(len(data) / (drain_mb_s * 1e6))
            delivered[0] += len(data)
            sizes.append(len(data))
            # Lost data is always whole writes, so what arrives is whole chunks: read their
            # numbers (a flush that split a chunk would show up as a wrong number, too).
            seen.extend(
                struct.unpack_from(">Q", data, offset)[0]
                for offset in range(0, len(data), chunk_size)
            )

    def send(data: bytes) -> None:  # _GrpcDataChannel.output_stream's add_to_send_queue
        if data:
            sent.put(data)

    consumer = threading.Thread(target=drain, daemon=True)
    consumer.start()
    stream = data_plane.ClosableOutputStream.create(
        send, send, worker_handlers.DATA_BUFFER_TIME_LIMIT_MS
    )
    filler = b"\xa5" * (chunk_size - 8)
    start = time.perf_counter()
    for i in range(n_chunks):  # _send_input_to_worker: data_out.write(byte_stream) per chunk
        if pause_s:
            time.sleep(pause_s)
        stream.write(struct.pack(">Q", i) + filler)
    stream.close()
    sent.put(None)
    consumer.join()
    seconds = time.perf_counter() - start
    missing = sorted(set(range(n_chunks)) - set(seen))
    return Run(
        stream_class=type(stream).__name__,
        written=n_chunks * chunk_size,
        delivered=delivered[0],
        missing_chunks=missing,
        seconds=seconds,
        flushes=len(sizes),
        largest_flush=max(sizes, default=0),
    )


def run_and_report(k: int, args, worker_handlers, data_plane) -> Run:
    run = one_run(
        args.mb,
        args.chunk_mb,
        args.drain_mb_s,
        args.queue_mb,
        args.pause_ms / 1000,
        worker_handlers,
        data_plane,
    )
    lost = f", chunks missing: {run.missing_chunks[:10]}" if run.missing_chunks else ""
    print(
        f"run {k + 1}: {run.stream_class}: written {run.written} bytes, delivered "
        f"{run.delivered}, lost {run.lost}{lost}; {run.written / run.seconds / 1e6:.0f} MB/s; "
        f"{run.flushes} messages, largest {run.largest_flush >> 20} MB"
    )
    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mb", type=int, default=900, help="bytes per run (a worker's bundle)")
    parser.add_argument("--chunk-mb", type=float, default=10, help="size of each write")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--fix", choices=FIXES, default="none", help="workaround to apply")
    parser.add_argument("--drain-mb-s", type=float, default=400, help="rate of the consumer")
    parser.add_argument("--queue-mb", type=int, default=100, help="bound of the send queue")
    parser.add_argument("--pause-ms", type=float, default=30, help="between writes")
    parser.add_argument("--json", help="write the runs here as JSON")
    args = parser.parse_args(argv)

    import apache_beam

    try:
        from apache_beam.runners.portability.fn_api_runner import worker_handlers
        from apache_beam.runners.worker import data_plane
    except ImportError as e:
        sys.exit(
            f"apache-beam {apache_beam.__version__}: no FnApiRunner as 2.2x-2.7x have it ({e})"
        )
    limit = worker_handlers.DATA_BUFFER_TIME_LIMIT_MS
    apply_fix(args.fix, worker_handlers, data_plane)
    print(
        f"apache-beam {apache_beam.__version__}; worker_handlers.DATA_BUFFER_TIME_LIMIT_MS = "
        f"{limit}; fix: {args.fix}"
    )
    runs = []
    with contextlib.ExitStack() as stack:
        if args.fix == "package":
            from imagenet2017_tfds import compat

            stack.enter_context(compat.beam_fixes(True))
        runs += [run_and_report(k, args, worker_handlers, data_plane) for k in range(args.runs)]
    lossy = [r for r in runs if r.lost]
    seconds = statistics.median(r.seconds for r in runs)
    summary = {
        "beam": apache_beam.__version__,
        "fix": args.fix,
        "time_limit_ms": limit,
        "stream_class": runs[0].stream_class,
        "runs": len(runs),
        "runs_with_loss": len(lossy),
        "bytes_written": sum(r.written for r in runs),
        "bytes_lost": sum(r.lost for r in runs),
        "median_mb_s": runs[0].written / seconds / 1e6,
        "largest_message_mb": max(r.largest_flush for r in runs) / (1 << 20),
        "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "options": vars(args),
        "each": [asdict(r) | {"lost": r.lost} for r in runs],
    }
    print(
        f"{len(lossy)} of {len(runs)} runs lost data ({summary['bytes_lost']} of "
        f"{summary['bytes_written']} bytes); median {summary['median_mb_s']:.0f} MB/s; largest "
        f"message {summary['largest_message_mb']:.0f} MB; peak RSS {summary['max_rss_mb']:.0f} MB"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=2)
    return 1 if lossy else 0


if __name__ == "__main__":
    sys.exit(main())
