"""Helpers for the UI and remote-tracking tests: servers in their own process group, headless Chromium.

Chromium is Debian's `chromium`, driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: fd 3 to
the browser, fd 4 back, NUL-terminated JSON), so there is no Python browser package, no browser download and no
debugging port to pick or leak. The same module makes the README screenshots (docs/screenshots.py).
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Optional

from skinexp.team.postgres import unused_port  # noqa: F401  (re-exported to the browser tests)

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--mute-audio"]


def _live_members(group: int) -> list[int]:
    """Pids of the process group's members that still run (zombies waiting for their parent do not count)."""
    if not os.path.isdir("/proc"):
        try:
            os.killpg(group, 0)
            return [group]
        except ProcessLookupError:
            return []
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Fields after the parenthesised command name: state, ppid, pgrp, ...
        state, _, pgrp = stat.rsplit(")", 1)[1].split()[:3]
        if int(pgrp) == group and state != "Z":
            members.append(int(entry))
    return members


class Server:
    """A command that serves HTTP on 127.0.0.1:`port`, started in its own session (process group).

    MLflow's `ui` and `server` start worker processes; stopping the whole group is the only sure way to leave
    none behind. Output goes to `log_path`, whose tail failures quote.
    """

    def __init__(self, command: list[str], port: int, cwd: Path, log_path: Path, env: Optional[dict] = None):
        self.command, self.port, self.log_path = command, port, Path(log_path)
        self.url = f"http://127.0.0.1:{port}"
        self._log = open(self.log_path, "w")
        self.process = subprocess.Popen(command, cwd=cwd, stdin=subprocess.DEVNULL, stdout=self._log,
                                        stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
                                        start_new_session=True)

    def log(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def wait_for_output(self, pattern: str, timeout: float = 60) -> re.Match:
        """Block until the output matches a regular expression; the match, or RuntimeError with the log's tail."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log(chars=1 << 20))
            if match:
                return match
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[:3]} exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.2)
        raise RuntimeError(f"no {pattern!r} in the output within {timeout:.0f} s:\n{self.log()}")

    def wait_ready(self, timeout: float = 90) -> None:
        """Block until GET /health answers 200; RuntimeError with the log's tail if it exits or times out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.command[:3]} exited with {self.process.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=2) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.3)
        raise RuntimeError(f"{self.url} did not answer /health within {timeout:.0f} s:\n{self.log()}")

    def interrupt(self, timeout: float = 30) -> list[int]:
        """Ctrl-C as a terminal sends it (SIGINT to the whole group); the pids still running after `timeout`."""
        group = self.process.pid
        try:
            os.killpg(group, signal.SIGINT)
        except ProcessLookupError:
            return []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.process.poll()  # reap the leader so it does not linger as a zombie
            left = _live_members(group)
            if not left:
                return []
            time.sleep(0.2)
        return _live_members(group)

    def stop(self) -> None:
        """Interrupt, then kill whatever of the group is left; idempotent."""
        if self.interrupt(timeout=20):
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


class BrowserUnavailable(RuntimeError):
    """Chromium is missing; tests skip with this message."""


def find_chromium() -> str:
    """The path of Debian's `chromium`; BrowserUnavailable (the tests skip) when it is missing.

    Tests never install it: `make test-deps` does (as root), and `make test-slow` runs that first.
    """
    path = shutil.which("chromium")
    if not path:
        raise BrowserUnavailable("headless Chromium is missing: run `make test-deps` (as root), or "
                                 "`apt-get install -y chromium`")
    return path


class Browser:
    """One headless Chromium with one page. Use as a context manager; it kills its process group on exit.

    Args:
        width, height: the page's viewport in CSS pixels (screenshots have this size).
    """

    def __init__(self, width: int = 1400, height: int = 900, chromium: Optional[str] = None):
        self.width, self.height = width, height
        self.profile = tempfile.mkdtemp(prefix="skinexp-chromium-")
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()

        def wire_pipes() -> None:  # runs in the child: the protocol pipe is fds 3 and 4
            # Move both ends above 4 first, in case one of them already is fd 3 or 4.
            read_end = fcntl.fcntl(to_browser_read, fcntl.F_DUPFD, 10)
            write_end = fcntl.fcntl(from_browser_write, fcntl.F_DUPFD, 10)
            os.dup2(read_end, 3)
            os.dup2(write_end, 4)

        self.process = subprocess.Popen(
            [chromium or find_chromium(), *CHROMIUM_FLAGS, "--remote-debugging-pipe",
             f"--user-data-dir={self.profile}", f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=wire_pipes, pass_fds=(3, 4), start_new_session=True)
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self._arrived = threading.Condition()
        self._closed = False
        threading.Thread(target=self._read_replies, daemon=True).start()
        try:
            target = self.send("Target.createTarget", url="about:blank")["targetId"]
            self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
            self.send("Page.enable", session=True)
            self.send("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                      deviceScaleFactor=1, mobile=False)
        except BaseException:
            self.close()
            raise

    def _read_replies(self) -> None:
        buffer = b""
        while True:
            try:
                chunk = os.read(self._from_browser, 1 << 20)
            except OSError:
                chunk = b""
            if not chunk:
                with self._arrived:
                    self._closed = True
                    self._arrived.notify_all()
                return
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            with self._arrived:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._replies[message["id"]] = message
                self._arrived.notify_all()

    def send(self, method: str, session: bool = False, timeout: float = 60, **params: Any) -> dict:
        """One protocol command; its result, or RuntimeError with the protocol's error."""
        self._next_id += 1
        message_id = self._next_id
        message = {"id": message_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._to_browser, data):]
        deadline = time.monotonic() + timeout
        with self._arrived:
            while message_id not in self._replies:
                remaining = deadline - time.monotonic()
                if self._closed or remaining <= 0:
                    why = "it exited" if self._closed else f"{timeout:.0f} s"
                    raise RuntimeError(f"chromium gave no reply to {method} ({why})")
                self._arrived.wait(remaining)
            reply = self._replies.pop(message_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def open(self, url: str) -> None:
        """Load `url` as a fresh document (a hash change alone would not reload the app)."""
        self.send("Page.navigate", session=True, url="about:blank")
        self.send("Page.navigate", session=True, url=url)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited, result as JSON)."""
        result = self.send("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails'].get('text')} in {expression[:200]}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 60, what: str = "") -> None:
        """Poll a JavaScript expression until it is truthy (in JavaScript's sense), else TimeoutError naming `what`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.evaluate(f"!!({expression})"):
                    return
            except RuntimeError:  # the page is between documents, or the app has not rendered that part yet
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {timeout:.0f} s for {what or expression}")
            time.sleep(0.25)

    def before_each_page(self, script: str) -> None:
        """Run `script` in every document this page loads, before the page's own scripts."""
        self.send("Page.addScriptToEvaluateOnNewDocument", session=True, source=script)

    def click(self, x: float, y: float) -> None:
        """A left click at viewport coordinates, as a mouse makes it (move, press, release)."""
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", session=True, type=kind, x=x, y=y, button="left", clickCount=1)

    def rect(self, expression: str) -> dict:
        """The viewport rectangle {left, top, right, bottom} of the element an expression selects."""
        return self.evaluate(f"(() => {{ const r = ({expression}).getBoundingClientRect(); "
                             "return {left: r.left, top: r.top, right: r.right, bottom: r.bottom}; })()")

    def type_text(self, text: str) -> None:
        """Type into the focused element."""
        self.send("Input.insertText", session=True, text=text)

    def text(self) -> str:
        return self.evaluate("document.body ? document.body.innerText : ''") or ""

    def dom(self) -> str:
        return self.evaluate("document.documentElement.outerHTML") or ""

    def screenshot(self, path: Path, height: Optional[int] = None) -> Path:
        """A PNG of the viewport, or of its top `height` pixels."""
        clip = {"clip": {"x": 0, "y": 0, "width": self.width, "height": height, "scale": 1}} if height else {}
        data = self.send("Page.captureScreenshot", session=True, format="png", **clip)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)
        for fd in (self._to_browser, self._from_browser):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


# --- MLflow 3.17's UI ------------------------------------------------------------------------------------------

# Its assistant panel opens by itself on a first visit and covers a third of the page.
MLFLOW_QUIET_ASSISTANT = ("try { localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');"
                          " localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true'); }"
                          " catch (error) {}")


def show_image_step(browser: Browser, key: str, step: int, timeout: float = 60, only_this_card: bool = True) -> str:
    """On a run's model-metrics page, move the image card `key` to `step`; the src of the image it then loads.

    The card opens on step 0 whatever steps were logged (MLflow only jumps to the single step when there is one),
    so the slider is dragged to its right end, which is the last logged step.
    """
    heading = f"document.querySelector('h4[title=\"{key}\"]')"
    search = "document.querySelector('input[role=searchbox]')"
    browser.wait_for(f"{heading} || {search}", timeout=timeout, what="the charts of the run page")
    if only_this_card and browser.evaluate(f"!!{search}"):  # the page then draws one chart, not all of them
        browser.evaluate(f"{search}.focus()")
        browser.type_text(key)
    browser.wait_for(heading, timeout=timeout, what=f"the image card {key!r}")
    browser.evaluate(f"{heading}.scrollIntoView({{block: 'center'}})")
    # The card is the nearest ancestor of its title that holds a slider.
    slider = (f"(() => {{ let e = {heading}; while (e && !e.querySelector('[role=slider]')) e = e.parentElement; "
              "return e && e.querySelector('[role=slider]'); })()")
    browser.wait_for(slider, timeout=timeout, what=f"the step slider of {key!r}")
    track = browser.rect(f"({slider}).closest('[data-orientation=horizontal]:not([role=slider])')")
    browser.click(track["right"] - 2, (track["top"] + track["bottom"]) / 2)
    browser.wait_for(f"({slider}).getAttribute('aria-valuenow') === '{step}'", timeout=timeout,
                     what=f"the slider of {key!r} at step {step}")
    image = (f"[...document.querySelectorAll('img')].find(i => i.complete && i.naturalWidth > 0 && "
             f"decodeURIComponent(i.src).includes('{key}+step+{step}+'))")
    browser.wait_for(image, timeout=timeout, what=f"the {key!r} image of step {step} to load")
    return browser.evaluate(f"decodeURIComponent(({image}).src)")
