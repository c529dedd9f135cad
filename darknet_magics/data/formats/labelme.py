"""LabelMe: one json with `shapes` per image.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ...untrusted import (BadInput, claimed_size, get, load_json, pixel)
from .. import shapes
from .images import _is_image
from .model import Box, IMAGE_EXTENSIONS
from .reader import _Reader
from .detect import _split_or_root


def _read_labelme(r: _Reader, root: Path) -> str:
    for split, folder in _split_or_root(root):
        for dirpath, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                if name.lower().endswith(".json"):
                    _read_labelme_file(r, Path(dirpath) / name, split)
    return "sorted"


def _read_labelme_file(r: _Reader, path: Path, split: Optional[str]) -> None:
    """One LabelMe json (a json without ``shapes`` is some other file, left alone; a broken one is an error)."""
    doc = load_json(path)
    if not isinstance(doc, dict) or "shapes" not in doc:
        return
    at = str(path)
    named = get(doc, "imagePath", at, str, "")
    image = Path(os.path.normpath(path.parent / named)) if named else None  # a path out of the folder: refused
    # os.path: False for a name too long or with a NUL byte; an imagePath naming no image (a .json, a video
    # frame's name): the same-stem image beside the json, as LabelMe itself opens it
    if image is None or not os.path.isfile(image) or not _is_image(image.name):
        image = next((path.with_suffix(e) for e in IMAGE_EXTENSIONS if path.with_suffix(e).is_file()),
                     path.with_suffix(".jpg"))
    claimed = claimed_size(doc.get("imageWidth"), doc.get("imageHeight"), at)
    size = r.size(image, claimed, f"{at} imagePath")
    if size is None:
        return
    boxes = [box for k, shape in enumerate(get(doc, "shapes", at, list), 1)
             if (box := _labelme_box(r, shape, f"{at} shapes[{k - 1}]", str(path)))]
    r.add(image, size, boxes, split, claimed)


# LabelMe shape types that are boxes once bounded; "mask" holds its bitmap cropped to the rectangle its two points
# span, so that rectangle is its box.
_LABELME_BOXES = {"rectangle": 2, "polygon": 3, "circle": 2, "mask": 2}


def _labelme_box(r: _Reader, shape: object, where: str, file: str) -> Optional[Box]:
    """The box of one LabelMe shape (rectangle, polygon, circle, mask); None for points and lines (counted as left
    out) or a class not in names=."""
    pts = get(shape, "points", where, list, [])
    kind = get(shape, "shape_type", where, str, "polygon") or "polygon"
    xy = [_point(p, f"{where}.points[{i}]") for i, p in enumerate(pts)]
    if kind not in _LABELME_BOXES or len(xy) < min(_LABELME_BOXES.get(kind, 2), 2):
        r.left.leave(kind if kind in shapes.LEFT_OUT_REASONS else "point" if len(xy) < 2 else kind, file)
        return None
    cls = r.class_id(get(shape, "label", where), f"{where}.label")
    if cls is None:
        return None
    x0, y0, x1, y1 = shapes.circle_bounds(xy[0], xy[1]) if kind == "circle" else shapes.polygon_bounds(xy)
    if kind not in ("rectangle", "polygon"):
        r.left.convert(kind)
    return Box(cls, x0, y0, x1, y1, where)


def _point(value: object, where: str) -> tuple[float, float]:
    """An ``[x, y]`` point of a LabelMe shape, in pixels."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise BadInput(where, f"is {str(value)[:40]}, not [x, y]", "re-save it from LabelMe")
    return pixel(value[0], where, "x"), pixel(value[1], where, "y")
