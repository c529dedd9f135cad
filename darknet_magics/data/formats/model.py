"""The one model every dataset format is read into: images with their real sizes, boxes as pixel corners, class
names in one order, the split the source gave each image. See the package's docstring for each format's pixel
conventions.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple, Optional

from ...errors import Problem


FORMATS = ("yolo", "ultralytics", "voc", "coco", "labelme", "cvat", "openimages")


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


# Folder names that mean a split, and the split they mean. theAIGuys' tutorial trains on obj/ and tests on test/.
SPLIT_FOLDERS = {"train": "train", "training": "train", "obj": "train", "valid": "valid", "val": "valid",
                 "validation": "valid", "test": "test", "testing": "test"}


NAMES_FILES = ("_darknet.labels", "obj.names", "classes.names", "classes.txt", "labels.txt", "names.txt")


_SKIP_TXT = {"train.txt", "valid.txt", "val.txt", "test.txt", "classes.txt", "labels.txt", "names.txt",
             "readme.txt", "readme.roboflow.txt", "readme.dataset.txt"}


class Box(NamedTuple):
    """One box: class id and pixel corners (continuous, 0-based); `where` says which annotation it came from.

    A NamedTuple rather than a frozen dataclass: a COCO file makes 150,000 of them, and a tuple is made 3x faster.
    """

    cls: int
    x0: float
    y0: float
    x1: float
    y1: float
    where: str = ""


@dataclass(frozen=True)
class ImageRecord:
    """One image: its path, real size, boxes and split (``train``/``valid``/``test`` or None)."""

    path: Path
    width: int
    height: int
    boxes: tuple[Box, ...] = ()
    split: Optional[str] = None
    claimed: Optional[tuple[int, int]] = None  # the size the annotation says, when it says one


@dataclass
class Dataset:
    """A dataset read by `read_dataset`; `problems` are what reading found (degenerate boxes, size mismatches...)."""

    format: str
    root: Path
    names: list[str]
    images: list[ImageRecord]
    problems: list[Problem] = field(default_factory=list)
    names_source: str = ""
    source_ids: dict[int, int] = field(default_factory=dict)  # the source's class ids -> ours (COCO categories)

    @property
    def boxes(self) -> int:
        return sum(len(im.boxes) for im in self.images)

    @property
    def splits(self) -> dict[str, int]:
        return dict(Counter(im.split or "" for im in self.images))
