"""Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: the browser reads
commands on fd 3 and writes replies and events on fd 4, each message a JSON text ended by a NUL byte). Standard
library only, no port: nothing outside this process can talk to the browser.

The rule for tests that need it, as for the control plane's binaries: skip naming what is missing, except under CI,
where a missing browser is a failure."""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest

from support.control_plane import in_ci

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
#: Flags that keep a headless browser from calling anywhere by itself (updates, sync, metrics, first-run pages).
QUIET = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--no-default-browser-check",
         "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability", "--metrics-recording-only",
         "--hide-scrollbars", "--mute-audio", "--remote-debugging-pipe")


def chromium() -> str:
    """Path of a Chromium binary ($MIG_CHROMIUM, else the first of NAMES on PATH); skips naming how to get one,
    or fails under CI."""
    found = os.environ.get("MIG_CHROMIUM") or next((p for p in map(shutil.which, NAMES) if p), None)
    if found:
        return found
    message = ("no Chromium to render report.html in (Debian: apt-get install chromium, as scripts/setup does when "
               "run as root; or set MIG_CHROMIUM)")
    if in_ci():
        pytest.fail(f"CI: {message}", pytrace=False)
    pytest.skip(message)


class BrowserError(RuntimeError):
    """The browser answered a command with an error, went away, or did not answer in time."""


class Browser:
    """One headless Chromium with one page (a `Target` attached in flat mode)."""

    def __init__(self, binary: str, profile: Path, width: int = 1280, height: int = 900,
                 timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.events: list[dict[str, Any]] = []
        self._next = 0
        self._buffer = b""
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # the child's pipe ends, above any descriptor a shell redirection below could clash with
        ends = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10) for fd in (to_browser_r, from_browser_w)]
        for fd in (to_browser_r, from_browser_w):
            os.close(fd)
        to_browser_r, from_browser_w = ends
        self.stderr_path = profile / "chromium.stderr"
        profile.mkdir(parents=True, exist_ok=True)
        command = [binary, *QUIET, f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"]
        # bash (dash allows single-digit descriptors only) puts the pipe ends on fds 3 and 4, where Chromium expects
        # them, and execs it
        remap = f'exec "$@" 3<&{to_browser_r} 4>&{from_browser_w} {to_browser_r}<&- {from_browser_w}>&-'
        with open(self.stderr_path, "wb") as stderr:
            self.process = subprocess.Popen([shutil.which("bash") or "/bin/bash", "-c", remap, "bash", *command],
                                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                            pass_fds=(to_browser_r, from_browser_w))
        os.close(to_browser_r)
        os.close(from_browser_w)
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self.page(f"{domain}.enable")
        self.page("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                  mobile=False)

    # ---- protocol ------------------------------------------------------------------------------------
    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send one command and wait for its reply; events that arrive meanwhile are kept in `events`."""
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._receive()
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def page(self, method: str, **params: Any) -> dict[str, Any]:
        return self.send(method, self.session, **params)

    def _receive(self) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._from_browser], [], [], left)[0]:
                raise BrowserError(f"no answer from Chromium in {self.timeout:.0f}s ({self._stderr_tail()})")
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise BrowserError(f"Chromium closed the pipe ({self._stderr_tail()})")
            self._buffer += chunk
        text, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(text)
        return message

    def wait_event(self, method: str) -> dict[str, Any]:
        """The first event `method` of the page (already received, or the next to come)."""
        while True:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == self.session:
                    self.events.remove(event)
                    return event
            self.events.append(self._receive())

    def _stderr_tail(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")[-2000:].strip() or "nothing on stderr"
        except OSError:
            return "no stderr"

    # ---- what a test needs -----------------------------------------------------------------------------
    def open(self, url: str) -> None:
        """Load `url` and wait for its load event; `requests()` starts afresh."""
        self.events.clear()
        reply = self.page("Page.navigate", url=url)
        if reply.get("errorText"):
            raise BrowserError(f"cannot load {url}: {reply['errorText']}")
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression evaluated in the page."""
        reply = self.page("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            raise BrowserError(f"script failed: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def screenshot(self, clip: dict[str, float] | None = None) -> bytes:
        """A PNG of the page (the whole document, or `clip` in CSS pixels of the document)."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        return base64.b64decode(self.page("Page.captureScreenshot", **params)["data"])

    def requests(self) -> list[str]:
        """Every URL the page asked for since it was opened (DevTools Network events)."""
        self.page("Runtime.evaluate", expression="0")  # a round trip: events sent before it are in
        return [e["params"]["request"]["url"] for e in self.events if e.get("method") == "Network.requestWillBeSent"]

    def close(self) -> None:
        with contextlib.suppress(BrowserError, OSError):
            self.send("Browser.close")
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._to_browser, self._from_browser):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()
