"""The training chart's figure spec: loss, avg loss, mAP with precision/recall/F1, per-class AP, GPU, learning
rate and images/s, as a plain ``{"data", "layout"}`` dict with numpy arrays (cheap to build and to serialise)."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .series import ChartData, _chart_data, _column, _int_x, _xy, loss_cap


_PCT_TICKS = {"tickmode": "array", "tickvals": [0, 20, 40, 60, 80, 100], "ticksuffix": "%", "range": [0, 100]}
_MAX_CLASSES = 20  # per-class AP traces drawn (legend-only); a 80-class model would drown the legend


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
    data, avg = _loss_traces(chart)
    lower = _lower_traces(chart)
    data += lower + percent
    has_lower = bool(lower)
    yaxis = _loss_axis(loss_scale, avg, [0.42, 1.0] if has_lower else [0.0, 1.0])
    return {"data": data, "layout": _layout(yaxis, title=title, has_lower=has_lower, has_pct=bool(percent),
                                            uirevision=uirevision, height=height)}


def _loss_traces(chart: ChartData) -> tuple[list[dict], Any]:
    """The top panel's loss and avg loss traces, and the avg loss's values (they set the axis's cap)."""
    data: list[dict] = []
    avg = None
    for ds, label, uid, style in ((chart.loss, "loss", "loss", {"width": 1, "color": "rgba(31,119,180,0.35)"}),
                                  (chart.avg, "avg loss", "avg_loss", {"width": 2, "color": "#1f77b4"})):
        if ds.finite:
            x, y = ds.points()
            if uid == "avg_loss":
                avg = y
            data.append({"type": "scatter", "mode": "lines", "name": label, "uid": uid,
                         "x": _int_x(x), "y": y.astype(np.float32), "line": style})
    return data, avg


def _lower_traces(chart: ChartData) -> list[dict]:
    """The bottom panel's traces: learning rate (left axis) and images/s (right); none when neither was seen."""
    data: list[dict] = []
    if chart.rate.count:
        xr, yr = chart.rate_points()
        data.append({"type": "scatter", "mode": "lines", "name": "learning rate", "uid": "lr", "xaxis": "x2",
                     "yaxis": "y3", "x": _int_x(xr), "y": yr.astype(np.float32),
                     "line": {"width": 1.5, "color": "#2ca02c", "shape": "hv"}})
    if chart.ips.finite:
        x, y = chart.ips.points()
        data.append({"type": "scatter", "mode": "lines", "name": "images/s", "uid": "ips", "xaxis": "x2",
                     "yaxis": "y4", "x": _int_x(x), "y": y.astype(np.float32),
                     "line": {"width": 1, "color": "#9467bd"}})
    return data


def _loss_axis(loss_scale: str, avg: Any, domain: list[float]) -> dict:
    """The loss axis: log, capped above the avg loss's early spike (`loss_cap`), or from zero as it comes."""
    if loss_scale == "log":
        return {"title": {"text": "loss (log)"}, "domain": domain, "type": "log"}
    yaxis: dict = {"title": {"text": "loss"}, "domain": domain, "rangemode": "tozero"}
    if loss_scale == "cap":
        cap = loss_cap(avg)
        if cap is not None:
            yaxis["range"] = [0, cap]
            yaxis["title"] = {"text": "loss (axis capped)"}
    return yaxis


def _layout(yaxis: dict, *, title: Optional[str], has_lower: bool, has_pct: bool, uirevision: Optional[str],
            height: int) -> dict:
    """The figure's layout: the loss axis given, the percent axis where there are percent traces, the bottom
    panel's axes where it has traces."""
    layout: dict = {
        "title": {"text": title or "training", "x": 0, "xanchor": "left", "font": {"size": 14}},
        "xaxis": {"anchor": "y"} if has_lower else {"title": {"text": "iteration"}, "anchor": "y"},
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
    return layout


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


_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
