"""Headless Chromium driven through the Chrome DevTools protocol over a pipe: no package beyond the standard
library, no browser download (Debian's ``chromium``, installed by ``.ci/run``).

Used by tests/test_report_browser.py and benchmarks/bench_report.py::

    with Browser() as b:
        page = b.open(Path("report.html"))          # waits for the load event
        page.eval("document.title")
        page.click("#reads th:nth-child(2)")
        page.screenshot(Path("shot.png"))

``--remote-debugging-pipe``: Chromium reads commands from fd 3 and writes replies and events to fd 4, each a
JSON message ended by a NUL byte.  Chromium is started as the machine's probe starts it (no sandbox as root,
no background networking: the machine has no network).
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars")


def chromium_path() -> Optional[str]:
    """Debian's chromium (or another Chrome on PATH), or None."""
    for p in CANDIDATES:
        if Path(p).exists():
            return p
    return shutil.which("chromium") or shutil.which("chromium-browser")


class BrowserError(RuntimeError):
    pass


class Browser:
    """One headless Chromium process; ``open()`` gives a ``Page``."""

    def __init__(self, width: int = 1400, height: int = 1000, download_dir: Optional[Path] = None,
                 timeout: float = 60.0):
        exe = chromium_path()
        if exe is None:
            raise BrowserError("chromium not installed (apt-get install chromium)")
        self.timeout = timeout
        self.profile = tempfile.mkdtemp(prefix="bsmeth-chromium-")
        self.download_dir = Path(download_dir) if download_dir else None
        cmd_r, self._cmd_w = os.pipe()  # we write commands, chromium reads fd 3
        self._evt_r, evt_w = os.pipe()  # chromium writes fd 4, we read

        def child_fds() -> None:
            os.dup2(cmd_r, 3)
            os.dup2(evt_w, 4)

        self.proc = subprocess.Popen(
            [exe, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self.profile}",
             f"--window-size={width},{height}", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            preexec_fn=child_fds, pass_fds=(3, 4))
        os.close(cmd_r)
        os.close(evt_w)
        self._buf = b""
        self._next_id = 0
        self.events: list[dict] = []
        if self.download_dir is not None:
            self.download_dir.mkdir(parents=True, exist_ok=True)
            self.send("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(self.download_dir),
                                                      "eventsEnabled": True})

    # -- protocol ---------------------------------------------------------------------------------

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("timed out waiting for chromium")
            ready, _, _ = select.select([self._evt_r], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._evt_r, 1 << 20)
            if not chunk:
                err = self.proc.stderr.read().decode(errors="replace")[-2000:] if self.proc.stderr else ""
                raise BrowserError(f"chromium closed the pipe: {err}")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def send(self, method: str, params: Optional[dict] = None, session: Optional[str] = None) -> dict:
        self._next_id += 1
        mid = self._next_id
        msg: dict[str, Any] = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            m = self._read_message(deadline)
            if m.get("id") == mid:
                if "error" in m:
                    raise BrowserError(f"{method}: {m['error']}")
                return m.get("result", {})
            self.events.append(m)

    def wait_event(self, method: str, session: Optional[str] = None, timeout: Optional[float] = None,
                   since: int = 0) -> dict:
        """The first event ``method`` (of ``session``) at index ``since`` or later of ``events``."""
        deadline = time.monotonic() + (timeout or self.timeout)
        i = since
        while True:
            while i < len(self.events):
                e = self.events[i]
                i += 1
                if e.get("method") == method and (session is None or e.get("sessionId") == session):
                    return e
            self.events.append(self._read_message(deadline))

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by Chromium's processes (Linux: /proc), a measure of the work
        a page costs that a busy machine does not inflate as it does wall time."""
        tick = os.sysconf("SC_CLK_TCK")
        parent: dict[int, int] = {}
        used: dict[int, float] = {}
        for d in Path("/proc").iterdir():
            if not d.name.isdigit():
                continue
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parent[int(d.name)] = int(fields[1])
            used[int(d.name)] = (int(fields[11]) + int(fields[12])) / tick
        tree, grew = {self.proc.pid}, True
        while grew:
            more = {p for p, pp in parent.items() if pp in tree} - tree
            tree |= more
            grew = bool(more)
        return sum(used.get(p, 0.0) for p in tree)

    def open(self, path: Path) -> "Page":
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        page.goto(Path(path).resolve().as_uri())
        return page

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    os.write(self._cmd_w, json.dumps({"id": 0, "method": "Browser.close"}).encode() + b"\0")
                    self.proc.wait(timeout=10)
                except (OSError, subprocess.TimeoutExpired):
                    self.proc.kill()
                    self.proc.wait()
        finally:
            for fd in (self._cmd_w, self._evt_r):
                try:
                    os.close(fd)
                except OSError:
                    pass
            if self.proc.stderr:
                self.proc.stderr.close()
            shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class Page:
    """One tab: navigate, evaluate JavaScript, click, screenshot; console errors and exceptions collected."""

    def __init__(self, browser: Browser, session: str):
        self.b, self.session = browser, session
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def send(self, method: str, params: Optional[dict] = None) -> dict:
        return self.b.send(method, params, self.session)

    def goto(self, url: str) -> float:
        """Navigate and wait for the load event and the first paint after it; return the seconds that took."""
        since = len(self.b.events)
        t = time.perf_counter()
        self.send("Page.navigate", {"url": url})
        self.b.wait_event("Page.loadEventFired", self.session, since=since)
        self.eval("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(1))))")
        return time.perf_counter() - t

    def eval(self, expression: str) -> Any:
        res = self.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True,
                                             "userGesture": True})
        if "exceptionDetails" in res:
            d = res["exceptionDetails"]
            raise BrowserError(f"{expression[:80]}: {d.get('exception', {}).get('description') or d.get('text')}")
        return res.get("result", {}).get("value")

    def click(self, selector: str) -> None:
        ok = self.eval(f"(() => {{ const e = document.querySelector({json.dumps(selector)}); "
                       "if (!e) return false; e.click(); return true; })()")
        if not ok:
            raise BrowserError(f"no element {selector}")

    def wait_for(self, expression: str, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            v = self.eval(expression)
            if v:
                return v
            if time.monotonic() > deadline:
                raise BrowserError(f"timed out waiting for {expression}")
            time.sleep(0.05)

    def screenshot(self, path: Path, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            m = self.send("Page.getLayoutMetrics")
            size = m.get("cssContentSize") or m["contentSize"]
            params.update(captureBeyondViewport=True,
                          clip={"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1})
        data = self.send("Page.captureScreenshot", params)["data"]
        Path(path).write_bytes(base64.b64decode(data))
        return Path(path)

    def errors(self) -> list[str]:
        """Uncaught exceptions and console errors of this page so far."""
        out = []
        for e in self.b.events:
            if e.get("sessionId") != self.session:
                continue
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                d = p.get("exceptionDetails", {})
                out.append(d.get("exception", {}).get("description") or d.get("text", "exception"))
            elif m == "Runtime.consoleAPICalled" and p.get("type") == "error":
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append(p["entry"].get("text", ""))
        return out

    def wait_download(self, name: str, timeout: float = 20.0) -> Path:
        """The file ``name`` in the browser's download folder, once completely written."""
        assert self.b.download_dir is not None, "Browser(download_dir=...) needed"
        self.b.wait_event("Browser.downloadWillBegin", timeout=timeout)
        deadline = time.monotonic() + timeout
        while True:
            for e in self.b.events:
                if e.get("method") == "Browser.downloadProgress" and e["params"].get("state") == "completed":
                    p = self.b.download_dir / name
                    if p.is_file():
                        return p
            if time.monotonic() > deadline:
                raise BrowserError(f"download of {name} did not complete")
            try:
                self.b.events.append(self.b._read_message(time.monotonic() + 0.2))
            except BrowserError:
                pass
