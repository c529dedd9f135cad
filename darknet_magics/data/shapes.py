"""Annotation shapes to the axis-aligned box that holds them (pure), and the shapes that hold no object box.

A detector learns boxes, so every shape a user would expect as one becomes its bounding box: a polygon, a mask
(CVAT's RLE in its own box, COCO's RLE, compressed or not), a rotated box (the box that holds it turned), an
ellipse or a circle. Points, polylines, image-level tags and skeletons mark no extent: they are left out, and the
readers count them (`LEFT_OUT_REASONS`) so that the conversion says how many, of which kind, in which files.

Conventions (each tool's documentation): CVAT's mask ``rle`` counts alternate background/foreground, row by row
over the ``width`` x ``height`` box at ``left``, ``top``, starting with background; COCO's RLE counts alternate the
same way column by column over the whole image (pycocotools' compressed string is its LEB128-like text form);
CVAT's ``rotation`` is degrees clockwise about the box's centre.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

__all__ = ["Bounds", "LEFT_OUT_REASONS", "polygon_bounds", "rotated_bounds", "ellipse_bounds", "circle_bounds",
           "cvat_rle_bounds", "coco_rle_bounds", "coco_rle_counts"]

Bounds = tuple[float, float, float, float]  # x0, y0, x1, y1 in continuous pixels

# Why each kind of shape cannot be an object box (what the "boxes left out" line says).
LEFT_OUT_REASONS = {
    "points": "points mark no extent",
    "polyline": "an open line marks no extent",
    "line": "a line marks no extent",
    "linestrip": "an open line marks no extent",
    "point": "a point marks no extent",
    "tag": "an image-level tag has no box",
    "skeleton": "a skeleton's keypoints mark no extent",
    "cuboid": "a 3D cuboid is not an image box",
    "empty-mask": "a mask with no pixel set",
}


def polygon_bounds(points: Sequence[tuple[float, float]]) -> Bounds:
    """The box around the points of a polygon."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def rotated_bounds(x0: float, y0: float, x1: float, y1: float, degrees: float) -> Bounds:
    """The axis-aligned box that holds the box ``x0 y0 x1 y1`` turned by `degrees` about its centre."""
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    c, s = abs(math.cos(math.radians(degrees))), abs(math.sin(math.radians(degrees)))
    w2, h2 = hw * c + hh * s, hw * s + hh * c
    return cx - w2, cy - h2, cx + w2, cy + h2


def ellipse_bounds(cx: float, cy: float, rx: float, ry: float, degrees: float = 0.0) -> Bounds:
    """The box around an ellipse with radii `rx`, `ry`, turned by `degrees`."""
    t = math.radians(degrees)
    w2 = math.hypot(rx * math.cos(t), ry * math.sin(t))
    h2 = math.hypot(rx * math.sin(t), ry * math.cos(t))
    return cx - w2, cy - h2, cx + w2, cy + h2


def circle_bounds(center: tuple[float, float], edge: tuple[float, float]) -> Bounds:
    """The box around a circle given by its centre and a point on it (LabelMe's two points)."""
    r = math.hypot(edge[0] - center[0], edge[1] - center[1])
    return center[0] - r, center[1] - r, center[0] + r, center[1] + r


def _runs(counts: Sequence[int]):
    """(start, length) of each foreground run of alternating background/foreground counts."""
    pos = 0
    for i, n in enumerate(counts):
        if i % 2 and n > 0:
            yield pos, n
        pos += n


def cvat_rle_bounds(counts: Sequence[int], left: float, top: float, width: int) -> Optional[Bounds]:
    """The box around a CVAT mask: `counts` run row by row over its `width`-wide box at `left`, `top`; None
    when no pixel is set."""
    if width <= 0:
        return None
    cols, rows = [], []
    for start, n in _runs(counts):
        end = start + n - 1
        r0, r1 = divmod(start, width)[0], divmod(end, width)[0]
        rows += [r0, r1]
        cols += [start % width, end % width] if r0 == r1 else [0, width - 1]
    if not rows:
        return None
    return left + min(cols), top + min(rows), left + max(cols) + 1, top + max(rows) + 1


def coco_rle_counts(counts: "str | Sequence[int]") -> list[int]:
    """COCO RLE counts as numbers: a list as is, a compressed string decoded as pycocotools' rleFrString does."""
    if not isinstance(counts, str):
        return [int(c) for c in counts]
    out: list[int] = []
    p = 0
    while p < len(counts):
        x = k = 0
        more = True
        while more:
            if p >= len(counts):
                raise ValueError("compressed RLE ends inside a number")
            c = ord(counts[p]) - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(out) > 2:
            x += out[-2]
        out.append(x)
    return out


def coco_rle_bounds(counts: Sequence[int], height: int) -> Optional[Bounds]:
    """The box around a COCO RLE mask (column by column over an image `height` high); None when empty."""
    if height <= 0:
        return None
    cols, rows = [], []
    for start, n in _runs(counts):
        end = start + n - 1
        c0, c1 = start // height, end // height
        cols += [c0, c1]
        rows += [start % height, end % height] if c0 == c1 else [0, height - 1]
    if not cols:
        return None
    return float(min(cols)), float(min(rows)), float(max(cols) + 1), float(max(rows) + 1)
