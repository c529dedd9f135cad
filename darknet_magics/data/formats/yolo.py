"""YOLO/darknet txt beside the images (Roboflow's darknet export, theAIGuys' obj/ + test/) and Ultralytics'
data.yaml with images/ + labels/ per split (Roboflow's YOLOv5/v8 export); the .names file.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Optional

from ...errors import DarknetMagicsError, Problem
from ...untrusted import (BadInput, class_name, decode, parse_names,
                         is_inside, read_text)
from ..labels import RANGE_FIX, out_of_range, parse_line
from .detect import _split_folders
from .images import _images_under, _listdir
from .model import Box, NAMES_FILES
from .reader import _Reader


def read_names_file(path: Path) -> list[str]:
    """Class names from a .names/.labels/classes.txt file, one per line (checked: `untrusted.parse_names`)."""
    return parse_names(read_text(path), str(path))


def _find_names_file(folders: Iterable[Path]) -> Optional[Path]:
    for folder in folders:
        for name in NAMES_FILES:
            if (folder / name).is_file():
                return folder / name
        for name in _listdir(folder):
            if name.endswith(".names"):
                return folder / name
    return None


def _read_yolo_folder(r: _Reader, folder: Path, split: Optional[str], labels_for) -> None:
    """YOLO labels for every image under `folder`; `labels_for(image)` says where its .txt is.

    Each line goes through `labels.parse_line` (as `%yolo check` reads them): a line darknet would misread, or
    one with values outside 0..1 (pixel coordinates), stops the reading with its file and line.
    """
    for image in _images_under(folder):
        label = labels_for(image)
        size = r.size(image)
        if size is None:
            continue
        try:
            data = label.read_bytes()
        except OSError:
            data = b""  # no label file: a negative, as darknet trains it
        else:
            r.confined.check(label, str(label), "label file")
        r.add(image, size, _yolo_boxes(r, decode(data, str(label)), str(label), size), split)


def _yolo_boxes(r: _Reader, text: str, label: str, size: tuple[int, int]) -> list[Box]:
    """The boxes of one YOLO label file's text, in pixels of an image of `size`."""
    w, h = size
    boxes: list[Box] = []
    for i, raw in enumerate(text.split("\n"), 1):
        where = f"{label}:{i}"
        box = parse_line(raw, where, polygons=True)  # Ultralytics segmentation lines: their bounding box
        if box is None:
            continue
        if out_of_range(box):
            raise BadInput(where, f"x={box.x:g} y={box.y:g} w={box.w:g} h={box.h:g} not in 0..1", RANGE_FIX)
        cls, cx, cy, bw, bh = box
        if cls < 0 or (r.fixed is not None and cls >= len(r.fixed)):
            r.problems.append(Problem("class-out-of-range", f"line {i}: class {cls} but there are "
                                      f"{len(r.fixed or [])} names", fix="fix the label or the names",
                                      file=label, line=i))
            continue
        boxes.append(Box(cls, (cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h, where))
    return boxes


def _beside(image: Path) -> Path:
    return image.with_suffix(".txt")


def _read_yolo(r: _Reader, root: Path) -> str:
    splits = _split_folders(root)
    folders = list(splits.values()) or [root]
    names_file = _find_names_file([root, *folders])
    if r.fixed is None:
        if names_file is None:
            raise DarknetMagicsError(f"{root} has YOLO labels but no names file ({', '.join(NAMES_FILES[:3])}...)",
                                     fix="give the class names: names=cat,dog (or names=FILE)")
        r.fixed = read_names_file(names_file)
        r.index = {n: i for i, n in enumerate(r.fixed)}
    for split, folder in splits.items() or [(None, root)]:
        _read_yolo_folder(r, folder, split, _beside)
    return str(names_file) if names_file else "names="


def _parse_yaml_names(text: str) -> tuple[Optional[list[str]], dict[str, str]]:
    """names (list or {id: name}) and top-level scalar keys of a data.yaml, without a YAML library.

    Handles the shapes Ultralytics and Roboflow write: ``names: ['a', 'b']``, a block list ``- a`` and a block
    mapping ``0: a``; scalars like ``train: ../train/images``.
    """
    def scalar(v: str) -> str:
        v = v.split(" #", 1)[0].strip()
        if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"":
            v = v[1:-1]
        return v

    def flow_list(v: str) -> list[str]:
        inner = v.strip()[1:-1]
        items = re.findall(r"""\s*('(?:[^']|'')*'|"(?:[^"\\]|\\.)*"|[^,]+)\s*(?:,|$)""", inner)
        return [scalar(i) for i in items if i.strip()]

    keys: dict[str, str] = {}
    names: Optional[list[str]] = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^([A-Za-z_][\w-]*)\s*:\s*(.*)$", line)
        i += 1
        if not m:
            continue
        key, value = m.group(1), m.group(2).strip()
        if key != "names":
            keys[key] = scalar(value)
            continue
        if value.startswith("["):
            while value.count("[") > value.count("]") and i < len(lines):
                value += " " + lines[i].strip()
                i += 1
            names = flow_list(value)
        elif value.startswith("{"):
            while value.count("{") > value.count("}") and i < len(lines):
                value += " " + lines[i].strip()
                i += 1
            pairs = [p.split(":", 1) for p in flow_list("[" + value.strip()[1:-1] + "]") if ":" in p]
            names = [scalar(v) for _k, v in sorted(pairs, key=lambda kv: int(scalar(kv[0])))]
        else:
            block: dict[int, str] = {}
            items: list[str] = []
            while i < len(lines) and (lines[i].startswith((" ", "\t", "-")) or not lines[i].strip()):
                item = lines[i].strip()
                i += 1
                if not item or item.startswith("#"):
                    continue
                if item.startswith("-"):
                    items.append(scalar(item[1:]))
                elif ":" in item:
                    k, v = item.split(":", 1)
                    block[int(scalar(k))] = scalar(v)
            names = items or [block[k] for k in sorted(block)]
    return names, keys


def _ultra_split_dirs(root: Path, keys: dict[str, str]) -> dict[str, tuple[Path, Path]]:
    """{split: (images folder, labels folder)} of an Ultralytics/Roboflow YOLO tree."""
    out: dict[str, tuple[Path, Path]] = {}
    for split, key in (("train", "train"), ("valid", "val"), ("test", "test")):
        cands: list[Path] = []
        value = keys.get(key) or (keys.get("valid") if key == "val" else None)
        if value:
            p = Path(value)
            base = Path(keys["path"]) if keys.get("path") else root
            if not base.is_absolute():
                base = root / base
            cands += [p] if p.is_absolute() else [base / p, root / p, root / p.name]
            # Roboflow writes ../train/images relative to the yaml's intended location; try under root too
            cands += [root / Path(*p.parts[-2:])] if len(p.parts) >= 2 else []
        names = {"train": ["train"], "valid": ["valid", "val"], "test": ["test"]}[split]
        for n in names:
            cands += [root / n / "images", root / "images" / n]
        for c in cands:
            c = Path(os.path.normpath(c))
            if os.path.isdir(c) and is_inside(c, root):  # data.yaml's paths may point anywhere: only root is read
                labels = _ultra_labels_dir(c)
                out[split] = (c, labels)
                break
    if not out and (root / "images").is_dir():
        out["train"] = (root / "images", root / "labels")
        del out["train"]
        return {"": (root / "images", root / "labels")}  # type: ignore[dict-item]
    return out


def _ultra_labels_dir(images: Path) -> Path:
    # Ultralytics: the last /images/ in the path becomes /labels/
    parts = list(images.parts)
    for i in range(len(parts) - 1, -1, -1):
        if parts[i] == "images":
            parts[i] = "labels"
            return Path(*parts)
    return images


def _read_ultralytics(r: _Reader, root: Path) -> str:
    yaml = next((root / n for n in ("data.yaml", "data.yml") if (root / n).is_file()), None)
    keys: dict[str, str] = {}
    source = "names="
    if yaml is not None:
        try:
            names, keys = _parse_yaml_names(read_text(yaml))
        except ValueError:
            raise BadInput(str(yaml), "names: has a key that is not a class number (0: cat, 1: dog)",
                           "write names as a list ([cat, dog]) or numbered 0: cat") from None
        names = [class_name(n, f"{yaml} names[{i}]") for i, n in enumerate(names or [])]
        if r.fixed is None and names:
            r.fixed = names
            r.index = {n: i for i, n in enumerate(names)}
            source = str(yaml)
    if r.fixed is None:
        names_file = _find_names_file([root])
        if names_file is None:
            raise DarknetMagicsError(f"{root}: no class names (data.yaml has no names:)",
                                     fix="give the class names: names=cat,dog (or names=FILE)")
        r.fixed = read_names_file(names_file)
        r.index = {n: i for i, n in enumerate(r.fixed)}
        source = str(names_file)
    dirs = _ultra_split_dirs(root, keys)
    if not dirs:
        raise DarknetMagicsError(f"{root}: no images/ folders for train/valid/test found",
                                 fix="the tree should be train/images + train/labels (or images/train + labels/train)")
    for split, (images, labels) in dirs.items():
        def labels_for(image: Path, images: Path = images, labels: Path = labels) -> Path:
            return (labels / image.relative_to(images)).with_suffix(".txt")
        _read_yolo_folder(r, images, split or None, labels_for)
    return source
