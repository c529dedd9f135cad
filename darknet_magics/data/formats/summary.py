"""A dataset as a table: one row per box (view/dataset.py draws the summary `%yolo data` and `%yolo check` show)."""
from __future__ import annotations

from typing import Iterable, Optional

from .model import Dataset


SUMMARY_COLUMNS = ["image", "split", "class", "width_px", "height_px"]


def boxes_frame(rows: Iterable[tuple[str, str, Optional[str], float, float]]):
    """The summary's dataframe from rows ``(image, split, class name, width_px, height_px)``.

    `summary_frame` makes the rows from a read dataset, `checks.check_dataset` from the label files darknet will
    read; both are shown by `view.dataset.show_frame`.
    """
    import pandas as pd

    return pd.DataFrame(list(rows), columns=SUMMARY_COLUMNS)


def summary_frame(ds: Dataset, net: tuple[int, int] = (416, 416)):
    """One row per box: image, split, class, and its size in pixels at network size (a pandas DataFrame).

    Images without boxes get one row with class None, so boxes-per-image counts include negatives.
    """
    rows = []
    for im in ds.images:
        if not im.boxes:
            rows.append((str(im.path), im.split or "", None, float("nan"), float("nan")))
        for b in im.boxes:
            rows.append((str(im.path), im.split or "", ds.names[b.cls] if 0 <= b.cls < len(ds.names) else str(b.cls),
                         abs(b.x1 - b.x0) / im.width * net[0], abs(b.y1 - b.y0) / im.height * net[1]))
    return boxes_frame(rows)






