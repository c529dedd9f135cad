"""obj.data, .names and the image lists, written with paths darknet can read.

Space-free paths: darknet's .data reader drops every whitespace character from a line (``/My Drive/x`` becomes
``/MyDrive/x``), so `write_data` never writes a path with a space into obj.data. Where a path has one, the deepest
folder with a space in its name is reached through a symlink without spaces (in ``links/`` beside obj.data, or in
the per-user temp folder `setup.drive.tmp_links_dir` when that path has spaces itself), and obj.data and the image lists use the link's path. The
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
from collections import Counter
from typing import Optional, Sequence, Union

from ..setup.drive import tmp_links_dir
from ..errors import DarknetMagicsError, Problem
from .objdata import MARKER
from ..fileio import remove_if_exists, write_beside
from .labelpaths import rewrites
from .leftout import Policies
from .formats import Dataset, ImageRecord, label_paths, read_dataset, write_darknet
from ..report import Reporter
from ..safenames import check_argv_paths, link_unsafe, unsafe_reason
from ..untrusted import class_name, parse_names, read_text
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

__all__ = ["IMAGE_EXTENSIONS", "DataResult", "DataPlan", "write_data", "prepare_dataset", "plan_dataset", "read_names", "find_images", "space_free"]

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
    format: str = "yolo"
    test_path: Optional[Path] = None
    n_test: int = 0
    boxes: int = 0
    converted: Optional[Path] = None  # the folder of converted labels (and image links), when one was written
    problems: list[Problem] = field(default_factory=list)
    plan: Optional["DataPlan"] = None


def read_names(text: str, file: str = "the names") -> list[str]:
    """Class names from a .names file's text, one per line as darknet reads them (`untrusted.parse_names`: a
    blank line before a name, or a name with a control character, is refused)."""
    return parse_names(text, file)


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
        link_dir = tmp_links_dir()  # the shared per-user fallback (environment), never a folder of another user
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
    if os.path.isfile(candidate):  # os.path: False (not ValueError) for a name with a NUL byte
        return read_names(read_text(candidate), str(candidate)), candidate
    if "/" in names or names.endswith((".names", ".txt")):
        raise DarknetMagicsError(f"names file {names} not found",
                                 fix="give the path of your .names file, or the class names as names=cat,dog")
    parts = [p.strip() for p in names.split(",")]
    if not parts or any(not p for p in parts):
        raise DarknetMagicsError(f"names={names!r} has an empty class name", fix="write names=cat,dog (no empty entries)")
    return [class_name(p, f"names= entry {i}") for i, p in enumerate(parts, 1)], None


def write_data(out: Path, *, classes: Optional[int] = None, names: Optional[str] = None,
               train: Optional[Path] = None, valid: Optional[Path] = None, images: Optional[Path] = None,
               test: Optional[Path] = None, format: Optional[str] = None, split: float = 0.1, seed: int = 0,
               min_box: Optional[float] = None, net: tuple[int, int] = (416, 416), backup: Path,
               reporter: Optional[Reporter] = None, policies: Optional[Policies] = None,
               resize: Optional[tuple[int, int]] = None) -> "DataResult":
    """`prepare_dataset` under its old name (the `%yolo data` directive calls it)."""
    return prepare_dataset(out, images=images, train=train, valid=valid, test=test, format=format, classes=classes,
                           names=names, split=split, seed=seed, min_box=min_box, net=net, backup=backup,
                           reporter=reporter, policies=policies, resize=resize)


@dataclass(frozen=True)
class DataPlan:
    """What `prepare_dataset` will do, found without writing anything (the dry run prints `lines`)."""

    out: Path
    names: list[str]
    names_source: str
    format: str
    # per split ("train", "valid", "test"): the images in it; the converted folder when labels must be written
    datasets: list[Dataset]
    convert: bool
    convert_to: Optional[Path]
    lists: dict[str, Path]
    given_lists: dict[str, Path]
    problems: list[Problem]
    split_note: str
    lines: list[str]


def _is_drive(path: Path) -> bool:
    text = str(path)
    return _has_space(text) or text.startswith("/content/drive") or "/MyDrive/" in text + "/"


def _parse_names(names: Union[None, str, Sequence[str]], classes: Optional[int]) -> tuple[Optional[list[str]], Optional[Path]]:
    if names is None:
        return None, None
    if not isinstance(names, str):
        return [class_name(n, f"names[{i}]") for i, n in enumerate(names)], None
    return _names_from(names, Path("."))


def plan_dataset(out: Path, *, images: Optional[Path] = None, train: Optional[Path] = None,
                 valid: Optional[Path] = None, test: Optional[Path] = None, format: Optional[str] = None,
                 classes: Optional[int] = None, names: Union[None, str, Sequence[str]] = None, split: float = 0.1,
                 seed: int = 0, min_box: Optional[float] = None, policies: Optional[Policies] = None,
                 resize: Optional[tuple[int, int]] = None) -> DataPlan:
    """Read the dataset(s) and decide what `prepare_dataset` writes, writing nothing.

    Sources: ``images=DIR`` (any format `formats.detect_format` knows; its own train/valid/test split kept), or
    ``train=``/``valid=``/``test=``, each a folder (read as that split) or an image list file (used as is).

    Raises:
        DarknetMagicsError: conflicting or missing sources, names not matching classes, unreadable datasets.
    """
    out = Path(os.path.abspath(Path(out).expanduser()))
    classes, given_names, names_file = _checked_options(classes, names, split, images, train)
    sources, given_lists = _sources(images, train, valid, test)
    datasets, problems, dataset_names = _read_sources(sources, format, given_names, policies)
    fixed = _class_names(dataset_names, given_names, classes)
    names_source = (str(names_file) if names_file else "names=" if given_names is not None
                    else datasets[0].names_source if datasets else "names=")
    fmt = ",".join(sorted({d.format for d in datasets})) or "lists"
    convert = _needs_conversion(datasets, min_box, resize)
    convert_to = _convert_dir(out, datasets) if convert and datasets else None
    lists = {k: out.parent / f"{out.stem}.{k}.txt" for k in ("train", "valid", "test")}
    n = Counter(im.split or "" for d in datasets for im in d.images)
    has = {k for k in ("train", "valid", "test") if n.get(k) or k in given_lists}
    split_note = _split_note(has, split, seed)
    lines = [f"format: {fmt} ({len(datasets)} folder{'s' * (len(datasets) != 1)})" if datasets else "format: lists",
             f"classes: {len(fixed)} from {names_source}: {', '.join(fixed[:20])}{' ...' if len(fixed) > 20 else ''}",
             "images: " + ", ".join(f"{k or 'unsplit'} {v:,}" for k, v in sorted(n.items())) if n else "images: lists",
             f"split: {split_note}",
             (policies or Policies()).describe() + _id_note(datasets),
             f"labels: {'written to ' + str(convert_to) if convert_to else 'used where they are (YOLO txt beside the images)'}"
             + (f", boxes under {min_box:g} px at network size dropped" if min_box else "")
             + (f", images larger than {resize[0]}x{resize[1]} copied smaller (resize=)" if resize else ""),
             f"lists: {', '.join(str(lists[k]) for k in ('train', 'valid', 'test') if k in has or k == 'train')}",
             f"writes: {out}"]
    return DataPlan(out, list(fixed), names_source, fmt, datasets, convert, convert_to, lists, given_lists, problems,
                    split_note, lines)


def _checked_options(classes: int | None, names: None | str | Sequence[str], split: float, images: Path | None,
                     train: Path | None) -> tuple[int | None, list[str] | None, Path | None]:
    """classes= as a number, the names given (and their file), after the options' own mistakes are refused."""
    if classes is not None:
        try:
            classes = int(classes)
        except (TypeError, ValueError):
            raise DarknetMagicsError(f"classes={classes} is not a number", fix="write classes=N") from None
    given_names, names_file = _parse_names(names, classes)
    if given_names is not None and classes is not None and (classes < 1 or classes != len(given_names)):
        raise DarknetMagicsError(f"classes={classes} but {len(given_names)} names given ({', '.join(given_names[:8])})",
                                 fix=f"use classes={len(given_names)} or list {classes} names")
    if not 0 <= split < 1:
        raise DarknetMagicsError(f"split={split} must be a fraction in [0, 1)", fix="e.g. split=0.1 for 10 % validation")
    if images is not None and train is not None:
        raise DarknetMagicsError("give either images=DIR or train=, not both",
                                 fix="images=DIR reads the dataset and its splits; train=/valid= name each split")
    if images is None and train is None:
        raise DarknetMagicsError("no training images given",
                                 fix="add images=DIR (a dataset folder) or train=DIR/FILE (a folder or a list)")
    return classes, given_names, names_file


def _sources(images: Path | None, train: Path | None, valid: Path | None, test: Path | None
             ) -> tuple[list[tuple[str | None, Path]], dict[str, Path]]:
    """The folders to read, each with the split it forces (None: the dataset's own), and the list files given."""
    sources: list[tuple[Optional[str], Path]] = []
    given_lists: dict[str, Path] = {}
    if images is not None:
        folder = Path(images).expanduser()
        if not os.path.isdir(folder):
            raise DarknetMagicsError(f"image folder {folder} not found", fix="give the folder that holds the images and labels")
        sources.append((None, folder))
    for key, value in (("train", train), ("valid", valid), ("test", test)):
        if value is None:
            continue
        p = Path(value).expanduser()
        if os.path.isdir(p):
            sources.append((key, p))
        elif os.path.isfile(p):
            given_lists[key] = p
        else:
            raise DarknetMagicsError(f"{key}={value}: no such folder or list file",
                                     fix=f"give {key}= a folder of images (with labels) or an image list file")
    return sources, given_lists


def _read_sources(sources: list[tuple[str | None, Path]], format: str | None, given_names: list[str] | None,
                  policies: Policies | None) -> tuple[list[Dataset], list[Problem], list[str] | None]:
    """Each source folder read, the class names they were read with (None when no folder and no names given)."""
    datasets: list[Dataset] = []
    problems: list[Problem] = []
    fixed = given_names
    for force, folder in sources:
        ds = read_dataset(folder, format, fixed, policies)
        if fixed is None:
            fixed = ds.names  # the next folders are read with the first one's ids
        if force is not None:
            ds.images = [ImageRecord(im.path, im.width, im.height, im.boxes, force, im.claimed) for im in ds.images]
        datasets.append(ds)
        problems.extend(ds.problems)
    return datasets, problems, fixed


def _class_names(dataset_names: list[str] | None, given_names: list[str] | None, classes: int | None) -> list[str]:
    """The dataset's class names, refused where they cannot be known or differ from classes=."""
    fixed = dataset_names
    if fixed is None:
        # Only list files given: names must come from the user, as before.
        if given_names is None:
            raise DarknetMagicsError("train=/valid= are list files, so the class names cannot be read from a dataset",
                                     fix="add names=cat,dog (or names=FILE)")
        fixed = given_names
    if classes is not None and classes != len(fixed):
        raise DarknetMagicsError(f"classes={classes} but the dataset has {len(fixed)} classes ({', '.join(fixed[:8])})",
                                 fix=f"use classes={len(fixed)}, or leave classes= out")
    return fixed


def _needs_conversion(datasets: Sequence[Dataset], min_box: float | None, resize: tuple[int, int] | None) -> bool:
    """Whether labels must be written: not when every image is already where all flavors find its label (YOLO txt
    beside, plain extension) and nothing is dropped or resized."""
    if bool(min_box) or bool(resize) or any(d.format != "yolo" for d in datasets):
        return True
    return any(labels_found_by_all(str(im.path)) is False for d in datasets for im in d.images)


def _split_note(has: set[str], split: float, seed: int) -> str:
    """Where the validation images come from, in words."""
    if "valid" in has:
        return "the source's own split"
    if "test" in has:
        return "valid = the source's test split (no valid split in the source)"
    if split > 0:
        return f"split={split:g} of the unsplit images to valid (seed={seed})"
    return "split=0: validating on the training images"


def _convert_dir(out: Path, datasets: Sequence[Dataset]) -> Path:
    """Where the converted labels go: beside OUT, else beside the dataset when OUT is on a drive, else (both on a
    drive, or a path some flavor's label rule rewrites, such as openimages/) a local folder of OUT's own."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", out.stem).replace("images", "imgs").replace("raw", "rw") or "data"
    if not _is_drive(out.parent):
        convert_to = out.parent / f"{stem}.darknet"
    elif not _is_drive(datasets[0].root):
        convert_to = datasets[0].root.parent / f"{datasets[0].root.name}.{stem}.darknet"
    else:
        convert_to = _private_convert_dir(out, stem)
    if rewrites(str(convert_to / "train" / "x.jpg")):
        # a folder named e.g. openimages/: pjreddie would look for every label under openlabels/ (see labelpaths)
        convert_to = _private_convert_dir(out, stem)
    return convert_to


def _refuse_no_boxes(plan: "DataPlan") -> None:
    """``no-boxes``: a dataset read from annotations that holds no box at all is refused before anything is
    written (boxes the readers refused, e.g. class-out-of-range, are errors said and counted instead)."""
    if plan.datasets and not plan.given_lists and not any(p.severity == "error" for p in plan.problems) and not any(
            im.boxes for d in plan.datasets for im in d.images):
        n_images = sum(len(d.images) for d in plan.datasets)
        raise DarknetMagicsError(f"no-boxes: none of the {n_images:,} images of {plan.format} has a box: darknet would "
                                 "train on nothing", fix="check format= and that the annotations are beside the "
                                 "images (the lines above say what was left out, and why)")


def _id_note(datasets: Sequence[Dataset]) -> str:
    """"; class ids: source 1 -> 0, 3 -> 1" where the source numbers its classes and ours differ."""
    ids = datasets[0].source_ids if datasets else {}
    if not ids or all(k == v for k, v in ids.items()):
        return "; class ids: the source's" if ids else ""
    shown = ", ".join(f"{k} -> {v}" for k, v in sorted(ids.items())[:12]) + (" ..." if len(ids) > 12 else "")
    return f"; class ids: source {shown} (keep_ids=on keeps the source's)"


def _private_convert_dir(out: Path, stem: str) -> Path:
    """A local folder for the converted labels of `out` whose path no flavor rewrites (one per obj.data)."""
    digest = hashlib.sha1(str(out).encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / "darknet_magics" / f"{stem}-{digest}.darknet"


def labels_found_by_all(image: str) -> bool:
    """Whether every darknet flavor looks for `image`'s label at the same place: the .txt beside it."""
    beside = os.path.splitext(image)[0] + ".txt"
    return label_paths(image) == {beside}


def prepare_dataset(out: Path, *, images: Optional[Path] = None, train: Optional[Path] = None,
                    valid: Optional[Path] = None, test: Optional[Path] = None, format: Optional[str] = None,
                    classes: Optional[int] = None, names: Union[None, str, Sequence[str]] = None, split: float = 0.1,
                    seed: int = 0, min_box: Optional[float] = None, net: tuple[int, int] = (416, 416),
                    backup: Path, reporter: Optional[Reporter] = None,
                    policies: Optional[Policies] = None, resize: Optional[tuple[int, int]] = None) -> DataResult:
    """Turn a dataset into a checked darknet dataset: labels (converted when needed), lists, names, obj.data.

    Lists are named after OUT (``NAME.train.txt``, ``NAME.valid.txt``, ``NAME.test.txt`` beside it) so that two
    datasets in one folder never overwrite each other's. A source split is kept; `split` splits only the images
    that have none (seeded). Class names come from the source unless `names` is given. Converted labels go into a
    folder of links (`formats.write_darknet`) next to OUT, or beside the dataset when OUT is on a drive; never
    into the source folder. Paths in obj.data are absolute and space-free (module docstring).

    Raises:
        DarknetMagicsError: see `plan_dataset`; no images at all.
    """
    plan = plan_dataset(out, images=images, train=train, valid=valid, test=test, format=format, classes=classes,
                        names=names, split=split, seed=seed, min_box=min_box, policies=policies, resize=resize)
    out = plan.out
    _refuse_no_boxes(plan)
    check_argv_paths(**{"obj.data": out, "backup": Path(os.path.abspath(os.path.expanduser(backup)))})  # obj.data lines
    out.parent.mkdir(parents=True, exist_ok=True)
    link_dir = out.parent / "links"
    links: list[Path] = []
    by_split, boxes, written_problems = _listed_paths(plan, link_dir, links, min_box=min_box, net=net,
                                                      reporter=reporter, resize=resize)
    problems = list(plan.problems) + written_problems
    _assign_splits(by_split, plan.given_lists, split, seed)
    _link_unsafe_names(by_split, link_dir, out)
    batch = _Batch()  # the lists, names and obj.data replace the old ones together, after all are written
    try:
        written = _write_lists(batch, plan, by_split)
        n_train, n_valid, n_test = _count_entries(written, plan.given_lists, by_split)
        names_path = _write_names(batch, names, plan.names, out)
        backup_dir = Path(os.path.abspath(Path(backup).expanduser()))
        backup_dir.mkdir(parents=True, exist_ok=True)
        train_w = space_free(written["train"], link_dir, links)
        valid_w = space_free(written.get("valid", written["train"]), link_dir, links)
        names_w = space_free(names_path, link_dir, links)
        backup_w = space_free(backup_dir, link_dir, links)
        batch.write(out, f"{MARKER}\nclasses = {len(plan.names)}\ntrain = {train_w}\nvalid = {valid_w}\n"
                         f"names = {names_w}\nbackup = {backup_w}\n")
        batch.commit()
    except BaseException:
        batch.abort()
        raise
    test_w = space_free(written["test"], link_dir, links) if "test" in written else None
    return DataResult(out, names_w, train_w, valid_w, n_train, n_valid, backup_w, list(plan.names), links,
                      format=plan.format, test_path=test_w, n_test=n_test, boxes=boxes, converted=plan.convert_to
                      if plan.convert else None, problems=problems, plan=plan)


def _listed_paths(plan: DataPlan, link_dir: Path, links: list[Path], *, min_box: float | None, net: tuple[int, int],
                  reporter: Reporter | None, resize: tuple[int, int] | None
                  ) -> tuple[dict[str, list[str]], int, list[Problem]]:
    """The space-free path of every image as the lists will name it, per split ("": unsplit), the box count and
    what writing converted labels said; the labels are written first when the plan converts."""
    by_split: dict[str, list[str]] = {"train": [], "valid": [], "test": [], "": []}
    boxes = 0
    problems: list[Problem] = []
    merged = Dataset(plan.format, plan.datasets[0].root if plan.datasets else plan.out.parent, plan.names,
                     [im for d in plan.datasets for im in d.images])
    if plan.convert and plan.convert_to is not None:
        conv = write_darknet(merged, plan.convert_to, min_box=min_box, net=net, reporter=reporter, resize=resize)
        problems.extend(conv.problems)
        boxes = conv.boxes
        for key, paths in conv.lists.items():
            by_split["" if key == "all" else key].extend(space_free(Path(p), link_dir, links).as_posix()
                                                         for p in paths)
    else:
        roots = {}
        for im in merged.images:
            boxes += len(im.boxes)
            by_split[im.split or ""].append(str(im.path))
        # The folder is linked once, then listed through the link, so the lists have no spaces either.
        for key in by_split:
            by_split[key] = [_space_free_cached(p, link_dir, links, roots) for p in by_split[key]]
    return by_split, boxes, problems


def _assign_splits(by_split: dict[str, list[str]], given_lists: dict[str, Path], split: float, seed: int) -> None:
    """Settle `by_split` in place: unsplit images to train (or a seeded `split` of them to valid), a given list
    file's split left to the file, valid from test when there is no valid; no training images is an error."""
    unsplit = sorted(by_split.pop(""))
    if unsplit:
        if by_split["valid"] or by_split["test"]:
            by_split["train"] += unsplit  # a source split exists: images outside it train
        else:
            order = list(unsplit)
            random.Random(seed).shuffle(order)
            n_valid = round(len(order) * split)
            if split > 0 and len(order) >= 2:
                n_valid = min(max(1, n_valid), len(order) - 1)
            by_split["valid"] += order[:n_valid]
            by_split["train"] += order[n_valid:]
    for key in given_lists:
        by_split[key] = []  # a list file is used as is
    if not by_split["valid"] and not given_lists.get("valid") and by_split["test"]:
        by_split["valid"] = list(by_split["test"])
    if not by_split["train"] and "train" not in given_lists:
        raise DarknetMagicsError(f"no training images (the source has only {', '.join(k for k, v in by_split.items() if v)})",
                                 fix="give train= a folder or list, or images= a dataset with a train split")


def _write_lists(batch: _Batch, plan: DataPlan, by_split: dict[str, list[str]]) -> dict[str, Path]:
    """Our image lists into `batch`; per split, the list obj.data names (a given list file as it is)."""
    written: dict[str, Path] = {}
    for key in ("train", "valid", "test"):
        if key in plan.given_lists:
            written[key] = plan.given_lists[key]
        elif by_split[key]:
            batch.write(plan.lists[key], "".join(p + "\n" for p in sorted(by_split[key])))
            written[key] = plan.lists[key]
    return written


def _count_entries(written: dict[str, Path], given_lists: dict[str, Path], by_split: dict[str, list[str]]
                   ) -> tuple[int, int, int]:
    """The number of train, valid and test images (valid: train's when validating on it)."""

    def count(key: str) -> int:  # our lists are not in place yet: their entries are counted
        return _count_lines(written[key]) if key in given_lists else len(by_split[key])

    n_train, n_valid = count("train"), count("valid" if "valid" in written else "train")
    n_test = count("test") if "test" in written else 0
    return n_train, n_valid, n_test


def _write_names(batch: _Batch, names: None | str | Sequence[str], class_names: list[str], out: Path) -> Path:
    """The .names file obj.data names: the user's names= file as it is, else ours beside OUT (into `batch`)."""
    names_file = (Path(names).expanduser() if isinstance(names, str) and os.path.isfile(Path(names).expanduser())
                  else None)
    if names_file is not None:
        return Path(os.path.abspath(names_file))
    names_path = out.with_suffix(".names")
    batch.write(names_path, "".join(n + "\n" for n in class_names))
    return names_path


def _link_unsafe_names(by_split: dict[str, list[str]], link_dir: Path, out: Path) -> None:
    """Each listed image whose name darknet's own `echo NAME >> bad.list` would run (or that holds a control
    character) listed as a safe link with its label beside it (`safenames.link_unsafe`; docs/security.md)."""
    safe_dir = link_dir / "safe-names"
    if unsafe_reason(str(safe_dir)) is not None or not labels_found_by_all(str(safe_dir / "x.jpg")):
        safe_dir = tmp_links_dir() / f"safe-names-{hashlib.sha1(str(out).encode()).hexdigest()[:8]}"
    for key in ("train", "valid", "test"):
        by_split[key] = link_unsafe(by_split[key], safe_dir, with_label=True)


class _Batch:
    """Files written beside their targets (``.NAME.*.tmp``, fsynced) and renamed over them together by `commit`:
    a full or read-only disk while writing any of them leaves every old file as it was and no temp file (`abort`),
    never new lists beside an old obj.data. Renames need no space, so once all are written the commit holds."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, Path]] = []

    def write(self, path: Path, text: str) -> None:
        self.pending.append((write_beside(path, text.encode("utf-8")), path))

    def commit(self) -> None:
        for tmp, path in self.pending:
            os.replace(tmp, path)
        self.pending = []

    def abort(self) -> None:
        for tmp, _path in self.pending:
            remove_if_exists(tmp)
        self.pending = []


def _space_free_cached(path: str, link_dir: Path, links: list[Path], cache: dict[str, str]) -> str:
    folder, name = os.path.split(path)
    mapped = cache.get(folder)
    if mapped is None:
        mapped = cache[folder] = str(space_free(Path(folder), link_dir, links))
    return os.path.join(mapped, name)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())
