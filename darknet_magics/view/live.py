"""The live training view: a light plotly chart updated in place, a status line, and permanent progress lines.

Where the front end renders plotly's own mimetype (JupyterLab, VS Code, Jupyter Notebook 7), the chart is sent as
``application/vnd.plotly.v1+json`` through one display handle: a spec of ~15 KB per update, no plotly.js in the
notebook, and the front end's ``Plotly.react`` keeps zoom, pan and hidden traces across updates because the layout
carries a constant ``uirevision``. Colab renders no plotly mimetype: there the chart is HTML that loads plotly.js
from plotly's CDN (as plotly's own ``colab`` renderer does). Reporters without `display` (terminal, tests) get the
HTML form through ``reporter.html`` with plotly.js embedded only in the final render. The final render also
carries a PNG of the chart (plotly + kaleido + a system Chromium), so an untrusted notebook, GitHub and nbviewer
show the chart too.

A history of 500,000 iterations is cut down to `max_points` per series (`Downsampler`: fixed buckets by
iteration keep their min and max, plus the first and last point), so an update stays small. The view keeps the
downsampled series between updates (`ChartData`) and reads only the rows that arrived since the last one
(`History.iteration_columns`): an update costs the new rows plus the points drawn, not the whole history.
"""
from __future__ import annotations

import base64
import html as _html
import json
import math
import os
import re
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from ..output.logparse import strip_escapes

__all__ = ["build_figure", "figure_html", "figure_png", "progress_line", "downsample_indices", "downsample",
           "Downsampler", "ChartData", "LiveView", "LIVE_KEY", "PLOTLY_MIME", "GpuPoller", "figure_bundle",
           "SavedChart", "save_chart", "write_figure", "show_figure", "checkpoint_figure", "compare_runs", "best_map",
           "loss_cap"]

LIVE_KEY = "darknet-live"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
# The PNG in a notebook output: plotly's JupyterLab renderer shows it at its own pixel size (no max-width) until the
# pointer enters it, so it must fit a narrow output area (a 1200 px window with the file browser open leaves ~770
# px); chart.png in the run folder is a file, drawn wider. Plotly's default width.
NOTEBOOK_PNG_WIDTH = 700
# plotly.js config of every chart we send: `responsive` redraws it at the output's width when the window or the
# output area changes size (JupyterLab, VS Code, Colab, the report); no plotly logo in the modebar.
PLOTLY_CONFIG = {"responsive": True, "displaylogo": False}



def downsample_indices(y: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of the points that keep the shape of `y`: first, last, and min and max of each bucket.

    NaNs never win a bucket (a bucket of only NaNs keeps its first point). Returns all indices when `y` has at
    most `max_points` points. Buckets by index, from scratch: for the short series (mAP rows, per-class AP); the
    iteration series, which grow by thousands of rows, go through the incremental `Downsampler`.
    """
    n = len(y)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, (max_points - 2) // 2)
    size = math.ceil(n / buckets)
    pad = buckets * size - n
    yf = np.asarray(y, dtype=np.float64)
    lo = np.concatenate([np.where(np.isnan(yf), np.inf, yf), np.full(pad, np.inf)]).reshape(buckets, size)
    hi = np.concatenate([np.where(np.isnan(yf), -np.inf, yf), np.full(pad, -np.inf)]).reshape(buckets, size)
    base = np.arange(buckets) * size
    idx = np.concatenate([[0, n - 1], base + lo.argmin(axis=1), base + hi.argmax(axis=1)])
    idx = idx[idx < n]
    return np.unique(idx)


def _column(df: Any, name: str) -> Optional[np.ndarray]:
    if df is None or name not in getattr(df, "columns", ()):
        return None
    return df[name].to_numpy(dtype=np.float64, na_value=np.nan)


_PCT_TICKS = {"tickmode": "array", "tickvals": [0, 20, 40, 60, 80, 100], "ticksuffix": "%", "range": [0, 100]}
_MAX_CLASSES = 20  # per-class AP traces drawn (legend-only); a 80-class model would drown the legend


def _int_x(x: np.ndarray) -> np.ndarray:
    return x.astype(np.int64) if np.all(x == np.floor(x)) else x.astype(np.float64)


def _xy(x: np.ndarray, y: np.ndarray, max_points: int) -> dict:
    """Trace coordinates, downsampled to `max_points`; evenly spaced x (mAP every N iterations) as ``x0``/``dx``,
    which halves the bytes of an update."""
    if len(x) > max_points:
        idx = downsample_indices(y, max_points)
        x, y = x[idx], y[idx]
    y = y.astype(np.float32)
    if len(x) > 2:
        step = np.diff(x)
        if np.all(step == step[0]) and step[0] > 0:
            return {"x0": int(x[0]) if x[0] == int(x[0]) else float(x[0]),
                    "dx": int(step[0]) if step[0] == int(step[0]) else float(step[0]), "y": y}
    return {"x": _int_x(x), "y": y}


def loss_cap(avg_loss: Optional[np.ndarray]) -> Optional[float]:
    """The top of the loss axis, as darknet's chart caps it: the start of training (loss ~800) must not squash it.

    1.2 x the highest avg loss after the first 10 % of iterations (at least twice the last avg loss); None when
    there is too little to judge (plotly's own autorange is then right).
    """
    if avg_loss is None:
        return None
    a = avg_loss[np.isfinite(avg_loss)]
    if len(a) < 20:
        return None
    rest = a[len(a) // 10:]
    top = max(float(rest.max()) * 1.2, float(a[-1]) * 2)
    return top if top < float(a.max()) else None


def _first_extremes(values: np.ndarray, starts: np.ndarray, ufunc: Any) -> np.ndarray:
    """For each segment of `values` (segments begin at `starts`), the index of its first minimum (`np.minimum`) or
    maximum (`np.maximum`): ties go to the earlier point, which is what makes merged buckets equal fresh ones."""
    ext = ufunc.reduceat(values, starts)
    hit = np.flatnonzero(values == np.repeat(ext, np.diff(np.append(starts, len(values)))))
    hseg = np.searchsorted(starts, hit, side="right") - 1  # the segment of each hit
    return hit[np.flatnonzero(np.concatenate(([True], hseg[1:] != hseg[:-1])))]


_EMPTY = np.empty(0)


class Downsampler:
    """A growing series (x not decreasing, e.g. by iteration) kept in at most `max_points` points, incrementally.

    Up to `max_points` points every point is kept. Beyond that the x axis is cut into fixed buckets of `width`
    iterations (a power of two, aligned on 0) and each bucket keeps its minimum and its maximum (the first one on
    ties), plus the series' first and last points: a loss spike is never lost. New points only touch the buckets
    they fall in; when the buckets spanned pass ``(max_points - 2) // 2``, the width doubles and neighbouring
    buckets merge (min of mins, max of maxes). So `extend` costs O(new points + buckets), and the points are the
    same however the series was split into `extend` calls (`downsample` is the from-scratch form).

    Non-finite y (NaN, inf) never win a bucket; a bucket of only non-finite values keeps one NaN point (a gap).
    """

    def __init__(self, max_points: int) -> None:
        self.max_points = max(4, int(max_points))
        self.buckets = (self.max_points - 2) // 2
        self.width = 0.0  # 0: every point kept (in _x, _y)
        self.count = 0
        self.finite = False  # any finite y seen
        self._x, self._y = _EMPTY, _EMPTY
        self._first: Optional[tuple[float, float]] = None
        self.last: Optional[tuple[float, float]] = None
        # one entry per non-empty bucket, by id (floor(x / width)): x and y of its first min and of its first max
        # (y with non-finite values as +inf for the min, -inf for the max)
        self._id = _EMPTY
        self._lx, self._ly, self._hx, self._hy = _EMPTY, _EMPTY, _EMPTY, _EMPTY

    def extend(self, x: Any, y: Any) -> "Downsampler":
        """Add points; `x` must not decrease, within the call and from the last point (ValueError otherwise)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if not len(x):
            return self
        if (self.last is not None and x[0] < self.last[0]) or (len(x) > 1 and np.any(x[1:] < x[:-1])):
            raise ValueError("x decreases: Downsampler takes points in order")
        if self._first is None:
            self._first = (float(x[0]), float(y[0]))
        self.last = (float(x[-1]), float(y[-1]))
        self.count += len(x)
        self.finite = self.finite or bool(np.isfinite(y).any())
        if not self.width:
            if len(self._x):
                x, y = np.concatenate((self._x, x)), np.concatenate((self._y, y))
            if len(x) <= self.max_points:
                self._x, self._y = np.array(x), np.array(y)  # copies: the caller's arrays may change
                return self
            self._x, self._y = _EMPTY, _EMPTY
            self.width = 1.0
        self._add(x, y)
        return self

    def _span(self, x_last: float) -> int:
        return math.floor(x_last / self.width) - math.floor(self._first[0] / self.width) + 1

    def _merge(self) -> None:
        """Double the width: buckets 2k and 2k+1 become bucket k."""
        self.width *= 2
        if not len(self._id):
            return
        ids = np.floor(self._id / 2)
        starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
        lo, hi = _first_extremes(self._ly, starts, np.minimum), _first_extremes(self._hy, starts, np.maximum)
        self._id = ids[starts]
        self._lx, self._ly, self._hx, self._hy = self._lx[lo], self._ly[lo], self._hx[hi], self._hy[hi]

    def _add(self, x: np.ndarray, y: np.ndarray) -> None:
        while self._span(float(x[-1])) > self.buckets:
            self._merge()
        w = self.width
        # where each bucket starts: x is sorted, so a search for the bucket edges (not a bucket id per point,
        # which np.floor makes slow on 500,000 points); empty buckets have no start
        edges = np.arange(math.floor(x[0] / w) + 1, math.floor(x[-1] / w) + 1) * w
        starts = np.concatenate(([0], np.searchsorted(x, edges, side="left")))
        starts = starts[np.concatenate(([True], starts[1:] != starts[:-1]))]
        finite = np.isfinite(y)
        if finite.all():  # the usual case: no copies
            low = high = y
        else:
            low, high = np.where(finite, y, np.inf), np.where(finite, y, -np.inf)
        lo, hi = _first_extremes(low, starts, np.minimum), _first_extremes(high, starts, np.maximum)
        nid = np.floor(x[starts] / w)  # float ids: exact below 2**53
        lx, ly, hx, hy = x[lo], low[lo], x[hi], high[hi]
        if len(self._id) and self._id[-1] == nid[0]:  # the last bucket goes on: the earlier point wins ties
            if ly[0] < self._ly[-1]:
                self._lx[-1], self._ly[-1] = lx[0], ly[0]
            if hy[0] > self._hy[-1]:
                self._hx[-1], self._hy[-1] = hx[0], hy[0]
            nid, lx, ly, hx, hy = nid[1:], lx[1:], ly[1:], hx[1:], hy[1:]
        self._id = np.concatenate((self._id, nid))
        self._lx, self._ly = np.concatenate((self._lx, lx)), np.concatenate((self._ly, ly))
        self._hx, self._hy = np.concatenate((self._hx, hx)), np.concatenate((self._hy, hy))

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """The points to draw, by x: first, each bucket's min and max in x order, last (no point twice)."""
        if not self.width:
            return self._x.copy(), self._y.copy()
        empty = ~np.isfinite(self._ly)  # no finite value in the bucket: one NaN at its first point
        lo_first = self._lx <= self._hx
        ax, bx = np.where(lo_first, self._lx, self._hx), np.where(lo_first, self._hx, self._lx)
        ay, by = np.where(lo_first, self._ly, self._hy), np.where(lo_first, self._hy, self._ly)
        ay = np.where(empty, np.nan, ay)
        xs = np.concatenate(([self._first[0]], np.column_stack((ax, bx)).ravel(), [self.last[0]]))
        ys = np.concatenate(([self._first[1]], np.column_stack((ay, by)).ravel(), [self.last[1]]))
        keep = np.ones(len(xs), dtype=bool)
        keep[2:-1:2] = ~(empty | ((bx == ax) & (by == ay)))  # a bucket's second point when it is its first
        xs, ys = xs[keep], ys[keep]
        same = (xs[1:] == xs[:-1]) & ((ys[1:] == ys[:-1]) | (np.isnan(ys[1:]) & np.isnan(ys[:-1])))
        keep = np.concatenate(([True], ~same))
        return xs[keep], ys[keep]


def downsample(x: Any, y: Any, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """`Downsampler` from scratch: the points of (x, y) that keep its shape in at most `max_points` points."""
    return Downsampler(max_points).extend(x, y).points()


class ChartData:
    """The downsampled series of the chart's iteration panels, fed the new rows after each chunk (`feed`).

    Loss and avg loss keep `max_points` points each, images/s half of that, the learning rate a quarter: its
    change points only (a step function, drawn ``hv``), plus its last point. `feed` raises ValueError when the
    iterations go back (a stitched or shuffled history): the caller starts a new one from the sorted rows.
    """

    def __init__(self, max_points: int) -> None:
        self.max_points = max_points
        self.loss, self.avg = Downsampler(max_points), Downsampler(max_points)
        self.rate, self.ips = Downsampler(max(4, max_points // 4)), Downsampler(max(4, max_points // 2))
        self.rows = 0
        self.last_x: Optional[float] = None
        self._rate_last: Optional[tuple[float, float]] = None
        self._images_last = math.nan

    def feed(self, cols: dict) -> None:
        """Add rows given column by column (``iteration``, ``loss``, ``avg_loss``, ``rate``, ``images``,
        ``seconds``; any may be missing but the iteration)."""
        x = np.asarray(cols["iteration"], dtype=np.float64)
        n = len(x)
        if not n:
            return
        if (self.last_x is not None and x[0] < self.last_x) or (n > 1 and np.any(x[1:] < x[:-1])) \
                or np.isnan(x).any():
            raise ValueError("iterations go back (or are missing)")

        def col(name: str) -> Optional[np.ndarray]:
            v = cols.get(name)
            return None if v is None else np.asarray(v, dtype=np.float64)

        for name, ds in (("loss", self.loss), ("avg_loss", self.avg)):
            y = col(name)
            if y is not None:
                ds.extend(x, y)
        rate = col("rate")
        if rate is not None:
            ok = np.isfinite(rate)
            xr, yr = x[ok], rate[ok]
            if len(yr):
                prev = np.concatenate(([self._rate_last[1] if self._rate_last else np.nan], yr[:-1]))
                change = yr != prev
                self.rate.extend(xr[change], yr[change])
                self._rate_last = (float(xr[-1]), float(yr[-1]))
        images, secs = col("images"), col("seconds")
        if images is not None and secs is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                per_s = np.diff(np.concatenate(([self._images_last], images))) / secs
            per_s[~np.isfinite(per_s) | (per_s <= 0)] = np.nan
            first = 1 if self.rows == 0 else 0  # the first row has no images/s
            self.ips.extend(x[first:], per_s[first:])
            self._images_last = float(images[-1])
        self.rows += n
        self.last_x = float(x[-1])

    @classmethod
    def from_columns(cls, cols: dict, max_points: int) -> "ChartData":
        """A new ChartData of all `cols` (sorted by iteration first when they are not; NaN iterations dropped)."""
        x = np.asarray(cols["iteration"], dtype=np.float64)
        keep = ~np.isnan(x)
        order = None
        if not keep.all() or (len(x) > 1 and np.any(x[1:] < x[:-1])):  # stitched or replayed histories
            order = np.flatnonzero(keep)[np.argsort(x[keep], kind="stable")]
        data = cls(max_points)
        data.feed({k: (np.asarray(v)[order] if order is not None else v) for k, v in cols.items() if v is not None})
        return data

    def rate_points(self) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.rate.points()
        if self._rate_last is not None and (not len(x) or self._rate_last[0] > x[-1]):
            x, y = np.append(x, self._rate_last[0]), np.append(y, self._rate_last[1])
        return x, y


def _frame_columns(df: Any, start: int = 0) -> Optional[dict]:
    """The iteration columns of a dataframe from row `start` on (numpy), or None without an iteration column."""
    if df is None or "iteration" not in getattr(df, "columns", ()):
        return None
    part = df.iloc[start:] if start else df
    return {name: part[name].to_numpy(dtype=np.float64, na_value=np.nan)
            for name in ("iteration", "loss", "avg_loss", "rate", "images", "seconds") if name in df.columns}


def _chart_data(iterations_df: Any, max_points: int) -> ChartData:
    cols = _frame_columns(iterations_df)
    return ChartData.from_columns(cols, max_points) if cols is not None else ChartData(max_points)


def _percent_traces(maps_df: Any, class_ap_df: Any, gpu: Optional[dict], max_points: int) -> list[dict]:
    """The traces of the right axis (0-100 %): mAP@0.50, precision, recall, F1, per-class AP, GPU."""
    data: list[dict] = []
    mx = _column(maps_df, "iteration")
    if mx is not None and len(mx):
        for name, label, style in (("map50", "mAP@0.50", {"width": 2, "color": "#d62728"}),
                                   ("precision", "precision", {"width": 1, "color": "#ff7f0e", "dash": "dot"}),
                                   ("recall", "recall", {"width": 1, "color": "#8c564b", "dash": "dot"}),
                                   ("f1", "F1", {"width": 1, "color": "#e377c2", "dash": "dot"})):
            my = _column(maps_df, name)
            if my is None:
                continue
            keep = ~(np.isnan(mx) | np.isnan(my))
            if keep.any():
                data.append({"type": "scatter", "mode": "lines+markers", "name": label, "uid": name, "yaxis": "y2",
                             **_xy(mx[keep], my[keep] * 100, max(20, max_points // 4)),
                             "line": style, "marker": {"size": 6 if name == "map50" else 4}})
    if class_ap_df is not None and len(class_ap_df) and {"iteration", "name", "ap"} <= set(class_ap_df.columns):
        frame = class_ap_df.dropna(subset=["iteration", "ap"])
        for i, (name, rows) in enumerate(frame.groupby("name", sort=False)):
            if i >= _MAX_CLASSES:
                break
            last = float(rows["ap"].iloc[-1]) * 100  # uid: plotly.js puts it in CSS selectors, so no class names
            data.append({"type": "scatter", "mode": "lines+markers", "name": f"AP {name} ({last:.1f}%)",
                         "uid": f"ap{i}", "yaxis": "y2", "legendgroup": "class AP", "visible": "legendonly",
                         **_xy(rows["iteration"].to_numpy(dtype=np.float64),
                               rows["ap"].to_numpy(dtype=np.float64) * 100, max(10, max_points // 10)),
                         "line": {"width": 1}, "marker": {"size": 3}})
    if gpu and len(gpu.get("iteration", ())):
        gx = np.asarray(gpu["iteration"], dtype=np.int64)
        for key, label in (("util", "GPU util"), ("mem", "GPU memory")):
            data.append({"type": "scatter", "mode": "lines", "name": label, "uid": "gpu" + key, "yaxis": "y2",
                         "x": gx, "y": np.asarray(gpu[key], dtype=np.float32),
                         "line": {"width": 1, "color": "#7f7f7f", "dash": "dash" if key == "mem" else "solid"}})
    return data


def _figure_dict(iterations_df: Any, maps_df: Any, *, max_points: int, title: Optional[str],
                 class_ap_df: Any = None, loss_scale: str = "cap", gpu: Optional[dict] = None,
                 uirevision: Optional[str] = None, height: int = 560) -> dict:
    """The figure of dataframes, from scratch (see `_figure_spec`)."""
    return _figure_spec(_chart_data(iterations_df, max_points), _percent_traces(maps_df, class_ap_df, gpu, max_points),
                        title=title, loss_scale=loss_scale, uirevision=uirevision, height=height)


def _figure_spec(chart: ChartData, percent: list[dict], *, title: Optional[str], loss_scale: str = "cap",
                 uirevision: Optional[str] = None, height: int = 560) -> dict:
    """The figure as a plain dict (data + layout), typed arrays as numpy: cheap to build and to serialise.

    No ``template`` by name (plotly.js, which draws the mimetype and our HTML, does not know plotly.py's names):
    a white background and light grid lines are set on the axes instead.

    Top panel: loss and avg loss (left axis, capped or log scale) and the `percent` traces (`_percent_traces`:
    mAP@0.50, precision, recall, F1, per-class AP, GPU; right axis, 0-100 %). Bottom panel: learning rate (left)
    and images/s (right).
    """
    data: list[dict] = []
    avg = None
    has_lower = False
    for ds, label, uid, style in ((chart.loss, "loss", "loss", {"width": 1, "color": "rgba(31,119,180,0.35)"}),
                                  (chart.avg, "avg loss", "avg_loss", {"width": 2, "color": "#1f77b4"})):
        if ds.finite:
            x, y = ds.points()
            if uid == "avg_loss":
                avg = y
            data.append({"type": "scatter", "mode": "lines", "name": label, "uid": uid,
                         "x": _int_x(x), "y": y.astype(np.float32), "line": style})
    if chart.rate.count:
        xr, yr = chart.rate_points()
        data.append({"type": "scatter", "mode": "lines", "name": "learning rate", "uid": "lr", "xaxis": "x2",
                     "yaxis": "y3", "x": _int_x(xr), "y": yr.astype(np.float32),
                     "line": {"width": 1.5, "color": "#2ca02c", "shape": "hv"}})
        has_lower = True
    if chart.ips.finite:
        x, y = chart.ips.points()
        data.append({"type": "scatter", "mode": "lines", "name": "images/s", "uid": "ips", "xaxis": "x2",
                     "yaxis": "y4", "x": _int_x(x), "y": y.astype(np.float32),
                     "line": {"width": 1, "color": "#9467bd"}})
        has_lower = True
    data.extend(percent)
    has_pct = bool(percent)
    top_domain = [0.42, 1.0] if has_lower else [0.0, 1.0]
    yaxis: dict = {"title": {"text": "loss"}, "domain": top_domain, "rangemode": "tozero"}
    if loss_scale == "log":
        yaxis = {"title": {"text": "loss (log)"}, "domain": top_domain, "type": "log"}
    elif loss_scale == "cap":
        cap = loss_cap(avg)
        if cap is not None:
            yaxis["range"] = [0, cap]
            yaxis["title"] = {"text": "loss (axis capped)"}
    layout: dict = {
        "title": {"text": title or "training", "x": 0, "xanchor": "left", "font": {"size": 14}},
        "xaxis": {"title": {"text": "iteration"} if not has_lower else None, "anchor": "y"},
        "yaxis": yaxis,
        "height": height if has_lower else 420,
        # no width: plotly sizes the chart to its output's width (and, with PLOTLY_CONFIG's `responsive`, follows
        # it); the margins grow to fit the axes' tick labels and titles (automargin below): the right axes are
        # inside the chart, not behind a scrollbar
        "autosize": True,
        "margin": {"l": 60, "r": 60, "t": 40, "b": 40},
        # below the plot: plotly's modebar sits top right and covered a legend placed there
        "legend": {"orientation": "h", "y": -0.08, "yanchor": "top", "x": 0, "xanchor": "left"},
        "plot_bgcolor": "white",
        "hovermode": "x",
    }
    if layout["xaxis"]["title"] is None:
        del layout["xaxis"]["title"]
    if uirevision:
        layout["uirevision"] = uirevision  # zoom, pan and hidden traces survive Plotly.react updates
    for name in ("xaxis", "yaxis"):
        layout[name].update({"gridcolor": "#eee", "zerolinecolor": "#ddd"})
    if has_pct:
        layout["yaxis2"] = {"title": {"text": "mAP / precision / recall (%)"}, "overlaying": "y", "side": "right",
                            "showgrid": False, **_PCT_TICKS}
    if has_lower:
        layout["xaxis"]["showticklabels"] = False
        layout["xaxis2"] = {"title": {"text": "iteration"}, "anchor": "y3", "matches": "x"}
        layout["yaxis3"] = {"title": {"text": "learning rate"}, "domain": [0.0, 0.32], "anchor": "x2",
                            "exponentformat": "e", "rangemode": "tozero"}
        layout["yaxis4"] = {"title": {"text": "images/s"}, "overlaying": "y3", "side": "right", "anchor": "x2",
                            "showgrid": False, "rangemode": "tozero"}
        layout["legend"]["y"] = -0.12
        layout["margin"]["b"] = 60
    for name in ("yaxis", "yaxis2", "yaxis3", "yaxis4", "xaxis2"):
        if name in layout:
            layout[name]["automargin"] = True
    return {"data": data, "layout": layout}

def build_figure(iterations_df: Any, maps_df: Any = None, *, max_points: int = 2000, title: Optional[str] = None,
                 class_ap_df: Any = None, loss_scale: str = "cap", gpu: Optional[dict] = None):
    """A plotly Figure of the run (see `_figure_dict`): loss, mAP with precision/recall/F1, per-class AP, learning
    rate and images/s. `loss_scale` is ``"cap"`` (darknet-like capped axis), ``"log"`` or ``"linear"``.

    Each series is downsampled to at most `max_points` points (see `Downsampler`).
    """
    import plotly.graph_objects as go

    spec = _figure_dict(iterations_df, maps_df, max_points=max_points, title=title, class_ap_df=class_ap_df,
                        loss_scale=loss_scale, gpu=gpu)
    # the template given to the constructor: a later update_layout(template=...) validated the figure twice
    # (half of build_figure's time at 500,000 iterations)
    return go.Figure({"data": spec["data"], "layout": {**spec["layout"], "template": "plotly_white"}})

def _without_template(layout: dict) -> dict:
    return {k: v for k, v in layout.items() if k != "template"}


_DTYPES = {"int8": "i1", "uint8": "u1", "int16": "i2", "uint16": "u2", "int32": "i4", "uint32": "u4",
           "float32": "f4", "float64": "f8"}


def _typed(obj: Any) -> Any:
    """Numpy arrays -> plotly.js typed-array specs (``{"dtype", "bdata"}``: base64, a third of JSON's size)."""
    if isinstance(obj, np.ndarray):
        if obj.dtype == np.int64:
            obj = obj.astype(np.int32) if (not len(obj) or abs(obj).max() < 2**31) else obj.astype(np.float64)
        code = _DTYPES.get(obj.dtype.name)
        if code is None:
            return obj.tolist()
        return {"dtype": code, "bdata": base64.b64encode(np.ascontiguousarray(obj).tobytes()).decode("ascii")}
    if isinstance(obj, dict):
        return {k: _typed(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_typed(v) for v in obj]
    return obj


def _to_json(obj: Any) -> str:
    from plotly.io.json import to_json_plotly

    return to_json_plotly(_typed(obj))


def _plotlyjs() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _plotlyjs_version() -> str:
    try:
        from plotly.offline import get_plotlyjs_version

        return get_plotlyjs_version()
    except ImportError:  # pragma: no cover - very old plotly
        return "latest"


def _render(spec_json: str, *, div_id: str, include_plotlyjs: bool, height: int = 420, cdn: bool = False) -> str:
    """Our own small HTML: a div and a script that draws `spec_json` with ``Plotly.react``.

    Without plotly.js embedded, the page's ``window.Plotly`` is used, else plotly.js is loaded from plotly's CDN
    (Colab: each output is its own iframe, so ``cdn=True`` is what happens there on every update).
    """
    head = ""
    if include_plotlyjs:
        head = '<script type="text/javascript">' + _plotlyjs() + "</script>\n"
    # Without a window.Plotly (a front end that drops the first render's bundle between updates), fetch the same
    # plotly.js version from its CDN once; offline, say how to see the chart instead.
    script = (
        "(function(){var s=" + spec_json + ';var el=document.getElementById("' + div_id + '");'
        "if(!el)return;function draw(){window.Plotly.react(el,s.data,s.layout," + json.dumps(PLOTLY_CONFIG) + ");}"
        "if(window.Plotly){draw();return;}"
        'var fail=function(){el.textContent="(the chart needs plotly.js: run.figure shows it)";};'
        "if(!window.__dmPlotlyLoading){var t=document.createElement('script');"
        f"t.src='https://cdn.plot.ly/plotly-{_plotlyjs_version()}.min.js';"
        "window.__dmPlotlyLoading=t;document.head.appendChild(t);}"
        "window.__dmPlotlyLoading.addEventListener('load',draw);"
        "window.__dmPlotlyLoading.addEventListener('error',fail);})();"
    )
    return (head + f'<div id="{div_id}" style="height:{height}px;width:100%;"></div>\n'
            f'<script type="text/javascript">{script}</script>')


def figure_html(fig: Any, *, include_plotlyjs: bool = True, div_id: Optional[str] = None) -> str:
    """HTML that draws `fig` (a Figure or a ``{"data", "layout"}`` dict) without reaching the internet.

    With ``include_plotlyjs=True`` the plotly.js bundle (~4.5 MB) is embedded; with False the HTML uses a
    ``window.Plotly`` that an earlier output defined (and says so in the div when there is none).
    """
    spec = fig if isinstance(fig, dict) else fig.to_plotly_json()
    return _render(_to_json({"data": spec.get("data", []), "layout": spec.get("layout", {})}),
                   div_id=div_id or ("dm-" + uuid.uuid4().hex[:12]), include_plotlyjs=include_plotlyjs)


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {s:02d}s"
    return f"{s}s"


def _last_valid(a: Optional[np.ndarray]) -> Optional[float]:
    if a is None or not len(a):
        return None
    ok = a[~np.isnan(a)]
    return float(ok[-1]) if len(ok) else None


def _counts(history: Any) -> tuple[int, int, int]:
    """Iteration, mAP and class AP rows: a `History` counts them without building its dataframes."""
    counts = getattr(history, "row_counts", None)
    if counts is not None:
        return tuple(counts)
    frames = (getattr(history, name, None) for name in ("iterations", "maps", "class_ap"))
    return tuple(0 if f is None else len(f) for f in frames)


def _at(df: Any, row: int) -> Any:
    """The iteration of a dataframe's row `row` (how `LiveView` sees that a dataframe is the one it read)."""
    return df["iteration"].iloc[row] if "iteration" in df.columns and len(df) > row else None


def _last_values(history: Any) -> tuple[Optional[float], Optional[float]]:
    """The last iteration and the avg loss of that row (None, None before any), cheaply: a `History` keeps them;
    of a dataframe only the last rows are read (the progress line is made after every update)."""
    if hasattr(history, "last_iteration") and hasattr(history, "last_avg_loss"):
        it = history.last_iteration
        return (None, None) if it is None else (float(it), float(history.last_avg_loss))
    its = getattr(history, "iterations", None)
    if its is None or not len(its) or "iteration" not in its.columns:
        return None, None
    tail = its.iloc[-64:]
    last = _last_valid(_column(tail, "iteration"))
    if last is None:
        last = _last_valid(_column(its, "iteration"))
    avg = _column(tail, "avg_loss")
    return last, (float(avg[-1]) if avg is not None and len(avg) else None)


def best_map(maps_df: Any) -> Optional[float]:
    """The best mAP@0.50 so far (a fraction): the max of every mAP row, and of darknet's own ``best`` column."""
    values = [a for a in (_column(maps_df, "map50"), _column(maps_df, "best_map50")) if a is not None and len(a)]
    if not values:
        return None
    joined = np.concatenate(values)
    return None if np.isnan(joined).all() else float(np.nanmax(joined))


def progress_line(history: Any, max_batches: Optional[int], elapsed: float, *,
                  start_iteration: Optional[int] = None, rate: Optional[float] = None) -> str:
    """``iteration 1,234/6,000 (20.6%) | avg loss 1.234 | best mAP 45.60% | 2.10 it/s | ETA 38m 12s | elapsed 9m``.

    `history` is anything with `iterations` and `maps` dataframes. The rate and the ETA come from measured wall
    time only (darknet's own ``hours left`` disagrees with it): `rate` when given (iterations/s, see
    `LiveView`), else the iterations since `start_iteration` over `elapsed` seconds. No rate, no ETA.
    """
    maps = getattr(history, "maps", None)
    parts: list[str] = []
    last_it, value = _last_values(history)
    if last_it is None:
        parts.append("waiting for the first iteration")
    else:
        text = f"iteration {int(last_it):,}"
        if max_batches:
            text += f"/{int(max_batches):,} ({100.0 * last_it / max_batches:.1f}%)"
        parts.append(text)
        if value is not None:
            parts.append("avg loss nan" if np.isnan(value) else f"avg loss {value:.4g}")
    best = best_map(maps)
    if best is not None:
        parts.append(f"best mAP {100 * best:.2f}%")
    if rate is None and last_it is not None and start_iteration is not None and elapsed > 0 \
            and last_it > start_iteration:
        rate = (last_it - start_iteration) / elapsed
    if rate:
        parts.append(f"{rate:.2f} it/s" if rate >= 0.1 else f"{rate * 60:.2f} it/min")
        if max_batches and last_it is not None and last_it < max_batches:
            parts.append(f"ETA {_duration((max_batches - last_it) / rate)}")
    parts.append(f"elapsed {_duration(elapsed)}")
    return " | ".join(parts)


def _nice_every(max_batches: Optional[int]) -> int:
    """About 20 permanent lines per run, on round iterations (100, 200, 500, 1,000, ...)."""
    target = (max_batches or 20_000) / 20
    for step in (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000):
        if step >= target:
            return step
    return 100_000


class GpuPoller:
    """GPU utilisation and memory from ``nvidia-smi``, at most once per `interval` seconds (never per line)."""

    def __init__(self, interval: float = 5.0, command: Optional[list[str]] = None) -> None:
        self.interval = interval
        exe = shutil.which("nvidia-smi")
        self.command = command or ([exe, "--query-gpu=utilization.gpu,memory.used,memory.total",
                                    "--format=csv,noheader,nounits"] if exe else None)
        self._last = -math.inf
        self.samples: dict[str, list] = {"iteration": [], "util": [], "mem": []}

    def poll(self, iteration: Optional[int]) -> bool:
        """Sample once if the interval passed; True when a sample was added."""
        now = time.monotonic()
        if self.command is None or iteration is None or now - self._last < self.interval:
            return False
        self._last = now
        try:
            out = subprocess.run(self.command, capture_output=True, text=True, timeout=3).stdout
            util, used, total = (float(v) for v in out.splitlines()[0].split(",")[:3])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            self.command = None  # a broken nvidia-smi is not asked again every few seconds
            return False
        self.samples["iteration"].append(int(iteration))
        self.samples["util"].append(util)
        self.samples["mem"].append(100.0 * used / total if total else math.nan)
        return True


_PNG_STATE: dict[str, Any] = {"failed": None}


def figure_png(fig: Any, *, width: int = 1000, height: Optional[int] = None) -> Optional[bytes]:
    """The chart as PNG bytes (plotly's static export: kaleido driving Chrome/Chromium), or None when unavailable.

    kaleido>=1 finds Chrome by itself; a system Chromium (Debian's ``chromium``) is used through ``BROWSER_PATH``.
    The first failure is remembered (`png_unavailable`): a run does not wait for a broken export twice.
    """
    if _PNG_STATE["failed"] is not None:
        return None
    try:
        import plotly.io as pio

        if not os.environ.get("BROWSER_PATH"):
            system = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))
                           if p), None)
            if system:
                os.environ["BROWSER_PATH"] = system
        spec = fig if isinstance(fig, dict) else fig.to_plotly_json()
        import plotly.graph_objects as go

        figure = go.Figure(spec)
        height = height or int(spec.get("layout", {}).get("height", 420))
        if _old_plotly_with_new_kaleido():
            import warnings

            with warnings.catch_warnings():  # kaleido>=1 warns plotly<6.1 (Colab's 5.24) users at import
                warnings.simplefilter("ignore", UserWarning)
                import kaleido
            # plotly<6.1's to_image speaks kaleido 0.2's API only: kaleido's own call works with both
            return kaleido.calc_fig_sync(figure.to_dict(), opts={"format": "png", "width": width, "height": height})
        return pio.to_image(figure, format="png", width=width, height=height)
    except Exception as exc:  # no kaleido, no Chrome, a sandbox: the interactive chart is still there
        _PNG_STATE["failed"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        return None


def _old_plotly_with_new_kaleido() -> bool:
    """plotly < 6.1 (Colab ships 5.24) beside kaleido >= 1: plotly's static export refuses to run."""
    from importlib.metadata import PackageNotFoundError, version

    import plotly

    try:
        kaleido_major = int(version("kaleido").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return False
    major, minor = (int(p) for p in re.findall(r"\d+", plotly.__version__)[:2])
    return kaleido_major >= 1 and (major, minor) < (6, 1)


def figure_bundle(fig: Any, *, png: bool = False, frontend: Optional[str] = None) -> dict:
    """A mime bundle for a finished chart (for ``_repr_mimebundle_``): plotly's mimetype (CDN HTML in Colab),
    plus a PNG when `png` and the static export works. No plotly.js in the notebook."""
    spec = fig if isinstance(fig, dict) else fig.to_plotly_json()
    spec = {"data": spec.get("data", []), "layout": spec.get("layout", {})}
    bundle: dict = {"text/plain": "<training chart>"}
    spec_json = _to_json(spec)
    if (frontend or _frontend()) == "colab":
        bundle["text/html"] = _render(spec_json, div_id="dm-" + uuid.uuid4().hex[:12], include_plotlyjs=False,
                                      height=int(spec["layout"].get("height", 420)), cdn=True)
    else:
        bundle[PLOTLY_MIME] = {**json.loads(spec_json), "config": PLOTLY_CONFIG}
    if png:
        data = figure_png(spec, width=NOTEBOOK_PNG_WIDTH)
        if data is not None:
            bundle["image/png"] = base64.b64encode(data).decode("ascii")
    return bundle


def png_unavailable() -> Optional[str]:
    """Why `figure_png` returned None (once it failed), else None."""
    return _PNG_STATE["failed"]


def _frontend() -> str:
    """'colab', 'jupyter' (plotly's mimetype renders) or 'terminal'."""
    from ..setup.environment import detect_platform

    return detect_platform()


class LiveView:
    """One live region: a status line, the chart, and the last few darknet lines; plus a permanent line every
    `every` iterations (``reporter.info``), so a saved notebook keeps the run's course as text.

    `update` is cheap to call after every chunk: it renders at most once per `min_interval` seconds (unless
    forced, or a new mAP arrived) and rebuilds the chart only when the history grew. Reporters with a
    ``display(key, bundle, text)`` method (notebook.py) get mime bundles (plotly's mimetype, or CDN HTML in Colab);
    others get HTML through ``reporter.html``.
    """

    def __init__(self, reporter: Any, *, min_interval: float = 1.0, max_batches: Optional[int] = None,
                 title: Optional[str] = None, max_points: int = 400, tail_lines: int = 5,
                 start_iteration: Optional[int] = None, key: str = LIVE_KEY, every: Optional[int] = None,
                 loss_scale: str = "cap", png: bool = True, frontend: Optional[str] = None,
                 gpu: Optional[GpuPoller] = None) -> None:
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
        self.frontend = frontend
        self.gpu = gpu if gpu is not None else GpuPoller()
        self.div_id = "dm-live-" + uuid.uuid4().hex[:12]
        self.started = time.monotonic()
        self.renders = 0
        self.last_html = ""
        self.last_text = ""
        self.last_bundle: Optional[dict] = None
        self.lines: list[str] = []  # the permanent lines sent so far
        self.ended: Optional[str] = None
        self._last = -math.inf
        self._tail = ""
        self._plotlyjs_sent = False
        self._shape: Optional[tuple[int, ...]] = None
        self._data: Optional[ChartData] = None  # the downsampled series, kept between updates
        self._read: tuple = (None, 0, None)  # what _data was read from: (source, rows, iteration of the last row)
        self._pct: list[dict] = []  # the right axis' traces, rebuilt only when a mAP, class AP or GPU row arrives
        self._pct_key: Optional[tuple] = None
        self._spec: Optional[dict] = None
        self._spec_json = ""
        self._chart = ""
        self._first_seen: Optional[tuple[float, float]] = None  # (monotonic time, iteration) of the first update
        self._next_line: Optional[int] = None
        self._line_at: Optional[float] = None  # the iteration of the last permanent line
        self._png_warned = False

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
    def _uses_bundles(self) -> bool:
        return callable(getattr(self.reporter, "display", None))

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
        shape = _counts(history) + (len(self.gpu.samples["iteration"]),)
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
                                        self.gpu.samples, self.max_points * (2 if final else 1))
            self._pct_key = pct_key
        self._spec = _figure_spec(chart, self._pct, title=self.title, loss_scale=self.loss_scale,
                                  uirevision=self.key)
        self._spec_json = _to_json(self._spec)
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

        ``final=True`` (implies force) sends the full-resolution chart with its PNG (or, for HTML reporters,
        with plotly.js embedded) so that the last view survives a notebook reload anywhere.
        """
        now = time.monotonic()
        new_map = self._shape is not None and _counts(history)[1] != self._shape[1]
        if not (force or final or new_map) and now - self._last < self.min_interval:
            return False
        self._last = now
        last = _last_values(history)[0]
        self.gpu.poll(None if last is None else int(last))
        self._build(history, final)
        progress = self.progress(history, now)
        self._permanent_lines(history, progress, final)
        self.last_text = progress
        self.renders += 1
        if self._uses_bundles():
            self._send_bundles(progress, final)
        else:
            self._send_html(progress, final)
        return True

    def _status_html(self, progress: str, *, color: str = "#000") -> str:
        tail = "\n".join(self.tail()) if self.ended is None else ""
        return (f'<div class="darknet-live-status"><div style="font-family:monospace;font-weight:bold;'
                f'margin:4px 0;color:{color}">{_html.escape(progress)}</div>'
                + (f'<pre style="font-size:11px;color:#555;margin:4px 0;max-height:8em;overflow:hidden">'
                   f"{_html.escape(tail)}</pre>" if tail else "") + "</div>")

    def chart_bundle(self, final: bool = False) -> dict:
        """The chart's mime bundle for this front end (plotly mimetype, or CDN HTML in Colab; PNG when final)."""
        frontend = self.frontend or _frontend()
        bundle: dict = {"text/plain": f"<training chart: {self.title or 'training'}>"}
        if frontend == "colab":
            bundle["text/html"] = _render(self._spec_json, div_id=self.div_id, include_plotlyjs=False,
                                          height=int(self._spec["layout"]["height"]), cdn=True)
        else:
            bundle[PLOTLY_MIME] = {**json.loads(self._spec_json), "config": PLOTLY_CONFIG}
        if final and self.png:
            png = figure_png(self._spec, width=NOTEBOOK_PNG_WIDTH)
            if png is not None:
                bundle["image/png"] = base64.b64encode(png).decode("ascii")
            elif not self._png_warned:
                self._png_warned = True
                self.reporter.warn(f"no static image of the chart ({png_unavailable()}): the notebook shows it "
                                   "only where plotly runs; pip install 'kaleido>=1' and Chrome/Chromium for one")
        return bundle

    def _send_bundles(self, progress: str, final: bool) -> None:
        self.reporter.display(self.key + ":status", {"text/html": self._status_html(progress), "text/plain": progress},
                              progress)
        bundle = self.chart_bundle(final)
        self.last_bundle = bundle
        self.reporter.display(self.key, bundle, progress)

    def _send_html(self, progress: str, final: bool) -> None:
        embed = final or not self._plotlyjs_sent
        self._chart = _render(self._spec_json, div_id=self.div_id, include_plotlyjs=embed,
                              height=int(self._spec["layout"]["height"]))
        self._plotlyjs_sent = True
        html = ('<div class="darknet-live">' + self._status_html(progress) + self._chart + "</div>")
        self.last_html = html
        self.reporter.html(self.key, html, progress)

    @classmethod
    def maker(cls, reporter: Any, **options: Any) -> Callable[..., "LiveView"]:
        """A `train.watch.ViewMaker`: each session a run's watch starts gets its own live view, drawn through
        `reporter` (`options` as the constructor takes them)."""
        def make(*, title: str, key: str, max_batches: Optional[int], start_iteration: Optional[int]) -> "LiveView":
            return cls(reporter, title=title, key=f"{LIVE_KEY}:{key}", max_batches=max_batches,
                       start_iteration=start_iteration, **options)

        return make

    # ---------------------------------------------------------------------------------------------- endings
    def save(self, history: Any, folder: Path, *, title: str) -> None:
        """The run's chart kept in its folder when a session ends (chart.html; chart.png where a notebook shows
        it), as users keep darknet's own chart.png."""
        save_chart(history, folder, title=title, png=hasattr(self.reporter, "display"))

    def fail(self, message: str, history: Any = None) -> None:
        """A failed run: the status line becomes `message` (say the fix once, here or in the error, not both);
        the chart gives way to it when there is nothing to draw, else it stays with its final data."""
        self._end(message, history, color="#b00020")

    def interrupted(self, line: str, history: Any = None) -> None:
        """Ctrl-C or `%yolo stop`: one line (what stopped, what was kept) and the final chart."""
        self._end(line, history, color="#8a5a00")

    def _end(self, message: str, history: Any, *, color: str) -> None:
        self.ended = message
        has_data = history is not None and _counts(history)[0] > 0
        if has_data:
            self._build(history, True)
        if self._uses_bundles():
            self.reporter.display(self.key + ":status", {"text/html": self._status_html(message, color=color),
                                                         "text/plain": message}, message)
            if has_data:
                self.last_bundle = self.chart_bundle(final=True)
                self.reporter.display(self.key, self.last_bundle, message)
            else:  # an empty chart and a stale "waiting" line would hide the diagnosis
                self.last_bundle = {"text/plain": message,
                                    "text/html": f'<div style="color:{color}">{_html.escape(message)}</div>'}
                self.reporter.display(self.key, self.last_bundle, message)
        else:
            chart = _render(self._spec_json, div_id=self.div_id, include_plotlyjs=True,
                            height=int(self._spec["layout"]["height"])) if has_data and self._spec else ""
            self.last_html = '<div class="darknet-live">' + self._status_html(message, color=color) + chart + "</div>"
            self.reporter.html(self.key, self.last_html, message)
        self.last_text = message


# -------------------------------------------------------------------------------------------------- after a run
@dataclass(frozen=True)
class SavedChart:
    """Where `save_chart` wrote the chart; `png` is None when no static export was possible (`reason` says why)."""

    html: Path
    png: Optional[Path]
    reason: Optional[str] = None


def save_chart(history: Any, folder: Path | str, *, title: Optional[str] = None, name: str = "chart",
               loss_scale: str = "cap", png: bool = True) -> SavedChart:
    """Write the run's chart into its run folder: ``chart.html`` (plotly.js embedded, opens offline) and
    ``chart.png`` (as users keep darknet's own chart.png), atomically."""
    spec = _figure_dict(getattr(history, "iterations", None), getattr(history, "maps", None), max_points=4000,
                        title=title, class_ap_df=getattr(history, "class_ap", None), loss_scale=loss_scale)
    return write_figure(spec, folder, name=name, title=title, png=png)


def write_figure(spec: dict, folder: Path | str, *, name: str, title: Optional[str] = None, png: bool = True,
                 png_data: Optional[bytes] = None) -> SavedChart:
    """A chart spec as ``NAME.html`` (plotly.js embedded: opens offline) and, with `png`, ``NAME.png`` in
    `folder`, atomically. `png_data`: the PNG already made for the inline view (one browser start, not two)."""
    from ..fileio import atomic_write_bytes, atomic_write_text

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    html_path = folder / f"{name}.html"
    page = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>" + _html.escape(title or name)
            + "</title></head><body>" + _render(_to_json(spec), div_id="chart", include_plotlyjs=True,
                                                height=int(spec["layout"].get("height", 420))) + "</body></html>")
    atomic_write_text(html_path, page)
    if not png:  # the PNG export starts a browser (seconds): only where a person will look at it
        return SavedChart(html_path, None, "not asked for")
    data = png_data if png_data is not None else figure_png(spec)
    if data is None:
        return SavedChart(html_path, None, png_unavailable())
    png_path = folder / f"{name}.png"
    atomic_write_bytes(png_path, data)
    return SavedChart(html_path, png_path)


def show_figure(reporter: Any, key: str, spec: dict, text: str) -> Optional[dict]:
    """A finished chart inline the way the training chart's final render is shown: reporters with ``display``
    (notebooks) get `figure_bundle` (plotly's mimetype, CDN HTML in Colab, plus the PNG), which is returned (its
    PNG can be saved without a second export); others get HTML through ``reporter.html`` (plotly.js from the page
    or its CDN; a terminal shows `text`), and None is returned."""
    if callable(getattr(reporter, "display", None)):
        bundle = figure_bundle(spec, png=True)
        bundle["text/plain"] = text
        reporter.display(key, bundle, text)
        return bundle
    reporter.html(key, figure_html(spec, include_plotlyjs=False), text)
    return None


def checkpoint_figure(table: Any, best: Optional[str] = None, *, title: Optional[str] = None) -> dict:
    """`%yolo map DIR`'s chart: mAP@0.50, precision, recall and F1 (%) by iteration, one point per checkpoint
    (hover: its file), the `best` file (a path in the table's ``path`` column) marked with a star.

    Rows without an iteration or a mAP are left out; the spec is a plain dict (no plotly import).
    """
    rows = table.dropna(subset=["iteration", "map"]).sort_values("iteration", kind="stable")
    x = rows["iteration"].to_numpy(dtype=np.int64)
    files = [Path(p).name for p in rows["path"]]
    data: list[dict] = []
    for i, (column, label) in enumerate((("map", "mAP@0.50"), ("precision", "precision"), ("recall", "recall"),
                                         ("f1", "F1"), ("map50_95", "mAP@0.50:0.95"))):
        if column not in rows:
            continue
        y = rows[column].to_numpy(dtype=np.float64) * 100
        data.append({"type": "scatter", "mode": "lines+markers", "name": label, "x": x, "y": y.astype(np.float32),
                     "text": files, "hovertemplate": "%{text}<br>iteration %{x}: %{y:.2f}%",
                     "line": {"color": _COLORS[i], "width": 2.5 if column.startswith("map") else 1.5,
                              "dash": "solid" if column.startswith("map") else "dot"}, "marker": {"size": 7}})
    layout: dict = {"title": {"text": title or "checkpoints", "x": 0, "xanchor": "left"},
                    "xaxis": {"title": {"text": "iteration"}},
                    "yaxis": {"title": {"text": "%"}, **_PCT_TICKS, "range": [-3, 105]},  # whole markers at 0, 100
                    "height": 420, "template": "plotly_white", "margin": {"l": 60, "r": 30, "t": 40, "b": 40},
                    "legend": {"orientation": "h", "y": -0.15, "yanchor": "top", "x": 0}}
    chosen = rows[rows["path"] == str(best)] if best is not None else rows.iloc[:0]
    if len(chosen):
        at, value = int(chosen["iteration"].iloc[0]), float(chosen["map"].iloc[0]) * 100
        name = Path(str(best)).name
        data.append({"type": "scatter", "mode": "markers", "name": f"best: {name}", "x": [at], "y": [value],
                     "marker": {"symbol": "star", "size": 16, "color": _COLORS[0], "line": {"width": 1}},
                     "hovertemplate": f"best: {_html.escape(name)}<br>iteration %{{x}}: mAP %{{y:.2f}}%"})
        layout["annotations"] = [{"x": at, "y": value, "text": f"best: {_html.escape(name)} ({value:.2f}%)",
                                  "showarrow": True, "arrowhead": 2, "ay": -30}]
    return {"data": data, "layout": layout}


_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")


def compare_runs(runs: Any, *, max_points: int = 2000, loss_scale: str = "cap") -> tuple[Any, Any]:
    """Several runs side by side: (plotly Figure, DataFrame).

    The figure draws each run's avg loss (left axis) and mAP@0.50 (right axis, %) by iteration, one colour per
    run. The table has one row per run: best mAP and its iteration, final avg loss, last iteration and training
    time (the sum of its sessions' seconds). `runs` are `TrainingRun`-like: ``.name``, ``.iterations``,
    ``.maps`` and ``.sessions``.
    """
    import pandas as pd
    import plotly.graph_objects as go

    data: list[dict] = []
    rows: list[dict] = []
    all_avg: list[np.ndarray] = []
    for i, run in enumerate(runs):
        color = _COLORS[i % len(_COLORS)]
        name = str(getattr(run, "name", f"run {i + 1}"))
        its, maps = getattr(run, "iterations", None), getattr(run, "maps", None)
        x, avg = _column(its, "iteration"), _column(its, "avg_loss")
        last_it = final_loss = None
        if x is not None and avg is not None and len(x):
            order = np.argsort(x, kind="stable")
            x, avg = x[order], avg[order]
            all_avg.append(avg)
            ds = ChartData.from_columns({"iteration": x, "avg_loss": avg}, max_points).avg
            if ds.finite:
                xs, ys = ds.points()
                data.append({"type": "scatter", "mode": "lines", "name": f"{name} avg loss", "legendgroup": name,
                             "x": _int_x(xs), "y": ys.astype(np.float32), "line": {"color": color, "width": 2}})
            last_it, final_loss = int(x[-1]), _last_valid(avg)
        best = best_at = None
        mx, my = _column(maps, "iteration"), _column(maps, "map50")
        if mx is not None and my is not None and len(mx):
            keep = ~(np.isnan(mx) | np.isnan(my))
            if keep.any():
                data.append({"type": "scatter", "mode": "lines+markers", "name": f"{name} mAP@0.50",
                             "legendgroup": name, "yaxis": "y2", "x": mx[keep].astype(np.int64),
                             "y": (my[keep] * 100).astype(np.float32),
                             "line": {"color": color, "width": 1.5, "dash": "dot"}, "marker": {"size": 5}})
                j = int(np.argmax(my[keep]))
                best, best_at = float(my[keep][j]), int(mx[keep][j])
        seconds = [s.get("seconds") for s in (getattr(run, "sessions", None) or []) if s.get("seconds") is not None]
        rows.append({"run": name, "best mAP@0.50 (%)": None if best is None else round(100 * best, 2),
                     "best at iteration": best_at, "final avg loss": final_loss, "iterations": last_it,
                     "time": _duration(sum(float(s) for s in seconds)) if seconds else None})
    yaxis: dict = {"title": {"text": "avg loss"}, "rangemode": "tozero"}
    if loss_scale == "log":
        yaxis = {"title": {"text": "avg loss (log)"}, "type": "log"}
    elif loss_scale == "cap" and all_avg:
        caps = [c for c in (loss_cap(a) for a in all_avg) if c is not None]
        if caps and len(caps) == len(all_avg):
            yaxis["range"] = [0, max(caps)]
    layout = {"title": {"text": "runs compared", "x": 0, "xanchor": "left"}, "xaxis": {"title": {"text": "iteration"}},
              "yaxis": yaxis, "height": 460, "template": "plotly_white", "margin": {"l": 60, "r": 60, "t": 40, "b": 40},
              "legend": {"orientation": "h", "y": -0.15, "yanchor": "top", "x": 0}}
    if any(t.get("yaxis") == "y2" for t in data):
        layout["yaxis2"] = {"title": {"text": "mAP@0.50 (%)"}, "overlaying": "y", "side": "right", "showgrid": False,
                            **_PCT_TICKS}
    table = pd.DataFrame(rows, columns=["run", "best mAP@0.50 (%)", "best at iteration", "final avg loss",
                                        "iterations", "time"])
    return go.Figure({"data": data, "layout": layout}), table
