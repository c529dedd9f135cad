"""Detection datasets in the formats people bring, read into one model and written as darknet labels.

Formats (`FORMATS`): ``yolo`` (darknet txt beside the images; Roboflow's "darknet" export and theAIGuys' ``obj/`` +
``test/`` are this format in split folders), ``ultralytics`` (``data.yaml`` with ``images/`` + ``labels/`` per
split, Roboflow's YOLOv5/v8 export), ``voc`` (Pascal VOC / labelImg ``.xml``, beside the images or in
``Annotations/`` + ``JPEGImages/``), ``coco`` (one json with ``images``/``annotations``/``categories`` for a folder),
``labelme`` (one ``.json`` with ``shapes`` per image), ``cvat`` (CVAT "for images 1.1" ``annotations.xml``) and
``openimages`` (Open Images ``*-annotations-bbox.csv`` with ``class-descriptions*.csv``).

The model: every image with its real size (read from the file's header, never from what an annotation claims),
its boxes as pixel corners ``x0 y0 x1 y1`` in continuous 0-based coordinates (a box covering pixel columns 0..9
has x0=0, x1=10), class ids into one ordered list of names, and the split the source put it in (None when it has
none). Pixel conventions of the sources:

- VOC: 1-based corners (pixel indexes). We follow darknet's own scripts/voc_label.py: x0 = xmin - 1,
  x1 = xmax - 1 (so width = xmax - xmin).
- COCO: ``bbox = [x, y, w, h]`` in 0-based continuous pixels.
- CVAT: ``xtl ytl xbr ybr`` continuous pixels. LabelMe: rectangle/polygon points in continuous pixels.
- YOLO/Ultralytics: relative centre and size. Open Images: relative corners.

Class order (printed by `%yolo data`): the source's own order where it has one (names file, data.yaml, COCO's
category ids ascending, CVAT's label list, Open Images' descriptions file order restricted to the classes used),
else names sorted alphabetically (VOC, LabelMe). ``names=`` overrides and then fixes the order.

Pure readers apart from reading the files; nothing here writes into the source folder. `write_darknet` writes
labels into an output folder of symlinks (see its docstring for why every darknet flavor finds them).
"""
from __future__ import annotations

import csv
import io
import os
import re
import struct
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, NamedTuple, Optional, Sequence

from ..errors import DarknetMagicsError, Problem
from . import labelpaths as _labelpaths
from ..untrusted import (BadInput, Confined, class_name, claimed_size, decode, get, load_json, number, parse_names,
                         is_inside, parse_xml, pixel, read_text, MAX_PX)
from .labels import RANGE_FIX, out_of_range, parse_line
from .leftout import BoxPolicy, LeftOut, Policies
from . import shapes
from .resize import target_size, write_resized

__all__ = ["FORMATS", "Box", "ImageRecord", "Dataset", "ConvertResult", "image_size", "detect_format", "read_dataset",
           "write_darknet", "label_paths", "label_path", "folder_format", "SPLIT_FOLDERS"]

FORMATS = ("yolo", "ultralytics", "voc", "coco", "labelme", "cvat", "openimages")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
# Folder names that mean a split, and the split they mean. theAIGuys' tutorial trains on obj/ and tests on test/.
SPLIT_FOLDERS = {"train": "train", "training": "train", "obj": "train", "valid": "valid", "val": "valid",
                 "validation": "valid", "test": "test", "testing": "test"}
NAMES_FILES = ("_darknet.labels", "obj.names", "classes.names", "classes.txt", "labels.txt", "names.txt")
_SKIP_TXT = {"train.txt", "valid.txt", "val.txt", "test.txt", "classes.txt", "labels.txt", "names.txt",
             "readme.txt", "readme.roboflow.txt", "readme.dataset.txt"}


# ----------------------------------------------------------------------------------------------------------------
# The model


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


# ----------------------------------------------------------------------------------------------------------------
# Image sizes from headers (no decoding)


def image_size(path: "Path | str") -> Optional[tuple[int, int]]:
    """(width, height) from a PNG, JPEG, BMP, GIF or PNM header (what darknet's stb_image reads), or None when the
    file is none of these (or broken). It is also the check that a file is an image before darknet sees it
    (darknet predicts on a blank picture, or exits, on a file it cannot decode).

    Reads a few bytes (a JPEG: its markers up to the frame header), never the pixels. One `os.pread` of the first
    4 KiB holds the frame header of most JPEGs; markers past it are walked with a 4-byte read each. No Python file
    object is made: 20,000 images take a fraction of a second. EXIF orientation is ignored, as darknet's image
    loader (stb_image) ignores it.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        head = os.pread(fd, _HEAD, 0)
        if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
            w, h = struct.unpack_from(">II", head, 16)
            return int(w), int(h)
        if head[:2] == b"BM" and len(head) >= 26:
            w, h = struct.unpack_from("<ii", head, 18)
            return abs(w), abs(h)
        if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
            w, h = struct.unpack_from("<HH", head, 6)
            return int(w), int(h)
        if head[:2] == b"\xff\xd8":
            return _jpeg_size(fd, head)
        if head[:2] in (b"P5", b"P6", b"P3", b"P2"):  # PNM: "P6 <w> <h> <max>", '#' comments between
            fields = re.findall(rb"\d+", re.sub(rb"#[^\n]*", b"", head[2:512]))
            return (int(fields[0]), int(fields[1])) if len(fields) >= 2 else None
    except (OSError, struct.error):
        return None
    finally:
        os.close(fd)
    return None


_HEAD = 4096


def _jpeg_size(fd: int, head: bytes) -> Optional[tuple[int, int]]:
    """Walk the JPEG markers from offset 2 to the frame header (SOFn); `head` is the file's first bytes."""
    pos = 2

    def read(at: int, n: int) -> bytes:
        if at + n <= len(head):
            return head[at:at + n]
        return os.pread(fd, n, at)

    while True:
        # fill bytes (0xFF runs) before a marker are allowed
        byte = read(pos, 1)
        while byte and byte != b"\xff":
            pos += 1
            byte = read(pos, 1)
        while byte == b"\xff":
            pos += 1
            byte = read(pos, 1)
        if not byte:
            return None
        marker = byte[0]
        pos += 1
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            continue  # markers without a length
        seg = read(pos, 7)
        if len(seg) < 2:
            return None
        length = (seg[0] << 8) | seg[1]
        # SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC) carry the frame size.
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            if len(seg) < 7:
                return None
            h, w = struct.unpack_from(">HH", seg, 3)
            return int(w), int(h)
        if length < 2:
            return None
        pos += length


# ----------------------------------------------------------------------------------------------------------------
# Detection


def _listdir(folder: Path) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError:
        return []


def _file_names(folder: Path) -> frozenset[str]:
    """The names of the files (and links to files) in `folder`; empty when it cannot be listed."""
    try:
        with os.scandir(folder) as it:
            return frozenset(e.name for e in it if e.is_file())
    except OSError:
        return frozenset()


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


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


# ----------------------------------------------------------------------------------------------------------------
# Reading


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


def _images_under(folder: Path) -> list[Path]:
    found: list[Path] = []
    seen: set[str] = set()  # real folders walked: a link loop (a -> .) would list every image 40 times
    for dirpath, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found.extend(Path(dirpath) / f for f in sorted(files) if _is_image(f))
    return found


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


def _voc_find_image(folder: Path, xml_path: Path, filename: Optional[str], listing: dict[str, dict[str, str]],
                    image_dirs: Sequence[Path]) -> Optional[Path]:
    stem = xml_path.stem
    candidates = []
    if filename:
        candidates.append(os.path.basename(filename.strip()))
    for d in image_dirs:
        names = listing.setdefault(str(d), {n.lower(): n for n in _listdir(d)})
        for c in candidates:
            if c.lower() in names:
                return d / names[c.lower()]
        for ext in IMAGE_EXTENSIONS:
            if (stem + ext) in names:
                return d / names[stem + ext]
    return None


def _read_voc_folder(r: _Reader, folder: Path, split: Optional[str]) -> None:
    ann_dir = next((folder / n for n in _listdir(folder) if n.lower() == "annotations" and (folder / n).is_dir()),
                   folder)
    image_dirs = [folder] + [folder / n for n in ("JPEGImages", "images", "Images") if (folder / n).is_dir()]
    if ann_dir != folder:
        image_dirs.insert(0, ann_dir)
    listing: dict[str, dict[str, str]] = {}
    xmls = [ann_dir / n for n in _listdir(ann_dir) if n.lower().endswith(".xml")]
    seen: set[str] = set()
    for xml_path in xmls:
        # An unreadable xml is an error: skipping it would train its image as a background image.
        ann = parse_xml(xml_path, "VOC xml")
        image = _voc_find_image(folder, xml_path, ann.findtext("filename"), listing, image_dirs)
        if image is None:
            r.missing_images.append(str(xml_path.with_suffix(".jpg")))
            r.looked_in(image_dirs)
            continue
        seen.add(str(image))
        size_el = ann.find("size")
        claimed = (claimed_size(size_el.findtext("width"), size_el.findtext("height"), f"{xml_path} <size>")
                   if size_el is not None else None)
        size = r.size(image, claimed, str(xml_path))
        if size is None:
            continue
        boxes: list[Box] = []
        for k, obj in enumerate(ann.iter("object"), 1):
            where = f"{xml_path} object {k}"
            bb = obj.find("bndbox")
            if bb is None:
                raise BadInput(where, "has no <bndbox>", "re-save it from the labelling tool")
            xmin, ymin, xmax, ymax = (pixel(bb.findtext(t), f"{where} <bndbox>", t)
                                      for t in ("xmin", "ymin", "xmax", "ymax"))
            if (obj.findtext("difficult") or "0").strip() == "1" and r.policies.difficult is BoxPolicy.DROP:
                r.left.leave("difficult", str(xml_path))
                continue
            cls = r.class_id(obj.findtext("name"), f"{where} <name>")
            if cls is None:
                continue
            # 1-based pixel indexes, as darknet's voc_label.py reads them
            boxes.append(Box(cls, xmin - 1, ymin - 1, xmax - 1, ymax - 1, where))
        r.add(image, size, boxes, split, claimed)
    # Images with no xml in a VOC folder: negatives (labelImg writes no xml for an image with no boxes)
    for d in image_dirs[:2] if ann_dir == folder else [folder / "JPEGImages"] if (folder / "JPEGImages").is_dir() else []:
        for name in _listdir(d):
            p = d / name
            if _is_image(name) and str(p) not in seen:
                size = r.size(p)
                if size is not None:
                    r.add(p, size, [], split)
                    seen.add(str(p))


def _split_or_root(root: Path) -> list[tuple[Optional[str], Path]]:
    splits = _split_folders(root)
    return list(splits.items()) if splits else [(None, root)]  # type: ignore[list-item]


def _read_voc(r: _Reader, root: Path) -> str:
    for split, folder in _split_or_root(root):
        if folder_format(folder) != "voc":
            # VOCdevkit/VOC2007: the dataset is one level down
            subs = [folder / n for n in _listdir(folder) if (folder / n).is_dir() and folder_format(folder / n) == "voc"]
            for sub in subs:
                _read_voc_folder(r, sub, split)
            continue
        _read_voc_folder(r, folder, split)
    return "sorted"


def _coco_files(folder: Path) -> list[Path]:
    out = [folder / n for n in _listdir(folder) if n.lower().endswith(".json") and _json_kind(folder / n) == "coco"]
    ann = folder / "annotations"
    if not out and ann.is_dir():
        out = [ann / n for n in _listdir(ann) if n.lower().endswith(".json") and _json_kind(ann / n) == "coco"]
    return out


def _coco_split(path: Path) -> Optional[str]:
    m = re.search(r"(train|val|valid|test)", path.stem.lower())
    return SPLIT_FOLDERS.get(m.group(1)) if m else None


def _read_coco(r: _Reader, root: Path) -> str:
    jobs: list[tuple[Optional[str], Path, Path]] = []
    for split, folder in _split_or_root(root):
        files = _coco_files(folder)
        if split is None and len(files) > 1:
            jobs += [(_coco_split(f), f, folder) for f in files]
        else:
            jobs += [(split, f, folder) for f in files]
    if not jobs:
        raise DarknetMagicsError(f"no COCO json under {root}", fix="format=coco needs a json with images/annotations")
    docs = [(split, path, folder, _coco_doc(path)) for split, path, folder in jobs]
    categories: dict[int, str] = {}
    for _s, _p, _f, (cats, _a, _i) in docs:
        categories.update((cid, name) for cid, name in cats.items() if cid not in categories)
    # Classes in category-id order. Roboflow's COCO export adds a category 0 that is the dataset's own name and is
    # never used by a box (its supercategory is "none"): it is dropped when no annotation has it.
    cat_to_cls = _coco_classes(r, categories, {a.category for _s, _p, _f, (_c, anns, _i) in docs for a in anns})
    for split, path, folder, (_c, anns, images) in docs:
        by_image: dict[int, list[_CocoAnn]] = {}
        for a in anns:
            by_image.setdefault(a.image, []).append(a)
        img_dirs = [(str(d), _file_names(d)) for d in _coco_image_dirs(path, folder, root)]
        path_s = str(path)
        for image_id, file_name, claimed, at in images:
            image_path = _coco_find(file_name, img_dirs, folder)
            size = r.size(image_path, claimed, at)
            if size is None:
                r.looked_in(d for d, _n in img_dirs)
                continue
            boxes: list[Box] = []
            for a in by_image.get(image_id, ()):
                cls = cat_to_cls.get(a.category)
                if cls is None:
                    if a.category not in categories:
                        r.degenerate(path_s, f"annotations[{a.index}]: category {a.category} is not in categories")
                    continue
                if a.crowd and r.policies.crowd is BoxPolicy.DROP:
                    r.left.leave("crowd", path_s)
                    continue
                if a.bbox is None:
                    r.left.leave(a.kind, path_s)
                    continue
                if a.kind != "bbox":
                    r.left.convert(a.kind)
                x, y, w, h = a.bbox
                boxes.append(Box(cls, x, y, x + w, y + h, f"{path_s} annotation id {str(a.id)[:20]}"))
            r.add(image_path, size, boxes, split, claimed)
    return "coco categories by id"


def _coco_classes(r: _Reader, categories: dict[int, str], used: set[int]) -> dict[int, Optional[int]]:
    """{category id: class id}. keep_ids=yes: the category id itself (ids no category has get placeholder
    names); else the categories in id order, compacted to 0..N-1 (the mapping is kept in `r.source_ids`)."""
    if r.fixed is None and r.policies.keep_ids and categories:
        names = [categories.get(i, f"unused_{i}") for i in range(max(categories) + 1)]
        r.fixed, r.index = names, {n: i for i, n in enumerate(names)}
        r.source_ids = {c: c for c in categories}
        return {c: c for c in categories}
    # Roboflow's COCO export adds a category 0 that is the dataset's own name and is never used by a box (its
    # supercategory is "none"): unused categories are no classes, unless names= fixes the list.
    cat_ids = [c for c in sorted(categories) if c in used or r.fixed is not None]
    if r.fixed is None:
        for c in cat_ids:
            r.class_id(categories[c], "categories")
    cat_to_cls = {c: r.class_id(categories[c], "categories") for c in cat_ids}
    r.source_ids = {c: i for c, i in cat_to_cls.items() if i is not None}
    return cat_to_cls


def _coco_image_dirs(path: Path, folder: Path, root: Path) -> list[Path]:
    """The folders where exports put a COCO json's images, in order: the json's folder and its parent (the
    dataset's root), each with ``images/``, the subset named by the json (``instances_val2017.json``: ``val2017/``,
    ``images/val2017/``; datumaro/CVAT: ``images/default/``), ``train/``, ``val/`` and ``data/``."""
    subset = re.sub(r"^(instances|person_keypoints|captions|image_info|panoptic)_", "", path.stem)
    subset = subset.replace("_annotations.coco", "").strip("._") or "default"
    subs = ["", "images", subset, f"images/{subset}", "train", "val", "data"]
    out: list[Path] = []
    for base in dict.fromkeys([path.parent, folder, path.parent.parent, root]):
        if base != root and root not in base.parents:
            continue  # never above the dataset's folder
        for sub in subs:
            d = base / sub if sub else base
            if d not in out and d.is_dir():
                out.append(d)
    return out


def _coco_find(file_name: str, img_dirs: list[tuple[str, frozenset[str]]], folder: Path) -> Path:
    """The first of `img_dirs` (each listed once: a set lookup, not a stat per image) that holds `file_name`, as
    named or by its base name; else where it would be beside the json (missing, counted)."""
    base = os.path.basename(file_name)
    for d, names in img_dirs:
        if file_name in names or (file_name != base and os.path.isfile(os.path.join(d, file_name))):
            return Path(d, file_name)  # a path that leaves the folder is refused by r.size
        if base in names:
            return Path(d, base)
    return folder / base


class _CocoAnn(NamedTuple):
    """One COCO annotation, checked: its image and category ids, bbox ``x y w h`` in pixels (None: an empty
    mask), its index and id in the json, iscrowd, and what the box came from (``bbox``, ``polygon``, ``mask``)."""

    image: int
    category: int
    bbox: Optional[tuple[float, float, float, float]]
    index: int  # in the json's annotations list
    id: object  # the annotation's own id, as the file gives it
    crowd: bool = False
    kind: str = "bbox"  # what the box came from: bbox, polygon or mask (bbox None: an empty mask)


def _coco_id(value: object, where: str) -> int:
    number_ = number(value, where, "id", -2.0 ** 63, 2.0 ** 63)
    if not number_.is_integer():
        raise BadInput(where, f"id {number_:g} is not a whole number", "re-export the COCO file")
    return int(number_)


_NUM = (int, float)


def _coco_ann_fast(a: object, i: int) -> Optional[_CocoAnn]:
    """The common annotation (int ids, four plain numbers in range) without a call per value; None sends it to
    the slow path, which checks each value and names the wrong one (a COCO file has 150,000 annotations)."""
    if type(a) is not dict:
        return None
    bbox, image, cat = a.get("bbox"), a.get("image_id"), a.get("category_id")
    if type(bbox) is not list or len(bbox) != 4 or type(image) is not int or type(cat) is not int:
        return None
    x, y, w, h = bbox
    if not (type(x) in _NUM and type(y) in _NUM and type(w) in _NUM and type(h) in _NUM):
        return None
    # comparisons are False for nan: a nan goes to the slow path too
    if not (-MAX_PX <= x <= 2 * MAX_PX and -MAX_PX <= y <= 2 * MAX_PX and 0 <= w <= MAX_PX and 0 <= h <= MAX_PX
            and abs(image) < 2 ** 63 and abs(cat) < 2 ** 63):
        return None
    crowd = a.get("iscrowd", 0)
    if crowd not in (0, 1, None):  # True/False compare equal to 1/0
        return None
    return _CocoAnn(image, cat, (x, y, w, h), i, a.get("id"), bool(crowd))


def _coco_doc(path: Path) -> tuple[dict[int, str], list[_CocoAnn], list[tuple[int, str, Optional[tuple[int, int]], str]]]:
    """A COCO json's categories {id: name}, annotations and images (id, file_name, claimed size, json path), every
    value checked (`untrusted`), so that the reading after it meets no surprise."""
    doc = load_json(path)
    if not isinstance(doc, dict):
        raise BadInput(str(path), "is not a json object with images/annotations/categories", "re-export the COCO file")
    cats: dict[int, str] = {}
    for i, cat in enumerate(get(doc, "categories", str(path), list, [])):
        at = f"{path} categories[{i}]"
        cats.setdefault(_coco_id(get(cat, "id", at), f"{at}.id"), class_name(get(cat, "name", at), f"{at}.name"))
    anns = []
    for i, a in enumerate(get(doc, "annotations", str(path), list, [])):
        fast = _coco_ann_fast(a, i)
        if fast is not None:
            anns.append(fast)
            continue
        at = f"annotations[{i}]"  # the slow path names what is wrong
        bbox, kind = _coco_bbox(a, f"{path} {at}")
        crowd = get(a, "iscrowd", f"{path} {at}", object, 0)
        crowd = crowd if isinstance(crowd, bool) else number(crowd, f"{path} {at}.iscrowd", "iscrowd", 0, 1) != 0
        anns.append(_CocoAnn(_coco_id(get(a, "image_id", f"{path} {at}"), f"{path} {at}.image_id"),
                             _coco_id(get(a, "category_id", f"{path} {at}"), f"{path} {at}.category_id"),
                             bbox, i, a.get("id"), bool(crowd), kind))
    images = []
    for i, im in enumerate(get(doc, "images", str(path), list, [])):
        at = f"{path} images[{i}]"
        images.append((_coco_id(get(im, "id", at), f"{at}.id"), get(im, "file_name", at, str),
                       claimed_size(im.get("width"), im.get("height"), at), at))
    return cats, anns, images


def _coco_bbox(a: object, at: str) -> tuple[Optional[tuple[float, float, float, float]], str]:
    """An annotation's ``x y w h``: its bbox, else the box around its segmentation (polygons, or RLE, compressed
    or not); None with kind ``empty-mask`` for a mask with no pixel set."""
    bbox = get(a, "bbox", at, list, [])
    if bbox:
        if len(bbox) != 4:
            raise BadInput(f"{at}.bbox", f"has {len(bbox)} values, not x, y, w, h", "re-export the COCO file")
        x, y = (pixel(v, f"{at}.bbox", n) for v, n in zip(bbox[:2], "xy"))
        w, h = (number(v, f"{at}.bbox", n, 0, MAX_PX) for v, n in zip(bbox[2:], "wh"))
        return (x, y, w, h), "bbox"
    seg = get(a, "segmentation", at, object, None)
    where = f"{at}.segmentation"
    if isinstance(seg, list) and seg and all(isinstance(p, list) for p in seg):
        flat = [pixel(v, where, "x" if j % 2 == 0 else "y") for poly in seg for j, v in enumerate(poly)]
        if len(flat) < 4 or len(flat) % 2:
            raise BadInput(where, "is not polygons of x, y pairs", "re-export the COCO file")
        x0, y0, x1, y1 = shapes.polygon_bounds(list(zip(flat[0::2], flat[1::2])))
        return (x0, y0, x1 - x0, y1 - y0), "polygon"
    if isinstance(seg, dict):
        size = get(seg, "size", where, list)
        if len(size) != 2:
            raise BadInput(f"{where}.size", "is not [height, width]", "re-export the COCO file")
        height = int(number(size[0], f"{where}.size", "height", 1, MAX_PX))
        try:
            counts = shapes.coco_rle_counts(get(seg, "counts", where))
        except (ValueError, TypeError) as err:
            raise BadInput(f"{where}.counts", f"is not COCO RLE: {err}", "re-export the COCO file") from None
        bounds = shapes.coco_rle_bounds(counts, height)
        if bounds is None:
            return None, "empty-mask"
        return (bounds[0], bounds[1], bounds[2] - bounds[0], bounds[3] - bounds[1]), "mask"
    raise BadInput(at, "has no 'bbox' and no 'segmentation'", "re-export the COCO file with boxes")


def _read_labelme(r: _Reader, root: Path) -> str:
    for split, folder in _split_or_root(root):
        for dirpath, dirs, files in os.walk(folder):
            dirs.sort()
            for name in sorted(files):
                if name.lower().endswith(".json"):
                    _read_labelme_file(r, Path(dirpath) / name, split)
    return "sorted"


def _read_labelme_file(r: _Reader, path: Path, split: Optional[str]) -> None:
    """One LabelMe json (a json without ``shapes`` is some other file, left alone; a broken one is an error)."""
    doc = load_json(path)
    if not isinstance(doc, dict) or "shapes" not in doc:
        return
    at = str(path)
    named = get(doc, "imagePath", at, str, "")
    image = Path(os.path.normpath(path.parent / named)) if named else None  # a path out of the folder: refused
    # os.path: False for a name too long or with a NUL byte; an imagePath naming no image (a .json, a video
    # frame's name): the same-stem image beside the json, as LabelMe itself opens it
    if image is None or not os.path.isfile(image) or not _is_image(image.name):
        image = next((path.with_suffix(e) for e in IMAGE_EXTENSIONS if path.with_suffix(e).is_file()),
                     path.with_suffix(".jpg"))
    claimed = claimed_size(doc.get("imageWidth"), doc.get("imageHeight"), at)
    size = r.size(image, claimed, f"{at} imagePath")
    if size is None:
        return
    boxes = [box for k, shape in enumerate(get(doc, "shapes", at, list), 1)
             if (box := _labelme_box(r, shape, f"{at} shapes[{k - 1}]", str(path)))]
    r.add(image, size, boxes, split, claimed)


# LabelMe shape types that are boxes once bounded; "mask" holds its bitmap cropped to the rectangle its two points
# span, so that rectangle is its box.
_LABELME_BOXES = {"rectangle": 2, "polygon": 3, "circle": 2, "mask": 2}


def _labelme_box(r: _Reader, shape: object, where: str, file: str) -> Optional[Box]:
    """The box of one LabelMe shape (rectangle, polygon, circle, mask); None for points and lines (counted as left
    out) or a class not in names=."""
    pts = get(shape, "points", where, list, [])
    kind = get(shape, "shape_type", where, str, "polygon") or "polygon"
    xy = [_point(p, f"{where}.points[{i}]") for i, p in enumerate(pts)]
    if kind not in _LABELME_BOXES or len(xy) < min(_LABELME_BOXES.get(kind, 2), 2):
        r.left.leave(kind if kind in shapes.LEFT_OUT_REASONS else "point" if len(xy) < 2 else kind, file)
        return None
    cls = r.class_id(get(shape, "label", where), f"{where}.label")
    if cls is None:
        return None
    x0, y0, x1, y1 = shapes.circle_bounds(xy[0], xy[1]) if kind == "circle" else shapes.polygon_bounds(xy)
    if kind not in ("rectangle", "polygon"):
        r.left.convert(kind)
    return Box(cls, x0, y0, x1, y1, where)


def _point(value: object, where: str) -> tuple[float, float]:
    """An ``[x, y]`` point of a LabelMe shape, in pixels."""
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise BadInput(where, f"is {str(value)[:40]}, not [x, y]", "re-save it from LabelMe")
    return pixel(value[0], where, "x"), pixel(value[1], where, "y")


def _is_cvat_xml(path: Path) -> bool:
    """A CVAT for images 1.1 xml: its root is <annotations> (VOC's is <annotation>), whatever the file's name."""
    try:
        with open(path, "rb") as f:
            return b"<annotations" in f.read(4096)
    except OSError:
        return False


def _cvat_files(folder: Path) -> list[Path]:
    """The CVAT xml files directly in `folder` (annotations.xml, or any name: exports get renamed)."""
    return [folder / n for n in _listdir(folder) if n.lower().endswith(".xml") and _is_cvat_xml(folder / n)]


# CVAT label types and shapes that hold no object box (the labels only they use are no classes).
_CVAT_NO_BOX = {"tag", "points", "polyline", "skeleton", "cuboid"}


def _cvat_classes(r: _Reader, doc: ET.Element, path: Path) -> None:
    """Register the task's or project's labels in their order, except image-level tags, skeleton parts and labels
    that only no-box shapes use (they would be classes without a box)."""
    boxed = {el.get("label") for im in doc.iter("image") for el in im if el.tag not in _CVAT_NO_BOX}
    used = {el.get("label") for im in doc.iter("image") for el in im}
    for k, lab in enumerate(doc.iter("label"), 1):
        name = lab.findtext("name")
        kind = (lab.findtext("type") or "any").strip().lower()
        if name is None or lab.find("parent") is not None and (lab.findtext("parent") or "").strip():
            continue
        if kind in _CVAT_NO_BOX or (name in used and name not in boxed):
            continue
        r.class_id(name, f"{path} label {k}")


def _cvat_image(folder: Path, name: str, subset: str) -> tuple[Path, list[Path]]:
    """Where a CVAT export put an image: beside the xml, in images/, images/<subset>/ (project exports) or
    <subset>/; (the path, else the folders looked in)."""
    dirs = [folder, folder / "images", folder / "Images"]
    if subset:
        dirs += [folder / "images" / subset, folder / subset]
    for d in dirs:
        for candidate in (d / name, d / os.path.basename(name)):
            if os.path.isfile(candidate):
                return candidate, dirs  # an absolute or ../ name that leads out is refused by r.size
    return folder / os.path.basename(name), [d for d in dirs if d.is_dir()] or [folder]


def _read_cvat(r: _Reader, root: Path) -> str:
    files = [(split, path, folder) for split, folder in _split_or_root(root) for path in _cvat_files(folder)]
    for split, path, folder in files:
        doc = parse_xml(path, "CVAT xml")
        if r.fixed is None:
            _cvat_classes(r, doc, path)
        seen: set[str] = set()
        for im in doc.iter("image"):
            file_name = im.get("name", "")
            subset = (im.get("subset") or "").strip()
            at = f"{path} image {im.get('id')!r:.20} ({file_name[:60]})"
            image, looked = _cvat_image(folder, file_name, subset)
            claimed = claimed_size(im.get("width"), im.get("height"), at)
            size = r.size(image, claimed, at)
            if size is None:
                r.looked_in(looked)
                continue
            if str(image) in seen:
                continue  # one image under two subsets: listed once
            seen.add(str(image))
            boxes = [box for k, el in enumerate(list(im), 1)
                     if (box := _cvat_box(r, el, f"{at} {el.tag} {k}", str(path)))]
            r.add(image, size, boxes, split or SPLIT_FOLDERS.get(subset.lower()), claimed)
    return "cvat labels"


def _cvat_points(el: ET.Element, where: str) -> list[tuple[float, float]]:
    pts = [p.split(",") for p in (el.get("points") or "").split(";") if p]
    if not pts or any(len(p) != 2 for p in pts):
        raise BadInput(where, f"points={(el.get('points') or '')[:40]!r} are not x,y;x,y;...", "re-export it from CVAT")
    return [(pixel(p[0], where, "x"), pixel(p[1], where, "y")) for p in pts]


def _cvat_mask(el: ET.Element, where: str) -> Optional[shapes.Bounds]:
    """The box of a CVAT <mask rle= left= top= width= height=> (its set pixels), None when none is set."""
    left, top = (pixel(el.get(a), where, a) for a in ("left", "top"))
    width = int(number(el.get("width"), where, "width", 1, MAX_PX))
    number(el.get("height"), where, "height", 1, MAX_PX)
    counts = [int(number(c, where, "rle", 0, MAX_PX * MAX_PX)) for c in (el.get("rle") or "").split(",") if c.strip()]
    return shapes.cvat_rle_bounds(counts, left, top, width)


def _cvat_box(r: _Reader, el: ET.Element, where: str, file: str) -> Optional[Box]:
    """The box of one CVAT shape: a box (turned by its rotation), polygon, mask or ellipse; None for the shapes
    that mark no extent (points, polyline, tag, skeleton: counted as left out) or a class not in names=."""
    kind = el.tag
    if kind == "box":
        bounds = tuple(pixel(el.get(a), where, a) for a in ("xtl", "ytl", "xbr", "ybr"))
        rotation = number(el.get("rotation") or 0, where, "rotation", -3600, 3600)
        if rotation % 180:
            bounds = shapes.rotated_bounds(*bounds, rotation)
            kind = "rotated box"
    elif kind == "polygon":
        bounds = shapes.polygon_bounds(_cvat_points(el, where))
    elif kind == "mask":
        bounds = _cvat_mask(el, where)
        if bounds is None:
            r.left.leave("empty-mask", file)
            return None
    elif kind == "ellipse":
        cx, cy, rx, ry = (pixel(el.get(a), where, a) for a in ("cx", "cy", "rx", "ry"))
        bounds = shapes.ellipse_bounds(cx, cy, rx, ry, number(el.get("rotation") or 0, where, "rotation", -3600, 3600))
    elif kind in ("attribute",):
        return None
    else:
        r.left.leave(kind, file)
        return None
    cls = r.class_id(el.get("label"), where)
    if cls is None:
        return None
    if kind != "box":
        r.left.convert(kind)
    x0, y0, x1, y1 = bounds
    return Box(cls, x0, y0, x1, y1, where)


def _is_box_csv(path: Path) -> bool:
    """An Open Images box csv by its header (ImageID, XMin...), whatever its name."""
    try:
        with open(path, "rb") as f:
            head = f.readline(4096)
    except OSError:
        return False
    return b"ImageID" in head and b"XMin" in head


def _openimages_jobs(root: Path) -> tuple[list[tuple[Optional[str], Path, Path]], Optional[Path]]:
    """(split, box csv, images folder) of each box csv, each csv once, and the class-descriptions csv.

    A csv in a split folder (or its annotations/) is that split's; one at the root is the split its name says
    (``validation-annotations-bbox.csv``), its images in the folder of that split when there is one.
    """
    jobs: dict[Path, tuple[Optional[str], Path, Path]] = {}
    desc: Optional[Path] = None
    splits = _split_or_root(root)
    folder_of = {sp: f for sp, f in splits}
    places = [(sp, d, f) for sp, f in splits for d in (f, f / "annotations")] + [(None, root, root),
                                                                                 (None, root / "annotations", root)]
    for split, d, folder in places:
        for n in _listdir(d):
            low, path = n.lower(), d / n
            if not low.endswith(".csv") or path in jobs:
                continue
            if "class-descriptions" in low:
                desc = path
            elif "bbox" in low or _is_box_csv(path):
                named = next((SPLIT_FOLDERS[s] for s in ("train", "validation", "test") if s in low), None)
                sp = split or named
                jobs[path] = (sp, path, folder if split else folder_of.get(sp, folder))
    return list(jobs.values()), desc


def _read_openimages(r: _Reader, root: Path) -> str:
    jobs, desc = _openimages_jobs(root)
    if not jobs:
        raise DarknetMagicsError(f"no Open Images box csv under {root} (a csv with ImageID, LabelName, XMin, XMax, "
                                 "YMin, YMax)", fix="stage the *-annotations-bbox.csv with the images")
    mid_names: dict[str, str] = {}
    mid_order: list[str] = []
    if desc is not None:
        for line, row in _csv_rows(desc):
            if len(row) >= 2 and row[0] != "LabelName":
                mid_names[row[0]] = class_name(row[1], f"{desc}:{line}")
                mid_order.append(row[0])
    rows_by: list[tuple[Optional[str], Path, dict[str, list[tuple[str, tuple[float, ...], str]]]]] = []
    used: set[str] = set()
    for split, path, folder in jobs:
        by_image = _openimages_boxes(path, r)
        used.update(mid for rows in by_image.values() for mid, _c, _w in rows)
        rows_by.append((split, folder, by_image))
    if r.fixed is None:
        for mid in [m for m in mid_order if m in used] + sorted(used - set(mid_order)):
            r.class_id(mid_names.get(mid, mid), str(desc or jobs[0][1]))
    seen_dirs: dict[str, dict[str, str]] = {}
    for split, folder, by_image in rows_by:
        img_dirs = [folder] + [folder / n for n in ("images", "data") if (folder / n).is_dir()]
        for image_id, rows in by_image.items():
            image = None
            for d in img_dirs:
                listing = seen_dirs.setdefault(str(d), _stem_listing(d))
                # ImageID is the stem in Open Images; some exports write the file name with its extension
                name = listing.get(image_id) or listing.get(os.path.splitext(image_id)[0])
                if name is not None:
                    image = d / name
                    break
            if image is None:
                r.missing_images.append(str(folder / (image_id if _is_image(image_id) else f"{image_id}.jpg")))
                r.looked_in(img_dirs)
                continue
            size = r.size(image)
            if size is None:
                continue
            w, h = size
            boxes: list[Box] = []
            for mid, (x0, x1, y0, y1), where in rows:
                cls = r.class_id(mid_names.get(mid, mid), where)
                if cls is not None:
                    boxes.append(Box(cls, x0 * w, y0 * h, x1 * w, y1 * h, where))
            r.add(image, size, boxes, split)
    return str(desc) if desc else "label ids"


def _stem_listing(folder: Path) -> dict[str, str]:
    """{stem: name} and {name: name} of the images in `folder`."""
    names = [n for n in _listdir(folder) if _is_image(n)]
    return {**{os.path.splitext(n)[0]: n for n in names}, **{n: n for n in names}}


_DECIMAL_COMMA = re.compile(r"^\s*-?\d*,\d+\s*$")


def _openimages_boxes(path: Path, r: Optional[_Reader] = None) -> dict[str, list[tuple[str, tuple[float, ...], str]]]:
    """{ImageID: [(LabelName, (XMin, XMax, YMin, YMax), "FILE:LINE")]} of a box csv, every value checked.

    A csv saved by a spreadsheet in a decimal-comma locale (``;`` between values, ``0,25``) is read as such, and
    said once (an ``decimal-commas`` info in `r`)."""
    by_image: dict[str, list[tuple[str, tuple[float, ...], str]]] = {}
    rows = _csv_rows(path)
    header = next(rows, (1, []))[1]
    cols = [_column(header, c, path) for c in ("ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax")]
    commas = 0
    for line, row in rows:
        where = f"{path}:{line}"
        if len(row) < len(header):
            raise BadInput(where, f"{len(row)} values, the header has {len(header)}", "re-export the csv")
        values = [row[c] for c in cols[2:]]
        if any(_DECIMAL_COMMA.match(v) for v in values):
            commas += 1
            values = [v.replace(",", ".") if _DECIMAL_COMMA.match(v) else v for v in values]
        coords = tuple(number(v, where, header[c], -1, 2) for v, c in zip(values, cols[2:]))  # relative: 0..1
        by_image.setdefault(row[cols[0]], []).append((row[cols[1]], coords, where))
    if commas and r is not None:
        r.problems.append(Problem("decimal-commas", f"{commas:,} rows write numbers with a decimal comma (e.g. "
                                  f"0,25): read as 0.25", fix="nothing to do; export with decimal points to silence it",
                                  severity="info", file=str(path)))
    return by_image


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, values) of a UTF-8 csv file; a broken one (NUL bytes, a field over csv's limit) is `BadInput`."""
    text = read_text(path)
    first = text.split("\n", 1)[0]
    # a spreadsheet in a decimal-comma locale separates values with ';'
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";" if ";" in first and "," not in first else ",")
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as err:
        raise BadInput(f"{path}:{reader.line_num}", f"not a readable csv: {err}", "re-export the csv") from None


def _column(header: list[str], name: str, path: Path) -> int:
    if name not in header:
        raise BadInput(f"{path}:1", f"the header has no {name} column ({', '.join(header)[:80]})",
                       "use Open Images' own *-annotations-bbox.csv (ImageID, LabelName, XMin, XMax, YMin, YMax)")
    return header.index(name)


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


# ----------------------------------------------------------------------------------------------------------------
# Writing darknet labels


@dataclass(frozen=True)
class ConvertResult:
    """What `write_darknet` wrote: the image paths per split (as listed), box counts and what was changed."""

    folder: Path
    lists: dict[str, list[str]]
    boxes: int
    clipped: int
    dropped_tiny: int
    degenerate: int
    problems: list[Problem]


def label_path(image: str, flavor: str = "alexeyab") -> str:
    """Where `flavor`'s darknet looks for an image's label file (`labelpaths.label_path`: each flavor's own rule)."""
    return _labelpaths.label_path(image, flavor)


def label_paths(image: str) -> set[str]:
    """Every path where some darknet flavor looks for `image`'s label (pjreddie, AlexeyAB and hank-ai rules)."""
    return _labelpaths.label_paths(image)


# Extensions pjreddie swaps for .txt; others get .jpg appended to the link's name (stb_image reads by content).
_PJ_EXTS = (".jpg", ".png", ".JPG", ".JPEG")


def _link_name(image: Path, used: set[str]) -> str:
    """A whitespace-free link name for `image` whose extension pjreddie swaps for .txt, unique in `used`.

    `used` holds lower-cased stems: ``a.jpg`` and ``a.png`` would share the label ``a.txt``, so the second one
    becomes ``a_1.png``.
    """
    stem, ext = os.path.splitext(image.name)
    stem = re.sub(r"\s+", "_", stem)
    if ext not in _PJ_EXTS:
        stem, ext = stem + ext.replace(".", "_"), ".jpg"
    name, n = stem, 1
    while name.lower() in used:
        name = f"{stem}_{n}"
        n += 1
    used.add(name.lower())
    return name + ext


def box_line(box: Box, width: int, height: int) -> str:
    """``class cx cy w h`` relative to the image, 6 decimals (darknet reads them with atof)."""
    return (f"{box.cls} {(box.x0 + box.x1) / 2 / width:.6f} {(box.y0 + box.y1) / 2 / height:.6f} "
            f"{(box.x1 - box.x0) / width:.6f} {(box.y1 - box.y0) / height:.6f}")


def _label_text(boxes: Sequence[Box], width: int, height: int) -> bytes:
    """The label file of these boxes: `box_line` per box, one format call each (150,000 boxes: well under 1 s)."""
    line = "%d %.6f %.6f %.6f %.6f\n"
    return "".join([line % (b.cls, (b.x0 + b.x1) / 2 / width, (b.y0 + b.y1) / 2 / height, (b.x1 - b.x0) / width,
                            (b.y1 - b.y0) / height) for b in boxes]).encode()


def clean_boxes(im: ImageRecord, *, min_box: Optional[float] = None, net: tuple[int, int] = (416, 416)
                ) -> tuple[list[Box], int, int, list[Box]]:
    """(boxes to write, clipped count, tiny dropped, degenerate boxes) for one image.

    Boxes are clipped to the image; a box with no area left (or none to begin with), or with its corners swapped,
    is degenerate. With `min_box`, boxes whose width or height at network size `net` is under `min_box` pixels
    are dropped.
    """
    out: list[Box] = []
    clipped = tiny = 0
    bad: list[Box] = []
    width, height = im.width, im.height
    for b in im.boxes:
        _, x0, y0, x1, y1, _ = b
        if 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height and not min_box:
            out.append(b)  # the common case: inside the image, nothing to drop
            continue
        if x1 < x0 or y1 < y0:
            bad.append(b)
            continue
        cx0, cy0 = min(max(x0, 0.0), width), min(max(y0, 0.0), height)
        cx1, cy1 = min(max(x1, 0.0), width), min(max(y1, 0.0), height)
        if cx1 - cx0 <= 0 or cy1 - cy0 <= 0:
            bad.append(b)
            continue
        inside = cx0 == x0 and cy0 == y0 and cx1 == x1 and cy1 == y1
        if not inside:
            clipped += 1
        if min_box and ((cx1 - cx0) / width * net[0] < min_box or (cy1 - cy0) / height * net[1] < min_box):
            tiny += 1
            continue
        out.append(b if inside else Box(b.cls, cx0, cy0, cx1, cy1, b.where))  # most boxes: no new object
    return out, clipped, tiny, bad


def _write_new(path: str, data: bytes) -> None:
    """Create `path` (it must not exist: two labels never share a file) holding `data`; no fsync (see below)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def _place(src: str, dst: str) -> int:
    """Put image `src` at `dst`: a hard link (hank-ai's `map` resolves symlinks with std::filesystem::canonical
    and looks for the label beside the real file; a hard link is a real file here), else a symlink when `src` is
    on another filesystem; returns 1 for a symlink."""
    try:
        os.link(src, dst)
        return 0
    except OSError:
        os.symlink(src, dst)
        return 1


def write_darknet(ds: Dataset, folder: Path, *, min_box: Optional[float] = None, net: tuple[int, int] = (416, 416),
                  reporter=None, resize: Optional[tuple[int, int]] = None) -> ConvertResult:
    """Write `ds` as a darknet dataset in `folder`: per split, links to the images with the labels where every
    darknet flavor looks for them.

    Labels never go into the user's (drive) folder: the images are listed through links in our folder, so the
    label path each flavor derives from a listed path is ours. ``<split>/a.jpg`` is a link per image (`_place`: a
    hard link where the image is on the same disk, else a symlink), named to
    fit every flavor (`_link_name`: no whitespace, an extension pjreddie swaps, two images never sharing a
    label), with its label beside it (and at pjreddie's rewrite when that differs and stays in `folder`). One
    link per image, not per folder: hank-ai reads the label beside the listed path, so a folder link
    (``JPEGImages`` -> ``labels``, what AlexeyAB and pjreddie rewrite) would send it into the user's folder.

    Every listed path is checked with `label_paths` (all three flavors) before it is used. The folder is written
    beside (``.NAME.tmpPID``), then renamed into place, so a failed or interrupted run never leaves a
    half-written dataset that looks complete; that is why single labels are plain writes, not an atomic rename
    and fsync each (a VM that loses power loses its local disk anyway).
    """
    import shutil

    from ..fileio import remove_if_exists

    folder = Path(os.path.abspath(folder))
    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    if tmp.exists() or os.path.islink(tmp):
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    lists: dict[str, list[str]] = {}
    problems: list[Problem] = []
    n_boxes = clipped = tiny = degenerate = 0
    used: dict[str, set[str]] = {}  # per split: stems of the per-image links
    taken: set[str] = set()  # label files written (relative to folder)
    linked = 0  # images placed as symlinks (another filesystem), not hard links
    resized = 0  # images written as smaller copies (resize=)
    bad_examples: list[Box] = []
    total = len(ds.images)
    folder_s, tmp_s = str(folder) + os.sep, str(tmp) + os.sep
    n_root = len(folder_s)
    made: set[str] = {""}

    def makedirs(rel: str) -> None:
        if rel not in made:
            os.makedirs(tmp_s + rel, exist_ok=True)
            made.add(rel)

    try:
        for i, im in enumerate(ds.images):
            split = im.split or "all"
            if split not in used:
                makedirs(split)
                used[split] = set()
            boxes, c, t, bad = clean_boxes(im, min_box=min_box, net=net)
            clipped += c
            tiny += t
            degenerate += len(bad)
            bad_examples.extend(bad[: max(0, 5 - len(bad_examples))])
            n_boxes += len(boxes)
            data = _label_text(boxes, im.width, im.height)
            src = os.path.abspath(im.path)
            link_name = _link_name(Path(os.path.basename(src)), used[split])
            final = f"{folder_s}{split}{os.sep}{link_name}"
            small = target_size((im.width, im.height), resize) if resize else None
            if small is not None:
                write_resized(src, tmp_s + final[n_root:], small)  # relative labels stay right
                resized += 1
            else:
                linked += _place(src, tmp_s + final[n_root:])
            for lp in label_paths(final):
                if lp == final:
                    continue  # pjreddie with an unswapped extension would read the image itself: never write there
                if lp.startswith(folder_s) and lp[n_root:] not in taken:
                    makedirs(os.path.dirname(lp[n_root:]))
                    _write_new(tmp_s + lp[n_root:], data)
                    taken.add(lp[n_root:])
                elif not lp.startswith(folder_s) and not any(p.code == "labels-outside" for p in problems):
                    problems.append(Problem("labels-outside", f"pjreddie's darknet would look for labels at {lp}, "
                                            f"outside {folder}: only AlexeyAB/hank-ai builds find them",
                                            fix="put OUT in a folder whose path has no 'images' or 'raw' in it",
                                            severity="warning", file=lp))
            lists.setdefault(split, []).append(final)
            if reporter is not None and (i % 2000 == 0 or i + 1 == total):
                reporter.progress(f"labels: {i + 1:,}/{total:,} images", final=i + 1 == total)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk or an interrupt: no half-written folder stays behind
        raise
    if resized:
        problems.append(Problem("images-resized", f"{resized:,} images written as copies no larger than "
                                f"{resize[0]}x{resize[1]} (resize=), in {folder}", severity="info"))
    if linked:
        problems.append(Problem("hank-ai-map-links", f"{linked:,} images are on another disk, so they are listed "
                                "through symlinks: hank-ai's `map` (and -map) follows a link to the image and looks "
                                "for its label there", fix="copy the dataset to local disk first (`%yolo stage`), or "
                                "resize= (it writes local copies); training itself reads the labels",
                                severity="info", file=str(folder)))
    for b in bad_examples:
        problems.append(Problem("degenerate-box", f"{b.where}: box {b.x0:g},{b.y0:g} to {b.x1:g},{b.y1:g} has no "
                                "area inside the image: left out", fix="fix or delete it in the annotation tool",
                                severity="warning", file=b.where.rsplit(" ", 2)[0] if " " in b.where else b.where))
    if degenerate > len(bad_examples):
        problems.append(Problem("degenerate-box", f"... and {degenerate - len(bad_examples):,} more degenerate boxes "
                                "left out", severity="warning"))
    if clipped:
        problems.append(Problem("boxes-clipped", f"{clipped:,} boxes reached outside their image: clipped to it",
                                severity="info"))
    if tiny:
        problems.append(Problem("tiny-boxes-dropped", f"{tiny:,} boxes smaller than {min_box:g} px at "
                                f"{net[0]}x{net[1]} dropped (min_box={min_box:g})", severity="info"))
    if folder.exists() or os.path.islink(folder):
        old = folder.with_name(f".{folder.name}.old{os.getpid()}")
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)
    remove_if_exists(tmp)
    return ConvertResult(folder, lists, n_boxes, clipped, tiny, degenerate, problems)


# ----------------------------------------------------------------------------------------------------------------
# A summary to look at


SUMMARY_COLUMNS = ["image", "split", "class", "width_px", "height_px"]


def boxes_frame(rows: Iterable[tuple[str, str, Optional[str], float, float]]):
    """The summary's dataframe from rows ``(image, split, class name, width_px, height_px)``.

    `summary_frame` makes the rows from a read dataset, `checks.check_dataset` from the label files darknet will
    read; both are shown by `show_frame`.
    """
    import pandas as pd

    return pd.DataFrame(list(rows), columns=SUMMARY_COLUMNS)


def summary_frame(ds: Dataset, net: tuple[int, int] = (416, 416)):
    """One row per box: image, split, class, and its size in pixels at network size (a pandas DataFrame).

    Images without boxes get one row with class None, so boxes-per-image counts include negatives.
    """
    rows = []
    for im in ds.images:
        if not im.boxes:
            rows.append((str(im.path), im.split or "", None, float("nan"), float("nan")))
        for b in im.boxes:
            rows.append((str(im.path), im.split or "", ds.names[b.cls] if 0 <= b.cls < len(ds.names) else str(b.cls),
                         abs(b.x1 - b.x0) / im.width * net[0], abs(b.y1 - b.y0) / im.height * net[1]))
    return boxes_frame(rows)


def summary_figure(frame, net: tuple[int, int] = (416, 416)) -> dict:
    """Ultralytics' labels.jpg as a plotly figure dict: boxes per class, boxes per image, box sizes at `net`.

    A dict (``plotly.graph_objects.Figure(fig)`` shows it; report.html can embed it) so that nothing here needs
    a notebook.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    boxes = frame.dropna(subset=["class"])
    per_class = boxes.groupby("class").size()
    images_per_class = boxes.groupby("class")["image"].nunique()
    per_image = frame.assign(n=frame["class"].notna()).groupby("image")["n"].sum()
    fig = make_subplots(rows=1, cols=3, subplot_titles=("boxes and images per class", "boxes per image",
                                                        f"box size at {net[0]}x{net[1]} (px)"))
    fig.add_trace(go.Bar(x=list(per_class.index), y=list(per_class.values), name="boxes"), 1, 1)
    fig.add_trace(go.Bar(x=list(images_per_class.index), y=list(images_per_class.values), name="images"), 1, 1)
    fig.add_trace(go.Histogram(x=list(per_image.values), name="boxes per image"), 1, 2)
    fig.add_trace(go.Scattergl(x=list(boxes["width_px"]), y=list(boxes["height_px"]), mode="markers",
                               marker={"size": 4, "opacity": 0.4}, name="boxes"), 1, 3)
    fig.update_xaxes(type="log", row=1, col=3)
    fig.update_yaxes(type="log", row=1, col=3)
    fig.update_layout(height=360, barmode="group", showlegend=False)
    return fig.to_dict()


def show_summary(ds: Dataset, reporter, net: tuple[int, int] = (416, 416)):
    """Render the summary of a read dataset through `reporter` (see `show_frame`); returns the frame."""
    return show_frame(summary_frame(ds, net), reporter, net)


def show_frame(frame, reporter, net: tuple[int, int] = (416, 416), show_figure=None):
    """Render a summary frame (`boxes_frame`) through `reporter`: a table per class, the figure as HTML.

    `show_figure(figure, text)`, when given, shows the figure instead (the directives pass view.saved's, which
    draws offline and untrusted; data/ sits below view/). Returns the frame. An empty frame (no images) shows one
    line and no figure.
    """

    n_images = frame["image"].nunique()
    boxes = frame.dropna(subset=["class"])
    if n_images == 0:
        reporter.info("no images to summarize")
        return frame
    table = boxes.groupby("class").agg(boxes=("image", "size"), images=("image", "nunique"),
                                       median_w_px=("width_px", "median"), median_h_px=("height_px", "median"))
    reporter.dataframe(table.reset_index(), title=f"{n_images:,} images, {len(boxes):,} boxes")
    fig = summary_figure(frame, net)
    text = f"{n_images:,} images, {len(boxes):,} boxes in {len(table)} classes"
    if show_figure is not None:
        show_figure(fig, text)
        return frame
    import plotly.io as pio

    reporter.html("dataset-summary", pio.to_html(fig, include_plotlyjs="cdn", full_html=False), text=text)
    return frame
