"""Headless Chromium for the tests of the build report: Debian's `chromium`, installed by the
test set-up itself (apt-get, once a machine, under the project's cache lock), driven over the
DevTools protocol through `--remote-debugging-pipe` (JSON messages ending in a NUL byte, the
browser reading fd 3 and writing fd 4): no client library, no port, no network.

    with Browser() as browser:
        page = browser.open("file:///tmp/report.html", width=1366)
        page.screenshot()  # PNG bytes
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

PACKAGE = "chromium"  # Debian's build


class BrowserError(RuntimeError):
    pass


def chromium() -> str:
    """The path of Debian's chromium, installed with apt-get the first time (as root, which the
    test machines are; under a lock, so parallel test runs install it once)."""
    found = shutil.which(PACKAGE)
    if found:
        return found
    from filelock import FileLock

    from imagenet2017_tfds.launch import beam_build

    beam_build.CACHE.mkdir(parents=True, exist_ok=True)
    with FileLock(str(beam_build.CACHE / "chromium-apt.lock"), timeout=1800):
        found = shutil.which(PACKAGE)
        if found:
            return found
        if os.geteuid() != 0:
            raise BrowserError(
                f"the report's browser tests need Debian's {PACKAGE}, which is not installed, "
                f"and this process (uid {os.geteuid()}) cannot install it: run "
                f"`apt-get install -y {PACKAGE}` as root"
            )
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        for command in (["apt-get", "update"], ["apt-get", "install", "-y", PACKAGE]):
            result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
            if result.returncode != 0:
                raise BrowserError(
                    f"`{' '.join(command)}` failed (exit {result.returncode}) while installing "
                    f"the report tests' browser:\n{(result.stdout + result.stderr)[-3000:]}"
                )
    found = shutil.which(PACKAGE)
    if not found:
        raise BrowserError(f"apt-get installed {PACKAGE}, but no `{PACKAGE}` is on PATH")
    return found


class Browser:
    """One headless Chromium process and its DevTools pipe."""

    def __init__(self, timeout: float = 60):
        self.timeout = timeout
        self._next_id = 0
        self._buffer = b""
        self.events: list[dict] = []

    def __enter__(self) -> Browser:
        self._profile = tempfile.mkdtemp(prefix="report-browser-")
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # Above 4, so that moving them to 3 and 4 in the child cannot overwrite one another.
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_r, from_browser_w)]
        os.close(to_browser_r)
        os.close(from_browser_w)
        command = [
            chromium(),
            "--headless",
            "--remote-debugging-pipe",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--disable-background-networking",
            "--disable-sync",
            "--disable-component-update",
            "--hide-scrollbars",
            "--mute-audio",
            f"--user-data-dir={self._profile}",
            "about:blank",
        ]

        def fds() -> None:  # in the child, before exec: the browser reads 3, writes 4
            os.dup2(ends[0], 3)
            os.dup2(ends[1], 4)

        self._process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            # Python's own descriptors are close-on-exec: only 0-4 reach the browser.
            close_fds=False,
            preexec_fn=fds,
        )
        for fd in ends:
            os.close(fd)
        return self

    def __exit__(self, *exc) -> None:
        with contextlib.suppress(BrowserError, OSError):  # it may have ended already
            self.send("Browser.close")
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        self._process.stderr.close()
        shutil.rmtree(self._profile, ignore_errors=True)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        """One command; its result (events that arrive meanwhile are kept in self.events)."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            answer = self._receive(self.timeout)
            if answer.get("id") == self._next_id:
                if "error" in answer:
                    raise BrowserError(f"{method}: {answer['error']}")
                return answer["result"]
            self.events.append(answer)

    def wait_for(self, method: str, session: str | None = None) -> dict:
        for event in self.events:
            if event.get("method") == method and event.get("sessionId") == session:
                return event
        while True:
            event = self._receive(self.timeout)
            self.events.append(event)
            if event.get("method") == method and event.get("sessionId") == session:
                return event

    def _receive(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(left, 0))
            if not ready:
                raise BrowserError(f"Chromium sent nothing for {timeout:.0f} s")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError(
                    "Chromium closed its DevTools pipe: "
                    + self._process.stderr.read().decode(errors="replace")[-3000:]
                )
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def open(self, url: str, width: int, height: int = 900) -> Page:
        """A new tab of `width` x `height` CSS pixels that loaded `url`, every request and
        console message of it recorded from before the load."""
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]
        page = Page(self, session)
        for domain in ("Page", "Runtime", "Network", "Log"):
            page.send(f"{domain}.enable")
        page.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
        )
        page.send("Page.navigate", {"url": url})
        self.wait_for("Page.loadEventFired", session)
        return page


class Page:
    def __init__(self, browser: Browser, session: str):
        self.browser = browser
        self.session = session

    def send(self, method: str, params: dict | None = None) -> dict:
        return self.browser.send(method, params, self.session)

    def _events(self, method: str) -> list[dict]:
        return [
            e["params"]
            for e in self.browser.events
            if e.get("sessionId") == self.session and e.get("method") == method
        ]

    def requests(self) -> list[str]:
        """The URL of every request the page made (Network.requestWillBeSent)."""
        return [e["request"]["url"] for e in self._events("Network.requestWillBeSent")]

    def console_errors(self) -> list[str]:
        """Console errors, uncaught exceptions and the browser's own error log entries."""
        out = [
            " ".join(str(a.get("value", a.get("description", ""))) for a in e["args"])
            for e in self._events("Runtime.consoleAPICalled")
            if e["type"] in ("error", "assert")
        ]
        out += [
            e["exceptionDetails"].get("text", "") for e in self._events("Runtime.exceptionThrown")
        ]
        out += [
            f"{e['entry']['source']}: {e['entry']['text']} {e['entry'].get('url', '')}"
            for e in self._events("Log.entryAdded")
            if e["entry"]["level"] == "error"
        ]
        return out

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self) -> bytes:
        return base64.b64decode(self.send("Page.captureScreenshot", {"format": "png"})["data"])

    def pdf(self) -> bytes:
        """The page printed to A4 (inches), with its CSS print rules."""
        answer = self.send(
            "Page.printToPDF",
            {
                "paperWidth": 8.27,
                "paperHeight": 11.69,
                "printBackground": True,
                "preferCSSPageSize": True,
            },
        )
        return base64.b64decode(answer["data"])


def file_url(path: str | os.PathLike) -> str:
    return Path(path).resolve().as_uri()
