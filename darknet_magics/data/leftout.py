"""What a conversion leaves out or turns into a box, counted and said, and the policies that decide it.

Every reader tells `LeftOut` each annotation it does not make a box of (a kind of shape, or a policy) and each
shape it converts; `LeftOut.problems` says it in one line each: "N boxes left out: ...", with how many of which
kind, why, and in which files. Nothing is dropped without a word.

Policies (`Policies`), with the defaults of darknet's own tools:

- ``difficult=drop``: VOC objects marked ``<difficult>1</difficult>`` are left out, as darknet's
  ``scripts/voc_label.py`` does (``if cls not in classes or int(difficult) == 1: continue``).
- ``crowd=drop``: COCO annotations with ``iscrowd: 1`` (one box around a crowd) are left out, as Ultralytics'
  ``convert_coco`` does (``if ann["iscrowd"]: continue``).
- ``keep_ids=no``: COCO category ids are compacted to 0..N-1 in id order (darknet needs contiguous ids) and the
  mapping is printed; ``keep_ids=yes`` keeps each category's id as its class id (unused ids become placeholder
  names), so ids match other tools trained on the source.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from enum import Enum

from ..errors import Problem
from .shapes import LEFT_OUT_REASONS

__all__ = ["BoxPolicy", "Policies", "LeftOut"]


class BoxPolicy(str, Enum):
    """What to do with boxes a source marks as special (VOC difficult, COCO crowd)."""

    KEEP = "keep"
    DROP = "drop"


@dataclass(frozen=True)
class Policies:
    """The conversion's policies (see the module docstring for the defaults and why)."""

    difficult: BoxPolicy = BoxPolicy.DROP
    crowd: BoxPolicy = BoxPolicy.DROP
    keep_ids: bool = False

    def describe(self) -> str:
        """One line for the output: the policies in force."""
        return (f"policies: difficult={self.difficult.value}, crowd={self.crowd.value}, "
                f"keep_ids={'yes' if self.keep_ids else 'no'}")


_POLICY_REASONS = {
    "difficult": "VOC difficult=1 (difficult=drop, as darknet's voc_label.py; difficult=keep trains them)",
    "crowd": "COCO iscrowd=1 (crowd=drop, as Ultralytics' converter; crowd=keep trains them)",
}


class LeftOut:
    """Counts of annotations left out (by kind, with their files) and of shapes converted to boxes."""

    def __init__(self) -> None:
        self.kinds: dict[str, Counter[str]] = {}
        self.converted: Counter[str] = Counter()

    def leave(self, kind: str, file: str) -> None:
        """One annotation of `kind` in `file` that is no box."""
        self.kinds.setdefault(kind, Counter())[file] += 1

    def convert(self, kind: str) -> None:
        """One shape of `kind` (mask, polygon, rotated box, ellipse, circle) made its bounding box."""
        self.converted[kind] += 1

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.kinds.values())

    def problems(self) -> list[Problem]:
        """The "N boxes left out: ..." line (a warning) and the "shapes converted" line (info), when any."""
        found: list[Problem] = []
        if self.kinds:
            parts = []
            for kind, files in sorted(self.kinds.items(), key=lambda kv: -sum(kv[1].values())):
                n = sum(files.values())
                names = ", ".join(sorted(files)[:3]) + (f" and {len(files) - 3} more files" if len(files) > 3 else "")
                why = _POLICY_REASONS.get(kind) or LEFT_OUT_REASONS.get(kind, "not an object box")
                parts.append(f"{n:,} {kind} ({why}; in {names})")
            first = next(iter(sorted(next(iter(self.kinds.values())))))
            found.append(Problem("boxes-left-out", f"{self.total:,} boxes left out: " + "; ".join(parts),
                                 fix="nothing to do if they mark no object; otherwise draw boxes (or polygons) in "
                                     "the annotation tool, or change the policy (difficult=keep, crowd=keep)",
                                 severity="warning", file=first))
        if self.converted:
            listed = ", ".join(f"{n:,} {kind}" for kind, n in self.converted.most_common())
            found.append(Problem("shapes-converted", f"{sum(self.converted.values()):,} shapes made their bounding "
                                 f"boxes: {listed}", severity="info"))
        return found
