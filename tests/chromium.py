"""Open a page in headless Chromium and report what a person (and the browser) saw.

Drives Debian's Chromium over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
JSON messages ended by NUL on file descriptors 3 and 4), with the standard library only: no
browser download, no driver package. It records every console error, uncaught exception,
browser log error (a Content-Security-Policy violation is one), every request other than the
page itself, and takes a full-page screenshot.

`CHROMIUM` names the browser (default: `chromium` on PATH). Where there is none, `require()`
skips saying so; `.ci/run` installs it, and with `MLOPS_REQUIRE_BROWSER=1` it fails instead.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.required import skip_or_fail

# As root in CI there is no user namespace for Chromium's sandbox; nothing else is wanted
# from the network: no update checks, no sync, no first-run pages.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--remote-debugging-pipe",
)
WIDTH, HEIGHT = 1280, 900


def find() -> tuple[str | None, str]:
    """The Chromium executable, or None and why not."""
    named = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(named).is_file():
        return None, "Chromium is not installed (apt-get install chromium; .ci/run does)"
    return named, ""


def require() -> str:
    found, why = find()
    if found is None:
        skip_or_fail(why, "MLOPS_REQUIRE_BROWSER")
    return found


@dataclass
class PageVisit:
    """What happened while the page loaded."""

    url: str
    console_errors: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)  # every URL but the page's own
    blocked: list[tuple[str, str]] = field(default_factory=list)  # (URL, why), e.g. "csp"
    screenshot: bytes = b""
    facts: dict[str, Any] = field(default_factory=dict)  # what `probe` evaluated in the page

    @property
    def problems(self) -> list[str]:
        return [*self.console_errors, *self.exceptions, *self.log_errors]


class _Pipe:
    """One DevTools session over Chromium's pipe; events are handed to `on_event`."""

    def __init__(self, process: subprocess.Popen[bytes], write_fd: int, read_fd: int) -> None:
        self.process, self.write_fd, self.read_fd = process, write_fd, read_fd
        self.buffer = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: str | None = None
    ) -> dict[str, Any]:
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read(deadline=time.monotonic() + 60)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_for(self, method: str, seconds: float) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + seconds
        while True:
            event = self._read(deadline)
            self.events.append(event)
            if event.get("method") == method:
                return event

    def drain(self, seconds: float) -> None:
        """Collect the events that arrive within `seconds` (late requests, late errors)."""
        deadline = time.monotonic() + seconds
        while True:
            try:
                self.events.append(self._read(deadline))
            except TimeoutError:
                return

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.read_fd], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self.read_fd, 1 << 20)
            if not chunk:
                raise RuntimeError(f"Chromium exited (status {self.process.poll()})")
            self.buffer += chunk
        message, self.buffer = self.buffer.split(b"\0", 1)
        found: dict[str, Any] = json.loads(message)
        return found


# Evaluated in the loaded page: what the tests check beyond errors and requests.
PROBE = """JSON.stringify({
  title: document.title,
  scripts: document.querySelectorAll('script').length,
  svgs: document.querySelectorAll('svg').length,
  sections: Array.from(document.querySelectorAll('h2')).map(h => h.textContent),
  text: document.body.innerText,
  height: document.documentElement.scrollHeight,
})"""


class Chromium:
    """One headless Chromium (a fresh profile) for several page visits, each in a new tab."""

    def __init__(self, executable: str) -> None:
        self.profile = tempfile.TemporaryDirectory(prefix="mlops-chromium-")
        to_browser_r, to_browser_w = os.pipe()
        from_browser_r, from_browser_w = os.pipe()
        process = subprocess.Popen(
            [executable, *FLAGS, f"--user-data-dir={self.profile.name}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(3, 4),
            preexec_fn=_pipes_to_3_and_4(to_browser_r, from_browser_w),
            start_new_session=True,  # its helpers too can be stopped by its process group
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self.pipe = _Pipe(process, to_browser_w, from_browser_r)

    def visit(self, page: Path, settle: float = 0.5) -> PageVisit:
        """Load `page` (a file) in a new tab and report what happened."""
        pipe = self.pipe
        target = pipe.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        try:
            return _load(pipe, target, page.resolve().as_uri(), settle)
        finally:
            pipe.send("Target.closeTarget", {"targetId": target})

    def close(self) -> None:
        _close(self.pipe)
        self.profile.cleanup()


def _pipes_to_3_and_4(read_end: int, write_end: int) -> Any:
    """In the child, before exec: our pipe ends become Chromium's descriptors 3 and 4.

    (Both are open in the parent when this runs: the pipes took them if they were free.)
    """

    def child() -> None:
        read_copy, write_copy = os.dup(read_end), os.dup(write_end)
        os.dup2(read_copy, 3)
        os.dup2(write_copy, 4)

    return child


def _load(pipe: _Pipe, target: str, url: str, settle: float) -> PageVisit:
    session = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        pipe.send(f"{domain}.enable", session=session)
    pipe.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
        session=session,
    )
    pipe.events.clear()  # about:blank's own events
    pipe.send("Page.navigate", {"url": url}, session=session)
    pipe.wait_for("Page.loadEventFired", 60)
    pipe.drain(settle)
    found = PageVisit(url)
    probe = pipe.send(
        "Runtime.evaluate", {"expression": PROBE, "returnByValue": True}, session=session
    )
    found.facts = json.loads(probe["result"]["value"])
    height = max(HEIGHT, min(int(found.facts["height"]), 16000))
    pipe.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": WIDTH, "height": height, "deviceScaleFactor": 1, "mobile": False},
        session=session,
    )
    shot = pipe.send("Page.captureScreenshot", {"format": "png"}, session=session)
    found.screenshot = base64.b64decode(shot["data"])
    pipe.drain(0.1)
    _collect([e for e in pipe.events if e.get("sessionId") == session], found)
    pipe.events.clear()
    return found


def _collect(events: list[dict[str, Any]], found: PageVisit) -> None:
    urls: dict[str, str] = {}
    for event in events:
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            args = params.get("args", [])
            found.console_errors.append(" ".join(str(a.get("value", a)) for a in args))
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            thrown = details.get("exception", {}).get("description")
            found.exceptions.append(thrown or details.get("text", "an exception"))
        elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
            found.log_errors.append(params["entry"].get("text", ""))
        elif method == "Network.requestWillBeSent":
            requested = urls[params["requestId"]] = params["request"]["url"]
            if requested != found.url:
                found.requests.append(requested)
        elif method == "Network.loadingFailed" and params.get("blockedReason"):
            url = urls.get(params["requestId"], "?")
            found.blocked.append((url, params["blockedReason"]))


def _close(pipe: _Pipe) -> None:
    with contextlib.suppress(RuntimeError, TimeoutError, OSError):
        pipe.send("Browser.close")
    try:
        pipe.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(pipe.process.pid, 9)  # its own session: the browser and its helpers
        pipe.process.wait(timeout=10)
    os.close(pipe.write_fd)
    os.close(pipe.read_fd)


def ink(png: bytes) -> float:
    """The share of the screenshot's pixels that are not the page's white background."""
    import io

    from PIL import Image

    counts = Image.open(io.BytesIO(png)).convert("L").histogram()  # pixels per grey level
    return sum(counts[:245]) / max(1, sum(counts))
