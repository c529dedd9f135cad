"""Pascal VOC / labelImg .xml, beside the images or in Annotations/ + JPEGImages/.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

from ...untrusted import (BadInput, claimed_size, parse_xml, pixel)
from ..leftout import BoxPolicy
from .detect import _split_or_root, folder_format
from .images import _is_image, _listdir
from .model import Box, IMAGE_EXTENSIONS
from .reader import _Reader


def _voc_find_image(folder: Path, xml_path: Path, filename: Optional[str], listing: dict[str, dict[str, str]],
                    image_dirs: Sequence[Path]) -> Optional[Path]:
    stem = xml_path.stem
    candidates = []
    if filename:
        candidates.append(os.path.basename(filename.strip()))
    for d in image_dirs:
        names = listing.setdefault(str(d), {n.lower(): n for n in _listdir(d)})
        for c in candidates:
            if c.lower() in names:
                return d / names[c.lower()]
        for ext in IMAGE_EXTENSIONS:
            if (stem + ext) in names:
                return d / names[stem + ext]
    return None


def _read_voc_folder(r: _Reader, folder: Path, split: Optional[str]) -> None:
    ann_dir = next((folder / n for n in _listdir(folder) if n.lower() == "annotations" and (folder / n).is_dir()),
                   folder)
    image_dirs = [folder] + [folder / n for n in ("JPEGImages", "images", "Images") if (folder / n).is_dir()]
    if ann_dir != folder:
        image_dirs.insert(0, ann_dir)
    listing: dict[str, dict[str, str]] = {}
    xmls = [ann_dir / n for n in _listdir(ann_dir) if n.lower().endswith(".xml")]
    seen: set[str] = set()
    for xml_path in xmls:
        # An unreadable xml is an error: skipping it would train its image as a background image.
        ann = parse_xml(xml_path, "VOC xml")
        image = _voc_find_image(folder, xml_path, ann.findtext("filename"), listing, image_dirs)
        if image is None:
            r.missing_images.append(str(xml_path.with_suffix(".jpg")))
            r.looked_in(image_dirs)
            continue
        seen.add(str(image))
        size_el = ann.find("size")
        claimed = (claimed_size(size_el.findtext("width"), size_el.findtext("height"), f"{xml_path} <size>")
                   if size_el is not None else None)
        size = r.size(image, claimed, str(xml_path))
        if size is None:
            continue
        boxes: list[Box] = []
        for k, obj in enumerate(ann.iter("object"), 1):
            where = f"{xml_path} object {k}"
            bb = obj.find("bndbox")
            if bb is None:
                raise BadInput(where, "has no <bndbox>", "re-save it from the labelling tool")
            xmin, ymin, xmax, ymax = (pixel(bb.findtext(t), f"{where} <bndbox>", t)
                                      for t in ("xmin", "ymin", "xmax", "ymax"))
            if (obj.findtext("difficult") or "0").strip() == "1" and r.policies.difficult is BoxPolicy.DROP:
                r.left.leave("difficult", str(xml_path))
                continue
            cls = r.class_id(obj.findtext("name"), f"{where} <name>")
            if cls is None:
                continue
            # 1-based pixel indexes, as darknet's voc_label.py reads them
            boxes.append(Box(cls, xmin - 1, ymin - 1, xmax - 1, ymax - 1, where))
        r.add(image, size, boxes, split, claimed)
    # Images with no xml in a VOC folder: negatives (labelImg writes no xml for an image with no boxes)
    for d in image_dirs[:2] if ann_dir == folder else [folder / "JPEGImages"] if (folder / "JPEGImages").is_dir() else []:
        for name in _listdir(d):
            p = d / name
            if _is_image(name) and str(p) not in seen:
                size = r.size(p)
                if size is not None:
                    r.add(p, size, [], split)
                    seen.add(str(p))




def _read_voc(r: _Reader, root: Path) -> str:
    for split, folder in _split_or_root(root):
        if folder_format(folder) != "voc":
            # VOCdevkit/VOC2007: the dataset is one level down
            subs = [folder / n for n in _listdir(folder) if (folder / n).is_dir() and folder_format(folder / n) == "voc"]
            for sub in subs:
                _read_voc_folder(r, sub, split)
            continue
        _read_voc_folder(r, folder, split)
    return "sorted"
