"""A finished chart: shown inline (`show_figure`) and written into a run folder (`save_chart`, `write_figure`).

The PNG export (kaleido starting a Chromium: 5-11 s) never runs on the caller's thread: `ChartSaver` makes PNGs
one at a time in a worker thread, after the prompt has returned. A run folder's chart.html is written at once.
"""
from __future__ import annotations

import html as _html
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

from .chart import _figure_dict
from .media import _render, _to_json, figure_html, figure_png, png_unavailable
from .renderer import figure_bundle


class ChartSaver:
    """PNG exports off the caller's thread, one at a time and in order (each starts a Chromium through kaleido).

    `png` returns a Future at once; the PNG is written atomically to `path` when given, and `then(data)` is called
    in the worker with the bytes (None when no static export is possible: `png_unavailable` says why). The worker
    is not a daemon: an interpreter that exits (the CLI) finishes the PNGs it was asked for first.
    """

    def __init__(self) -> None:
        self._pool: Optional[ThreadPoolExecutor] = None
        self._lock = threading.Lock()

    def png(self, spec: dict, *, width: int = 1000, path: Optional[Path] = None,
            then: Optional[Callable[[Optional[bytes]], None]] = None) -> "Future[Optional[bytes]]":
        """Export `spec` as a PNG `width` pixels wide, in the worker; the Future's result is the bytes or None."""
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="darknet-magics-png")
            return self._pool.submit(self._export, spec, width, path, then)

    @staticmethod
    def _export(spec: dict, width: int, path: Optional[Path],
                then: Optional[Callable[[Optional[bytes]], None]]) -> Optional[bytes]:
        from ..fileio import atomic_write_bytes

        data = figure_png(spec, width=width)
        if data is not None and path is not None:
            atomic_write_bytes(path, data)
        if then is not None:
            then(data)
        return data


# One worker for the process: PNGs are made one after the other, never two Chromiums at once.
CHART_SAVER = ChartSaver()


@dataclass(frozen=True)
class SavedChart:
    """Where `save_chart` wrote the chart; `png` is None when no static export was possible (`reason` says why)."""

    html: Path
    png: Optional[Path]
    reason: Optional[str] = None
    pending: Optional["Future[Optional[bytes]]"] = None  # the PNG being made (`wait` for it)

    def wait(self, timeout: Optional[float] = None) -> Optional[Path]:
        """Wait for the PNG being made; its path, or None when no static export was possible."""
        if self.pending is None:
            return self.png
        return self.png if self.pending.result(timeout) is not None else None


def save_chart(history: Any, folder: Path | str, *, title: Optional[str] = None, name: str = "chart",
               loss_scale: str = "cap", png: bool = True) -> SavedChart:
    """Write the run's chart into its run folder: ``chart.html`` (plotly.js embedded, opens offline) and
    ``chart.png`` (as users keep darknet's own chart.png), atomically."""
    spec = _figure_dict(getattr(history, "iterations", None), getattr(history, "maps", None), max_points=4000,
                        title=title, class_ap_df=getattr(history, "class_ap", None), loss_scale=loss_scale)
    return write_figure(spec, folder, name=name, title=title, png=png)


def write_figure(spec: dict, folder: Path | str, *, name: str, title: Optional[str] = None, png: bool = True,
                 png_data: Optional[bytes] = None) -> SavedChart:
    """A chart spec as ``NAME.html`` (plotly.js embedded: opens offline) in `folder` now and, with `png`,
    ``NAME.png`` made by `CHART_SAVER` after this returns (`SavedChart.wait`), atomically. `png_data`: a PNG
    already made (written at once)."""
    from ..fileio import atomic_write_bytes, atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    html_path = folder / f"{name}.html"
    page = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>" + _html.escape(title or name)
            + "</title></head><body>" + _render(_to_json(spec), div_id="chart", include_plotlyjs=True,
                                                height=int(spec["layout"].get("height", 420))) + "</body></html>")
    atomic_write_text(html_path, page)
    png_path = folder / f"{name}.png"
    if png_data is not None:
        atomic_write_bytes(png_path, png_data)
        return SavedChart(html_path, png_path)
    if not png:  # the PNG export starts a browser (seconds): only where a person will look at it
        return SavedChart(html_path, None, "not asked for")
    if png_unavailable() is not None:  # failed once in this process: not again
        return SavedChart(html_path, None, png_unavailable())
    return SavedChart(html_path, png_path, None, CHART_SAVER.png(spec, path=png_path))


def show_figure(reporter: Any, key: str, spec: dict, text: str) -> Optional[dict]:
    """A finished chart inline, in the same form as the training chart's final render: reporters with
    ``display`` (notebooks) get `figure_bundle` (plotly's mimetype, our HTML, no PNG: that would wait for a
    browser), which is returned; others get HTML through ``reporter.html`` (plotly.js from the page or its CDN;
    a terminal shows `text`), and None is returned."""
    if callable(getattr(reporter, "display", None)):
        bundle = figure_bundle(spec, text=text)
        reporter.display(key, bundle, text)
        return bundle
    reporter.html(key, figure_html(spec, include_plotlyjs=False), text)
    return None
