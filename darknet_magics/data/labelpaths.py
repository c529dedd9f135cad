"""Where each darknet flavor looks for an image's label file: its own rule, read from its sources (pure).

- pjreddie (Debian's darknet), ``src/data.c`` ``fill_truth_detection``: ``find_replace`` (the FIRST occurrence
  anywhere in the path, not a path segment) of ``images`` -> ``labels``, then ``JPEGImages`` -> ``labels``, then
  ``raw`` -> ``labels``, then ``.jpg``/``.png``/``.JPG``/``.JPEG`` -> ``.txt``. So ``/data/openimages/a.jpg`` is
  looked up at ``/data/openlabels/a.txt`` and ``/content/drawings/a.jpg`` at ``/content/dlabelsings/a.txt``: darknet
  prints "Couldn't open file", trains the image as a negative and exits 0.
- AlexeyAB, ``src/utils.c`` ``replace_image_to_label``: ``/images/train2017/``, ``/images/val2017/``,
  ``/images/train2014/``, ``/images/val2014/`` -> ``/labels/...`` and ``/JPEGImages/`` -> ``/labels/`` (first
  occurrence each), then the image extension (jpg jpeg png bmp ppm tiff, either case) -> ``.txt``.
- hank-ai, ``src-lib/utils.cpp`` ``replace_image_to_label``: everything after the last ``.`` becomes ``txt``,
  beside the image, nothing else rewritten.
"""
from __future__ import annotations

import os
from typing import NamedTuple, Optional

from ..setup.flavor import Flavor

__all__ = ["Rewrite", "label_path", "label_paths", "rewrites", "beside"]


# (find, replace) in order, first occurrence each, as darknet's find_replace does.
_PJ_DIRS = (("images", "labels"), ("JPEGImages", "labels"), ("raw", "labels"))
_PJ_EXTS = (".jpg", ".png", ".JPG", ".JPEG")
_AB_DIRS = tuple((f"/images/{s}/", f"/labels/{s}/") for s in ("train2017", "val2017", "train2014", "val2014")) + (
    ("/JPEGImages/", "/labels/"),)
_AB_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".tiff")


class Rewrite(NamedTuple):
    """One flavor's rewrite of a path: the flavor, what it replaced, with what, and the label path it reads."""

    flavor: Flavor
    found: str
    replaced_by: str
    label: str


def _flavor(flavor: "str | Flavor") -> Flavor:
    value = str(flavor).lower()
    return Flavor.HANK_AI if value in ("hankai", "hank_ai") else Flavor(value)


def _ab_extension(path: str) -> str:
    # find_replace_extension: only a suffix at the very end is swapped, in either case
    for ext in _AB_EXTS:
        for e in (ext, ext.upper()):
            if path.endswith(e):
                return path[: -len(e)] + ".txt"
    return path


def label_path(image: str, flavor: "str | Flavor" = Flavor.ALEXEYAB) -> str:
    """The path where `flavor`'s darknet opens the label of `image` (its own rule, see the module docstring)."""
    kind = _flavor(flavor)
    if kind is Flavor.PJREDDIE:
        path = image
        for find, rep in _PJ_DIRS + tuple((e, ".txt") for e in _PJ_EXTS):
            path = path.replace(find, rep, 1)
        return path
    if kind is Flavor.HANK_AI:
        dot = image.rfind(".")
        return (image[:dot] if dot >= 0 else image) + ".txt"
    path = image
    for find, rep in _AB_DIRS:
        path = path.replace(find, rep, 1)
    return _ab_extension(path)


def label_paths(image: str) -> set[str]:
    """Every path where some darknet flavor looks for `image`'s label."""
    return {label_path(image, f) for f in Flavor}


def beside(image: str) -> str:
    """The label beside the image: its extension swapped for ``.txt`` (where every flavor agrees to look)."""
    return os.path.splitext(image)[0] + ".txt"


def rewrites(image: str) -> list[Rewrite]:
    """The flavors that look for `image`'s label somewhere other than beside it, with the text they rewrite.

    Empty when every flavor reads the ``.txt`` beside the image: the only layout that all three agree on.
    """
    found: list[Rewrite] = []
    here = beside(image)
    for kind in Flavor:
        lp = label_path(image, kind)
        if lp == here:
            continue
        rules = _PJ_DIRS if kind is Flavor.PJREDDIE else _AB_DIRS
        hit: Optional[tuple[str, str]] = next(((f, r) for f, r in rules if f in image), None)
        if hit is None:  # an extension the flavor does not swap: it would read the image itself as its label
            hit = (os.path.splitext(image)[1] or image, "(unchanged)")
        found.append(Rewrite(kind, hit[0], hit[1], lp))
    return found
