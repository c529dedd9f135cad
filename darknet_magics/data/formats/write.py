"""The model written as darknet reads it: one link per image with its label beside it, at the path every flavor's
label rule finds (see `write_darknet`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from ...errors import Problem
from .. import labelpaths as _labelpaths
from ..resize import target_size, write_resized
from .model import Box, Dataset, ImageRecord


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

    folder = Path(os.path.abspath(folder))
    tmp = _fresh_tmp(folder)
    out = _DarknetFolder(folder, tmp)
    tally = _Tally()
    total = len(ds.images)
    try:
        for i, im in enumerate(ds.images):
            out.add_image(im, min_box=min_box, net=net, resize=resize, tally=tally)
            if reporter is not None and (i % 2000 == 0 or i + 1 == total):
                reporter.progress(f"labels: {i + 1:,}/{total:,} images", final=i + 1 == total)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk or an interrupt: no half-written folder stays behind
        raise
    problems = out.problems + _tally_problems(tally, folder, min_box=min_box, net=net, resize=resize)
    _swap_into_place(tmp, folder)
    return ConvertResult(folder, out.lists, tally.boxes, tally.clipped, tally.tiny, tally.degenerate, problems)


def _fresh_tmp(folder: Path) -> Path:
    """The empty folder `write_darknet` writes into beside `folder` (a leftover of an interrupted run removed)."""
    import shutil

    tmp = folder.with_name(f".{folder.name}.tmp{os.getpid()}")
    if tmp.exists() or os.path.islink(tmp):
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    return tmp


@dataclass
class _Tally:
    """What writing a dataset counted: boxes kept and left out, images placed through symlinks or resized."""

    boxes: int = 0
    clipped: int = 0
    tiny: int = 0
    degenerate: int = 0
    bad_examples: list[Box] = field(default_factory=list)  # the first 5 degenerate boxes, shown one by one
    linked: int = 0  # images placed as symlinks (another filesystem), not hard links
    resized: int = 0  # images written as smaller copies (resize=)


class _DarknetFolder:
    """The links and labels of `write_darknet`, written under `tmp` at the paths they will have under `folder`.

    Paths are plain strings joined by hand and folders made once each: a dataset has 100,000 images.
    """

    def __init__(self, folder: Path, tmp: Path) -> None:
        self.folder = folder
        self.root, self.tmp_root = str(folder) + os.sep, str(tmp) + os.sep
        self.n_root = len(self.root)
        self.made: set[str] = {""}
        self.used: dict[str, set[str]] = {}  # per split: stems of the per-image links
        self.taken: set[str] = set()  # label files written (relative to folder)
        self.lists: dict[str, list[str]] = {}
        self.problems: list[Problem] = []

    def makedirs(self, rel: str) -> None:
        if rel not in self.made:
            os.makedirs(self.tmp_root + rel, exist_ok=True)
            self.made.add(rel)

    def add_image(self, im: ImageRecord, *, min_box: float | None, net: tuple[int, int],
                  resize: tuple[int, int] | None, tally: _Tally) -> str:
        """Place one image with its labels; its path as listed (under `folder`)."""
        split = im.split or "all"
        if split not in self.used:
            self.makedirs(split)
            self.used[split] = set()
        boxes, c, t, bad = clean_boxes(im, min_box=min_box, net=net)
        tally.clipped += c
        tally.tiny += t
        tally.degenerate += len(bad)
        tally.bad_examples.extend(bad[: max(0, 5 - len(tally.bad_examples))])
        tally.boxes += len(boxes)
        data = _label_text(boxes, im.width, im.height)
        src = os.path.abspath(im.path)
        final = f"{self.root}{split}{os.sep}{_link_name(Path(os.path.basename(src)), self.used[split])}"
        small = target_size((im.width, im.height), resize) if resize else None
        if small is not None:
            write_resized(src, self.tmp_root + final[self.n_root:], small)  # relative labels stay right
            tally.resized += 1
        else:
            tally.linked += _place(src, self.tmp_root + final[self.n_root:])
        self.write_labels(final, data)
        self.lists.setdefault(split, []).append(final)
        return final

    def write_labels(self, final: str, data: bytes) -> None:
        """The label of listed image `final` wherever a flavor looks for it inside `folder`; a warning, once, for a
        flavor that would look outside."""
        for lp in label_paths(final):
            if lp == final:
                continue  # pjreddie with an unswapped extension would read the image itself: never write there
            if lp.startswith(self.root) and lp[self.n_root:] not in self.taken:
                self.makedirs(os.path.dirname(lp[self.n_root:]))
                _write_new(self.tmp_root + lp[self.n_root:], data)
                self.taken.add(lp[self.n_root:])
            elif not lp.startswith(self.root) and not any(p.code == "labels-outside" for p in self.problems):
                self.problems.append(Problem("labels-outside", f"pjreddie's darknet would look for labels at {lp}, "
                                             f"outside {self.folder}: only AlexeyAB/hank-ai builds find them",
                                             fix="put OUT in a folder whose path has no 'images' or 'raw' in it",
                                             severity="warning", file=lp))


def _tally_problems(tally: _Tally, folder: Path, *, min_box: float | None, net: tuple[int, int],
                    resize: tuple[int, int] | None) -> list[Problem]:
    """What writing changed or left out, said (pure)."""
    problems: list[Problem] = []
    if tally.resized:
        problems.append(Problem("images-resized", f"{tally.resized:,} images written as copies no larger than "
                                f"{resize[0]}x{resize[1]} (resize=), in {folder}", severity="info"))
    if tally.linked:
        problems.append(Problem("hank-ai-map-links", f"{tally.linked:,} images are on another disk, so they are listed "
                                "through symlinks: hank-ai's `map` (and -map) follows a link to the image and looks "
                                "for its label there", fix="copy the dataset to local disk first (`%yolo stage`), or "
                                "resize= (it writes local copies); training itself reads the labels",
                                severity="info", file=str(folder)))
    for b in tally.bad_examples:
        problems.append(Problem("degenerate-box", f"{b.where}: box {b.x0:g},{b.y0:g} to {b.x1:g},{b.y1:g} has no "
                                "area inside the image: left out", fix="fix or delete it in the annotation tool",
                                severity="warning", file=b.where.rsplit(" ", 2)[0] if " " in b.where else b.where))
    if tally.degenerate > len(tally.bad_examples):
        problems.append(Problem("degenerate-box", f"... and {tally.degenerate - len(tally.bad_examples):,} more "
                                "degenerate boxes left out", severity="warning"))
    if tally.clipped:
        problems.append(Problem("boxes-clipped", f"{tally.clipped:,} boxes reached outside their image: clipped to it",
                                severity="info"))
    if tally.tiny:
        problems.append(Problem("tiny-boxes-dropped", f"{tally.tiny:,} boxes smaller than {min_box:g} px at "
                                f"{net[0]}x{net[1]} dropped (min_box={min_box:g})", severity="info"))
    return problems


def _swap_into_place(tmp: Path, folder: Path) -> None:
    """Rename the written `tmp` to `folder`; an earlier `folder` is moved aside first and removed after."""
    import shutil

    from ...fileio import remove_if_exists

    if folder.exists() or os.path.islink(folder):
        old = folder.with_name(f".{folder.name}.old{os.getpid()}")
        os.replace(folder, old)
        os.replace(tmp, folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, folder)
    remove_if_exists(tmp)
