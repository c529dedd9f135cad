"""Darknet `.cfg` files: a parser that keeps comments and order, `make_cfg`, and a weights-file check.

Everything here but `resolve_template` and `write_cfg` is pure (text in, text out). Edits touch only the lines
they change, so a generated cfg diffs cleanly against its template and every edit is listed in `changes`.

Darknet's own reader (``read_cfg`` in ``parser.c``) strips *all* whitespace from a line, skips lines starting with
``#`` or ``;``, starts a section on ``[``, and otherwise splits ``key=value`` at the first ``=``. We read the
same way, so what we see is what darknet sees.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from ..errors import DarknetMagicsError
from ..fileio import atomic_write_text  # noqa: F401  (re-exported: cfg.atomic_write_text)
from ..untrusted import number, read_text, writing


__all__ = ["Option", "Section", "Cfg", "TEMPLATE_NAMES", "HEAD_KEYS", "HEAD_SECTIONS", "DEFAULT_TEMPLATE_DIR",
           "resolve_template", "make_cfg", "make_cfg_changes", "default_max_batches", "write_cfg", "CfgResult",
           "head_filters", "set_anchors_text", "atomic_write_text"]


DEFAULT_TEMPLATE_DIR = Path("/usr/share/darknet/cfg")


# Names `%yolo cfg` knows; each is looked up as NAME.cfg (AlexeyAB's clone also ships the -custom ones).
TEMPLATE_NAMES = ("yolov3", "yolov3-tiny", "yolov4", "yolov4-tiny",
                  "yolov3-custom", "yolov3-tiny-custom", "yolov4-custom", "yolov4-tiny-custom")


# Detection heads: sections whose `classes` must agree with the `filters` of the convolution before them.
HEAD_SECTIONS = ("yolo", "Gaussian_yolo", "region")


# Keys that belong to each detection head rather than to [net] (AlexeyAB and pjreddie spellings).
HEAD_KEYS = frozenset({
    "random", "ignore_thresh", "truth_thresh", "iou_thresh", "iou_loss", "iou_normalizer", "cls_normalizer",
    "obj_normalizer", "jitter", "scale_x_y", "beta_nms", "nms_kind", "max_delta", "counters_per_class",
    "label_smooth_eps", "resize", "new_coords", "objectness_smooth", "focal_loss", "uc_normalizer",
    "delta_normalizer", "track_history_size", "embedding_layer", "show_details",
})


_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass
class Option:
    """One ``key=value`` line: `line` is its 1-based line number in the current text."""

    key: str
    value: str
    line: int


@dataclass
class Section:
    """One ``[name]`` block. `index` counts sections from 0; darknet's layer number is ``index - 1``."""

    name: str
    line: int
    index: int
    options: list[Option] = field(default_factory=list)

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The value darknet would use (the first occurrence), or `default`."""
        for opt in self.options:
            if opt.key == key:
                return opt.value
        return default

    def option(self, key: str) -> Optional[Option]:
        """The first `Option` with this key, or None."""
        for opt in self.options:
            if opt.key == key:
                return opt
        return None

    def get_int(self, key: str, default: int) -> int:
        """Like darknet's ``option_find_int``: `default` when absent; error when not a number darknet's int holds
        (nan, inf, 1e999 and 99999999999 included)."""
        value = self.get(key)
        if value is None or value == "":
            return default
        return self._int(key, value, value, f"write a whole number, e.g. {key}={default}")

    def get_ints(self, key: str) -> list[int]:
        """A comma-separated list of ints (``mask = 3,4,5``); empty when absent."""
        value = self.get(key)
        if not value:
            return []
        fix = f"write {key} as whole numbers separated by commas"
        return [self._int(key, v, value, fix) for v in value.split(",") if v != ""]

    def _int(self, key: str, text: str, value: str, fix: str) -> int:
        opt = self.option(key)
        where = f"[{self.name}] line {opt.line if opt else self.line}"
        try:
            number = float(text) if "." in text or "e" in text.lower() else int(text)
            if "_" in text or not math.isfinite(number) or abs(number) >= 2 ** 31:
                raise ValueError
            return int(number)
        except (ValueError, OverflowError):
            raise DarknetMagicsError(f"{where}: {key}={value[:40]} is not a number darknet reads (a whole number "
                                     "under 2^31)", fix=fix) from None


def _parse_line(raw: str) -> tuple[str, Optional[str], Optional[str]]:
    """Classify a line as darknet does: ('section', name, None), ('option', key, value) or ('other', ...)."""
    stripped = "".join(raw.split())
    if not stripped or stripped[0] in "#;":
        return "other", None, None
    if stripped[0] == "[":
        return "section", stripped[1:].split("]", 1)[0], None
    if "=" not in stripped:
        # darknet prints "Config file error" and ignores it; we keep it as text.
        return "other", None, None
    key, value = stripped.split("=", 1)
    return "option", key, value


class Cfg:
    """A cfg as its lines, plus the sections darknet would read from them.

    `render()` gives the text back byte for byte; `set`/`insert` change single lines and re-index.
    `origin[i]` is the line number line i had in the parsed text (None for lines we added), so changes can name
    the template's line numbers.
    """

    def __init__(self, lines: list[str], newline: str = "\n", origin: Optional[list[Optional[int]]] = None) -> None:
        self.lines = lines
        self.newline = newline
        self.origin: list[Optional[int]] = origin if origin is not None else list(range(1, len(lines) + 1))
        self.sections: list[Section] = []
        self.changes: list[str] = []
        self._reindex()

    @classmethod
    def parse(cls, text: str) -> "Cfg":
        """Parse cfg text (any line endings)."""
        lines = text.splitlines(keepends=True)
        newline = "\r\n" if "\r\n" in text else "\n"
        return cls(lines, newline)

    def render(self) -> str:
        """The text, unchanged lines exactly as parsed."""
        return "".join(self.lines)

    def _reindex(self) -> None:
        self.sections = []
        current: Optional[Section] = None
        for i, raw in enumerate(self.lines):
            kind, a, b = _parse_line(raw)
            if kind == "section":
                current = Section(name=a or "", line=i + 1, index=len(self.sections))
                self.sections.append(current)
            elif kind == "option" and current is not None:
                current.options.append(Option(key=a or "", value=b or "", line=i + 1))

    # -- queries -------------------------------------------------------------------------------------------

    def find(self, *names: str) -> list[Section]:
        """Sections with any of these names, in file order."""
        return [s for s in self.sections if s.name in names]

    @property
    def net(self) -> Section:
        """The [net] (or [network]) section; error if the cfg has none."""
        if self.sections and self.sections[0].name in ("net", "network"):
            return self.sections[0]
        raise DarknetMagicsError("this cfg has no [net] section at the top",
                                 fix="start from a stock darknet cfg (e.g. yolov4-tiny)")

    @property
    def layers(self) -> list[Section]:
        """Every section after [net]: darknet's layers, layer i at position i."""
        return self.sections[1:] if self.sections and self.sections[0].name in ("net", "network") else []

    def get(self, section: Union[str, int, Section], key: str, default: Optional[str] = None) -> Optional[str]:
        """Value of `key` in a section given by name (the first such), index or object."""
        return self._section(section).get(key, default)

    def _section(self, section: Union[str, int, Section]) -> Section:
        if isinstance(section, Section):
            return self.sections[section.index]
        if isinstance(section, int):
            return self.sections[section]
        found = self.find(section)
        if not found:
            raise DarknetMagicsError(f"this cfg has no [{section}] section")
        return found[0]

    def where(self, line: int) -> str:
        """'line N' in the parsed text's numbering, or 'after line N' for a line we added."""
        idx = line - 1
        if 0 <= idx < len(self.origin) and self.origin[idx] is not None:
            return f"line {self.origin[idx]}"
        for j in range(idx - 1, -1, -1):
            if self.origin[j] is not None:
                return f"after line {self.origin[j]}"
        return "at the top"

    # -- edits ---------------------------------------------------------------------------------------------

    def set(self, section: Union[str, int, Section], key: str, value: Any) -> Optional[str]:
        """Set `key` in one section; returns the old value (None when the key was added).

        Every active occurrence is rewritten (darknet reads the first, a stale duplicate would confuse a reader);
        the line keeps its spacing style (``max_batches = 6000``). A missing key is added after the section's
        last option. The change is appended to `changes`.
        """
        sec = self._section(section)
        text = _format_value(value)
        old = sec.get(key)
        occurrences = [o for o in sec.options if o.key == key]
        if occurrences:
            if all(o.value == text for o in occurrences):
                return old
            for opt in occurrences:
                idx = opt.line - 1
                raw = self.lines[idx]
                body = raw.rstrip("\r\n")
                ending = raw[len(body):]
                m = re.match(r"^(\s*" + re.escape(key) + r"\s*=\s*)", body)
                # A key written with inner spaces (rare) is just rewritten plainly.
                prefix = m.group(1) if m else f"{key}="
                self.lines[idx] = prefix + text + ending
                self.changes.append(f"[{sec.name}] {self.where(opt.line)}: {key} {opt.value} -> {text}")
        else:
            self._insert(sec, f"{key}={text}")
            self._reindex()
            sec = self.sections[sec.index]
            self.changes.append(f"[{sec.name}] {self.where(sec.option(key).line)}: added {key}={text}")  # type: ignore[union-attr]
            return None
        self._reindex()
        return old

    def _insert(self, sec: Section, line_text: str) -> None:
        # After the last option (or the header): new keys stay inside the block, before its trailing blank lines.
        after = sec.options[-1].line if sec.options else sec.line
        idx = after  # 0-based position right after 1-based line `after`
        prev = self.lines[idx - 1]
        if not prev.endswith(("\n", "\r")):
            self.lines[idx - 1] = prev + self.newline
        self.lines.insert(idx, line_text + self.newline)
        self.origin.insert(idx, None)


def _format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, (list, tuple)):
        return ",".join(_format_value(v) for v in value)
    if isinstance(value, float):
        # darknet reads numbers with atof/atoi: 0.001 and 1e-05 both parse; 6000.0 must stay a float only where
        # a float is meant, so whole floats are written as ints.
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value).strip()


def resolve_template(name_or_path: Union[str, Path], search_dirs: Optional[Sequence[Path]] = None) -> Path:
    """Find a template cfg: an existing path as is, else NAME.cfg in `search_dirs` then /usr/share/darknet/cfg.

    Raises:
        DarknetMagicsError: neither a file nor a known name; the message lists the cfgs that do exist.
    """
    candidate = Path(str(name_or_path)).expanduser()
    if candidate.is_file():
        return candidate
    dirs = [Path(d) for d in (search_dirs or [])] + [DEFAULT_TEMPLATE_DIR]
    name = str(name_or_path)
    stem = name[:-4] if name.endswith(".cfg") else name
    # AlexeyAB names its custom cfgs both ways over the years (yolov4-tiny-custom, yolov4-tiny_custom).
    stems = [stem, stem.replace("-custom", "_custom"), stem.replace("_custom", "-custom")]
    if "/" not in name and os.sep not in name:
        for d in dirs:
            for s in dict.fromkeys(stems):
                path = d / f"{s}.cfg"
                if path.is_file():
                    return path
    available: list[str] = []
    for d in dirs:
        if d.is_dir():
            available.extend(sorted(p.stem for p in d.glob("yolo*.cfg")))
    available = list(dict.fromkeys(available))
    where = ", ".join(str(d) for d in dirs)
    fix = ("use one of: " + ", ".join(available)) if available else "build darknet first (its cfg/ has the templates) or give a path"
    raise DarknetMagicsError(f"no cfg template {name!r} (looked in {where})", fix=fix)


def default_max_batches(classes: int, dataset_size: Optional[int] = None) -> int:
    """AlexeyAB's rule: 2000 per class, at least 6000, and (with a dataset size) at least one per training image."""
    return max(2000 * classes, 6000, dataset_size or 0)


def head_filters(cfg: Cfg, head: Section, classes: int) -> int:
    """`filters` the convolution before `head` needs for `classes` classes."""
    if head.name == "region":
        coords = head.get_int("coords", 4)
        return (coords + 1 + classes) * head.get_int("num", 1)
    n_masks = len(head.get_ints("mask")) or head.get_int("num", 1)
    # Gaussian_yolo predicts 4 extra uncertainties per box.
    per_box = classes + (9 if head.name == "Gaussian_yolo" else 5)
    return per_box * n_masks


def _conv_before(cfg: Cfg, head: Section) -> Section:
    prev = cfg.sections[head.index - 1] if head.index > 0 else None
    if prev is None or prev.name not in ("convolutional", "conv"):
        raise DarknetMagicsError(
            f"[{head.name}] at line {head.line} does not follow a [convolutional] section",
            fix="the layer before each detection head must be the convolution that feeds it")
    return prev


def _as_int(key: str, value: Any, minimum: int = 1) -> int:
    try:
        number = int(value)
        if float(value) != number:
            raise ValueError
    except (TypeError, ValueError):
        raise DarknetMagicsError(f"{key}={value} is not a whole number", fix=f"write e.g. {key}=64") from None
    if number < minimum:
        raise DarknetMagicsError(f"{key}={number} must be at least {minimum}", fix=f"use {key}={max(minimum, 1)} or more")
    return number


def make_cfg(template_text: str, classes: int, **options: Any) -> str:
    """A training cfg for `classes` classes from a stock template (pure: text in, text out).

    Args:
        template_text: the template cfg's text.
        classes: number of classes (>= 1).
        **options: ``width``, ``height`` (multiples of 32), ``batch``, ``subdivisions``, ``max_batches`` (a number
            or ``'auto'`` with ``dataset_size=N``: ``max(2000*classes, 6000, N)``, AlexeyAB's full rule), ``epochs``
            (with ``dataset_size=N``: max_batches = epochs * N / batch, rounded up), ``steps``
            (default 80%,90% of max_batches), ``scales``, ``anchors``; per-head keys (`HEAD_KEYS`: ``random``,
            ``ignore_thresh``, ``iou_loss``...) go to every detection head; any other key sets [net].

    Raises:
        DarknetMagicsError: bad values (with the fix).
    """
    return make_cfg_changes(template_text, classes, **options)[0]


def make_cfg_changes(template_text: str, classes: int, **options: Any) -> tuple[str, list[str]]:
    """`make_cfg`, also returning the human-readable list of edits ("[yolo] line 177: classes 80 -> 1")."""
    classes = _as_int("classes", classes, 1)
    opts = _cfg_options(options)
    cfg = Cfg.parse(template_text)
    template_net = cfg.net  # read before any edit: the template's batch and subdivisions (no [net]: an error)
    if not cfg.find(*HEAD_SECTIONS):
        raise DarknetMagicsError("this cfg has no [yolo] or [region] section: it is not a detector",
                                 fix="start from yolov3, yolov3-tiny, yolov4 or yolov4-tiny")
    dataset_size = opts.pop("dataset_size", None)
    _set_size(cfg, opts)
    batch = _set_batch(cfg, template_net, opts)
    max_batches = _set_max_batches(cfg, opts, classes, dataset_size, batch)
    _set_lr_schedule(cfg, opts, max_batches)
    # Anchors before filters: changing their count changes the masks.
    anchors = opts.pop("anchors", None)
    if anchors is not None:
        _apply_anchors(cfg, _parse_anchors(anchors))
    _set_heads(cfg, opts, classes)
    return cfg.render(), cfg.changes


def _cfg_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options given (None: not given), each refused unless it can be written as one cfg line."""
    opts = {k: v for k, v in options.items() if v is not None}
    for key, value in opts.items():
        if not _KEY_RE.match(key):
            raise DarknetMagicsError(f"{key!r} is not a cfg key", fix="keys are letters, digits and '_' (e.g. learning_rate)")
        text = _format_value(value)
        if any(not ch.isprintable() for ch in text) or any(ch in text for ch in "=[#;"):
            raise DarknetMagicsError(f"{key}={text[:40]!r}: a cfg value is one line without = [ # ;",
                                     fix=f"write {key}=VALUE (a number, or numbers separated by commas)")
    return opts


def _set_size(cfg: Cfg, opts: dict[str, Any]) -> None:
    """width= and height= (popped from `opts`) into [net]: multiples of 32, as darknet's detectors downsample by
    32 (other sizes break the route/upsample shapes)."""
    for key in ("width", "height"):
        if key in opts:
            size = _as_int(key, opts.pop(key), 32)
            if size % 32:
                lo, hi = size // 32 * 32, (size // 32 + 1) * 32
                raise DarknetMagicsError(f"{key}={size} is not a multiple of 32",
                                         fix=f"use {key}={lo or hi} or {key}={hi}")
            cfg.set(cfg.net, key, size)


def _set_batch(cfg: Cfg, template_net: Section, opts: dict[str, Any]) -> int:
    """batch= and subdivisions= (popped from `opts`, else the template's) into [net]; the batch written."""
    # Batch: a stock cfg in "testing" mode (batch=1) trains one image at a time; default to the tutorials' 64/16.
    tmpl_batch = template_net.get_int("batch", 1)
    tmpl_subdiv = template_net.get_int("subdivisions", 1)
    testing_mode = tmpl_batch <= 1
    given_subdiv = "subdivisions" in opts
    batch = _as_int("batch", opts.pop("batch")) if "batch" in opts else (64 if testing_mode else tmpl_batch)
    subdiv = (_as_int("subdivisions", opts.pop("subdivisions")) if given_subdiv
              else (16 if testing_mode else tmpl_subdiv))
    if batch % subdiv:
        if given_subdiv:
            divisors = [d for d in range(1, batch + 1) if batch % d == 0]
            raise DarknetMagicsError(f"batch={batch} is not divisible by subdivisions={subdiv}",
                                     fix="use subdivisions=" + " or ".join(str(d) for d in divisors if d <= 64)[-40:])
        subdiv = max(d for d in range(1, subdiv + 1) if batch % d == 0)
    cfg.set(cfg.net, "batch", batch)
    cfg.set(cfg.net, "subdivisions", subdiv)
    return batch


def _set_max_batches(cfg: Cfg, opts: dict[str, Any], classes: int, dataset_size: Any, batch: int) -> int:
    """max_batches= or epochs= (popped from `opts`; else darknet's rule of thumb) into [net]; the number written."""
    max_batches = opts.pop("max_batches", None)
    epochs = opts.pop("epochs", None)
    if epochs is not None:
        max_batches = _epochs_to_batches(epochs, max_batches, dataset_size, batch)
    if max_batches is None or str(max_batches) == "auto":
        if str(max_batches) == "auto" and dataset_size is None:
            raise DarknetMagicsError("max_batches=auto needs the dataset size",
                                     fix="give dataset_size=N (the number of training images) or a number")
        max_batches = default_max_batches(classes, int(dataset_size) if dataset_size is not None else None)
    max_batches = _as_int("max_batches", max_batches)
    cfg.set(cfg.net, "max_batches", max_batches)
    if epochs is not None:  # darknet has no epochs: say what the number written means
        cfg.changes.append(f"[net] max_batches={max_batches} is {_as_int('epochs', epochs)} epochs: "
                           f"{epochs} x {dataset_size} training images / batch {batch} (darknet counts iterations)")
    return max_batches


def _set_lr_schedule(cfg: Cfg, opts: dict[str, Any], max_batches: int) -> None:
    """steps=, scales= (popped from `opts`, else at 80 % and 90 % of the run) and a burn_in the run gets past."""
    steps = opts.pop("steps", None)
    if steps is None:
        steps_list = [max(1, int(max_batches * 0.8)), max(1, int(max_batches * 0.9))]
    else:
        parts = steps if isinstance(steps, (list, tuple)) else str(steps).split(",")
        steps_list = [_as_int("steps", p) for p in parts if str(p).strip() != ""]
        if steps_list != sorted(steps_list):
            raise DarknetMagicsError(f"steps={_format_value(steps_list)} must increase", fix="write them in order")
    cfg.set(cfg.net, "steps", steps_list)
    scales = opts.pop("scales", None)
    if scales is not None:
        cfg.set(cfg.net, "scales", scales)
    else:
        # darknet reads as many scales as there are steps: keep the counts equal.
        old_scales = (cfg.net.get("scales") or "").split(",")
        if len([s for s in old_scales if s]) != len(steps_list):
            cfg.set(cfg.net, "scales", [".1"] * len(steps_list))
    if "burn_in" not in opts:
        burn_in = cfg.net.get_int("burn_in", 0)
        if burn_in >= max_batches:
            # A short run would otherwise never leave the warm-up and learn nothing.
            cfg.set(cfg.net, "burn_in", max(1, max_batches // 10))


def _set_heads(cfg: Cfg, opts: dict[str, Any], classes: int) -> None:
    """The remaining options (per-head keys into every head, the rest into [net]), then each head's classes and
    the filters of the convolution before it."""
    head_opts = {k: opts.pop(k) for k in list(opts) if k in HEAD_KEYS}
    for head in cfg.find(*HEAD_SECTIONS):
        for key, value in head_opts.items():
            cfg.set(head, key, value)
    for key, value in opts.items():
        cfg.set(cfg.net, key, value)
    for head in cfg.find(*HEAD_SECTIONS):
        cfg.set(head, "classes", classes)
        head = cfg.sections[head.index]
        conv = _conv_before(cfg, head)
        cfg.set(conv, "filters", head_filters(cfg, head, classes))


def _epochs_to_batches(epochs: Any, max_batches: Any, dataset_size: Any, batch: int) -> int:
    """The max_batches that `epochs` passes over `dataset_size` images make, at `batch` images an iteration."""
    epochs = _as_int("epochs", epochs)
    if max_batches is not None:
        raise DarknetMagicsError("epochs= and max_batches= both set the length of training",
                                 fix="keep one: darknet counts max_batches (iterations of batch images)")
    if dataset_size is None:
        raise DarknetMagicsError("darknet counts iterations (max_batches), not epochs: epochs= needs the number of "
                                 "training images", fix="add data=obj.data (its train list is counted), or give "
                                 "max_batches= (epochs x images / batch)")
    return max(1, -(-epochs * _as_int("dataset_size", dataset_size) // batch))


def _parse_anchors(anchors: Any) -> list[tuple[float, float]]:
    if isinstance(anchors, str):
        nums = [v for v in re.split(r"[,\s]+", anchors.strip()) if v]
    else:
        nums = []
        for a in anchors:
            nums.extend(a if isinstance(a, (list, tuple)) else [a])
    values = [number(v, "anchors", f"anchor value {i}", 0, 100_000) for i, v in enumerate(nums, 1)]
    if not values or len(values) % 2:
        raise DarknetMagicsError("anchors need an even count of numbers (width,height pairs)",
                                 fix="write anchors = w1,h1, w2,h2, ...")
    return [(values[i], values[i + 1]) for i in range(0, len(values), 2)]


def _apply_anchors(cfg: Cfg, anchors: list[tuple[float, float]]) -> None:
    heads = cfg.find(*HEAD_SECTIONS)
    text = ",  ".join(f"{_num(w)},{_num(h)}" for w, h in anchors)
    n = len(anchors)
    yolo_heads = [h for h in heads if h.name != "region"]
    old_num = heads[0].get_int("num", 1)
    redistribute = yolo_heads and n != old_num
    if redistribute and n % len(yolo_heads):
        raise DarknetMagicsError(f"{n} anchors do not split evenly over {len(yolo_heads)} [yolo] heads",
                                 fix=f"compute a multiple of {len(yolo_heads)} anchors (e.g. clusters={3 * len(yolo_heads)})")
    # Heads take anchors by size: the head whose mask holds the smallest anchors keeps the smallest ones.
    order = sorted(range(len(yolo_heads)), key=lambda i: min(yolo_heads[i].get_ints("mask") or [0]))
    per_head = n // len(yolo_heads) if yolo_heads else 0
    for head in heads:
        cfg.set(head, "anchors", text)
        cfg.set(head, "num", n)
    if redistribute:
        for rank, i in enumerate(order):
            head = cfg.sections[yolo_heads[i].index]
            cfg.set(head, "mask", ",".join(str(rank * per_head + j) for j in range(per_head)))


def _num(v: float) -> str:
    return str(int(v)) if float(v) == int(v) else f"{v:g}"


def set_anchors_text(cfg_text: str, anchors: Iterable[Any], classes: Optional[int] = None) -> str:
    """Write `anchors` (pairs or 'w,h, w,h') into every detection head; fix num, masks and filters to match."""
    cfg = Cfg.parse(cfg_text)
    _apply_anchors(cfg, _parse_anchors(anchors if isinstance(anchors, str) else list(anchors)))
    for head in cfg.find(*HEAD_SECTIONS):
        n_classes = classes if classes is not None else head.get_int("classes", 20)
        if classes is not None:
            cfg.set(head, "classes", classes)
        head = cfg.sections[head.index]
        cfg.set(_conv_before(cfg, head), "filters", head_filters(cfg, head, n_classes))
    return cfg.render()


@dataclass(frozen=True)
class CfgResult:
    """What `write_cfg` did."""

    path: Path
    template: Path
    changes: list[str]
    action: str = "written"


def write_cfg(template: Union[str, Path], out: Path, classes: int, options: Optional[dict[str, Any]] = None,
              search_dirs: Optional[Sequence[Path]] = None) -> CfgResult:
    """Resolve `template`, `make_cfg` it for `classes` with `options`, write it atomically to `out`."""
    path = resolve_template(template, search_dirs)
    text = read_text(path)  # broken UTF-8 is refused, not written back with replacement characters
    new_text, changes = make_cfg_changes(text, classes, **(options or {}))
    out = Path(out)
    with writing("the cfg", out):
        atomic_write_text(out, new_text)
    return CfgResult(path=out, template=path, changes=changes)
