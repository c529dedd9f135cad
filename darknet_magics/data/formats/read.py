"""`read_dataset`: the format of a dataset folder detected (or given), and its reader run into the one model."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

from ...errors import DarknetMagicsError
from ..leftout import Policies
from .coco import _read_coco
from .cvat import _read_cvat
from .detect import detect_format
from .labelme import _read_labelme
from .model import Dataset, FORMATS
from .openimages import _read_openimages
from .reader import _Reader
from .voc import _read_voc
from .yolo import _read_ultralytics, _read_yolo


__all__ = ["read_dataset"]


_READERS = {"yolo": _read_yolo, "ultralytics": _read_ultralytics, "voc": _read_voc, "coco": _read_coco,
            "labelme": _read_labelme, "cvat": _read_cvat, "openimages": _read_openimages}


def read_dataset(root: Path, format: Optional[str] = None, names: Optional[Sequence[str]] = None,
                 policies: Optional[Policies] = None) -> Dataset:
    """Read the dataset under `root` (format detected unless given) into one `Dataset`.

    Args:
        root: the dataset's folder.
        format: one of `FORMATS`, or None to detect it.
        names: class names in order; when given, they fix the class ids, and boxes of other classes are counted
            in an ``unknown-class`` problem and left out.
        policies: difficult=, crowd=, keep_ids= (`leftout.Policies`; default: darknet's own tools' choices).

    Raises:
        DarknetMagicsError: unknown format, nothing found, unreadable annotation files.
    """
    root = Path(root)
    fmt = format.lower() if format else detect_format(root)
    if fmt in ("darknet", "txt", "roboflow"):
        fmt = "yolo"
    if fmt in ("yolov5", "yolov8", "yaml"):
        fmt = "ultralytics"
    if fmt in ("pascal", "pascal_voc", "labelimg", "xml"):
        fmt = "voc"
    if fmt not in _READERS:
        raise DarknetMagicsError(f"format={format} is not one we read", fix=f"use one of {', '.join(FORMATS)}")
    if not os.path.isdir(root):  # os.path: False (not ValueError) for a path with a NUL byte
        raise DarknetMagicsError(f"dataset folder {root} not found", fix="give the folder that holds the dataset")
    r = _Reader(root, names, fmt)
    r.policies = policies or Policies()
    source = _READERS[fmt](r, root)
    ds = r.finish(source)
    if not ds.images:
        looked = ", ".join(r.searched[:8]) + (f" and {len(r.searched) - 8} more" if len(r.searched) > 8 else "")
        example = f" (e.g. {r.missing_images[0]})" if r.missing_images else ""
        raise DarknetMagicsError(f"no images found in the {fmt} dataset {root}{example}"
                                 + (f"; looked in {looked}" if looked else ""),
                                 fix="stage the images with the annotations (where the export put them), or give "
                                     "format= if this is another format")
    return ds
