"""The dataset summary `%yolo data` and `%yolo check` show: boxes and images per class, box sizes at network
size and the dataset's health (a plotly figure, shown like every chart we draw, then the health table)."""
from __future__ import annotations

import html
import os
from typing import Optional, Sequence

from ..data.formats.model import Dataset
from ..data.formats.summary import summary_frame
from ..data.health import IMBALANCE, HealthRow, health_frame, health_verdict

# Each severity's mark, row colour and verdict colour in the figure: a warning is red, a note amber, a pass green.
_MARK = {"warning": "⚠ warning", "info": "ℹ note", "ok": "✔ ok"}
_FILL = {"warning": "#fde0dc", "info": "#fff3d6", "ok": "#eaf6ec"}
_INK = {"warning": "#b3261e", "info": "#8a5a00", "ok": "#1e7b34"}
_BAR, _RARE = "#636efa", "#f2a33a"
_ROW_PX, _LINE_PX = 26, 20  # a table row of one line, and each wrapped line more
# The table's columns (relative widths) and about how many characters fit a line of each in a figure 900 px wide
# (1000 px, the saved PNG's width, leaves a little room under the table; a narrower notebook scrolls the table).
_WIDTHS = [1.2, 2.9, 0.8, 2.0, 4.8]
_CHARS = {"check": 36, "example": 21, "advice": 50}


def _short(text: str, limit: int) -> str:
    """`text` cut to `limit` characters at a comma or space, with an ellipsis (the full text is in the table)."""
    if len(text) <= limit:
        return text
    cut = max(text.rfind(",", 0, limit), text.rfind(" ", 0, limit))
    return text[:cut if cut > limit // 2 else limit].rstrip(" ,") + " …"


def _example(row: HealthRow) -> str:
    """The row's example for the figure: file names without their folders (the table keeps the paths), escaped
    (plotly draws a subset of HTML in its text, and names come from the user's files)."""
    if row.severity == "ok" or not row.example:
        return ""
    if row.key in ("duplicate-images", "leakage"):  # two paths
        text = " = ".join(os.path.basename(p) for p in row.example.split(" = "))
    elif row.key in ("duplicate-labels", "outside", "no-area", "negatives"):  # a path
        text = os.path.basename(row.example)
    else:  # class names and counts
        text = row.example
    return html.escape(_short(text, 60))


def _count(row: HealthRow) -> str:
    return f"{row.count:,}:1" if row.key == "imbalance" else f"{row.count:,}"


def _lines(text: str, per_line: int) -> int:
    return max(1, -(-len(text) // per_line))


def _health_table(rows: Sequence[HealthRow]) -> tuple[dict, int]:
    """The health panel as a plotly table trace (one row per check, coloured by severity) and its height in px."""
    import plotly.graph_objects as go

    advice = [html.escape(_short(r.advice, 150)) if r.severity != "ok" else "" for r in rows]
    examples = [_example(r) for r in rows]
    cells = [[_MARK[r.severity] for r in rows], [r.check for r in rows], [_count(r) for r in rows], examples, advice]
    fill = [_FILL[r.severity] for r in rows]
    ink = [_INK[r.severity] for r in rows]
    # rows grow with their wrapped text (plotly wraps at the column's width)
    height = 34 + sum(_ROW_PX + _LINE_PX * (max(_lines(a, _CHARS["advice"]), _lines(e, _CHARS["example"]),
                                                _lines(r.check, _CHARS["check"])) - 1)
                      for a, e, r in zip(advice, examples, rows))
    table = go.Table(
        columnwidth=_WIDTHS,
        header={"values": ["", "check", "found", "example", "what to do"], "align": "left",
                "fill": {"color": "#f0f0f0"}, "font": {"size": 12}, "height": 26},
        cells={"values": cells, "align": ["left", "left", "right", "left", "left"], "height": _ROW_PX,
               "fill": {"color": [fill] * len(cells)},
               "font": {"size": 12, "color": [ink, ["#222"] * len(rows), ["#222"] * len(rows), ["#444"] * len(rows),
                                              ["#222"] * len(rows)]}},
        name="health")
    return table, height


def summary_figure(frame, net: tuple[int, int] = (416, 416), health: Optional[Sequence[HealthRow]] = None) -> dict:
    """Ultralytics' labels.jpg as a plotly figure dict: boxes per class, boxes per image, box sizes at `net`, and,
    with `health` (`data.health`), the health panel under them: the verdict as the title, a row per check
    coloured by severity (counts, an example, the advice), the classes that make an imbalance marked in amber.

    A dict (``plotly.graph_objects.Figure(fig)`` shows it; report.html can embed it) so that nothing here needs
    a notebook.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    boxes = frame.dropna(subset=["class"])
    per_class = boxes.groupby("class").size()
    images_per_class = boxes.groupby("class")["image"].nunique()
    per_image = frame.assign(n=frame["class"].notna()).groupby("image")["n"].sum()
    titles = ["boxes and images per class", "boxes per image", f"box size at {net[0]}x{net[1]} (px)"]
    rows = list(health or [])
    if rows:
        table, table_px = _health_table(rows)
        charts_px = 330
        fig = make_subplots(rows=2, cols=3, subplot_titles=titles + ["health checks"],
                            specs=[[{"type": "xy"}] * 3, [{"type": "table", "colspan": 3}, None, None]],
                            row_heights=[charts_px, table_px], vertical_spacing=70 / (charts_px + table_px + 70))
    else:
        fig = make_subplots(rows=1, cols=3, subplot_titles=titles)
    imbalance = next((r for r in rows if r.key == "imbalance" and r.severity != "ok"), None)
    most = int(per_class.max()) if len(per_class) else 0
    rare = [int(n) * IMBALANCE <= most for n in per_class.values] if imbalance else [False] * len(per_class)
    fig.add_trace(go.Bar(x=list(per_class.index), y=list(per_class.values), name="boxes",
                         marker={"color": [_RARE if r else _BAR for r in rare]}), 1, 1)
    fig.add_trace(go.Bar(x=list(images_per_class.index), y=list(images_per_class.values), name="images",
                         marker={"color": "#a9b0fc"}), 1, 1)
    fig.add_trace(go.Histogram(x=list(per_image.values), name="boxes per image"), 1, 2)
    fig.add_trace(go.Scattergl(x=list(boxes["width_px"]), y=list(boxes["height_px"]), mode="markers",
                               marker={"size": 4, "opacity": 0.4}, name="boxes"), 1, 3)
    fig.update_xaxes(type="log", row=1, col=3)
    fig.update_yaxes(type="log", row=1, col=3)
    if imbalance is not None:  # headroom over the bars for the note, the rare classes' bars in its colour
        names = [str(c) for c, r in zip(per_class.index, rare) if r]
        fig.update_yaxes(range=[0, most * 1.35], row=1, col=1)
        fig.add_annotation(text=f"imbalance {imbalance.count:,}:1<br>few: {html.escape(_short(', '.join(names), 24))}"
                                "<br>→ counters_per_class",
                           xref="x domain", yref="y domain", x=0.98, y=0.99, xanchor="right", yanchor="top",
                           showarrow=False, align="left", font={"size": 11, "color": _INK["info"]},
                           bgcolor="rgba(255,243,214,0.9)", bordercolor=_RARE, borderwidth=1)
    if rows:
        fig.add_trace(table, 2, 1)
        verdict = health_verdict(rows)
        worst = "warning" if any(r.severity == "warning" for r in rows) else \
            "info" if any(r.severity == "info" for r in rows) else "ok"
        fig.update_layout(title={"text": f"dataset health: <b>{verdict}</b>", "xref": "paper", "x": 0,
                                 "xanchor": "left",
                                 "font": {"size": 15, "color": _INK[worst]}},
                          height=charts_px + table_px + 70 + 90, margin={"t": 80, "b": 20, "l": 50, "r": 20})
    else:
        fig.update_layout(height=360)
    fig.update_layout(barmode="group", showlegend=False)
    return fig.to_dict()


def show_summary(ds: Dataset, reporter, net: tuple[int, int] = (416, 416),
                 health: Optional[Sequence[HealthRow]] = None):
    """Render the summary of a read dataset through `reporter` (see `show_frame`); returns the frame."""
    return show_frame(summary_frame(ds, net), reporter, net, health=health)


def show_frame(frame, reporter, net: tuple[int, int] = (416, 416), show_figure=None,
               health: Optional[Sequence[HealthRow]] = None):
    """Render a summary frame (`boxes_frame`) through `reporter`: a table per class, the figure (with the health
    panel when `health` is given) as HTML, then the health table with its paths and full advice.

    `show_figure(figure, text)`, when given, shows the figure instead (the directives pass view.saved's, which
    draws offline and untrusted; data/ sits below view/). Returns the frame. An empty frame (no images) shows one
    line and no figure.
    """

    n_images = frame["image"].nunique()
    boxes = frame.dropna(subset=["class"])
    if n_images == 0:
        reporter.info("no images to summarize")
        return frame
    table = boxes.groupby("class").agg(boxes=("image", "size"), images=("image", "nunique"),
                                       median_w_px=("width_px", "median"), median_h_px=("height_px", "median"))
    reporter.dataframe(table.reset_index(), title=f"{n_images:,} images, {len(boxes):,} boxes")
    fig = summary_figure(frame, net, health)
    text = f"{n_images:,} images, {len(boxes):,} boxes in {len(table)} classes"
    if health:
        text += f"; dataset health: {health_verdict(health)}"
    if show_figure is not None:
        show_figure(fig, text)
    else:
        import plotly.io as pio

        reporter.html("dataset-summary", pio.to_html(fig, include_plotlyjs="cdn", full_html=False), text=text)
    if health:
        reporter.dataframe(health_frame(health), title=f"dataset health: {health_verdict(health)}")
    return frame
