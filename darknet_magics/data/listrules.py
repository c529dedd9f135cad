"""What `%yolo check` finds in the image lists as a whole (pure, given a folder listing function).

- ``label-path-rewritten``: a flavor's own label-path rule (`labelpaths`) sends it somewhere with no label for an
  image that has one elsewhere: pjreddie's darknet then prints "Couldn't open file", trains the image as a
  negative and exits 0.
- ``listed-twice`` and ``train-valid-overlap``: one image twice in a list, or in both train and valid (the mAP
  then measures memory, not detection).
- ``no-boxes``: nothing to learn.
- ``mixed-formats``: image folders with darknet labels beside folders with another tool's annotations.
"""
from __future__ import annotations

import os
from collections import Counter
from typing import Callable, Iterable, Optional, Sequence

from ..errors import Problem
from ..setup.flavor import Flavor
from .labelpaths import rewrites

__all__ = ["label_path_problems", "listing_problems", "no_boxes_problem", "mixed_formats_problem"]

Names = Callable[[str], frozenset]

_REWRITE_FIX = ("move the dataset to a path without that text in any folder name, or write the lists with `%yolo data "
                "OUT images=DIR` (it links every image under a path all three flavors read the same way)")


def _exists(path: str, names_in: Names) -> bool:
    folder, name = os.path.split(path)
    return name in names_in(folder)


def label_path_problems(images: Iterable[str], names_in: Names, flavor: Optional[str] = None) -> list[Problem]:
    """One ``label-path-rewritten`` per flavor that misses labels another flavor finds (see the module docstring).

    An error for `flavor` (the binary's) or when it is unknown, a warning for the flavors not in use.
    """
    missed: dict[Flavor, list[tuple[str, str, str]]] = {}
    for image in images:
        found = rewrites(image)
        if not found:
            continue
        lost = [r for r in found if not _exists(r.label, names_in)]
        if not lost or len(lost) == len(found) and not _exists(os.path.splitext(image)[0] + ".txt", names_in):
            continue  # no flavor finds a label: missing-labels says so
        for r in lost:
            missed.setdefault(r.flavor, []).append((image, r.label, f"{r.found!r} -> {r.replaced_by!r}"))
    problems = []
    for kind, cases in missed.items():
        image, label, rule = cases[0]
        in_use = flavor is None or str(flavor) == kind.value
        problems.append(Problem(
            "label-path-rewritten", f"{kind.value}'s darknet looks for the labels of {len(cases):,} image(s) "
            f"elsewhere (its rule rewrites {rule} in the path): e.g. {image} -> {label}, which does not exist, so it "
            "trains them with no boxes (prints \"Couldn't open file\" and still exits 0)", fix=_REWRITE_FIX,
            severity="error" if in_use else "warning", file=image))
    return problems


def listing_problems(entries: Sequence[tuple[str, int, str, str]], split_of: dict[str, str]) -> list[Problem]:
    """``listed-twice`` (an image twice in one split) and ``train-valid-overlap`` from the list entries
    ``(list file, line, text, absolute path)``; `split_of` maps each list file to its split."""
    first: dict[tuple[str, str], tuple[str, int]] = {}
    twice: list[tuple[str, int, str, tuple[str, int]]] = []
    splits: dict[str, set[str]] = {}
    for lst, line, _text, absolute in entries:
        key = os.path.normpath(absolute)
        split = split_of.get(lst, "train")
        splits.setdefault(key, set()).add(split)
        if (split, key) in first:
            twice.append((lst, line, key, first[(split, key)]))
        else:
            first[(split, key)] = (lst, line)
    problems = []
    if twice:
        lst, line, path, (lst0, line0) = twice[0]
        problems.append(Problem("listed-twice", f"{len(twice):,} list entries name an image already listed (e.g. "
                                f"{path}, also at {lst0}:{line0}): it trains (or validates) twice as often",
                                fix="list each image once (`%yolo data OUT images=DIR` does)", file=lst, line=line))
    both = sorted(p for p, s in splits.items() if {"train", "valid"} <= s)
    if both:
        problems.append(Problem("train-valid-overlap", f"{len(both):,} images are in both train and valid (e.g. "
                                f"{both[0]}): the mAP measures what the network memorised",
                                fix="split them: `%yolo data OUT images=DIR split=0.1` keeps each image in one split",
                                file=both[0]))
    return problems


def no_boxes_problem(images: int, boxes: int, data_file: str) -> Optional[Problem]:
    """``no-boxes`` when the lists name images but no label holds a box."""
    if images == 0 or boxes > 0:
        return None
    return Problem("no-boxes", f"none of the {images:,} listed images has a box: darknet would train on nothing "
                   "(every image a negative)", fix="convert the annotations (`%yolo data OUT images=DIR` reads "
                   "VOC, COCO, CVAT, LabelMe, Open Images and YOLO), or check that the labels are where darknet looks",
                   file=data_file)


def mixed_formats_problem(folders: Iterable[str], kind_of: Callable[[str], Optional[str]],
                          has_labels: Callable[[str], bool]) -> Optional[Problem]:
    """``mixed-formats``: some image folders hold darknet labels, others another tool's annotations.

    `kind_of(folder)` is the annotation format found in a folder without labels (None: none), `has_labels(folder)`
    whether darknet finds labels for its images.
    """
    labelled: list[str] = []
    other: Counter = Counter()
    example: dict[str, str] = {}
    for folder in folders:
        if has_labels(folder):
            labelled.append(folder)
            continue
        kind = kind_of(folder)
        if kind is not None:
            other[kind] += 1
            example.setdefault(kind, folder)
    if not labelled or not other:
        return None
    kind = other.most_common(1)[0][0]
    return Problem("mixed-formats", f"mixed annotation formats: {labelled[0]} has darknet (YOLO) labels, "
                   f"{example[kind]} has {kind} annotations and no labels darknet reads (its images train as "
                   "negatives)", fix=f"convert both: `%yolo data OUT train={labelled[0]} valid={example[kind]}` reads "
                   "each folder in its own format", file=example[kind])
