"""What every format's reader shares: the dataset folder it may not leave, the classes in order, the images and
boxes it collects, the boxes it leaves out and why.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Iterable, Optional, Sequence

from ...errors import Problem
from ...untrusted import (Confined, class_name, MAX_PX)
from ..leftout import LeftOut, Policies
from .images import image_size
from .model import Box, Dataset, ImageRecord


class _Reader:
    """Shared state while reading one dataset: class names, problems, image sizes."""

    def __init__(self, root: Path, names: Optional[Sequence[str]], fmt: str) -> None:
        self.root = root
        self.confined = Confined(root)
        self.fmt = fmt
        self.fixed = list(names) if names is not None else None
        self.index: dict[str, int] = {n: i for i, n in enumerate(self.fixed or [])}
        self.unknown: Counter[str] = Counter()
        self.problems: list[Problem] = []
        self.images: list[ImageRecord] = []
        self.size_mismatch: list[tuple[str, tuple[int, int], tuple[int, int]]] = []
        self.unreadable: list[str] = []
        self.missing_images: list[str] = []
        self.left = LeftOut()  # annotations that are no box, and shapes made boxes: said by finish()
        self.policies = Policies()
        self.searched: list[str] = []  # folders looked in for an annotated image that was not found
        self.source_ids: dict[int, int] = {}  # the source's class ids -> ours, where the source numbers them

    def looked_in(self, folders: Iterable["Path | str"]) -> None:
        """Remember where an annotated image was looked for (said when none is found)."""
        for f in folders:
            if str(f) not in self.searched:
                self.searched.append(str(f))

    def class_id(self, name: object, where: str) -> Optional[int]:
        """The id of a class name (checked: `untrusted.class_name`); new names are added unless names were given
        (then they are counted)."""
        name = class_name(name, where)
        idx = self.index.get(name)
        if idx is None:
            if self.fixed is not None:
                self.unknown[name] += 1
                return None
            idx = self.index[name] = len(self.index)
        return idx

    def size(self, path: Path, claimed: Optional[tuple[int, int]] = None, where: str = "") -> Optional[tuple[int, int]]:
        """The image's real size (None: missing or unreadable, counted); `BadInput` when `path` (named by the
        annotation at `where`) leads out of the dataset's folder or the image claims an absurd size."""
        self.confined.check(path, where)
        size = image_size(path)
        if size is None:
            if not os.path.lexists(path):
                self.missing_images.append(str(path))
            else:
                self.unreadable.append(str(path))
            return None
        if not (0 < size[0] <= MAX_PX and 0 < size[1] <= MAX_PX):
            self.unreadable.append(str(path))  # a header saying 0 or 70,000,000 px wide: broken, as darknet finds
            return None
        if claimed is not None and claimed[0] > 0 and claimed[1] > 0 and tuple(claimed) != size:
            self.size_mismatch.append((str(path), tuple(claimed), size))  # type: ignore[arg-type]
        return size

    def add(self, path: Path, size: tuple[int, int], boxes: list[Box], split: Optional[str],
            claimed: Optional[tuple[int, int]] = None) -> None:
        self.images.append(ImageRecord(path, size[0], size[1], tuple(boxes), split, claimed))

    def finish(self, names_source: str) -> Dataset:
        if self.fixed is None:
            names = list(self.index)
            if names_source == "sorted":
                # Names met in file order: renumber alphabetically so the order does not depend on which image
                # happened to come first.
                order = sorted(names)
                remap = {names.index(n): i for i, n in enumerate(order)}
                self.images = [ImageRecord(im.path, im.width, im.height,
                                           tuple(Box(remap[b.cls], b.x0, b.y0, b.x1, b.y1, b.where) for b in im.boxes),
                                           im.split, im.claimed) for im in self.images]
                names = order
        else:
            names = self.fixed
        if self.unknown:
            listed = ", ".join(f"{n} ({c})" for n, c in self.unknown.most_common(8))
            self.problems.append(Problem(
                "unknown-class", f"{sum(self.unknown.values()):,} boxes have classes not in names=: {listed}",
                fix="add them to names= (or leave names= out to take the classes from the annotations)",
                file=str(self.root)))
        if self.size_mismatch:
            path, claimed, real = self.size_mismatch[0]
            self.problems.append(Problem(
                "size-mismatch", f"{len(self.size_mismatch):,} annotations give another image size than the image "
                f"has (e.g. {path}: annotation says {claimed[0]}x{claimed[1]}, the image is {real[0]}x{real[1]}); "
                "boxes were made relative to the image's real size", severity="warning", file=path,
                fix="nothing to do if the images were not resized after labelling; otherwise re-export the labels"))
        if self.missing_images:
            self.problems.append(Problem(
                "missing-images", f"{len(self.missing_images):,} annotated images are not there (e.g. "
                f"{self.missing_images[0]}): left out", fix="stage the images with their annotations",
                severity="warning", file=self.missing_images[0]))
        if self.unreadable:
            self.problems.append(Problem(
                "unreadable-image", f"{len(self.unreadable):,} annotated images could not be read (e.g. "
                f"{self.unreadable[0]}): left out", fix="convert them to jpg/png (darknet cannot read them either)",
                severity="warning", file=self.unreadable[0]))
        self.problems.extend(self.left.problems())
        self.images.sort(key=lambda im: str(im.path))
        return Dataset(self.fmt, self.root, names, self.images, self.problems, names_source, dict(self.source_ids))

    def degenerate(self, where: str, text: str) -> None:
        self.problems.append(Problem("degenerate-box", text, fix="fix or delete this box in the annotation tool",
                                     severity="warning", file=where))
