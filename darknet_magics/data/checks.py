"""`%yolo check`: an obj.data, its image lists and labels, and a cfg (and weights) read for the classic mistakes.

Every finding is an `errors.Problem` with a stable code, the file and line it is about, and the fix. Codes:

=========================  ====================================================================================
missing-file               obj.data, cfg, a list, the names file or the weights file does not exist
data-missing-key           obj.data lacks train/names/backup/classes (darknet falls back to paths that do not exist)
path-with-space            a path in obj.data has whitespace (darknet deletes it and opens another path)
relative-path              a relative path in obj.data or a list (darknet resolves it from where it runs)
missing-backup             the backup folder does not exist (darknet trains, then fails to save the weights)
names-count-mismatch       obj.data classes= differs from the number of names
empty-list                 an image list has no entries
missing-images             list entries whose files do not exist (a few shown, the rest counted)
wrong-folder               missing list entries whose file names do exist in another folder we know
missing-labels             images without a label file: trained as negatives (info; warning when most are)
malformed-label            a label line that is not ``class x y w h``
class-out-of-range         a label's class id is not in 0..classes-1
coords-out-of-range        a label's x/y outside 0..1 or w/h outside (0, 1]
tiny-boxes                 boxes under min_box= px (`TINY_BOX_PX`) wide or high at the cfg's network size (or 416)
line-endings               CRLF (pjreddie keeps the \\r in every value and path) or CR-only (one long line for every
                           flavor) in obj.data, the cfg or a list
bom                        a UTF-8 byte order mark at the start of obj.data, the cfg or a list (darknet reads it as
                           part of the first key, section or path: obj.data's classes= is then ignored)
annotations-not-converted  images without .txt labels beside VOC .xml / COCO, LabelMe, CVAT or Open Images files
label-path-rewritten       a flavor's label-path rule (`labelpaths`) sends it where the label is not ("openimages/")
listed-twice               an image listed twice in one split
train-valid-overlap        an image in both train and valid
no-boxes                   no listed image has a box
mixed-formats              image folders with darknet labels beside folders with another tool's annotations
classes-mismatch           a [yolo]/[region] classes= differs from obj.data's classes
filters-mismatch           the convolution before a head has the wrong filters= for its classes and masks
size-not-multiple-of-32    width/height in [net] not a multiple of 32
batch-subdivisions         batch not divisible by subdivisions (or subdivisions > batch)
testing-batch              batch=1 in [net]: the cfg is in testing mode
steps-beyond-max-batches   a learning-rate step after max_batches never happens
mask-out-of-range          a [yolo] mask index has no anchor
anchors-count              anchors= does not hold num pairs
truncated-weights          the weights file ends inside a layer (see `cfg.check_weights`)
weights-size-mismatch      the weights file is longer than the cfg's weights
=========================  ====================================================================================

Speed: each image folder is listed once with `os.scandir` (no `os.path.exists` per image), and each label file
is read once; 100,000 images check in a few seconds.
"""
from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Sequence

from .cfg import Cfg
from .cfg_weights import check_weights
from ..errors import DarknetMagicsError, Problem
from ..untrusted import BadInput, decode, parse_names, read_text
from .textfiles import read_checked_text, read_head, text_file_problems
from .labels import MALFORMED_FIX, RANGE_FIX, out_of_range, parse_line
from .formats import folder_format, label_path  # label_path: re-exported (darknet's rule)
from .health import LabeledImage
from .listrules import label_path_problems, listing_problems, mixed_formats_problem, no_boxes_problem
from .objdata import DataEntry
from .objdata import read_data as read_data_file  # the one obj.data reader (darknet's rules)
from ..safenames import unsafe_reason
from .cfg_checks import check_cfg


__all__ = ["CheckResult", "check", "check_dataset", "check_cfg", "format_report", "label_path", "read_data_file",
           "text_file_problems", "TINY_BOX_PX"]


# Boxes narrower or lower than this at network size are "tiny": a few pixels carry no features after the first
# stride-2 layers, and k-means turns them into a 1,1 anchor.
TINY_BOX_PX = 3.0


@dataclass
class CheckResult:
    """Problems plus the counts a report shows (images, boxes, negatives...)."""

    problems: list[Problem] = field(default_factory=list)
    images: int = 0
    labels: int = 0
    boxes: int = 0
    negatives: int = 0
    missing_labels: int = 0
    classes: Optional[int] = None
    tiny_boxes: int = 0
    network: tuple[int, int] = (416, 416)
    min_box: float = TINY_BOX_PX  # boxes under this many px (wide or high) at `network` are "tiny"; 0: none
    names: list[str] = field(default_factory=list)  # the class names from obj.data's names file, when readable
    # One row per box (image, split, class, width_px, height_px at `network`), one with class None per image
    # without boxes: what `formats.boxes_frame` turns into the dataset summary's dataframe.
    box_rows: list[tuple[str, str, Optional[str], float, float]] = field(default_factory=list)
    labeled: list[LabeledImage] = field(default_factory=list)  # what darknet reads, per image: the health table's input

    @property
    def errors(self) -> list[Problem]:
        """Problems that should stop a training run."""
        return [p for p in self.problems if p.severity == "error"]


class _Examples:
    """Collects up to `limit` Problems per code and counts the rest into one summary Problem."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.shown: dict[str, list[Problem]] = defaultdict(list)
        self.extra: dict[str, int] = defaultdict(int)
        self.summary: dict[str, tuple[str, str, str, Optional[str]]] = {}

    def add(self, problem: Problem, summary: str, *, summary_file: Optional[str] = None) -> None:
        if len(self.shown[problem.code]) < self.limit:
            self.shown[problem.code].append(problem)
        else:
            self.extra[problem.code] += 1
            self.summary[problem.code] = (summary, problem.fix, problem.severity, summary_file)

    def problems(self) -> list[Problem]:
        out: list[Problem] = []
        for code, shown in self.shown.items():
            out.extend(shown)
            if self.extra.get(code):
                text, fix, severity, file = self.summary[code]
                out.append(Problem(code, f"... and {self.extra[code]:,} more: {text}", fix, severity, file))  # type: ignore[arg-type]
        return out


def check(data_path: Path, cfg_path: Optional[Path] = None, *, weights: Optional[Path] = None,
          max_examples: int = 5, flavor: str = "alexeyab", min_box: float = TINY_BOX_PX) -> list[Problem]:
    """Everything `%yolo check` looks at; an empty list means darknet will find what it needs."""
    return check_dataset(data_path, cfg_path, weights=weights, max_examples=max_examples, flavor=flavor,
                         min_box=min_box).problems


def check_dataset(data_path: Path, cfg_path: Optional[Path] = None, *, weights: Optional[Path] = None,
                  max_examples: int = 5, flavor: Optional[str] = None, min_box: float = TINY_BOX_PX) -> CheckResult:
    """`check`, also returning the counts (images, boxes, negatives...).

    Boxes under `min_box` pixels wide or high at the cfg's network size (416x416 without a cfg) are reported as
    ``tiny-boxes``; ``min_box=0`` reports none. `flavor` is the binary's (None: unknown, every flavor's
    label-path rule is then an error where it misses a label).
    """
    flavor_in_use, flavor = flavor, flavor or "alexeyab"
    result = CheckResult(min_box=min_box)
    problems = result.problems
    data_path = Path(data_path)
    data_file = str(data_path)
    classes: Optional[int] = None
    if cfg_path is not None and os.path.isfile(cfg_path):
        result.network = _network_size(Path(cfg_path).read_text(encoding="utf-8", errors="replace"))
    if not os.path.isfile(data_path):
        problems.append(Problem("missing-file", f"data file {data_path} not found", fix="write it with `%yolo data`",
                                file=data_file))
    else:
        problems.extend(text_file_problems(read_head(data_path), data_file, "obj.data", flavor))
        entries = read_data_file(read_checked_text(data_path, "obj.data", problems).replace("\r", "\n"))
        names, bad_names = _names(entries, data_path)
        problems.extend([bad_names] if bad_names else [])
        classes = _check_data_entries(entries, data_path, problems, None if bad_names else names)
        result.classes = classes
        result.names = names
        lists: dict[Path, str] = {}  # list file -> its split
        for key in ("train", "valid"):
            entry = entries.get(key)
            if entry is None or (key == "valid" and "train" in entries and entry.value == entries["train"].value):
                continue
            path = _resolve(entry.value, data_path)
            if os.path.isfile(path):  # os.path: False (not ValueError) for a path with a NUL byte
                lists.setdefault(path, key)
        _check_lists(lists, data_path, classes, result, max_examples, flavor, flavor_in_use)
    cfg_text: Optional[str] = None
    if cfg_path is not None:
        cfg_path = Path(cfg_path)
        if not os.path.isfile(cfg_path):
            problems.append(Problem("missing-file", f"cfg file {cfg_path} not found",
                                    fix="make one with `%yolo cfg TEMPLATE OUT classes=N`", file=str(cfg_path)))
        else:
            cfg_text = read_checked_text(cfg_path, "the cfg", problems)
            problems.extend(text_file_problems(read_head(cfg_path), str(cfg_path), "the cfg", flavor))
            problems.extend(check_cfg(cfg_text, classes, cfg_file=str(cfg_path)))
    if weights is not None:
        weights = Path(weights)
        if not os.path.isfile(weights):
            problems.append(Problem("missing-file", f"weights file {weights} not found",
                                    fix="fetch it with `weights NAME` or give the right path", file=str(weights)))
        elif cfg_text is not None:
            try:
                found = check_weights(cfg_text, weights)
            except DarknetMagicsError as err:
                found = Problem("weights-unchecked", f"weights not checked: {err.message}", severity="info",
                                file=str(weights))
            if found is not None:
                problems.append(found)
    return result


def _network_size(cfg_text: str) -> tuple[int, int]:
    try:
        net = Cfg.parse(cfg_text).net
        return net.get_int("width", 416) or 416, net.get_int("height", 416) or 416
    except (DarknetMagicsError, ValueError):
        return 416, 416


def _names(entries: dict[str, DataEntry], data_path: Path) -> tuple[list[str], Optional[Problem]]:
    """The class names of obj.data's names file as darknet counts them, or the problem that makes it unreadable
    (a missing file is reported as missing-file by `_check_data_entries`)."""
    entry = entries.get("names")
    path = _resolve(entry.value, data_path) if entry is not None else None
    if path is None or not os.path.isfile(path):
        return [], None
    try:
        return parse_names(read_text(path), str(path)), None
    except BadInput as err:
        return [], Problem("bad-names", err.detail, fix=err.fix or "", file=str(path), line=err.line)


def _resolve(value: str, data_path: Path) -> Path:
    # Relative paths are darknet's cwd's business; the obj.data's folder is our best guess at it.
    path = Path(value)
    return path if path.is_absolute() else data_path.parent / path


def _check_data_entries(entries: dict[str, DataEntry], data_path: Path, problems: list[Problem],
                        names: Optional[list[str]]) -> Optional[int]:
    data_file = str(data_path)
    classes: Optional[int] = None
    for key, default in (("classes", "20"), ("train", "data/train.list"), ("names", "data/names.list"),
                         ("backup", "/backup/")):
        if key not in entries:
            problems.append(Problem("data-missing-key", f"no {key}= line: darknet would use {default}",
                                    fix=f"add `{key} = ...` (or rewrite the file with `%yolo data`)", file=data_file))
    if "classes" in entries:
        try:
            classes = int(entries["classes"].value)
        except ValueError:
            problems.append(Problem("data-missing-key", f"classes={entries['classes'].value} is not a number",
                                    fix="write classes = N", file=data_file, line=entries["classes"].line))
    for entry in entries.values():
        if entry.key not in ("train", "valid", "names", "backup", "eval", "results", "map", "labels"):
            continue
        if any(ch.isspace() for ch in entry.raw_value):
            problems.append(Problem(
                "path-with-space", f"{entry.key} = {entry.raw_value}: darknet removes the spaces and opens {entry.value}",
                fix="rewrite obj.data with `%yolo data` (it links space-free paths), or move the files to a folder "
                    "without spaces", file=data_file, line=entry.line))
            continue
        if not os.path.isabs(entry.value):
            problems.append(Problem(
                "relative-path", f"{entry.key} = {entry.value} is relative: darknet resolves it from the folder it runs in",
                fix="use an absolute path", severity="warning", file=data_file, line=entry.line))
        path = _resolve(entry.value, data_path)
        if entry.key == "backup":
            if not os.path.isdir(path):
                problems.append(Problem("missing-backup", f"backup folder {entry.value} does not exist: darknet "
                                        "trains, then cannot save the weights",
                                        fix=f"create it (mkdir -p {entry.value}) or let `%yolo data` do it",
                                        file=data_file, line=entry.line))
        elif entry.key in ("train", "valid", "names") and not os.path.isfile(path):
            problems.append(Problem("missing-file", f"{entry.key} = {entry.value}: no such file",
                                    fix="write the lists with `%yolo data OUT images=DIR`, or correct the path",
                                    file=data_file, line=entry.line))
    entry = entries.get("names")
    if entry is not None and names is not None and classes is not None and not any(
            ch.isspace() for ch in entry.raw_value) and os.path.isfile(_resolve(entry.value, data_path)):
        count = len(names)
        if count != classes:
            problems.append(Problem("names-count-mismatch",
                                    f"classes = {classes} but {entry.value} has {count} names",
                                    fix=f"make them agree (classes = {count}, or {classes} names, one a line)",
                                    file=data_file, line=entries["classes"].line))
    return classes


# (list file, line number, path as written, absolute path): one entry of an image list.
_ListEntry = tuple[str, int, str, str]


def _check_lists(lists: dict[Path, str], data_path: Path, classes: Optional[int], result: CheckResult,
                 max_examples: int, flavor: str, flavor_in_use: Optional[str] = None) -> None:
    """The lists' entries, the images they name and the labels darknet will read for them, into `result`."""
    problems = result.problems
    examples = _Examples(max_examples)
    entries: list[_ListEntry] = []
    for lst in lists:
        entries.extend(_read_list(lst, flavor, problems))
    names_in = _FolderNames()
    split_of = {str(lst): split for lst, split in lists.items()}
    present, missing = _find_images(entries, split_of, names_in)
    result.images = len(present)
    if missing:
        _report_missing(missing, list(lists), data_path, names_in, examples)
    problems.extend(listing_problems(entries, split_of))
    problems.extend(label_path_problems((image for image, _ in present), names_in, flavor_in_use))
    labels = _read_labels(present, classes, result, names_in, examples, flavor)
    labelled = labels.labelled
    extra = [no_boxes_problem(len(present), result.boxes, str(data_path)),
             mixed_formats_problem(list(labelled)[:200], lambda f: _unconverted_annotations(os.path.join(f, "x")),
                                   labelled.__getitem__),
             _tiny_boxes_problem(result, labels.tiny),
             _missing_labels_problem(labels.missing, len(present), labels.first_missing, flavor)]
    problems.extend(p for p in extra if p is not None)
    problems.extend(examples.problems())


def _read_list(lst: Path, flavor: str, problems: list[Problem]) -> list[_ListEntry]:
    """The entries of one image list, in order; what is wrong with the file or its entries as a whole into
    `problems`."""
    problems.extend(text_file_problems(read_head(lst), str(lst), "the image list", flavor))
    text = read_checked_text(lst, "the image list", problems).replace("\r\n", "\n").replace("\r", "\n")
    entries: list[_ListEntry] = []
    for i, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        absolute = line if os.path.isabs(line) else os.path.join(os.path.dirname(os.path.abspath(lst)), line)
        entries.append((str(lst), i, line, absolute))
    problems.extend(_list_problems(lst, entries))
    return entries


def _list_problems(lst: Path, entries: list[_ListEntry]) -> list[Problem]:
    """unsafe-name, empty-list and relative-path for one list's entries (pure)."""
    problems: list[Problem] = []
    bad = [e for e in entries if unsafe_reason(e[3])]
    if bad:  # darknet would echo such a path through a shell: refused even with `force` (docs/security.md)
        problems.append(Problem("unsafe-name", f"{lst} names {len(bad)} image(s) that darknet may not get: "
                                f"{bad[0][2]!r}: {unsafe_reason(bad[0][3])}",
                                fix="rename them, or write the list with `%yolo data OUT images=DIR` (it links "
                                    "such images under safe names)", file=str(lst), line=bad[0][1]))
    if not entries:
        problems.append(Problem("empty-list", f"{lst} lists no images",
                                fix="write it with `%yolo data OUT images=DIR`", file=str(lst)))
    relative = next((e for e in entries if not os.path.isabs(e[2])), None)
    if relative is not None:
        problems.append(Problem("relative-path",
                                f"{lst} has relative paths ({relative[2]}): darknet opens them from where it runs",
                                fix="write absolute paths (`%yolo data OUT images=DIR` does)", severity="warning",
                                file=str(lst), line=relative[1]))
    return problems


class _FolderNames:
    """The names in a folder, each folder listed once (a folder that does not exist lists as empty).

    One `os.scandir` per folder instead of one `os.path.exists` per image: 100,000 images check in seconds.
    """

    def __init__(self) -> None:
        self._listings: dict[str, frozenset[str]] = {}

    def __call__(self, folder: str) -> frozenset[str]:
        found = self._listings.get(folder)
        if found is None:
            try:
                with os.scandir(folder) as it:
                    found = frozenset(e.name for e in it)
            except (OSError, ValueError):  # ValueError: a listed path with a NUL byte
                found = frozenset()
            self._listings[folder] = found
        return found


def _find_images(entries: list[_ListEntry], split_of: dict[str, str], names_in: _FolderNames
                 ) -> tuple[list[tuple[str, str]], list[_ListEntry]]:
    """The listed images that exist, each once with its split, and the entries whose image does not."""
    seen: set[str] = set()
    present: list[tuple[str, str]] = []  # (image, its split)
    missing: list[_ListEntry] = []
    for entry in entries:
        absolute = entry[3]
        if absolute in seen:
            continue
        seen.add(absolute)
        folder, name = os.path.split(absolute)
        if name in names_in(folder):
            present.append((absolute, split_of[entry[0]]))
        else:
            missing.append(entry)
    return present, missing


@dataclass
class _LabelsRead:
    """What reading the labels found beyond `CheckResult`'s counts: what the list-wide findings need."""

    missing: int = 0  # images without a label darknet can read
    first_missing: tuple[str, str] | None = None  # (image, the label path darknet looks at)
    tiny: list[str] = field(default_factory=list)  # up to 3 examples of tiny boxes
    labelled: dict[str, bool] = field(default_factory=dict)  # image folder -> darknet finds a label for one image


def _read_labels(present: list[tuple[str, str]], classes: int | None, result: CheckResult, names_in: _FolderNames,
                 examples: _Examples, flavor: str) -> _LabelsRead:
    """Each present image's label where darknet will look, read once: counts, rows and health into `result`,
    per-line findings into `examples`."""
    found_labels = _LabelsRead()
    rows, names = result.box_rows, result.names
    nan = float("nan")
    nw, nh = result.network
    for image, split in present:
        lpath = label_path(image, flavor)
        folder, name = os.path.split(lpath)
        found_label = name in names_in(folder) and lpath != image
        image_dir = os.path.dirname(image)
        found_labels.labelled[image_dir] = found_labels.labelled.get(image_dir, False) or found_label
        data = _read_label(lpath) if found_label else None
        if data is None:
            found_labels.missing += 1
            if not found_label and found_labels.first_missing is None:
                found_labels.first_missing = (image, lpath)
            rows.append((image, split, None, nan, nan))
            result.labeled.append(LabeledImage(image, split, ()))
            continue
        result.labels += 1
        found: list[tuple[int, float, float, float, float]] = []
        boxes = _check_label_text(data, lpath, classes, examples, result, found_labels.tiny, found)
        result.labeled.append(LabeledImage(image, split, tuple(found)))
        result.boxes += boxes
        if boxes == 0:
            result.negatives += 1
            rows.append((image, split, None, nan, nan))
        rows.extend((image, split, names[cls] if 0 <= cls < len(names) else str(cls), w * nw, h * nh)
                    for cls, _x, _y, w, h in found)
    result.missing_labels = found_labels.missing
    result.negatives += found_labels.missing
    return found_labels


def _read_label(lpath: str) -> bytes | None:
    """A label file's bytes; None when it is listed in its folder but cannot be read (darknet trains a negative)."""
    try:
        with open(lpath, "rb") as f:
            return f.read()
    except OSError:
        return None


def _tiny_boxes_problem(result: CheckResult, tiny: list[str]) -> Problem | None:
    if not result.tiny_boxes:
        return None
    nw, nh = result.network
    return Problem(
        "tiny-boxes", f"{result.tiny_boxes:,} boxes are under {result.min_box:g} px wide or high at the network size "
        f"{nw}x{nh} (e.g. {'; '.join(tiny)}): too small to learn, and they pull anchors towards 1,1",
        fix=f"drop them when writing the labels: `%yolo data OUT images=DIR min_box={result.min_box:g}` (or raise "
            "width/height in the cfg)", severity="warning", file=tiny[0].rsplit(":", 2)[0] if tiny else None)


def _missing_labels_problem(missing: int, images: int, first_missing: tuple[str, str] | None,
                            flavor: str) -> Problem | None:
    """annotations-not-converted when another tool's annotations lie beside the first image without a label,
    else missing-labels (a warning when most images have none: a few negatives are deliberate, most are not)."""
    if not missing or first_missing is None:
        return None
    image, lpath = first_missing
    unconverted = _unconverted_annotations(image)
    if unconverted is not None:
        return Problem(
            "annotations-not-converted", f"{missing:,} of {images:,} images have no darknet .txt label "
            f"(e.g. {lpath}), but {os.path.dirname(image)} holds {unconverted} annotations: darknet reads only .txt",
            fix=f"convert them: `%yolo data OUT images={os.path.dirname(image)}` reads {unconverted} and writes the "
                "labels", file=lpath)
    most = missing * 2 > images
    return Problem(
        "missing-labels",
        f"{missing:,} of {images:,} images have no label file (e.g. {lpath} for {image}): darknet "
        "trains them as negatives (nothing to detect)",
        fix="put a CLASS X Y W H .txt beside each image with the same name (an empty .txt marks a deliberate "
            "negative)" + ("; the pjreddie build looks in a 'labels' folder instead of 'images'" if flavor == "pjreddie" else ""),
        severity="warning" if most else "info", file=lpath)


def _report_missing(missing: list[tuple[str, int, str, str]], lists: Sequence[Path], data_path: Path,
                    names_in, examples: _Examples) -> None:
    # A list written on another machine: the files are here, under another folder. Look beside the lists, the
    # obj.data, and in the folders the present entries live in.
    candidates = {os.path.dirname(os.path.abspath(p)) for p in lists} | {str(data_path.parent.absolute())}
    extra = set()
    for c in list(candidates):
        try:
            with os.scandir(c) as it:
                extra.update(e.path for e in it if e.is_dir())
        except OSError:
            pass
    candidates |= extra
    wrong_folder: dict[str, int] = defaultdict(int)
    for list_file, line, text, absolute in missing:
        name = os.path.basename(absolute)
        found_in = next((c for c in sorted(candidates) if name in names_in(c)), None)
        if found_in is not None:
            wrong_folder[found_in] += 1
            examples.add(Problem(
                "wrong-folder", f"{text} does not exist, but {os.path.join(found_in, name)} does",
                fix=f"the list points at another machine's folder: rewrite it (`%yolo data OUT images={found_in}`)",
                file=list_file, line=line), "list entries found in another folder", summary_file=list_file)
        else:
            examples.add(Problem(
                "missing-images", f"{text}: no such image",
                fix="stage the dataset first, or rewrite the list from the images you have (`%yolo data OUT images=DIR`)",
                file=list_file, line=line), "list entries with no image", summary_file=list_file)


def _unconverted_annotations(image: str) -> Optional[str]:
    """The annotation format found beside an image (or one folder up), when it is not darknet's own."""

    folder = Path(os.path.dirname(image))
    for f in (folder, folder.parent):
        kind = folder_format(f)
        if kind not in (None, "yolo", "ultralytics"):
            return {"voc": "Pascal VOC .xml", "coco": "COCO json", "labelme": "LabelMe json",
                    "cvat": "CVAT xml", "openimages": "Open Images csv"}[kind]
    return None


def _check_label_text(data: bytes, lpath: str, classes: Optional[int], examples: _Examples,
                      result: Optional[CheckResult] = None, tiny: Optional[list[str]] = None,
                      found: Optional[list[tuple[int, float, float, float, float]]] = None) -> int:
    """Findings of one label file into `examples`; its box count. `found` gets (class, x, y, w, h) of every box.

    Lines are read by `labels.parse_line`, the reader `%yolo data` uses too.
    """
    boxes = 0
    try:
        text = decode(data, lpath)
    except BadInput as err:
        examples.add(Problem("malformed-label", err.detail, fix=err.fix or "", file=lpath, line=err.line),
                     "malformed label lines")
        return 0
    for i, raw in enumerate(text.split("\n"), 1):
        try:
            box = parse_line(raw, "")
        except BadInput as err:
            examples.add(Problem("malformed-label", err.detail, fix=err.fix or MALFORMED_FIX, file=lpath, line=i),
                         "malformed label lines")
            continue
        if box is None:
            continue
        cls, x, y, w, h = box
        boxes += 1
        if found is not None:
            found.append((cls, x, y, w, h))
        if cls < 0 or (classes is not None and cls >= classes):
            examples.add(Problem("class-out-of-range", f"class {cls} but classes = {classes} (ids 0..{(classes or 1) - 1})",
                                 fix="fix the label, or raise classes (in obj.data, the names file and the cfg)",
                                 file=lpath, line=i), "labels with class ids out of range")
        if result is not None and 0 < w and 0 < h and (w * result.network[0] < result.min_box
                                                        or h * result.network[1] < result.min_box):
            result.tiny_boxes += 1
            if tiny is not None and len(tiny) < 3:
                tiny.append(f"{lpath}:{i} is {w * result.network[0]:.1f}x{h * result.network[1]:.1f} px")
        if out_of_range(box):
            examples.add(Problem("coords-out-of-range", f"x={x:g} y={y:g} w={w:g} h={h:g} not in 0..1",
                                 fix=RANGE_FIX, file=lpath, line=i), "labels with coordinates outside 0..1")
    return boxes


def format_report(problems: Iterable[Problem], result: Optional[CheckResult] = None) -> str:
    """A plain-text report: errors, then warnings, then notes; a one-line verdict at the end."""
    problems = list(problems)
    order = {"error": 0, "warning": 1, "info": 2}
    lines = []
    if result is not None:
        lines.append(f"{result.images:,} images, {result.labels:,} label files, {result.boxes:,} boxes, "
                     f"{result.negatives:,} negatives")
    for p in sorted(problems, key=lambda p: order.get(p.severity, 3)):
        lines.append(p.describe())
    n_err = sum(p.severity == "error" for p in problems)
    n_warn = sum(p.severity == "warning" for p in problems)
    if not problems:
        lines.append("no problems found")
    else:
        lines.append(f"{n_err} error{'s' * (n_err != 1)}, {n_warn} warning{'s' * (n_warn != 1)}")
    return "\n".join(lines)
