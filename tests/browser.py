"""A headless Chromium driven over the DevTools protocol (CDP): open a page, wait for a JavaScript condition,
evaluate measurements, take a screenshot. Used by the browser tests of the live chart.

Why CDP rather than ``--dump-dom``/``--screenshot``: a fit check needs the *laid out* sizes (bounding boxes,
``scrollWidth``), which only JavaScript in the page can read; JupyterLab also renders long after the load event.
The websocket client is tornado's (installed with ipykernel/jupyter_server): no extra dependency.
"""
from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any, Optional

CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars=false"]


class BrowserError(RuntimeError):
    """The browser did not start, or a page condition never held."""


class Chromium:
    """One headless Chromium with one page; use as a context manager (the process is killed on exit)."""

    def __init__(self, profile: Path, *, width: int = 1200, height: int = 1100) -> None:
        if CHROMIUM is None:
            raise BrowserError("no chromium on PATH")
        profile.mkdir(parents=True, exist_ok=True)
        self.width, self.height = width, height
        self.proc = subprocess.Popen([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                      f"--window-size={width},{height}", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not (port_file.exists() and port_file.read_text().strip()):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.close()
                raise BrowserError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        pages = []
        while not pages:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
                pages = [t for t in json.load(r) if t.get("type") == "page"]
        self._url = pages[0]["webSocketDebuggerUrl"]
        self._ids = itertools.count(1)
        self._loop = asyncio.new_event_loop()
        self._ws = self._loop.run_until_complete(self._connect())
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    async def _connect(self) -> Any:
        from tornado.websocket import websocket_connect

        return await websocket_connect(self._url, max_message_size=256 * 1024 * 1024)

    async def _call(self, method: str, params: dict) -> dict:
        ident = next(self._ids)
        await self._ws.write_message(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            raw = await self._ws.read_message()
            if raw is None:
                raise BrowserError("the DevTools connection closed")
            msg = json.loads(raw)
            if msg.get("id") == ident:
                if "error" in msg:
                    raise BrowserError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def call(self, method: str, params: Optional[dict] = None, timeout: float = 60) -> dict:
        """One CDP command; its result."""
        return self._loop.run_until_complete(asyncio.wait_for(self._call(method, params or {}), timeout))

    def open(self, url: str) -> None:
        self.call("Page.navigate", {"url": url})

    def eval(self, expression: str) -> Any:
        """The JSON value of a JavaScript expression in the page (promises awaited)."""
        res = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in res:
            raise BrowserError(f"{expression[:80]}: {res['exceptionDetails'].get('text')}")
        return res.get("result", {}).get("value")

    def wait_for(self, expression: str, timeout: float = 60) -> Any:
        """Poll `expression` until it is truthy; its value."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.eval(expression)
            except BrowserError:
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                raise BrowserError(f"never true within {timeout:.0f} s: {expression}")
            time.sleep(0.25)

    def screenshot(self, path: Path) -> Path:
        data = self.call("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        if getattr(self, "_ws", None) is not None:
            self._ws.close()
            self._ws = None
        if getattr(self, "_loop", None) is not None:
            self._loop.close()
            self._loop = None
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)

    def __enter__(self) -> "Chromium":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# What a fit means, measured in the page: for each plotly graph, its drawn SVG against the element that holds it
# (JupyterLab's output area, or the report's output), and no horizontal scrolling anywhere around it.
FIT_JS = r"""
(() => {
  const out = [];
  for (const plot of document.querySelectorAll(SELECTOR)) {
    if (!plot.getClientRects().length) continue;  // in a hidden tab
    const area = plot.closest(AREA) || document.body;
    const svg = plot.querySelector('svg.main-svg');
    const img = plot.querySelector('img');
    const shown = (svg && svg.getBoundingClientRect().width > 0) ? svg :
                  (img && img.getBoundingClientRect().width > 0 ? img : plot);
    const box = shown.getBoundingClientRect(), abox = area.getBoundingClientRect();
    // every element from the plot up to the area: none may scroll sideways
    let scrolls = [];
    for (let el = plot; el && el !== area.parentElement; el = el.parentElement) {
      if (el.scrollWidth > el.clientWidth + 1 && getComputedStyle(el).overflowX !== 'visible') scrolls.push(el.className);
    }
    // the right-most y axis' tick labels and titles must be inside the drawn area
    let right = 0;
    for (const t of plot.querySelectorAll('.yaxislayer-above text, .g-y2title text, .g-y4title text, .legend')) {
      right = Math.max(right, t.getBoundingClientRect().right);
    }
    out.push({kind: shown.tagName, width: box.width, left: box.left, right: box.right, area_left: abox.left,
              area_right: abox.right, area_width: abox.width, labels_right: right, scrolls: scrolls,
              doc_scroll: document.documentElement.scrollWidth > document.documentElement.clientWidth});
  }
  return out;
})()
"""


def fit_js(selector: str, area: str) -> str:
    """`FIT_JS` for plots matching `selector` inside the closest `area`."""
    return FIT_JS.replace("SELECTOR", json.dumps(selector)).replace("AREA", json.dumps(area))


def drag(browser: Chromium, x0: float, y0: float, x1: float, y1: float, steps: int = 8) -> None:
    """A left-button drag as a user makes it (press, moves, release): what plotly's box zoom listens to."""
    browser.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x0, "y": y0})
    browser.call("Input.dispatchMouseEvent", {"type": "mousePressed", "x": x0, "y": y0, "button": "left",
                                              "buttons": 1, "clickCount": 1})
    for i in range(1, steps + 1):
        x, y = x0 + (x1 - x0) * i / steps, y0 + (y1 - y0) * i / steps
        browser.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y, "button": "left",
                                                  "buttons": 1})
        time.sleep(0.03)
    browser.call("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": x1, "y": y1, "button": "left",
                                              "buttons": 0, "clickCount": 1})
