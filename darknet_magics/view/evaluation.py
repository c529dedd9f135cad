"""The views of `%yolo eval`, shown and saved as the training chart is: the confusion matrix, precision-recall and
F1-confidence curves per class, and a mosaic of the worst validation images (ground truth beside prediction).

Each view is a plain plotly spec (no plotly import to build it), shown through `live.show_figure` (plotly's
mimetype plus a PNG where the static export works) and written into the evaluation's folder as ``NAME.html`` and
``NAME.png``. The mosaic's pictures are the image files themselves (as data: URLs, which the browser decodes), with
the boxes drawn as shapes over them: no image library is needed.
"""
from __future__ import annotations

import base64
import html as _html
from pathlib import Path
from typing import Any, Optional

import numpy as np

from . import live

_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".jfif": "image/jpeg",
         ".bmp": "image/bmp", ".gif": "image/gif"}
MOSAIC_IMAGES = 8  # the worst validation images shown, each twice (truth, prediction)
_MOSAIC_MAX_BYTES = 2 * 1024 * 1024  # a larger picture is left out of the mosaic (it would bloat the notebook)
# white, without naming a template: the report's exporter (plotly's to_html) takes a template as a dict only
_LAYOUT = {"plot_bgcolor": "white", "paper_bgcolor": "white", "margin": {"l": 60, "r": 30, "t": 50, "b": 40}}


def confusion_figure(confusion: Any, *, title: str = "confusion matrix") -> dict:
    """A heatmap of `Evaluation.confusion` (rows: true class, columns: predicted; counts written in the cells)."""
    z = confusion.to_numpy()
    labels = [str(v) for v in confusion.columns]
    trace = {"type": "heatmap", "z": z.tolist(), "x": labels, "y": [str(v) for v in confusion.index],
             "colorscale": "Blues", "text": z.tolist(), "texttemplate": "%{text}", "showscale": False,
             "hovertemplate": "true %{y}, predicted %{x}: %{z}<extra></extra>"}
    size = max(320, 60 * len(labels) + 160)
    return {"data": [trace], "layout": {**_LAYOUT, "title": {"text": title, "x": 0, "xanchor": "left"},
                                        "xaxis": {"title": {"text": "predicted"}, "side": "bottom"},
                                        "yaxis": {"title": {"text": "true"}, "autorange": "reversed"},
                                        "height": size, "width": size + 120}}


def curves_figure(curves: Any, *, title: str = "precision-recall and F1-confidence") -> dict:
    """Two panels: precision against recall, and F1 against the confidence threshold, one line per class."""
    data: list[dict] = []
    for i, (name, rows) in enumerate(curves.groupby("class", sort=False)):
        color = live._COLORS[i % len(live._COLORS)]
        rows = rows.sort_values("confidence")
        data.append({"type": "scatter", "mode": "lines", "name": f"{name}", "legendgroup": name,
                     "x": rows["recall"].to_numpy(np.float64), "y": rows["precision"].to_numpy(np.float64),
                     "line": {"color": color}, "hovertemplate": "recall %{x:.2f}, precision %{y:.2f}"})
        data.append({"type": "scatter", "mode": "lines", "name": f"{name} F1", "legendgroup": name,
                     "showlegend": False, "x": rows["confidence"].to_numpy(np.float64),
                     "y": rows["f1"].to_numpy(np.float64), "xaxis": "x2", "yaxis": "y2",
                     "line": {"color": color}, "hovertemplate": "confidence %{x:.2f}: F1 %{y:.2f}"})
    unit = {"range": [0, 1.02]}
    return {"data": data, "layout": {**_LAYOUT, "title": {"text": title, "x": 0, "xanchor": "left"}, "height": 420,
                                     "xaxis": {"domain": [0, 0.46], "title": {"text": "recall"}, **unit},
                                     "yaxis": {"title": {"text": "precision"}, **unit},
                                     "xaxis2": {"domain": [0.54, 1], "title": {"text": "confidence"}, **unit,
                                                "anchor": "y2"},
                                     "yaxis2": {"title": {"text": "F1"}, **unit, "anchor": "x2"},
                                     "legend": {"orientation": "h", "y": -0.18, "yanchor": "top", "x": 0}}}


def _picture(path: Path) -> Optional[str]:
    """The image file as a data: URL, or None (not a type a browser shows, too large, or unreadable)."""
    mime = _MIME.get(path.suffix.lower())
    try:
        if mime is None or path.stat().st_size > _MOSAIC_MAX_BYTES:
            return None
        return f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode("ascii")
    except OSError:
        return None


def _panel(suffix: str, boxes: list[tuple], width: int, height: int, colors: dict) -> list[dict]:
    """The shapes of one panel (axes x`suffix`, y`suffix`), boxes ``(class, x0, y0, x1, y1)`` relative."""
    shapes = []
    for box in boxes:
        cls, x0, y0, x1, y1 = box[:5]
        shapes.append({"type": "rect", "xref": f"x{suffix}", "yref": f"y{suffix}", "x0": x0 * width, "y0": y0 * height,
                       "x1": x1 * width, "y1": y1 * height, "line": {"color": colors[int(cls)], "width": 2}})
    return shapes


def mosaic_figure(evaluation: Any, count: int = MOSAIC_IMAGES) -> dict:
    """The `count` worst validation images (as `Evaluation.images` orders them), each as two panels: its ground
    truth and the detections at the evaluation's threshold, boxes coloured by class."""
    from ..data.formats import image_size

    names = evaluation.names
    colors = {c: live._COLORS[c % len(live._COLORS)] for c in range(len(names))}
    index = {str(p): k for k, p in enumerate(evaluation.paths)}
    truths = evaluation.truths
    rows = evaluation.images.head(count)
    dets = evaluation.detections[evaluation.detections["confidence"] >= evaluation.thresh]
    layout: dict = {**_LAYOUT, "title": {"text": "worst validation images: ground truth | prediction", "x": 0,
                                         "xanchor": "left"}, "images": [], "shapes": [], "annotations": [],
                    "showlegend": False, "height": 230 * max(1, len(rows)) + 60, "width": 640}
    data: list[dict] = []
    for r, row in enumerate(rows.itertuples()):
        path = Path(row.image)
        width, height = image_size(path) or (1, 1)
        picture = _picture(path)
        own = dets[dets["image"] == row.image]
        predicted = [tuple(v) for v in own[["class", "x0", "y0", "x1", "y1"]].to_numpy(np.float64)]
        truth = [tuple(b) for b in truths[index[row.image]]] if row.image in index else []
        top = 1 - r / len(rows)
        bottom = 1 - (r + 1) / len(rows) + 0.03
        for side, boxes, label in ((0, truth, "truth"), (1, predicted, "prediction")):
            n = 2 * r + side + 1
            suffix = "" if n == 1 else str(n)
            layout[f"xaxis{suffix}"] = {"domain": [side * 0.5 + 0.01, side * 0.5 + 0.49], "range": [0, width],
                                        "visible": False, "anchor": f"y{suffix}"}
            layout[f"yaxis{suffix}"] = {"domain": [bottom, top], "range": [height, 0], "visible": False,
                                        "anchor": f"x{suffix}", "scaleanchor": f"x{suffix}"}
            if picture:
                layout["images"].append({"source": picture, "xref": f"x{suffix}", "yref": f"y{suffix}", "x": 0,
                                         "y": 0, "sizex": width, "sizey": height, "sizing": "stretch",
                                         "layer": "below"})
            layout["shapes"] += _panel(suffix, boxes, width, height, colors)
            text = (f"{_html.escape(path.name)}: {label}" + ("" if side == 0 else
                    f" (TP {row.tp}, FP {row.fp}, FN {row.fn})"))
            layout["annotations"].append({"text": text, "xref": "paper", "yref": "paper", "x": side * 0.5 + 0.01,
                                          "y": top, "yanchor": "bottom", "showarrow": False,
                                          "font": {"size": 11}})
            data.append({"type": "scatter", "x": [], "y": [], "xaxis": f"x{suffix}", "yaxis": f"y{suffix}"})
    return {"data": data, "layout": layout}


def show_and_save(reporter: Any, folder: Path, name: str, spec: dict, text: str) -> Optional[live.SavedChart]:
    """Show `spec` inline (as the training chart) and write ``NAME.html`` and ``NAME.png`` into `folder`; a folder
    that cannot be written is a warning (the view was shown and is in the result)."""
    bundle = live.show_figure(reporter, f"darknet-eval:{folder}:{name}", spec, text)
    png = (bundle or {}).get("image/png")
    try:
        return live.write_figure(spec, folder, name=name, title=text, png=bundle is not None,
                                 png_data=base64.b64decode(png) if png else None)
    except OSError as exc:
        reporter.warn(f"the {name} view was not saved in {folder}: {exc}")
        return None


def show_evaluation(evaluation: Any, folder: Path, reporter: Any) -> dict:
    """Every view of `evaluation`, shown and saved in `folder`; returns {name: SavedChart or None}."""
    specs = {"confusion": confusion_figure(evaluation.confusion,
                                           title=f"confusion matrix (conf >= {evaluation.thresh:g}, "
                                                 f"IoU >= {evaluation.iou:g})"),
             "curves": curves_figure(evaluation.curves),
             "mosaic": mosaic_figure(evaluation)}
    return {name: show_and_save(reporter, folder, name, spec, f"{name}: {folder / (name + '.html')}")
            for name, spec in specs.items()}
