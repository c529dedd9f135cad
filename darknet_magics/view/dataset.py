"""The dataset summary `%yolo data` and `%yolo check` show: boxes and images per class, box sizes at network
size (a plotly figure, shown like every chart we draw)."""
from __future__ import annotations


from ..data.formats.model import Dataset
from ..data.formats.summary import summary_frame


def summary_figure(frame, net: tuple[int, int] = (416, 416)) -> dict:
    """Ultralytics' labels.jpg as a plotly figure dict: boxes per class, boxes per image, box sizes at `net`.

    A dict (``plotly.graph_objects.Figure(fig)`` shows it; report.html can embed it) so that nothing here needs
    a notebook.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    boxes = frame.dropna(subset=["class"])
    per_class = boxes.groupby("class").size()
    images_per_class = boxes.groupby("class")["image"].nunique()
    per_image = frame.assign(n=frame["class"].notna()).groupby("image")["n"].sum()
    fig = make_subplots(rows=1, cols=3, subplot_titles=("boxes and images per class", "boxes per image",
                                                        f"box size at {net[0]}x{net[1]} (px)"))
    fig.add_trace(go.Bar(x=list(per_class.index), y=list(per_class.values), name="boxes"), 1, 1)
    fig.add_trace(go.Bar(x=list(images_per_class.index), y=list(images_per_class.values), name="images"), 1, 1)
    fig.add_trace(go.Histogram(x=list(per_image.values), name="boxes per image"), 1, 2)
    fig.add_trace(go.Scattergl(x=list(boxes["width_px"]), y=list(boxes["height_px"]), mode="markers",
                               marker={"size": 4, "opacity": 0.4}, name="boxes"), 1, 3)
    fig.update_xaxes(type="log", row=1, col=3)
    fig.update_yaxes(type="log", row=1, col=3)
    fig.update_layout(height=360, barmode="group", showlegend=False)
    return fig.to_dict()


def show_summary(ds: Dataset, reporter, net: tuple[int, int] = (416, 416)):
    """Render the summary of a read dataset through `reporter` (see `show_frame`); returns the frame."""
    return show_frame(summary_frame(ds, net), reporter, net)


def show_frame(frame, reporter, net: tuple[int, int] = (416, 416), show_figure=None):
    """Render a summary frame (`boxes_frame`) through `reporter`: a table per class, the figure as HTML.

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
    fig = summary_figure(frame, net)
    text = f"{n_images:,} images, {len(boxes):,} boxes in {len(table)} classes"
    if show_figure is not None:
        show_figure(fig, text)
        return frame
    import plotly.io as pio

    reporter.html("dataset-summary", pio.to_html(fig, include_plotlyjs="cdn", full_html=False), text=text)
    return frame
