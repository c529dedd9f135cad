"""Anchors for a dataset: k-means on its label boxes with IoU as the distance, as darknet's calc_anchors does.

Boxes are compared by width and height only (centres aligned), so IoU(box, anchor) = intersection of the two
rectangles at a common corner over their union. Pure numpy; the result is sorted by area like darknet's.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import numpy as np

from .cfg import set_anchors_text
from .checks import TINY_BOX_PX, label_path, read_data_file
from ..errors import DarknetMagicsError
from ..untrusted import decode, read_text
from .labels import parse_line

__all__ = ["AnchorsResult", "compute_anchors", "kmeans_anchors", "read_boxes", "anchors_line", "set_anchors", "avg_iou"]


@dataclass(frozen=True)
class AnchorsResult:
    """Anchors in pixels of the network input (sorted by area), their average best IoU with the boxes, box count."""

    anchors: list[tuple[int, int]]
    avg_iou: float
    boxes: int
    width: int = 416
    height: int = 416
    ignored: int = 0  # tiny boxes left out of the clustering (under min_box px at the network size)


def _iou(boxes: np.ndarray, anchors: np.ndarray) -> np.ndarray:
    """IoU of every (w, h) box with every (w, h) anchor: shape (len(boxes), len(anchors))."""
    inter = np.minimum(boxes[:, None, 0], anchors[None, :, 0]) * np.minimum(boxes[:, None, 1], anchors[None, :, 1])
    union = (boxes[:, 0] * boxes[:, 1])[:, None] + (anchors[:, 0] * anchors[:, 1])[None, :] - inter
    return inter / union


def avg_iou(boxes: np.ndarray, anchors: np.ndarray) -> float:
    """Mean over boxes of the best IoU with any anchor (what darknet prints as 'avg IoU', as a fraction)."""
    return float(_iou(np.asarray(boxes, float), np.asarray(anchors, float)).max(axis=1).mean())


def kmeans_anchors(boxes: np.ndarray, clusters: int, *, seed: int = 0, restarts: int = 10,
                   init: str = "kmeans++", max_iter: int = 1000) -> np.ndarray:
    """k-means (distance 1 - IoU) on (w, h) rows; the best of `restarts` runs by average IoU.

    ``init="kmeans++"`` spreads the first centres by distance; ``init="random", restarts=1`` is darknet's own
    calc_anchors (k boxes drawn at random, one run), kept to compare with it.
    """
    boxes = np.asarray(boxes, dtype=float)
    n = len(boxes)
    if n == 0:
        raise DarknetMagicsError("no boxes to cluster", fix="check that the label files hold boxes")
    if clusters < 1:
        raise DarknetMagicsError(f"clusters={clusters} must be at least 1", fix="e.g. clusters=9 (6 for tiny models)")
    if n < clusters:
        raise DarknetMagicsError(f"{n} boxes are too few for {clusters} clusters", fix=f"use clusters={n} or fewer")
    rng = np.random.default_rng(seed)
    best, best_iou = None, -1.0
    for _ in range(restarts):
        # k-means++: each next centre drawn with probability proportional to its distance to the nearest centre.
        if init == "random":
            centres = list(boxes[rng.permutation(n)[:clusters]])
        else:
            centres = [boxes[rng.integers(n)]]
        for _k in range(len(centres), clusters):
            d = 1 - _iou(boxes, np.array(centres)).max(axis=1)
            total = d.sum()
            idx = rng.integers(n) if total <= 0 else rng.choice(n, p=d / total)
            centres.append(boxes[idx])
        centres_arr = np.array(centres)
        assign = None
        for _it in range(max_iter):
            new_assign = _iou(boxes, centres_arr).argmax(axis=1)
            if assign is not None and np.array_equal(new_assign, assign):
                break
            assign = new_assign
            for k in range(clusters):
                members = boxes[assign == k]
                if len(members):
                    centres_arr[k] = members.mean(axis=0)
        score = avg_iou(boxes, centres_arr)
        if score > best_iou:
            best, best_iou = centres_arr.copy(), score
    assert best is not None
    return best[np.argsort(best[:, 0] * best[:, 1], kind="stable")]


def read_boxes(data_path: Path) -> np.ndarray:
    """Relative (w, h) of every box in the labels of obj.data's train list (or of every .txt under a folder)."""
    data_path = Path(data_path)
    label_files: list[str] = []
    if os.path.isdir(data_path):
        for root, _dirs, files in os.walk(data_path):
            label_files.extend(os.path.join(root, f) for f in files
                               if f.endswith(".txt") and f not in ("train.txt", "valid.txt", "test.txt", "classes.txt"))
    else:
        entries = read_data_file(read_text(data_path))
        train = entries.get("train")
        if train is None:
            raise DarknetMagicsError(f"{data_path} has no train= line", fix="write it with `%yolo data`")
        lst = Path(train.value) if os.path.isabs(train.value) else data_path.parent / train.value
        if not os.path.isfile(lst):
            raise DarknetMagicsError(f"image list {lst} not found", fix="check obj.data's train= (run `%yolo check`)")
        label_files = [label_path(line.strip()) for line in read_text(lst).split("\n") if line.strip()]
    wh: list[tuple[float, float]] = []
    for path in label_files:
        try:
            with open(path, "rb") as f:
                data = f.read()
        except (OSError, ValueError):  # ValueError: a listed path with a NUL byte
            continue  # a negative sample, or a missing label that `%yolo check` reports
        # The lines as `%yolo check` reads them: one darknet would misread stops here with its file and line.
        for i, line in enumerate(decode(data, path).split("\n"), 1):
            box = parse_line(line, f"{path}:{i}")
            if box is not None and 0 < box.w <= 1 and 0 < box.h <= 1:
                wh.append((box.w, box.h))
    return np.array(wh, dtype=float).reshape(-1, 2)


def compute_anchors(data_path: Path, clusters: int = 9, width: int = 416, height: int = 416,
                    seed: int = 0, *, restarts: int = 10, init: str = "kmeans++",
                    min_box: float = TINY_BOX_PX) -> AnchorsResult:
    """k-means anchors for the boxes of a dataset (obj.data or a folder of labels) at network size width x height.

    The default (k-means++ start, best of 10 runs) finds anchors at least as good as darknet's calc_anchors, which
    runs once from random boxes: on small datasets ours often fit a few IoU points better.
    ``restarts=1, init="random"`` does what darknet does. Boxes under `min_box` pixels wide or high at the
    network size are left out (counted in ``ignored``): darknet's calc_anchors keeps them, and a handful of
    sub-pixel boxes is enough to make one anchor 1,1 that no real object matches. ``min_box=0`` keeps them.

    Raises:
        DarknetMagicsError: no boxes found, or fewer boxes than clusters.
    """
    boxes = read_boxes(data_path)
    if len(boxes) == 0:
        raise DarknetMagicsError(f"no boxes in the labels of {data_path}",
                                 fix="check the dataset with `%yolo check` (are the .txt labels beside the images?)")
    pixels = boxes * np.array([width, height], dtype=float)
    keep = (pixels[:, 0] >= min_box) & (pixels[:, 1] >= min_box)
    ignored = int((~keep).sum())
    if keep.sum() >= clusters:
        pixels = pixels[keep]
    else:
        ignored = 0  # too few boxes once the tiny ones go: cluster them all rather than fail
    centres = kmeans_anchors(pixels, clusters, seed=seed, restarts=restarts, init=init)
    # Sorted again after rounding: two anchors of almost equal area can swap.
    anchors = sorted(((max(1, int(round(w))), max(1, int(round(h)))) for w, h in centres), key=lambda a: a[0] * a[1])
    return AnchorsResult(anchors=anchors, avg_iou=avg_iou(pixels, np.array(anchors, float)), boxes=len(pixels),
                         width=width, height=height, ignored=ignored)


def anchors_line(result: "AnchorsResult | Sequence[tuple[int, int]]") -> str:
    """The cfg line: ``anchors = 10,14, 23,27, ...``."""
    anchors = result.anchors if isinstance(result, AnchorsResult) else list(result)
    return "anchors = " + ", ".join(f"{w},{h}" for w, h in anchors)


def set_anchors(cfg_text: str, anchors: "AnchorsResult | Iterable[tuple[float, float]]", *,
                classes: Optional[int] = None) -> str:
    """`cfg_text` with these anchors in every [yolo]/[region]: num= set, masks split over the heads (smallest
    anchors to the head that had the smallest), filters= recomputed. Pure."""
    pairs = anchors.anchors if isinstance(anchors, AnchorsResult) else list(anchors)
    return set_anchors_text(cfg_text, pairs, classes=classes)
