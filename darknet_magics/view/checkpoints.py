"""The chart of `%yolo map DIR`: one point per checkpoint, the best one marked."""
from __future__ import annotations

import html as _html
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .chart import _COLORS, _PCT_TICKS


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
