"""`%yolo compare`: several runs' avg loss and mAP on one chart, and a table of their results."""
from __future__ import annotations

from typing import Any

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
