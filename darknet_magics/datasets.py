"""obj.data, .names and the image lists, written with paths darknet can read.

Space-free paths: darknet's .data reader drops every whitespace character from a line (``/My Drive/x`` becomes
``/MyDrive/x``), so `write_data` never writes a path with a space into obj.data. Where a path has one, the deepest
folder with a space in its name is reached through a symlink without spaces (in ``links/`` beside obj.data, or in
the temp folder when that path has spaces itself), and obj.data and the image lists use the link's path. The
symlinks are listed in `DataResult.links`. Staging lives in staging.py, pretrained weights in weights.py.
"""
from __future__ import annotations

import hashlib
import os
import random
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

from .errors import DarknetMagicsError
from .objdata import MARKER
from .fileio import atomic_write_text, remove_if_exists
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

__all__ = ["IMAGE_EXTENSIONS", "DataResult", "write_data", "read_names", "find_images", "space_free"]

# ----------------------------------------------------------------------------------------------------------------
# obj.data, .names, train/valid lists


@dataclass(frozen=True)
class DataResult:
    """What `write_data` wrote; paths are the ones written into obj.data (absolute, space-free)."""

    data_path: Path
    names_path: Path
    train_path: Path
    valid_path: Path
    n_train: int
    n_valid: int
    backup: Path
    names: list[str] = field(default_factory=list)
    links: list[Path] = field(default_factory=list)


def read_names(text: str) -> list[str]:
    """Class names from a .names file's text: one per non-empty line (darknet keeps line order)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def find_images(folder: Path) -> list[Path]:
    """Image files (jpg/jpeg/png/bmp, any case) under `folder`, recursively, sorted."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs.sort()
        for name in files:
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(Path(root) / name)
    found.sort()
    return found


def _has_space(path: Union[str, Path]) -> bool:
    return any(ch.isspace() for ch in str(path))


def space_free(path: Path, link_dir: Path, links: list[Path]) -> Path:
    """`path` itself when it has no whitespace, else the same path through a symlink in a space-free `link_dir`.

    The link replaces the deepest folder whose name has whitespace, so what lies below keeps its layout (labels
    in a sibling ``labels/`` folder still resolve). Its name is the cleaned folder name plus a short hash of the
    full path (two folders named alike never share a link), and never contains ``images``: pjreddie's darknet
    swaps the first ``images`` in an image path for ``labels`` to find the label file.
    """
    path = Path(os.path.abspath(path))
    if not _has_space(path):
        return path
    parts = path.parts
    last = max(i for i, part in enumerate(parts) if _has_space(part))
    target = Path(*parts[: last + 1])
    rest = parts[last + 1:]
    if _has_space(link_dir) or str(link_dir.absolute()).startswith(str(target) + os.sep):
        link_dir = Path(tempfile.gettempdir()) / "darknet_magics_links"
    link_dir.mkdir(parents=True, exist_ok=True)
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", target.name).strip("_") or "link"
    clean = clean.replace("images", "imgs").replace("JPEGImages", "JPEGImgs")
    digest = hashlib.sha1(str(target).encode()).hexdigest()[:8]
    link = link_dir / f"{clean}-{digest}"
    if not (os.path.islink(link) and os.readlink(link) == str(target)):
        tmp = link_dir / f".{clean}-{digest}.tmp{os.getpid()}"
        remove_if_exists(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, link)
    if link not in links:
        links.append(link)
    return link.joinpath(*rest)


def _names_from(names: str, out: Path) -> tuple[list[str], Optional[Path]]:
    """(class names, existing .names file or None when they came as 'a,b,c')."""
    candidate = Path(names).expanduser()
    if candidate.is_file():
        return read_names(candidate.read_text(encoding="utf-8", errors="replace")), candidate
    if "/" in names or names.endswith((".names", ".txt")):
        raise DarknetMagicsError(f"names file {names} not found",
                                 fix="give the path of your .names file, or the class names as names=cat,dog")
    parts = [p.strip() for p in names.split(",")]
    if not parts or any(not p for p in parts):
        raise DarknetMagicsError(f"names={names!r} has an empty class name", fix="write names=cat,dog (no empty entries)")
    return parts, None


def write_data(out: Path, *, classes: int, names: str, train: Optional[Path] = None, valid: Optional[Path] = None,
               images: Optional[Path] = None, split: float = 0.1, seed: int = 0,
               backup: Path) -> DataResult:
    """Write obj.data (and OUT.names from 'a,b,c'; train.txt/valid.txt from `images`) for darknet.

    With ``images=DIR`` the images found there are shuffled with `seed` and ``round(n*split)`` of them (at least
    one when split > 0 and there are two or more) go to valid.txt; ``split=0`` validates on the training list.
    Paths in obj.data are absolute and space-free (see the module docstring); `backup` is created.

    Raises:
        DarknetMagicsError: classes not matching the names, no train list, no images, a missing list file.
    """
    out = Path(os.path.abspath(Path(out).expanduser()))
    out.parent.mkdir(parents=True, exist_ok=True)
    link_dir = out.parent / "links"
    links: list[Path] = []
    try:
        classes = int(classes)
    except (TypeError, ValueError):
        raise DarknetMagicsError(f"classes={classes} is not a number", fix="write classes=N") from None
    class_names, names_file = _names_from(str(names), out)
    if classes < 1 or classes != len(class_names):
        raise DarknetMagicsError(f"classes={classes} but {len(class_names)} names given ({', '.join(class_names[:8])})",
                                 fix=f"use classes={len(class_names)} or list {classes} names")
    if names_file is None:
        names_path = out.with_suffix(".names")
        atomic_write_text(names_path, "".join(n + "\n" for n in class_names))
    else:
        names_path = Path(os.path.abspath(names_file))
    if images is not None:
        if train is not None:
            raise DarknetMagicsError("give either images=DIR or train=FILE, not both",
                                     fix="images=DIR writes train.txt/valid.txt for you; train= uses your list")
        if not 0 <= split < 1:
            raise DarknetMagicsError(f"split={split} must be a fraction in [0, 1)", fix="e.g. split=0.1 for 10 % validation")
        folder = Path(images).expanduser()
        if not folder.is_dir():
            raise DarknetMagicsError(f"image folder {folder} not found", fix="give the folder that holds the images and labels")
        # Link the folder, then list through the link, so the list's paths have no spaces either.
        listed_root = space_free(folder, link_dir, links)
        found = find_images(listed_root)
        if not found:
            raise DarknetMagicsError(f"no images (jpg, jpeg, png, bmp) under {folder}", fix="point images= at the dataset folder")
        order = [str(p) for p in found]
        random.Random(seed).shuffle(order)
        n_valid = round(len(order) * split)
        if split > 0 and len(order) >= 2:
            n_valid = min(max(1, n_valid), len(order) - 1)
        valid_list, train_list = sorted(order[:n_valid]), sorted(order[n_valid:])
        train_path = out.parent / "train.txt"
        atomic_write_text(train_path, "".join(p + "\n" for p in train_list))
        if valid_list:
            valid_path = out.parent / "valid.txt"
            atomic_write_text(valid_path, "".join(p + "\n" for p in valid_list))
        else:
            valid_path, valid_list = train_path, train_list
        n_train, n_valid = len(train_list), len(valid_list)
    else:
        if train is None:
            raise DarknetMagicsError("no training images given", fix="add images=DIR (a folder of images and labels) or train=FILE (a list)")
        train_path = Path(train).expanduser()
        valid_path = Path(valid).expanduser() if valid is not None else train_path
        for p in (train_path, valid_path):
            if not p.is_file():
                raise DarknetMagicsError(f"image list {p} not found", fix="give an existing list file, or images=DIR")
        n_train = _count_lines(train_path)
        n_valid = _count_lines(valid_path)
    backup_dir = Path(os.path.abspath(Path(backup).expanduser()))
    backup_dir.mkdir(parents=True, exist_ok=True)
    train_w = space_free(train_path, link_dir, links)
    valid_w = space_free(valid_path, link_dir, links)
    names_w = space_free(names_path, link_dir, links)
    backup_w = space_free(backup_dir, link_dir, links)
    text = (f"{MARKER}\nclasses = {classes}\ntrain = {train_w}\nvalid = {valid_w}\nnames = {names_w}\nbackup = {backup_w}\n")
    atomic_write_text(out, text)
    return DataResult(out, names_w, train_w, valid_w, n_train, n_valid, backup_w, class_names, links)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())
