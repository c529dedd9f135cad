"""COCO json (images, annotations, categories), with the images where each tool's export puts them.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import NamedTuple, Optional

from ...errors import DarknetMagicsError
from ...untrusted import (BadInput, class_name, claimed_size, get, load_json, number, pixel, MAX_PX)
from ..leftout import BoxPolicy
from .. import shapes
from .detect import _json_kind
from .images import _file_names, _listdir
from .model import Box, SPLIT_FOLDERS
from .reader import _Reader
from .detect import _split_or_root


def _coco_files(folder: Path) -> list[Path]:
    out = [folder / n for n in _listdir(folder) if n.lower().endswith(".json") and _json_kind(folder / n) == "coco"]
    ann = folder / "annotations"
    if not out and ann.is_dir():
        out = [ann / n for n in _listdir(ann) if n.lower().endswith(".json") and _json_kind(ann / n) == "coco"]
    return out


def _coco_split(path: Path) -> Optional[str]:
    m = re.search(r"(train|val|valid|test)", path.stem.lower())
    return SPLIT_FOLDERS.get(m.group(1)) if m else None


def _read_coco(r: _Reader, root: Path) -> str:
    jobs: list[tuple[Optional[str], Path, Path]] = []
    for split, folder in _split_or_root(root):
        files = _coco_files(folder)
        if split is None and len(files) > 1:
            jobs += [(_coco_split(f), f, folder) for f in files]
        else:
            jobs += [(split, f, folder) for f in files]
    if not jobs:
        raise DarknetMagicsError(f"no COCO json under {root}", fix="format=coco needs a json with images/annotations")
    docs = [(split, path, folder, _coco_doc(path)) for split, path, folder in jobs]
    categories: dict[int, str] = {}
    for _s, _p, _f, (cats, _a, _i) in docs:
        categories.update((cid, name) for cid, name in cats.items() if cid not in categories)
    # Classes in category-id order. Roboflow's COCO export adds a category 0 that is the dataset's own name and is
    # never used by a box (its supercategory is "none"): it is dropped when no annotation has it.
    cat_to_cls = _coco_classes(r, categories, {a.category for _s, _p, _f, (_c, anns, _i) in docs for a in anns})
    for split, path, folder, (_c, anns, images) in docs:
        by_image: dict[int, list[_CocoAnn]] = {}
        for a in anns:
            by_image.setdefault(a.image, []).append(a)
        img_dirs = [(str(d), _file_names(d)) for d in _coco_image_dirs(path, folder, root)]
        path_s = str(path)
        for image_id, file_name, claimed, at in images:
            image_path = _coco_find(file_name, img_dirs, folder)
            size = r.size(image_path, claimed, at)
            if size is None:
                r.looked_in(d for d, _n in img_dirs)
                continue
            boxes: list[Box] = []
            for a in by_image.get(image_id, ()):
                cls = cat_to_cls.get(a.category)
                if cls is None:
                    if a.category not in categories:
                        r.degenerate(path_s, f"annotations[{a.index}]: category {a.category} is not in categories")
                    continue
                if a.crowd and r.policies.crowd is BoxPolicy.DROP:
                    r.left.leave("crowd", path_s)
                    continue
                if a.bbox is None:
                    r.left.leave(a.kind, path_s)
                    continue
                if a.kind != "bbox":
                    r.left.convert(a.kind)
                x, y, w, h = a.bbox
                boxes.append(Box(cls, x, y, x + w, y + h, f"{path_s} annotation id {str(a.id)[:20]}"))
            r.add(image_path, size, boxes, split, claimed)
    return "coco categories by id"


def _coco_classes(r: _Reader, categories: dict[int, str], used: set[int]) -> dict[int, Optional[int]]:
    """{category id: class id}. keep_ids=yes: the category id itself (ids no category has get placeholder
    names); else the categories in id order, compacted to 0..N-1 (the mapping is kept in `r.source_ids`)."""
    if r.fixed is None and r.policies.keep_ids and categories:
        names = [categories.get(i, f"unused_{i}") for i in range(max(categories) + 1)]
        r.fixed, r.index = names, {n: i for i, n in enumerate(names)}
        r.source_ids = {c: c for c in categories}
        return {c: c for c in categories}
    # Roboflow's COCO export adds a category 0 that is the dataset's own name and is never used by a box (its
    # supercategory is "none"): unused categories are no classes, unless names= fixes the list.
    cat_ids = [c for c in sorted(categories) if c in used or r.fixed is not None]
    if r.fixed is None:
        for c in cat_ids:
            r.class_id(categories[c], "categories")
    cat_to_cls = {c: r.class_id(categories[c], "categories") for c in cat_ids}
    r.source_ids = {c: i for c, i in cat_to_cls.items() if i is not None}
    return cat_to_cls


def _coco_image_dirs(path: Path, folder: Path, root: Path) -> list[Path]:
    """The folders where exports put a COCO json's images, in order: the json's folder and its parent (the
    dataset's root), each with ``images/``, the subset named by the json (``instances_val2017.json``: ``val2017/``,
    ``images/val2017/``; datumaro/CVAT: ``images/default/``), ``train/``, ``val/`` and ``data/``."""
    subset = re.sub(r"^(instances|person_keypoints|captions|image_info|panoptic)_", "", path.stem)
    subset = subset.replace("_annotations.coco", "").strip("._") or "default"
    subs = ["", "images", subset, f"images/{subset}", "train", "val", "data"]
    out: list[Path] = []
    for base in dict.fromkeys([path.parent, folder, path.parent.parent, root]):
        if base != root and root not in base.parents:
            continue  # never above the dataset's folder
        for sub in subs:
            d = base / sub if sub else base
            if d not in out and d.is_dir():
                out.append(d)
    return out


def _coco_find(file_name: str, img_dirs: list[tuple[str, frozenset[str]]], folder: Path) -> Path:
    """The first of `img_dirs` (each listed once: a set lookup, not a stat per image) that holds `file_name`, as
    named or by its base name; else where it would be beside the json (missing, counted)."""
    base = os.path.basename(file_name)
    for d, names in img_dirs:
        if file_name in names or (file_name != base and os.path.isfile(os.path.join(d, file_name))):
            return Path(d, file_name)  # a path that leaves the folder is refused by r.size
        if base in names:
            return Path(d, base)
    return folder / base


class _CocoAnn(NamedTuple):
    """One COCO annotation, checked: its image and category ids, bbox ``x y w h`` in pixels (None: an empty
    mask), its index and id in the json, iscrowd, and what the box came from (``bbox``, ``polygon``, ``mask``)."""

    image: int
    category: int
    bbox: Optional[tuple[float, float, float, float]]
    index: int  # in the json's annotations list
    id: object  # the annotation's own id, as the file gives it
    crowd: bool = False
    kind: str = "bbox"  # what the box came from: bbox, polygon or mask (bbox None: an empty mask)


def _coco_id(value: object, where: str) -> int:
    number_ = number(value, where, "id", -2.0 ** 63, 2.0 ** 63)
    if not number_.is_integer():
        raise BadInput(where, f"id {number_:g} is not a whole number", "re-export the COCO file")
    return int(number_)


_NUM = (int, float)


def _coco_ann_fast(a: object, i: int) -> Optional[_CocoAnn]:
    """The common annotation (int ids, four plain numbers in range) without a call per value; None sends it to
    the slow path, which checks each value and names the wrong one (a COCO file has 150,000 annotations)."""
    if type(a) is not dict:
        return None
    bbox, image, cat = a.get("bbox"), a.get("image_id"), a.get("category_id")
    if type(bbox) is not list or len(bbox) != 4 or type(image) is not int or type(cat) is not int:
        return None
    x, y, w, h = bbox
    if not (type(x) in _NUM and type(y) in _NUM and type(w) in _NUM and type(h) in _NUM):
        return None
    # comparisons are False for nan: a nan goes to the slow path too
    if not (-MAX_PX <= x <= 2 * MAX_PX and -MAX_PX <= y <= 2 * MAX_PX and 0 <= w <= MAX_PX and 0 <= h <= MAX_PX
            and abs(image) < 2 ** 63 and abs(cat) < 2 ** 63):
        return None
    crowd = a.get("iscrowd", 0)
    if crowd not in (0, 1, None):  # True/False compare equal to 1/0
        return None
    return _CocoAnn(image, cat, (x, y, w, h), i, a.get("id"), bool(crowd))


def _coco_doc(path: Path) -> tuple[dict[int, str], list[_CocoAnn], list[tuple[int, str, Optional[tuple[int, int]], str]]]:
    """A COCO json's categories {id: name}, annotations and images (id, file_name, claimed size, json path), every
    value checked (`untrusted`), so that the reading after it meets no surprise."""
    doc = load_json(path)
    if not isinstance(doc, dict):
        raise BadInput(str(path), "is not a json object with images/annotations/categories", "re-export the COCO file")
    cats: dict[int, str] = {}
    for i, cat in enumerate(get(doc, "categories", str(path), list, [])):
        at = f"{path} categories[{i}]"
        cats.setdefault(_coco_id(get(cat, "id", at), f"{at}.id"), class_name(get(cat, "name", at), f"{at}.name"))
    anns = []
    for i, a in enumerate(get(doc, "annotations", str(path), list, [])):
        fast = _coco_ann_fast(a, i)
        if fast is not None:
            anns.append(fast)
            continue
        at = f"annotations[{i}]"  # the slow path names what is wrong
        bbox, kind = _coco_bbox(a, f"{path} {at}")
        crowd = get(a, "iscrowd", f"{path} {at}", object, 0)
        crowd = crowd if isinstance(crowd, bool) else number(crowd, f"{path} {at}.iscrowd", "iscrowd", 0, 1) != 0
        anns.append(_CocoAnn(_coco_id(get(a, "image_id", f"{path} {at}"), f"{path} {at}.image_id"),
                             _coco_id(get(a, "category_id", f"{path} {at}"), f"{path} {at}.category_id"),
                             bbox, i, a.get("id"), bool(crowd), kind))
    images = []
    for i, im in enumerate(get(doc, "images", str(path), list, [])):
        at = f"{path} images[{i}]"
        images.append((_coco_id(get(im, "id", at), f"{at}.id"), get(im, "file_name", at, str),
                       claimed_size(im.get("width"), im.get("height"), at), at))
    return cats, anns, images


def _coco_bbox(a: object, at: str) -> tuple[Optional[tuple[float, float, float, float]], str]:
    """An annotation's ``x y w h``: its bbox, else the box around its segmentation (polygons, or RLE, compressed
    or not); None with kind ``empty-mask`` for a mask with no pixel set."""
    bbox = get(a, "bbox", at, list, [])
    if bbox:
        if len(bbox) != 4:
            raise BadInput(f"{at}.bbox", f"has {len(bbox)} values, not x, y, w, h", "re-export the COCO file")
        x, y = (pixel(v, f"{at}.bbox", n) for v, n in zip(bbox[:2], "xy"))
        w, h = (number(v, f"{at}.bbox", n, 0, MAX_PX) for v, n in zip(bbox[2:], "wh"))
        return (x, y, w, h), "bbox"
    seg = get(a, "segmentation", at, object, None)
    where = f"{at}.segmentation"
    if isinstance(seg, list) and seg and all(isinstance(p, list) for p in seg):
        flat = [pixel(v, where, "x" if j % 2 == 0 else "y") for poly in seg for j, v in enumerate(poly)]
        if len(flat) < 4 or len(flat) % 2:
            raise BadInput(where, "is not polygons of x, y pairs", "re-export the COCO file")
        x0, y0, x1, y1 = shapes.polygon_bounds(list(zip(flat[0::2], flat[1::2])))
        return (x0, y0, x1 - x0, y1 - y0), "polygon"
    if isinstance(seg, dict):
        size = get(seg, "size", where, list)
        if len(size) != 2:
            raise BadInput(f"{where}.size", "is not [height, width]", "re-export the COCO file")
        height = int(number(size[0], f"{where}.size", "height", 1, MAX_PX))
        try:
            counts = shapes.coco_rle_counts(get(seg, "counts", where))
        except (ValueError, TypeError) as err:
            raise BadInput(f"{where}.counts", f"is not COCO RLE: {err}", "re-export the COCO file") from None
        bounds = shapes.coco_rle_bounds(counts, height)
        if bounds is None:
            return None, "empty-mask"
        return (bounds[0], bounds[1], bounds[2] - bounds[0], bounds[3] - bounds[1]), "mask"
    raise BadInput(at, "has no 'bbox' and no 'segmentation'", "re-export the COCO file with boxes")
