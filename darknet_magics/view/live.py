"""The live training view: a status line, the chart updated in place, and permanent progress lines.

In a notebook (reporters with ``display``) the chart is our own renderer (renderer.py): a host output drawn once,
and a feed output that carries only the points that changed (a few KB a second), so the chart moves in
JupyterLab 4, Notebook 7, VS Code and Colab alike and keeps the user's zoom, pan and hidden traces. At the end the
host becomes the finished chart (`figure_bundle`: plotly's mimetype, our HTML, and the PNG when one is ready) with
no wait: the PNG is made afterwards in `CHART_SAVER`'s worker. Reporters without ``display`` (terminal, tests)
get HTML through ``reporter.html``. The series are kept downsampled between updates (series.py); the figure is
chart.py's; the progress line progress.py's.

This module also re-exports what other packages imported from it before the view was split (issue 21):
`build_figure`, `figure_bundle`, `save_chart`, `checkpoint_figure`, `compare_runs`, `show_figure`, `write_figure`,
`figure_png`, `png_unavailable`, `PLOTLY_MIME`, `PLOTLY_CONFIG`, `NOTEBOOK_PNG_WIDTH`, `_figure_dict`, `_to_json`,
`progress_line`, `_COLORS` (view/evaluation.py); new code imports them from their own modules.
"""
from __future__ import annotations

import html as _html
import json
import math
import time
import uuid
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from ..output.logparse import strip_escapes
from .chart import _COLORS, _figure_dict, _figure_spec, _percent_traces, build_figure
from .checkpoints import checkpoint_figure
from .compare import compare_runs
from .media import (NOTEBOOK_PNG_WIDTH, PLOTLY_CONFIG, PLOTLY_MIME, _render, _to_json, figure_html, figure_png,
                    png_unavailable)
from .progress import _nice_every, progress_line
from .renderer import TraceFeed, feed_html, figure_bundle, host_html
from .saved import CHART_SAVER, SavedChart, save_chart, show_figure, write_figure
from .series import ChartData, Downsampler, _at, _counts, _frame_columns, _last_values, downsample

__all__ = ["LiveView", "LIVE_KEY", "GpuReadings", "HistoryLike", "LiveReporter", "build_figure", "figure_bundle",
           "figure_html", "figure_png", "png_unavailable", "save_chart", "write_figure", "show_figure", "SavedChart",
           "checkpoint_figure", "compare_runs", "progress_line", "Downsampler", "ChartData", "downsample",
           "PLOTLY_MIME", "PLOTLY_CONFIG", "NOTEBOOK_PNG_WIDTH", "_figure_dict", "_to_json", "_COLORS"]

LIVE_KEY = "darknet-live"
# A status line not replaced for this long gets a "detached" mark (in the browser, by a timer the next update
# cancels): after a kernel restart, or a background run no front end follows any more, the last ETA is not news.
STALE_AFTER_S = 90


class GpuReadings(Protocol):
    """GPU samples taken outside the view (setup.gpu.GpuPoller): ``samples`` has ``iteration``, ``util`` and
    ``mem`` lists; `poll` may add one (the view calls it once per render, the poller decides how often)."""

    samples: dict[str, list]

    def poll(self, iteration: Optional[int]) -> bool: ...


class HistoryLike(Protocol):
    """What the view reads of a history (output.history.History, or any object with these dataframes)."""

    iterations: Any
    maps: Any
    class_ap: Any


class LiveReporter(Protocol):
    """The reporter calls the view makes (report.Reporter; ``display`` only where mime bundles are shown)."""

    def info(self, text: str) -> None: ...

    def warn(self, text: str) -> None: ...

    def html(self, key: str, html: str, text: str = "", *, final: bool = True) -> None: ...


_NO_GPU: dict[str, list] = {"iteration": [], "util": [], "mem": []}


class LiveView:
    """One live region: a status line, the chart, and the last few darknet lines; plus a permanent line every
    `every` iterations (``reporter.info``), so a saved notebook keeps the run's course as text.

    `update` is cheap to call after every chunk: it renders at most once per `min_interval` seconds (unless
    forced, or a new mAP arrived) and rebuilds the chart only when the history grew. `gpu`: readings taken outside
    (``setup.gpu.GpuPoller``), drawn on the right axis. `png`: make the finished chart's PNG (in the background).
    """

    def __init__(self, reporter: LiveReporter, *, min_interval: float = 1.0, max_batches: Optional[int] = None,
                 title: Optional[str] = None, max_points: int = 400, tail_lines: int = 5,
                 start_iteration: Optional[int] = None, key: str = LIVE_KEY, every: Optional[int] = None,
                 loss_scale: str = "cap", png: bool = True, gpu: Optional[GpuReadings] = None) -> None:
        self.reporter = reporter
        self.min_interval = min_interval
        self.max_batches = max_batches
        self.title = title
        self.max_points = max_points
        self.tail_lines = tail_lines
        self.start_iteration = start_iteration
        self.key = key
        self.every = every or _nice_every(max_batches)
        self.loss_scale = loss_scale
        self.png = png
        self.gpu = gpu
        self.div_id = "dm-live-" + uuid.uuid4().hex[:12]
        self.started = time.monotonic()
        self.renders = 0
        self.last_html = ""
        self.last_text = ""
        self.last_bundle: Optional[dict] = None
        self.last_update_bytes = 0  # the size of the last feed message (what one update costs)
        self.png_pending: Any = None  # the Future of the final PNG
        self.lines: list[str] = []  # the permanent lines sent so far
        self.ended: Optional[str] = None
        self._bundles = callable(getattr(reporter, "display", None))  # decided once: the reporter does not change
        self._last = -math.inf
        self._tail = ""
        self._plotlyjs_sent = False
        self._host_sent = False
        self._feed = TraceFeed()
        self._shape: Optional[tuple[int, ...]] = None
        self._data: Optional[ChartData] = None  # the downsampled series, kept between updates
        self._read: tuple = (None, 0, None)  # what _data was read from: (source, rows, iteration of the last row)
        self._pct: list[dict] = []  # the right axis' traces, rebuilt only when a mAP, class AP or GPU row arrives
        self._pct_key: Optional[tuple] = None
        self._spec: Optional[dict] = None
        self._first_seen: Optional[tuple[float, float]] = None  # (monotonic time, iteration) of the first update
        self._next_line: Optional[int] = None
        self._line_at: Optional[float] = None  # the iteration of the last permanent line

    # ---------------------------------------------------------------------------------------------- text
    def add_text(self, text: str) -> None:
        """Remember the end of darknet's output (only the last few lines are ever shown)."""
        self._tail = (self._tail + text)[-4096:]

    def tail(self) -> list[str]:
        """The last `tail_lines` non-empty lines of output, escapes and carriage returns removed."""
        lines = []
        for raw in strip_escapes(self._tail).replace("\r\n", "\n").split("\n"):
            line = raw.rsplit("\r", 1)[-1] if "\r" in raw.rstrip("\r") else raw.rstrip("\r")
            if line.strip():
                lines.append(line)
        return lines[-self.tail_lines:]

    def rate(self, history: Any, now: Optional[float] = None) -> Optional[float]:
        """Iterations per second measured by this view's wall clock (None until one second of progress)."""
        now = time.monotonic() if now is None else now
        last = _last_values(history)[0]
        if last is None:
            return None
        if self._first_seen is None:
            base = self.start_iteration
            self._first_seen = (self.started, float(base)) if base is not None else (now, last)
        t0, it0 = self._first_seen
        if now - t0 < 1.0 or last <= it0:
            return None
        return (last - it0) / (now - t0)

    def progress(self, history: Any, now: Optional[float] = None) -> str:
        now = time.monotonic() if now is None else now
        return progress_line(history, self.max_batches, now - self.started, rate=self.rate(history, now))

    # ---------------------------------------------------------------------------------------------- rendering
    def _gpu_samples(self) -> dict[str, list]:
        return self.gpu.samples if self.gpu is not None else _NO_GPU

    def _chart_data(self, history: Any) -> ChartData:
        """The chart's series brought up to date: only the rows that arrived since the last update are read and
        downsampled (`ChartData.feed`); all of them again when rows were replaced (a resume: the history's
        `revision`; a dataframe whose earlier rows changed) or when the iterations went back."""
        reader = getattr(history, "iteration_columns", None)
        its = None if reader is not None else getattr(history, "iterations", None)
        source, rows, last = self._read
        n = _counts(history)[0]
        key = (id(history), history.revision) if reader is not None else None
        data = self._data
        fresh = data is None or key != source or n < rows
        if not fresh and its is not None and rows and _at(its, rows - 1) != last:
            fresh = True  # a different dataframe (not the same rows and more)
        if not fresh and n > rows:
            try:
                data.feed(reader(rows) if reader is not None else _frame_columns(its, rows))
            except ValueError:  # iterations going back: sorted from scratch below
                fresh = True
        if fresh:
            cols = reader(0) if reader is not None else _frame_columns(its)
            data = ChartData.from_columns(cols, self.max_points) if cols is not None else ChartData(self.max_points)
        self._data = data
        self._read = (key, n, _at(its, n - 1) if its is not None and n else None)
        return data

    def _build(self, history: Any, final: bool) -> None:
        shape = _counts(history) + (len(self._gpu_samples()["iteration"]),)
        if shape == self._shape and self._spec is not None and not final:
            return
        chart = self._chart_data(history)
        if final:  # the chart that stays in the notebook: twice the points, once
            reader = getattr(history, "iteration_columns", None)
            cols = reader(0) if reader is not None else _frame_columns(getattr(history, "iterations", None))
            chart = ChartData.from_columns(cols, self.max_points * 2) if cols is not None else chart
        pct_key = shape[1:] + (final,)
        if pct_key != self._pct_key:
            self._pct = _percent_traces(getattr(history, "maps", None), getattr(history, "class_ap", None),
                                        self._gpu_samples(), self.max_points * (2 if final else 1))
            self._pct_key = pct_key
        self._spec = _figure_spec(chart, self._pct, title=self.title, loss_scale=self.loss_scale,
                                  uirevision=self.key)
        self._shape = shape

    def _permanent_lines(self, history: Any, progress: str, final: bool) -> None:
        last = _last_values(history)[0]
        if last is None:
            return
        if self._next_line is None:
            self._next_line = (int(last) // self.every + 1) * self.every
            return
        if last >= self._next_line or (final and last != self._line_at):
            self._next_line = (int(last) // self.every + 1) * self.every
            self._line_at = last
            self.lines.append(progress)
            self.reporter.info(progress)

    def update(self, history: Any, force: bool = False, final: bool = False) -> bool:
        """Render and send the view if `min_interval` passed (or `force`, or a new mAP row); True when sent.

        ``final=True`` (implies force) sends the finished chart at full resolution (`figure_bundle`; for HTML
        reporters with plotly.js embedded) so that the last view survives a notebook reload anywhere; its PNG
        follows from the background.
        """
        now = time.monotonic()
        new_map = self._shape is not None and _counts(history)[1] != self._shape[1]
        if not (force or final or new_map) and now - self._last < self.min_interval:
            return False
        self._last = now
        if self.gpu is not None:
            last = _last_values(history)[0]
            self.gpu.poll(None if last is None else int(last))
        self._build(history, final)
        progress = self.progress(history, now)
        self._permanent_lines(history, progress, final)
        self.last_text = progress
        self.renders += 1
        if final:
            self.ended = self.ended or progress
        if self._bundles:
            self._send_bundles(progress, final)
        else:
            self._send_html(progress, final)
        return True

    def _status_html(self, progress: str, *, color: str = "#000") -> str:
        tail = "\n".join(self.tail()) if self.ended is None else ""
        status_id = "dm-status-" + uuid.uuid4().hex[:12]
        html = (f'<div class="darknet-live-status" id="{status_id}"><div style="font-family:monospace;'
                f'font-weight:bold;margin:4px 0;color:{color}">{_html.escape(progress)}</div>'
                + (f'<pre style="font-size:11px;color:#555;margin:4px 0;max-height:8em;overflow:hidden">'
                   f"{_html.escape(tail)}</pre>" if tail else "") + "</div>")
        if self.ended is None:
            html += _stale_mark_script(status_id)
        return html

    def _send_status(self, text: str, color: str = "#000") -> None:
        self.reporter.display(self.key + ":status", {"text/html": self._status_html(text, color=color),
                                                     "text/plain": text}, text)

    def _send_bundles(self, progress: str, final: bool) -> None:
        self._send_status(progress)
        if final:
            self._send_final(progress)
        elif not self._host_sent:
            self._send_host()
        else:
            self._send_feed()

    def _send_host(self) -> None:
        """The chart's host: plotly.js, the runtime and the first spec, once."""
        spec = self._spec
        bundle = {"text/html": host_html(self.div_id, _to_json(spec), height=int(spec["layout"]["height"])),
                  "text/plain": f"<training chart: {self.title or 'training'}>"}
        self.reporter.display(self.key, bundle, bundle["text/plain"])
        self._feed.reset(spec)
        self._host_sent = True
        self.last_bundle = bundle

    def _send_feed(self) -> None:
        """What changed since the last update, to the feed output (nothing when nothing changed)."""
        message = self._feed.message(self._spec)
        if message is None:
            return
        html = feed_html(self.div_id, message)
        self.last_update_bytes = len(html)
        self.reporter.display(self.key + ":feed", {"text/html": html, "text/plain": ""}, "")

    def _send_final(self, text: str) -> None:
        """The finished chart in place of the host; the feed emptied (no script that needs a kernel is saved);
        the PNG made in the background and added where the front end still takes updates."""
        spec = self._spec
        bundle = figure_bundle(spec, text=f"<training chart: {self.title or 'training'}> {text}")
        self.reporter.display(self.key, bundle, text)
        if self._host_sent:
            self.reporter.display(self.key + ":feed", {"text/plain": ""}, "")
        self.last_bundle = bundle
        if self.png and png_unavailable() is None:
            def add_png(data: Optional[bytes]) -> None:
                if data is not None:
                    self.last_bundle = figure_bundle(spec, png=data, text=bundle["text/plain"])
                    self.reporter.display(self.key, self.last_bundle, text)

            self.png_pending = CHART_SAVER.png(spec, width=NOTEBOOK_PNG_WIDTH, then=add_png)

    def _send_html(self, progress: str, final: bool) -> None:
        embed = final or not self._plotlyjs_sent
        chart = _render(_to_json(self._spec), div_id=self.div_id, include_plotlyjs=embed,
                        height=int(self._spec["layout"]["height"]))
        self._plotlyjs_sent = True
        html = ('<div class="darknet-live">' + self._status_html(progress) + chart + "</div>")
        self.last_html = html
        self.reporter.html(self.key, html, progress, final=final)

    @classmethod
    def maker(cls, reporter: LiveReporter, *, gpu: Optional[Callable[[], GpuReadings]] = None,
              **options: Any) -> Callable[..., "LiveView"]:
        """A `train.watch.ViewMaker`: each session a run's watch starts gets its own live view, drawn through
        `reporter` (`options` as the constructor takes them; `gpu` makes each session's GPU poller, e.g.
        ``setup.gpu.GpuPoller``)."""
        def make(*, title: str, key: str, max_batches: Optional[int], start_iteration: Optional[int]) -> "LiveView":
            return cls(reporter, title=title, key=f"{LIVE_KEY}:{key}", max_batches=max_batches,
                       start_iteration=start_iteration, gpu=gpu() if gpu is not None else None, **options)

        return make

    # ---------------------------------------------------------------------------------------------- endings
    def save(self, history: Any, folder: Path, *, title: str) -> None:
        """The run's chart kept in its folder when a session ends: chart.html now; chart.png (where a notebook
        shows the run) made afterwards by `CHART_SAVER`, so the prompt does not wait for it."""
        save_chart(history, folder, title=title, png=self._bundles)

    def fail(self, message: str, history: Any = None) -> None:
        """A failed run: the status line becomes `message` (say the fix once, here or in the error, not both);
        the chart gives way to it when there is nothing to draw, else it stays with its final data."""
        self._end(message, history, color="#b00020")

    def interrupted(self, line: str, history: Any = None) -> None:
        """Ctrl-C or `%yolo stop`: one line (what stopped, what was kept) and the final chart (no wait: its PNG
        is made in the background)."""
        self._end(line, history, color="#8a5a00")

    def _end(self, message: str, history: Any, *, color: str) -> None:
        self.ended = message
        has_data = history is not None and _counts(history)[0] > 0
        if has_data:
            self._build(history, True)
        if self._bundles:
            self._send_status(message, color)
            if has_data:
                self._send_final(message)
            else:  # an empty chart and a stale "waiting" line would hide the diagnosis
                self.last_bundle = {"text/plain": message,
                                    "text/html": f'<div style="color:{color}">{_html.escape(message)}</div>'}
                self.reporter.display(self.key, self.last_bundle, message)
                if self._host_sent:
                    self.reporter.display(self.key + ":feed", {"text/plain": ""}, "")
        else:
            chart = _render(_to_json(self._spec), div_id=self.div_id, include_plotlyjs=True,
                            height=int(self._spec["layout"]["height"])) if has_data and self._spec else ""
            self.last_html = '<div class="darknet-live">' + self._status_html(message, color=color) + chart + "</div>"
            self.reporter.html(self.key, self.last_html, message)
        self.last_text = message


def _stale_mark_script(status_id: str) -> str:
    """A timer in the page: when this status line has not been replaced for `STALE_AFTER_S` seconds, it says so
    (each update replaces the element, which cancels the mark; a reopened notebook shows it after the delay)."""
    note = (f"no update for {STALE_AFTER_S} s: if the kernel restarted or this notebook was reopened, this view is "
            "detached: see `%yolo status`")
    return ('<script type="text/javascript">(function(){var el=document.getElementById("' + status_id + '");'
            "setTimeout(function(){if(!el||!el.isConnected)return;var m=document.createElement('div');"
            "m.className='darknet-live-detached';m.style.cssText='color:#8a5a00;font-family:monospace';"
            f"m.textContent={json.dumps(note)};el.appendChild(m);}},{STALE_AFTER_S * 1000});}})();</script>")
