"""Which format a dataset folder is in, from what it holds (`format=` overrides it).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

from ...errors import DarknetMagicsError
from .images import _images_under, _is_image, _listdir
from .model import SPLIT_FOLDERS, _SKIP_TXT


def _json_kind(path: Path) -> Optional[str]:
    """'coco' or 'labelme' from the first bytes of a json file (not parsing a 100 MB file twice)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16).decode("utf-8", "replace")
    except OSError:
        return None
    if '"shapes"' in head and ('"imagePath"' in head or '"imageHeight"' in head):
        return "labelme"
    if '"images"' in head or '"annotations"' in head or '"categories"' in head:
        return "coco"
    return None


def folder_format(folder: Path) -> Optional[str]:
    """The format of one folder holding a single split (images with annotations beside or in a known place)."""
    names = _listdir(folder)
    lower = {n.lower(): n for n in names}
    image_stems = {os.path.splitext(n)[0] for n in names if _is_image(n)}
    # CVAT's xml under any name (exports get renamed); VOC's xmls are named after their images, so not opened here
    # (three opened at most: a folder of VOC xmls whose images live elsewhere opens no more)
    candidates = [n for n in names if n.lower().endswith(".xml") and os.path.splitext(n)[0] not in image_stems]
    if any(_is_cvat_xml(folder / n) for n in candidates[:3]):
        return "cvat"
    jsons = [n for n in names if n.lower().endswith(".json")]
    if any("bbox" in n.lower() and n.lower().endswith(".csv") for n in names):
        return "openimages"
    if "annotations" in lower and (folder / lower["annotations"]).is_dir():
        sub = folder / lower["annotations"]
        subnames = _listdir(sub)
        if any(n.lower().endswith(".xml") for n in subnames):
            return "voc"
        if any(n.lower().endswith(".json") and _json_kind(sub / n) == "coco" for n in subnames):
            return "coco"
        if any("bbox" in n.lower() and n.lower().endswith(".csv") for n in subnames):
            return "openimages"
    images = [n for n in names if _is_image(n)]
    stems = {os.path.splitext(n)[0] for n in images}
    beside_json = [n for n in jsons if os.path.splitext(n)[0] in stems]
    if beside_json and _json_kind(folder / beside_json[0]) == "labelme":
        return "labelme"
    others = [n for n in jsons if n not in beside_json]
    if any(_json_kind(folder / n) == "coco" for n in others):
        return "coco"
    if any(n.lower().endswith(".xml") and os.path.splitext(n)[0] in stems for n in names):
        return "voc"
    if any(n.lower().endswith(".txt") and os.path.splitext(n)[0] in stems for n in names):
        return "yolo"
    if "images" in lower and "labels" in lower:
        return "ultralytics"
    if images:
        return "yolo"  # images alone: negatives, or labels to come; `%yolo check` says which
    return None


def _split_folders(root: Path) -> dict[str, Path]:
    """{split: folder} for the split folders directly under `root` (train/valid/test, obj/test...)."""
    found: dict[str, Path] = {}
    for name in _listdir(root):
        split = SPLIT_FOLDERS.get(name.lower())
        if split and (root / name).is_dir() and split not in found:
            found[split] = root / name
    # obj/ alone is theAIGuys' training folder only beside test/ (otherwise it is just a folder called obj)
    if set(found) == {"train"} and found["train"].name.lower() == "obj":
        return {}
    return found


def _labelled_format(folder: Path) -> Optional[str]:
    """`folder_format`, except None for a folder of images alone (no annotations: no format to disagree with)."""
    kind = folder_format(folder)
    if kind != "yolo":
        return kind
    names = _listdir(folder)
    stems = {os.path.splitext(n)[0] for n in names if _is_image(n)}
    has_txt = any(n.lower().endswith(".txt") and n.lower() not in _SKIP_TXT and os.path.splitext(n)[0] in stems
                  for n in names)
    return "yolo" if has_txt else None


def detect_format(root: Path) -> str:
    """The format of the dataset under `root` (one of `FORMATS`).

    Raises:
        DarknetMagicsError: no images and no annotations found.
    """
    root = Path(root)
    if not os.path.isdir(root):  # os.path: False (not ValueError) for a path with a NUL byte
        raise DarknetMagicsError(f"dataset folder {root} not found", fix="give the folder that holds the dataset")
    names = {n.lower() for n in _listdir(root)}
    if "data.yaml" in names or "data.yml" in names:
        return "ultralytics"
    splits = _split_folders(root)
    kinds = {name: k for name, folder in splits.items() if (k := _labelled_format(folder)) is not None}
    if len(set(kinds.values())) > 1:
        (a, ka), (b, kb) = sorted(kinds.items())[:2]
        raise DarknetMagicsError(f"mixed annotation formats in {root}: {splits[a].name}/ holds {ka}, "
                                 f"{splits[b].name}/ holds {kb}", fix=f"give each its own format: train={splits[a]} "
                                 f"valid={splits[b]} (each folder is read in its format), or format= to read one")
    if kinds:
        return next(iter(kinds.values()))
    kind = folder_format(root)  # annotations at the root (Open Images csvs named by split) over images alone
    if kind is not None:
        return kind
    # One level down (an archive's top folder, a VOC2007/ inside VOCdevkit/)
    fallback = None
    for name in _listdir(root):
        if (root / name).is_dir() and not name.startswith("."):
            kind = folder_format(root / name)
            if kind is not None and kind != "yolo":
                return kind
            fallback = fallback or kind
    if fallback or _images_under(root):
        return "yolo"  # images in nested folders, labels (if any) beside them
    raise DarknetMagicsError(f"no images or annotations found under {root}",
                             fix="point images= at the dataset folder (images with .txt/.xml/.json labels, or a "
                                 "COCO/CVAT/Open Images annotation file)")


def _is_cvat_xml(path: Path) -> bool:
    """A CVAT for images 1.1 xml: its root is <annotations> (VOC's is <annotation>), whatever the file's name."""
    try:
        with open(path, "rb") as f:
            return b"<annotations" in f.read(4096)
    except OSError:
        return False


def _split_or_root(root: Path) -> list[tuple[Optional[str], Path]]:
    splits = _split_folders(root)
    return list(splits.items()) if splits else [(None, root)]  # type: ignore[list-item]
