"""Open a page in headless Chromium over the DevTools protocol: console errors, figure boxes, a full screenshot.

The DOM alone cannot say a figure was drawn (an <img> with a broken data URI is still in the DOM), so the
screenshot's pixels inside each figure's box are checked too (`blank_figures`).
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image
from websockets.sync.client import connect

WIDTH = 1200


@dataclass(frozen=True)
class PageShot:
    console_errors: list[str]
    figures: list[dict[str, Any]]  # id, complete, naturalWidth, x, y, width, height (CSS px = screenshot px)
    png: bytes


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


def open_page(path: Path, timeout_s: float = 30.0) -> PageShot:
    """Load `path` in a fresh headless Chromium and return what the page did and looked like."""
    binary = chromium()
    if binary is None:
        raise RuntimeError("chromium is not installed")
    # Chromium helper processes may still write into the profile as it exits; leftovers are harmless.
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:
        process = subprocess.Popen(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--remote-debugging-port=0",
             f"--user-data-dir={profile}", "--no-first-run", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        try:
            return _drive(_devtools_port(process, timeout_s), path, timeout_s)
        finally:
            process.terminate()
            process.wait(timeout=10)


def _devtools_port(process: subprocess.Popen[str], timeout_s: float) -> int:
    assert process.stderr is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        found = re.search(r"DevTools listening on ws://[^:]+:(\d+)/", line)
        if found:
            return int(found.group(1))
        if not line and process.poll() is not None:
            break
    raise RuntimeError("chromium did not open its DevTools port")


class _Session:
    def __init__(self, url: str) -> None:
        self.ws = connect(url, max_size=None)
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self.next_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self.events.append(message)

    def wait_for(self, method: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        if any(e.get("method") == method for e in self.events):
            return
        while time.monotonic() < deadline:
            message = json.loads(self.ws.recv(timeout=max(deadline - time.monotonic(), 0.01)))
            self.events.append(message)
            if message.get("method") == method:
                return
        raise RuntimeError(f"no {method} within {timeout_s} s")


_FIGURES_JS = """JSON.stringify({height: document.documentElement.scrollHeight,
  figures: Array.from(document.querySelectorAll('figure')).map(f => { const img = f.querySelector('img');
    const r = img.getBoundingClientRect();
    return {id: f.id, complete: img.complete, naturalWidth: img.naturalWidth,
            x: r.left + scrollX, y: r.top + scrollY, width: r.width, height: r.height}; })})"""


def _drive(port: int, path: Path, timeout_s: float) -> PageShot:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as response:
        pages = [t for t in json.load(response) if t.get("type") == "page"]
    session = _Session(pages[0]["webSocketDebuggerUrl"])
    try:
        for domain in ("Page", "Runtime", "Log"):
            session.call(f"{domain}.enable")
        session.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=800, deviceScaleFactor=1, mobile=False)
        session.call("Page.navigate", url=path.resolve().as_uri())
        session.wait_for("Page.loadEventFired", timeout_s)
        layout = json.loads(session.call("Runtime.evaluate", expression=_FIGURES_JS)["result"]["value"])
        session.call("Emulation.setDeviceMetricsOverride", width=WIDTH, height=int(layout["height"]),
                     deviceScaleFactor=1, mobile=False)
        shot = session.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        errors = [_describe(e) for e in session.events if _is_error(e)]
        return PageShot(errors, layout["figures"], base64.b64decode(shot["data"]))
    finally:
        session.ws.close()


def _is_error(event: dict[str, Any]) -> bool:
    method, params = event.get("method"), event.get("params", {})
    if method == "Runtime.exceptionThrown":
        return True
    if method == "Runtime.consoleAPICalled":
        return params.get("type") in ("error", "assert")
    if method == "Log.entryAdded":
        return params.get("entry", {}).get("level") == "error"
    return False


def _describe(event: dict[str, Any]) -> str:
    return json.dumps(event.get("params", {}))[:300]


def blank_figures(shot: PageShot, min_ink: float = 0.02, min_colors: int = 8) -> list[str]:
    """Figures whose box in the screenshot is too small, (nearly) all background, or a flat colour."""
    image = Image.open(io.BytesIO(shot.png)).convert("RGB")
    blank = []
    for figure in shot.figures:
        box = (int(figure["x"]), int(figure["y"]), int(figure["x"] + figure["width"]),
               int(figure["y"] + figure["height"]))
        if figure["width"] < 200 or figure["height"] < 100 or box[3] > image.height:
            blank.append(f"{figure['id']}: box {box} is too small or outside the screenshot")
            continue
        region = image.crop(box)
        gray = region.convert("L")
        ink = sum(count for value, count in enumerate(gray.histogram()) if value < 235) / (region.width * region.height)
        colors = len(region.getcolors(maxcolors=1 << 16) or range(1 << 16))
        if ink < min_ink or colors < min_colors:
            blank.append(f"{figure['id']}: {ink:.1%} ink, {colors} colours")
    return blank
