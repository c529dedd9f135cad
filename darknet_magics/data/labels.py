"""The one reader of a darknet label line (``class x y w h``), shared by `%yolo data`, `%yolo check` and
`%yolo anchors` so that they agree on what a good line is.

darknet reads a label with ``fscanf("%d %f %f %f %f")``: a class that is not a whole number (``0.0``) makes the
rest of the line shift by one value, a line with 4 values takes the next line's class as its height, and
``nan``/``inf`` are read as such and poison the loss. So a line must be exactly 5 values (an Ultralytics
segmentation line, class then polygon points, where the reader allows it), the class a whole number, the rest
finite numbers; relative values outside 0..1 (pixel coordinates written as YOLO) are flagged by `out_of_range`.
"""
from __future__ import annotations

import math
import re
from typing import NamedTuple, Optional

from ..untrusted import BadInput, number

__all__ = ["LabelBox", "parse_line", "out_of_range", "MALFORMED_FIX", "RANGE_FIX"]

MALFORMED_FIX = "each line is CLASS X_CENTER Y_CENTER WIDTH HEIGHT (YOLO format, relative 0..1), class a whole number"
RANGE_FIX = "YOLO labels are relative to the image size: divide pixel values by its width/height"
# A relative value this far out is no rounding error of a tool, and times the image size it leaves MAX_PX.
_ABSURD = 1000.0
_CLASS = re.compile(r"[+-]?[0-9]{1,9}\Z")


class LabelBox(NamedTuple):
    """One label line: class id and relative centre and size."""

    cls: int
    x: float
    y: float
    w: float
    h: float


def parse_line(text: str, where: str, *, polygons: bool = False) -> Optional[LabelBox]:
    """The box of one label line; None for a blank line; `BadInput` (with `where`: ``FILE:LINE``) for a line darknet
    would misread. With `polygons`, a class followed by 3 or more x y points is read as their bounding box."""
    parts = text.split()
    if not parts:
        return None
    polygon = polygons and len(parts) >= 7 and len(parts) % 2 == 1
    if len(parts) != 5 and not polygon:
        raise BadInput(where, f"{len(parts)} values, expected 5 (class x y w h): {text.strip()[:60]}", MALFORMED_FIX)
    if not _CLASS.match(parts[0]):  # what %d reads whole: digits, no '0.0', no '1_000'
        raise BadInput(where, f"class {parts[0][:20]!r} is not a whole number: {text.strip()[:60]}", MALFORMED_FIX)
    cls = int(parts[0])
    try:
        values = [float(v) for v in parts[1:]]
        # False for nan/inf too; Python reads 1_0 as 10, darknet's %f reads 1
        fast = "_" not in text and all(-_ABSURD <= v <= _ABSURD for v in values)
    except ValueError:
        fast = False
    if not fast:  # the slow path only to name what is wrong
        names = ("x", "y", "w", "h") if not polygon else tuple(f"point value {i}" for i in range(1, len(parts)))
        values = [number(v, where, n, -_ABSURD, _ABSURD) for v, n in zip(parts[1:], names)]
    if polygon:
        xs, ys = values[0::2], values[1::2]
        return LabelBox(cls, (min(xs) + max(xs)) / 2, (min(ys) + max(ys)) / 2, max(xs) - min(xs), max(ys) - min(ys))
    return LabelBox(cls, *values)


def out_of_range(box: LabelBox) -> bool:
    """True when the centre is outside 0..1 or the size outside (0, 1] (pixel values, or a broken export)."""
    return not (0 <= box.x <= 1 and 0 <= box.y <= 1 and 0 < box.w <= 1 and 0 < box.h <= 1) or not math.isfinite(
        box.x + box.y + box.w + box.h)
