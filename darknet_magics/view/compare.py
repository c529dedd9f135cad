"""`%yolo compare`: several runs' avg loss and mAP on one chart, and a table of their results."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from .chart import _COLORS, _PCT_TICKS
from .progress import _duration
from .series import ChartData, _column, _int_x, _last_valid, loss_cap


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
        loss = _loss_curve(name, color, getattr(run, "iterations", None), max_points)
        best = _best_map(name, color, getattr(run, "maps", None))
        if loss.avg is not None:
            all_avg.append(loss.avg)
        data += loss.traces + best.traces
        seconds = [s.get("seconds") for s in (getattr(run, "sessions", None) or []) if s.get("seconds") is not None]
        rows.append({"run": name, "best mAP@0.50 (%)": None if best.value is None else round(100 * best.value, 2),
                     "best at iteration": best.at, "final avg loss": loss.final, "iterations": loss.last_iteration,
                     "time": _duration(sum(float(s) for s in seconds)) if seconds else None})
    layout = {"title": {"text": "runs compared", "x": 0, "xanchor": "left"}, "xaxis": {"title": {"text": "iteration"}},
              "yaxis": _loss_axis(loss_scale, all_avg), "height": 460, "template": "plotly_white",
              "margin": {"l": 60, "r": 60, "t": 40, "b": 40},
              "legend": {"orientation": "h", "y": -0.15, "yanchor": "top", "x": 0}}
    if any(t.get("yaxis") == "y2" for t in data):
        layout["yaxis2"] = {"title": {"text": "mAP@0.50 (%)"}, "overlaying": "y", "side": "right", "showgrid": False,
                            **_PCT_TICKS}
    table = pd.DataFrame(rows, columns=["run", "best mAP@0.50 (%)", "best at iteration", "final avg loss",
                                        "iterations", "time"])
    return go.Figure({"data": data, "layout": layout}), table


@dataclass
class _LossCurve:
    """One run's avg loss: its trace (none without finite points), the values in iteration order, the last."""

    traces: list[dict] = field(default_factory=list)
    avg: Optional[np.ndarray] = None
    last_iteration: Optional[int] = None
    final: Optional[float] = None


def _loss_curve(name: str, color: str, its: Any, max_points: int) -> _LossCurve:
    """The avg loss of one run's iterations, sorted by iteration and downsampled for the chart."""
    x, avg = _column(its, "iteration"), _column(its, "avg_loss")
    if x is None or avg is None or not len(x):
        return _LossCurve()
    order = np.argsort(x, kind="stable")
    x, avg = x[order], avg[order]
    curve = _LossCurve(avg=avg, last_iteration=int(x[-1]), final=_last_valid(avg))
    ds = ChartData.from_columns({"iteration": x, "avg_loss": avg}, max_points).avg
    if ds.finite:
        xs, ys = ds.points()
        curve.traces.append({"type": "scatter", "mode": "lines", "name": f"{name} avg loss", "legendgroup": name,
                             "x": _int_x(xs), "y": ys.astype(np.float32), "line": {"color": color, "width": 2}})
    return curve


@dataclass
class _BestMap:
    """One run's mAP@0.50: its trace (right axis, %), the best value and the iteration it came at."""

    traces: list[dict] = field(default_factory=list)
    value: Optional[float] = None
    at: Optional[int] = None


def _best_map(name: str, color: str, maps: Any) -> _BestMap:
    """The mAP@0.50 points of one run (those with a number) and the best of them."""
    mx, my = _column(maps, "iteration"), _column(maps, "map50")
    if mx is None or my is None or not len(mx):
        return _BestMap()
    keep = ~(np.isnan(mx) | np.isnan(my))
    if not keep.any():
        return _BestMap()
    trace = {"type": "scatter", "mode": "lines+markers", "name": f"{name} mAP@0.50", "legendgroup": name,
             "yaxis": "y2", "x": mx[keep].astype(np.int64), "y": (my[keep] * 100).astype(np.float32),
             "line": {"color": color, "width": 1.5, "dash": "dot"}, "marker": {"size": 5}}
    j = int(np.argmax(my[keep]))
    return _BestMap([trace], float(my[keep][j]), int(mx[keep][j]))


def _loss_axis(loss_scale: str, all_avg: list[np.ndarray]) -> dict:
    """The avg loss axis: log, capped above every run's early spike (only when each run has a cap), or as it comes."""
    if loss_scale == "log":
        return {"title": {"text": "avg loss (log)"}, "type": "log"}
    yaxis: dict = {"title": {"text": "avg loss"}, "rangemode": "tozero"}
    if loss_scale == "cap" and all_avg:
        caps = [c for c in (loss_cap(a) for a in all_avg) if c is not None]
        if caps and len(caps) == len(all_avg):
            yaxis["range"] = [0, max(caps)]
    return yaxis
