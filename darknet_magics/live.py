"""The live training view: a plotly figure and a progress line, downsampled, throttled, rendered as HTML.

Colab appends a new figure when a plotly `Figure` is re-displayed through a display handle, and keeps only the
last 5,000 lines of a cell's stream, so the view is one HTML blob sent to ``reporter.html("darknet-live", ...)``,
which the notebook face updates in place, at most about once a second. The first render embeds plotly.js (our
machines and many Colab setups cannot reach a CDN); later renders reuse the ``window.Plotly`` it defined, and
the final render embeds it again so that a saved notebook still shows the chart.

A history of 500,000 iterations is cut down to `max_points` per series (min and max of each bucket, plus the
first and last point), so an update stays a few dozen KB and builds in milliseconds.
"""
from __future__ import annotations

import base64
import html as _html
import math
import re
import time
import uuid
from typing import Any, Optional

import numpy as np

__all__ = ["build_figure", "figure_html", "progress_line", "downsample_indices", "LiveView", "LIVE_KEY"]

LIVE_KEY = "darknet-live"

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1b[@-Z\\-_]")


def downsample_indices(y: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of the points that keep the shape of `y`: first, last, and min and max of each bucket.

    NaNs never win a bucket (a bucket of only NaNs keeps its first point). Returns all indices when `y` has at
    most `max_points` points.
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


def _series(x: np.ndarray, y: Optional[np.ndarray], max_points: int) -> Optional[tuple[np.ndarray, np.ndarray]]:
    if y is None:
        return None
    keep = ~np.isnan(x)
    x, y = x[keep], y[keep]
    if not len(x) or np.isnan(y).all():
        return None
    idx = downsample_indices(y, max_points)
    return x[idx], y[idx]


def _figure_dict(iterations_df: Any, maps_df: Any, *, max_points: int, title: Optional[str]) -> dict:
    """The figure as a plain dict (data + layout), typed arrays as numpy: cheap to build and to serialise."""
    data: list[dict] = []
    x = _column(iterations_df, "iteration")
    if x is not None and len(x):
        order = None
        if len(x) > 1 and np.any(np.diff(x) < 0):  # stitched or replayed histories may not be sorted
            order = np.argsort(x, kind="stable")
            x = x[order]
        for col, label, style in (("loss", "loss", {"width": 1, "color": "rgba(31,119,180,0.35)"}),
                                  ("avg_loss", "avg loss", {"width": 2, "color": "#1f77b4"})):
            y = _column(iterations_df, col)
            if y is not None and order is not None:
                y = y[order]
            s = _series(x, y, max_points)
            if s is not None:
                data.append({"type": "scatter", "mode": "lines", "name": label,
                             "x": s[0].astype(np.int64 if np.all(s[0] == np.floor(s[0])) else np.float64),
                             "y": s[1].astype(np.float32), "line": style})
    mx = _column(maps_df, "iteration")
    my = _column(maps_df, "map50")
    has_map = False
    if mx is not None and my is not None and len(mx):
        keep = ~(np.isnan(mx) | np.isnan(my))
        if keep.any():
            has_map = True
            data.append({"type": "scatter", "mode": "lines+markers", "name": "mAP@0.50", "yaxis": "y2",
                         "x": mx[keep].astype(np.int64), "y": (my[keep] * 100).astype(np.float32),
                         "line": {"width": 2, "color": "#d62728"}, "marker": {"size": 6}})
    layout: dict = {
        "title": {"text": title or "training"},
        "xaxis": {"title": {"text": "iteration"}},
        "yaxis": {"title": {"text": "loss"}, "rangemode": "tozero"},
        "height": 420,
        "margin": {"l": 60, "r": 60, "t": 50, "b": 50},
        "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        "template": "plotly_white",
    }
    if has_map:
        layout["yaxis2"] = {"title": {"text": "mAP@0.50 (%)"}, "overlaying": "y", "side": "right",
                            "range": [0, 100], "showgrid": False}
    return {"data": data, "layout": layout}


def build_figure(iterations_df: Any, maps_df: Any = None, *, max_points: int = 2000, title: Optional[str] = None):
    """A plotly Figure of loss and avg loss against iteration, and mAP@0.50 (%) on a second axis when present.

    Each series is downsampled to about `max_points` points (see `downsample_indices`).
    """
    import plotly.graph_objects as go

    spec = _figure_dict(iterations_df, maps_df, max_points=max_points, title=title)
    fig = go.Figure(layout=_without_template(spec["layout"]))
    for trace in spec["data"]:
        fig.add_trace(go.Scatter(**{k: v for k, v in trace.items() if k != "type"}))
    fig.update_layout(template="plotly_white")
    return fig


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


def _render(spec_json: str, *, div_id: str, include_plotlyjs: bool, height: int = 420) -> str:
    """Our own small HTML: a div and a script that draws `spec_json` with ``Plotly.react``."""
    head = ""
    if include_plotlyjs:
        head = '<script type="text/javascript">' + _plotlyjs() + "</script>\n"
    # Without a window.Plotly (a front end that drops the first render's bundle between updates), fetch the same
    # plotly.js version from its CDN once; offline, say how to see the chart instead.
    script = (
        "(function(){var s=" + spec_json + ';var el=document.getElementById("' + div_id + '");'
        "if(!el)return;function draw(){window.Plotly.react(el,s.data,s.layout,{responsive:true,displaylogo:false});}"
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


def progress_line(history: Any, max_batches: Optional[int], elapsed: float, *,
                  start_iteration: Optional[int] = None) -> str:
    """``iteration 1,234/6,000 (20.6%) | avg loss 1.234 | best mAP 45.6% | 2.1 it/s | ETA 38m 12s``.

    `history` is anything with `iterations` and `maps` dataframes. The rate counts the iterations since
    `start_iteration` over `elapsed` seconds (this session of a resumed run); without it, the median of the
    recent per-iteration ``seconds`` darknet printed. ETA prefers darknet's own ``hours_left`` when it prints it.
    """
    its = getattr(history, "iterations", None)
    maps = getattr(history, "maps", None)
    it_col = _column(its, "iteration")
    parts: list[str] = []
    last_it = _last_valid(it_col)
    if last_it is None:
        parts.append("waiting for the first iteration")
    else:
        text = f"iteration {int(last_it):,}"
        if max_batches:
            text += f"/{int(max_batches):,} ({100.0 * last_it / max_batches:.1f}%)"
        parts.append(text)
        avg = _column(its, "avg_loss")
        if avg is not None and len(avg):
            value = avg[-1]
            parts.append("avg loss nan" if np.isnan(value) else f"avg loss {value:.4g}")
    m = _column(maps, "map50")
    if m is not None and len(m) and not np.isnan(m).all():
        parts.append(f"best mAP {100 * np.nanmax(m):.2f}%")
    rate = None
    if last_it is not None and start_iteration is not None and elapsed > 0 and last_it > start_iteration:
        rate = (last_it - start_iteration) / elapsed
    elif last_it is not None:
        secs = _column(its, "seconds")
        if secs is not None and len(secs):
            recent = secs[-50:]
            recent = recent[~np.isnan(recent) & (recent > 0)]
            if len(recent):
                rate = 1.0 / float(np.median(recent))
    if rate:
        parts.append(f"{rate:.2f} it/s" if rate >= 0.1 else f"{rate * 60:.2f} it/min")
    eta = None
    hours_left = _last_valid(_column(its, "hours_left"))
    if hours_left is not None and hours_left >= 0:
        eta = hours_left * 3600
    elif rate and max_batches and last_it is not None:
        eta = max(0.0, (max_batches - last_it) / rate)
    if eta is not None:
        parts.append(f"ETA {_duration(eta)}")
    parts.append(f"elapsed {_duration(elapsed)}")
    return " | ".join(parts)


class LiveView:
    """One live region: progress line, chart and the last few darknet lines, sent to ``reporter.html``.

    `update` is cheap to call after every chunk: it renders at most once per `min_interval` seconds (unless
    forced) and rebuilds the chart only when the history grew. `add_text` keeps a short tail of darknet's output.
    """

    def __init__(self, reporter: Any, *, min_interval: float = 1.0, max_batches: Optional[int] = None,
                 title: Optional[str] = None, max_points: int = 2000, tail_lines: int = 5,
                 start_iteration: Optional[int] = None, key: str = LIVE_KEY) -> None:
        self.reporter = reporter
        self.min_interval = min_interval
        self.max_batches = max_batches
        self.title = title
        self.max_points = max_points
        self.tail_lines = tail_lines
        self.start_iteration = start_iteration
        self.key = key
        self.div_id = "dm-live-" + uuid.uuid4().hex[:12]
        self.started = time.monotonic()
        self.renders = 0
        self.last_html = ""
        self.last_text = ""
        self._last = -math.inf
        self._tail = ""
        self._plotlyjs_sent = False
        self._shape: Optional[tuple[int, int]] = None
        self._chart = ""

    def add_text(self, text: str) -> None:
        """Remember the end of darknet's output (only the last few lines are ever shown)."""
        self._tail = (self._tail + text)[-4096:]

    def tail(self) -> list[str]:
        """The last `tail_lines` non-empty lines of output, escapes and carriage returns removed."""
        lines = []
        for raw in _ANSI.sub("", self._tail).replace("\r\n", "\n").split("\n"):
            line = raw.rsplit("\r", 1)[-1] if "\r" in raw.rstrip("\r") else raw.rstrip("\r")
            if line.strip():
                lines.append(line)
        return lines[-self.tail_lines:]

    def update(self, history: Any, force: bool = False, final: bool = False) -> bool:
        """Render and send the view if `min_interval` passed (or `force`); True when it sent one.

        ``final=True`` (implies force) embeds plotly.js again so that the last view survives a notebook reload.
        """
        now = time.monotonic()
        if not (force or final) and now - self._last < self.min_interval:
            return False
        self._last = now
        its = getattr(history, "iterations", None)
        maps = getattr(history, "maps", None)
        shape = (len(its) if its is not None else 0, len(maps) if maps is not None else 0)
        embed = final or not self._plotlyjs_sent
        if shape != self._shape or embed or not self._chart:
            spec = _figure_dict(its, maps, max_points=self.max_points, title=self.title)
            self._spec_json = _to_json(spec)
            self._shape = shape
        self._chart = _render(self._spec_json, div_id=self.div_id, include_plotlyjs=embed)
        self._plotlyjs_sent = True
        progress = progress_line(history, self.max_batches, now - self.started, start_iteration=self.start_iteration)
        tail = "\n".join(self.tail())
        html = (
            f'<div class="darknet-live"><div style="font-family:monospace;font-weight:bold;margin:4px 0">'
            f"{_html.escape(progress)}</div>{self._chart}"
            + (f'<pre style="font-size:11px;color:#555;margin:4px 0;max-height:8em;overflow:hidden">'
               f"{_html.escape(tail)}</pre>" if tail else "")
            + "</div>"
        )
        self.last_html = html
        self.last_text = progress
        self.renders += 1
        self.reporter.html(self.key, html, progress)
        return True


def spec_size(iterations_df: Any, maps_df: Any = None, *, max_points: int = 2000) -> int:
    """Bytes of one chart update without the plotly.js bundle (used by the benchmark)."""
    return len(_render(_to_json(_figure_dict(iterations_df, maps_df, max_points=max_points, title=None)),
                       div_id="x", include_plotlyjs=False))

