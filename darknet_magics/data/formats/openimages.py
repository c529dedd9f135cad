"""Open Images box csvs (any name with format=openimages) and class descriptions.
"""
from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import Iterator, Optional

from ...errors import DarknetMagicsError, Problem
from ...untrusted import (BadInput, class_name, number, read_text)
from .images import _is_image, _listdir
from .model import Box, SPLIT_FOLDERS
from .reader import _Reader
from .detect import _split_or_root


def _is_box_csv(path: Path) -> bool:
    """An Open Images box csv by its header (ImageID, XMin...), whatever its name."""
    try:
        with open(path, "rb") as f:
            head = f.readline(4096)
    except OSError:
        return False
    return b"ImageID" in head and b"XMin" in head


def _openimages_jobs(root: Path) -> tuple[list[tuple[Optional[str], Path, Path]], Optional[Path]]:
    """(split, box csv, images folder) of each box csv, each csv once, and the class-descriptions csv.

    A csv in a split folder (or its annotations/) is that split's; one at the root is the split its name says
    (``validation-annotations-bbox.csv``), its images in the folder of that split when there is one.
    """
    jobs: dict[Path, tuple[Optional[str], Path, Path]] = {}
    desc: Optional[Path] = None
    splits = _split_or_root(root)
    folder_of = {sp: f for sp, f in splits}
    places = [(sp, d, f) for sp, f in splits for d in (f, f / "annotations")] + [(None, root, root),
                                                                                 (None, root / "annotations", root)]
    for split, d, folder in places:
        for n in _listdir(d):
            low, path = n.lower(), d / n
            if not low.endswith(".csv") or path in jobs:
                continue
            if "class-descriptions" in low:
                desc = path
            elif "bbox" in low or _is_box_csv(path):
                named = next((SPLIT_FOLDERS[s] for s in ("train", "validation", "test") if s in low), None)
                sp = split or named
                jobs[path] = (sp, path, folder if split else folder_of.get(sp, folder))
    return list(jobs.values()), desc


def _read_openimages(r: _Reader, root: Path) -> str:
    jobs, desc = _openimages_jobs(root)
    if not jobs:
        raise DarknetMagicsError(f"no Open Images box csv under {root} (a csv with ImageID, LabelName, XMin, XMax, "
                                 "YMin, YMax)", fix="stage the *-annotations-bbox.csv with the images")
    mid_names: dict[str, str] = {}
    mid_order: list[str] = []
    if desc is not None:
        for line, row in _csv_rows(desc):
            if len(row) >= 2 and row[0] != "LabelName":
                mid_names[row[0]] = class_name(row[1], f"{desc}:{line}")
                mid_order.append(row[0])
    rows_by: list[tuple[Optional[str], Path, dict[str, list[tuple[str, tuple[float, ...], str]]]]] = []
    used: set[str] = set()
    for split, path, folder in jobs:
        by_image = _openimages_boxes(path, r)
        used.update(mid for rows in by_image.values() for mid, _c, _w in rows)
        rows_by.append((split, folder, by_image))
    if r.fixed is None:
        for mid in [m for m in mid_order if m in used] + sorted(used - set(mid_order)):
            r.class_id(mid_names.get(mid, mid), str(desc or jobs[0][1]))
    seen_dirs: dict[str, dict[str, str]] = {}
    for split, folder, by_image in rows_by:
        img_dirs = [folder] + [folder / n for n in ("images", "data") if (folder / n).is_dir()]
        for image_id, rows in by_image.items():
            image = None
            for d in img_dirs:
                listing = seen_dirs.setdefault(str(d), _stem_listing(d))
                # ImageID is the stem in Open Images; some exports write the file name with its extension
                name = listing.get(image_id) or listing.get(os.path.splitext(image_id)[0])
                if name is not None:
                    image = d / name
                    break
            if image is None:
                r.missing_images.append(str(folder / (image_id if _is_image(image_id) else f"{image_id}.jpg")))
                r.looked_in(img_dirs)
                continue
            size = r.size(image)
            if size is None:
                continue
            w, h = size
            boxes: list[Box] = []
            for mid, (x0, x1, y0, y1), where in rows:
                cls = r.class_id(mid_names.get(mid, mid), where)
                if cls is not None:
                    boxes.append(Box(cls, x0 * w, y0 * h, x1 * w, y1 * h, where))
            r.add(image, size, boxes, split)
    return str(desc) if desc else "label ids"


def _stem_listing(folder: Path) -> dict[str, str]:
    """{stem: name} and {name: name} of the images in `folder`."""
    names = [n for n in _listdir(folder) if _is_image(n)]
    return {**{os.path.splitext(n)[0]: n for n in names}, **{n: n for n in names}}


_DECIMAL_COMMA = re.compile(r"^\s*-?\d*,\d+\s*$")


def _openimages_boxes(path: Path, r: Optional[_Reader] = None) -> dict[str, list[tuple[str, tuple[float, ...], str]]]:
    """{ImageID: [(LabelName, (XMin, XMax, YMin, YMax), "FILE:LINE")]} of a box csv, every value checked.

    A csv saved by a spreadsheet in a decimal-comma locale (``;`` between values, ``0,25``) is read as such, and
    said once (an ``decimal-commas`` info in `r`)."""
    by_image: dict[str, list[tuple[str, tuple[float, ...], str]]] = {}
    rows = _csv_rows(path)
    header = next(rows, (1, []))[1]
    cols = [_column(header, c, path) for c in ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax")]
    commas = 0
    for line, row in rows:
        where = f"{path}:{line}"
        if len(row) < len(header):
            raise BadInput(where, f"{len(row)} values, the header has {len(header)}", "re-export the csv")
        values = [row[c] for c in cols[2:]]
        if any(_DECIMAL_COMMA.match(v) for v in values):
            commas += 1
            values = [v.replace(",", ".") if _DECIMAL_COMMA.match(v) else v for v in values]
        coords = tuple(number(v, where, header[c], -1, 2) for v, c in zip(values, cols[2:]))  # relative: 0..1
        by_image.setdefault(row[cols[0]], []).append((row[cols[1]], coords, where))
    if commas and r is not None:
        r.problems.append(Problem("decimal-commas", f"{commas:,} rows write numbers with a decimal comma (e.g. "
                                  f"0,25): read as 0.25", fix="nothing to do; export with decimal points to silence it",
                                  severity="info", file=str(path)))
    return by_image


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, values) of a UTF-8 csv file; a broken one (NUL bytes, a field over csv's limit) is `BadInput`."""
    text = read_text(path)
    first = text.split("\n", 1)[0]
    # a spreadsheet in a decimal-comma locale separates values with ';'
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";" if ";" in first and "," not in first else ",")
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as err:
        raise BadInput(f"{path}:{reader.line_num}", f"not a readable csv: {err}", "re-export the csv") from None


def _column(header: list[str], name: str, path: Path) -> int:
    if name not in header:
        raise BadInput(f"{path}:1", f"the header has no {name} column ({', '.join(header)[:80]})",
                       "use Open Images' own *-annotations-bbox.csv (ImageID, LabelName, XMin, XMax, YMin, YMax)")
    return header.index(name)
