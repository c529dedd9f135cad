"""CVAT for images 1.1 xml: boxes, polygons, masks, ellipses, rotated boxes; task and project exports.
"""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

from ...untrusted import (BadInput, claimed_size, number, parse_xml, pixel, MAX_PX)
from .. import shapes
from .images import _listdir
from .model import Box, SPLIT_FOLDERS
from .reader import _Reader
from .detect import _is_cvat_xml, _split_or_root




def _cvat_files(folder: Path) -> list[Path]:
    """The CVAT xml files directly in `folder` (annotations.xml, or any name: exports get renamed)."""
    return [folder / n for n in _listdir(folder) if n.lower().endswith(".xml") and _is_cvat_xml(folder / n)]


# CVAT label types and shapes that hold no object box (the labels only they use are no classes).
_CVAT_NO_BOX = {"tag", "points", "polyline", "skeleton", "cuboid"}


def _cvat_classes(r: _Reader, doc: ET.Element, path: Path) -> None:
    """Register the task's or project's labels in their order, except image-level tags, skeleton parts and labels
    that only no-box shapes use (they would be classes without a box)."""
    boxed = {el.get("label") for im in doc.iter("image") for el in im if el.tag not in _CVAT_NO_BOX}
    used = {el.get("label") for im in doc.iter("image") for el in im}
    for k, lab in enumerate(doc.iter("label"), 1):
        name = lab.findtext("name")
        kind = (lab.findtext("type") or "any").strip().lower()
        if name is None or lab.find("parent") is not None and (lab.findtext("parent") or "").strip():
            continue
        if kind in _CVAT_NO_BOX or (name in used and name not in boxed):
            continue
        r.class_id(name, f"{path} label {k}")


def _cvat_image(folder: Path, name: str, subset: str) -> tuple[Path, list[Path]]:
    """Where a CVAT export put an image: beside the xml, in images/, images/<subset>/ (project exports) or
    <subset>/; (the path, else the folders looked in)."""
    dirs = [folder, folder / "images", folder / "Images"]
    if subset:
        dirs += [folder / "images" / subset, folder / subset]
    for d in dirs:
        for candidate in (d / name, d / os.path.basename(name)):
            if os.path.isfile(candidate):
                return candidate, dirs  # an absolute or ../ name that leads out is refused by r.size
    return folder / os.path.basename(name), [d for d in dirs if d.is_dir()] or [folder]


def _read_cvat(r: _Reader, root: Path) -> str:
    files = [(split, path, folder) for split, folder in _split_or_root(root) for path in _cvat_files(folder)]
    for split, path, folder in files:
        doc = parse_xml(path, "CVAT xml")
        if r.fixed is None:
            _cvat_classes(r, doc, path)
        seen: set[str] = set()
        for im in doc.iter("image"):
            file_name = im.get("name", "")
            subset = (im.get("subset") or "").strip()
            at = f"{path} image {im.get('id')!r:.20} ({file_name[:60]})"
            image, looked = _cvat_image(folder, file_name, subset)
            claimed = claimed_size(im.get("width"), im.get("height"), at)
            size = r.size(image, claimed, at)
            if size is None:
                r.looked_in(looked)
                continue
            if str(image) in seen:
                continue  # one image under two subsets: listed once
            seen.add(str(image))
            boxes = [box for k, el in enumerate(list(im), 1)
                     if (box := _cvat_box(r, el, f"{at} {el.tag} {k}", str(path)))]
            r.add(image, size, boxes, split or SPLIT_FOLDERS.get(subset.lower()), claimed)
    return "cvat labels"


def _cvat_points(el: ET.Element, where: str) -> list[tuple[float, float]]:
    pts = [p.split(",") for p in (el.get("points") or "").split(";") if p]
    if not pts or any(len(p) != 2 for p in pts):
        raise BadInput(where, f"points={(el.get('points') or '')[:40]!r} are not x,y;x,y;...", "re-export it from CVAT")
    return [(pixel(p[0], where, "x"), pixel(p[1], where, "y")) for p in pts]


def _cvat_mask(el: ET.Element, where: str) -> Optional[shapes.Bounds]:
    """The box of a CVAT <mask rle= left= top= width= height=> (its set pixels), None when none is set."""
    left, top = (pixel(el.get(a), where, a) for a in ("left", "top"))
    width = int(number(el.get("width"), where, "width", 1, MAX_PX))
    number(el.get("height"), where, "height", 1, MAX_PX)
    counts = [int(number(c, where, "rle", 0, MAX_PX * MAX_PX)) for c in (el.get("rle") or "").split(",") if c.strip()]
    return shapes.cvat_rle_bounds(counts, left, top, width)


def _cvat_box(r: _Reader, el: ET.Element, where: str, file: str) -> Optional[Box]:
    """The box of one CVAT shape: a box (turned by its rotation), polygon, mask or ellipse; None for the shapes
    that mark no extent (points, polyline, tag, skeleton: counted as left out) or a class not in names=."""
    kind = el.tag
    if kind == "box":
        bounds = tuple(pixel(el.get(a), where, a) for a in ("xtl", "ytl", "xbr", "ybr"))
        rotation = number(el.get("rotation") or 0, where, "rotation", -3600, 3600)
        if rotation % 180:
            bounds = shapes.rotated_bounds(*bounds, rotation)
            kind = "rotated box"
    elif kind == "polygon":
        bounds = shapes.polygon_bounds(_cvat_points(el, where))
    elif kind == "mask":
        bounds = _cvat_mask(el, where)
        if bounds is None:
            r.left.leave("empty-mask", file)
            return None
    elif kind == "ellipse":
        cx, cy, rx, ry = (pixel(el.get(a), where, a) for a in ("cx", "cy", "rx", "ry"))
        bounds = shapes.ellipse_bounds(cx, cy, rx, ry, number(el.get("rotation") or 0, where, "rotation", -3600, 3600))
    elif kind in ("attribute",):
        return None
    else:
        r.left.leave(kind, file)
        return None
    cls = r.class_id(el.get("label"), where)
    if cls is None:
        return None
    if kind != "box":
        r.left.convert(kind)
    x0, y0, x1, y1 = bounds
    return Box(cls, x0, y0, x1, y1, where)
