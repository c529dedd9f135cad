"""Dataset health, as DarkMark and Ultralytics report it, in one table (pure apart from reading the images).

Rows (`HealthRow`): exact-duplicate images (content hash), the same picture in train and valid (leakage),
duplicate labels within an image, boxes outside the image or with no area, class balance with the advice darknet
supports (AlexeyAB/hank-ai's ``counters_per_class=`` in every ``[yolo]``, classes with no box) and negatives
(AlexeyAB's README: about as many images without objects as with them). `%yolo data` computes it from the
dataset it read, `%yolo check` from the labels darknet will read; both show it with the summary.
"""
from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Optional, Sequence

__all__ = ["LabeledImage", "HealthRow", "health", "health_frame", "health_verdict", "duplicate_groups"]

# Two boxes of one class whose corners differ by less than this (relative to the image) are one object labelled
# twice: labelling tools do it on a double click.
_SAME_BOX = 1e-3
_EPS = 1e-6
# Most boxes of a class over fewest of another from which the imbalance is said (the view marks those classes).
IMBALANCE = 10


class LabeledImage(NamedTuple):
    """One image: its path, split and boxes ``(class, cx, cy, w, h)`` relative to its size, as darknet reads them."""

    path: str
    split: str
    boxes: tuple[tuple[int, float, float, float, float], ...]


@dataclass(frozen=True)
class HealthRow:
    """One line of the health table; `key` names the check for code (the view marks the class panel by it)."""

    key: str  # duplicate-images, leakage, duplicate-labels, outside, no-area, empty-classes, imbalance, negatives
    check: str
    count: int
    severity: str  # "ok", "info", "warning"
    example: str
    advice: str


def _digest(path: str) -> Optional[str]:
    h = hashlib.sha1()
    try:
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def duplicate_groups(paths: Iterable[str]) -> list[list[str]]:
    """Groups (2 or more) of files with the same content. Only files of one size are hashed, so a dataset of
    distinct photos reads no pixels at all."""
    by_size: dict[int, list[str]] = defaultdict(list)
    for p in dict.fromkeys(paths):
        try:
            by_size[os.stat(p).st_size].append(p)
        except OSError:
            continue
    groups: list[list[str]] = []
    for same in by_size.values():
        if len(same) < 2:
            continue
        by_hash: dict[str, list[str]] = defaultdict(list)
        for p in same:
            digest = _digest(p)
            if digest is not None:
                by_hash[digest].append(p)
        groups.extend(sorted(g) for g in by_hash.values() if len(g) > 1)
    return sorted(groups)


def _box_rows(images: Sequence[LabeledImage]) -> list[HealthRow]:
    dup, outside, degenerate = [], [], []
    for im in images:
        seen: list[tuple[int, float, float, float, float]] = []
        for b in im.boxes:
            cls, cx, cy, w, h = b
            if w <= 0 or h <= 0:
                degenerate.append(im.path)
            elif cx - w / 2 < -_EPS or cy - h / 2 < -_EPS or cx + w / 2 > 1 + _EPS or cy + h / 2 > 1 + _EPS:
                outside.append(im.path)
            if any(s[0] == cls and all(abs(a - c) < _SAME_BOX for a, c in zip(s[1:], b[1:])) for s in seen):
                dup.append(im.path)
            seen.append(b)
    return [HealthRow("duplicate-labels", "duplicate labels in an image", len(dup), "warning" if dup else "ok",
                      dup[0] if dup else "",
                      "delete the second box in the annotation tool: darknet counts the object twice"),
            HealthRow("outside", "boxes outside the image", len(outside), "info" if outside else "ok",
                      outside[0] if outside else "", "darknet clips them to the image (so does `%yolo data`)"),
            HealthRow("no-area", "boxes with no area", len(degenerate), "warning" if degenerate else "ok",
                      degenerate[0] if degenerate else "", "fix or delete them: they teach nothing")]


def _class_rows(images: Sequence[LabeledImage], names: Sequence[str]) -> list[HealthRow]:
    per_class = Counter(b[0] for im in images for b in im.boxes)
    counts = [per_class.get(i, 0) for i in range(len(names))]
    rows = []
    empty = [names[i] for i, c in enumerate(counts) if c == 0]
    rows.append(HealthRow("empty-classes", "classes with no box", len(empty), "warning" if empty else "ok",
                          ", ".join(empty[:5]), "label some, or drop the class from names (darknet cannot learn it)"))
    used = [c for c in counts if c]
    ratio = max(used) / min(used) if used else 1.0
    rows.append(HealthRow("imbalance", "class imbalance (most/fewest boxes)", round(ratio),
                          "info" if ratio >= IMBALANCE else "ok",
                          ", ".join(f"{n}: {c}" for n, c in zip(names, counts)),
                          "AlexeyAB/hank-ai: add counters_per_class=" + ",".join(map(str, counts)) +
                          " to every [yolo] section (weights the loss by class), or label more of the rare classes"))
    negatives = sum(1 for im in images if not im.boxes)
    rows.append(HealthRow("negatives", "negatives (images without boxes)", negatives,
                          "info" if negatives == 0 else "ok",
                          next((im.path for im in images if not im.boxes), ""),
                          "add images of the scene without the objects (AlexeyAB: about as many as with them): "
                          "fewer false positives"))
    return rows


def health(images: Sequence[LabeledImage], names: Sequence[str], *, hash_images: bool = True) -> list[HealthRow]:
    """The health table of a dataset (see the module docstring)."""
    rows: list[HealthRow] = []
    if hash_images:
        groups = duplicate_groups(im.path for im in images)
        extra = sum(len(g) - 1 for g in groups)
        rows.append(HealthRow("duplicate-images", "exact duplicate images", extra, "warning" if extra else "ok",
                              " = ".join(groups[0][:2]) if groups else "",
                              "keep one of each: duplicates weigh those pictures twice"))
        split = {im.path: im.split for im in images}
        leaks = [g for g in groups if len({split.get(p) for p in g} & {"train"}) and
                 len({split.get(p) for p in g} - {"train"})]
        rows.append(HealthRow("leakage", "same picture in train and valid/test", len(leaks),
                              "warning" if leaks else "ok",
                              " = ".join(leaks[0][:2]) if leaks else "",
                              "keep each picture in one split: the mAP otherwise measures memory"))
    return rows + _box_rows(images) + _class_rows(images, names)


def health_frame(rows: Sequence[HealthRow]):
    """The table as a pandas DataFrame (one row per check)."""
    import pandas as pd

    return pd.DataFrame([r.__dict__ for r in rows], columns=["check", "count", "severity", "example", "advice"])


def health_verdict(rows: Sequence[HealthRow]) -> str:
    """The table in one line: ``healthy (8 checks passed)``, ``no warning, 1 note`` or ``2 warnings, 1 note``."""
    warnings = sum(1 for r in rows if r.severity == "warning")
    notes = sum(1 for r in rows if r.severity == "info")
    if not warnings and not notes:
        return f"healthy ({len(rows)} checks passed)"
    said = [f"{warnings} warning{'s' * (warnings != 1)}" if warnings else "no warning"]
    if notes:
        said.append(f"{notes} note{'s' * (notes != 1)}")
    return ", ".join(said)
