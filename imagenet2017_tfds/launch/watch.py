"""What the launcher's watches of a user's cluster share (flink_watch.py, spark_watch.py): a
look at the cluster's HTTP endpoint every few seconds from the launcher's loop, each request
with a short timeout, and an endpoint that does not answer said once (and its return), so
that the watch never stops or slows the build."""

from __future__ import annotations

import json
import sys
import time
import urllib.request
from collections.abc import Callable

EVERY = 2.0  # seconds between two looks: Flink's recommended heartbeat.interval
TIMEOUT = 5.0  # seconds for one request


class Watch:
    """Polled by the launcher's loop (poll); a subclass looks (_look) and names what it
    watches (what, e.g. "the JobManager")."""

    what = "the cluster"

    def __init__(
        self,
        endpoint: str,
        say: Callable[[str], None] | None = None,
        every: float = EVERY,
    ):
        """endpoint: HOST:PORT of the cluster's HTTP endpoint. say: where lines go (default
        stderr)."""
        self.rest = endpoint
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.every = every
        self.silent_since: float | None = None  # the endpoint stopped answering
        self.next_look = 0.0

    def get(self, path: str):
        """The endpoint's answer to path, parsed."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # a cluster's own
        with opener.open(f"http://{self.rest}{path}", timeout=TIMEOUT) as response:
            return json.load(response)

    def poll(self) -> None:
        """One look, when `every` seconds have passed since the last."""
        now = time.monotonic()
        if now < self.next_look:
            return
        self.next_look = now + self.every
        try:
            self._look()
        except (OSError, ValueError, KeyError, TypeError) as e:
            if self.silent_since is None:
                self.silent_since = now
                self.say(
                    f"beam_build: {self.what} at {self.rest} did not answer ({e}); the "
                    "launcher goes on waiting for the build and looks again"
                )
            return
        if self.silent_since is not None:
            self.say(f"beam_build: {self.what} at {self.rest} answers again")
            self.silent_since = None

    def settle(self, seconds: float, final: Callable[[], bool]) -> None:
        """Looks again each second until final() (the job's state is final, or no job was
        found) or `seconds` have passed: a cluster's API reports an ending job's state a few
        seconds late."""
        deadline = time.monotonic() + seconds
        while True:
            self.next_look = 0.0
            self.poll()
            if final() or time.monotonic() > deadline:
                return
            time.sleep(1)

    def _look(self) -> None:
        raise NotImplementedError
