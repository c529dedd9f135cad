"""What `%yolo data` and `%yolo check` share: the dataset summary and health table, shown and bound."""
from __future__ import annotations

from typing import Optional, Sequence

from ..view.dataset import show_frame
from ..data.health import HealthRow
from ..language import Step
from ..session import Context

# The summary frame's name in the user's namespace when the line has no ``as NAME``.
DEFAULT_SUMMARY_NAME = "yolo_dataset"


def show_and_bind(step: Step, ctx: Context, frame, net: tuple[int, int],
                  health: Optional[Sequence[HealthRow]] = None) -> str:
    """Show `frame` (`formats.boxes_frame`: one row per box) as a table and a figure with the `health` panel
    (`data.health`), then the health table, and bind the frame to ``as NAME`` (default ``yolo_dataset``); returns
    the name."""
    from ..view.saved import show_figure  # plotly: imported with the first summary

    show_frame(frame, ctx.reporter, net,
               show_figure=lambda figure, text: show_figure(ctx.reporter, "dataset-summary", figure, text),
               health=health)
    return ctx.bind(step, frame, DEFAULT_SUMMARY_NAME) or DEFAULT_SUMMARY_NAME
