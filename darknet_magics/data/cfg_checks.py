"""A cfg checked before darknet reads it: the [net] sizes, the heads' filters against classes=, anchors, keys darknet
does not read, line endings the flavor cannot read.
"""
from __future__ import annotations

from typing import Optional

from .cfg import HEAD_SECTIONS, Cfg, Section, head_filters
from .cfg_keys import cfg_key_problems
from ..errors import DarknetMagicsError, Problem


def check_cfg(cfg_text: str, classes: Optional[int] = None, *, cfg_file: Optional[str] = None) -> list[Problem]:
    """The cfg findings alone (pure): classes/filters per head, size, batch, schedule, masks and anchors."""
    problems: list[Problem] = []
    try:
        cfg = Cfg.parse(cfg_text)
        net = cfg.net
    except DarknetMagicsError as err:
        return [Problem("cfg-invalid", err.message, fix=err.fix or "", file=cfg_file)]
    # The checks append as they go: a value darknet cannot read ends them with cfg-invalid, after what was found.
    try:
        _net_problems(net, cfg_file, problems)
        for head in cfg.find(*HEAD_SECTIONS):
            _head_problems(cfg, head, classes, cfg_file, problems)
        problems.extend(cfg_key_problems(cfg, cfg_file))  # widht=64: darknet ignores it in silence
    except DarknetMagicsError as err:
        problems.append(Problem("cfg-invalid", err.message, fix=err.fix or "", file=cfg_file))
    return problems


def _net_problems(net: Section, cfg_file: str | None, problems: list[Problem]) -> None:
    """[net]'s size, batch and schedule findings, appended to `problems`."""
    for key in ("width", "height"):
        value = net.get_int(key, 0)
        if value % 32:
            opt = net.option(key)
            problems.append(Problem("size-not-multiple-of-32", f"{key}={value} is not a multiple of 32",
                                    fix=f"use {key}={max(32, round(value / 32) * 32)}", file=cfg_file,
                                    line=opt.line if opt else net.line))
    batch, subdiv = net.get_int("batch", 1), net.get_int("subdivisions", 1)
    if subdiv < 1 or batch % subdiv:
        opt = net.option("subdivisions") or net.option("batch")
        problems.append(Problem("batch-subdivisions", f"batch={batch} is not divisible by subdivisions={subdiv}",
                                fix="use a subdivisions that divides batch (e.g. batch=64 subdivisions=16)",
                                file=cfg_file, line=opt.line if opt else net.line))
    if batch == 1:
        opt = net.option("batch")
        problems.append(Problem("testing-batch", "batch=1: this cfg is in testing mode, training would take one "
                                "image per step", fix="set batch=64 subdivisions=16 (make the cfg with `%yolo cfg`)",
                                severity="warning", file=cfg_file, line=opt.line if opt else net.line))
    max_batches = net.get_int("max_batches", 0)
    steps = net.get_ints("steps")
    if max_batches and any(s > max_batches for s in steps):
        problems.append(Problem("steps-beyond-max-batches",
                                f"steps={net.get('steps')} go past max_batches={max_batches}: the learning rate never drops",
                                fix=f"use steps={int(max_batches * .8)},{int(max_batches * .9)}", severity="warning",
                                file=cfg_file, line=net.option("steps").line))  # type: ignore[union-attr]


def _head_problems(cfg: Cfg, head: Section, classes: int | None, cfg_file: str | None,
                   problems: list[Problem]) -> None:
    """One head's classes, anchors, mask and filters findings, appended to `problems`."""
    head_classes = head.get_int("classes", 20)
    opt = head.option("classes")
    if classes is not None and head_classes != classes:
        problems.append(Problem("classes-mismatch", f"[{head.name}] classes={head_classes} but obj.data has classes={classes}",
                                fix=f"set classes={classes} in every [{head.name}] (and filters to match), "
                                    "or remake the cfg with `%yolo cfg`",
                                file=cfg_file, line=opt.line if opt else head.line))
    num = head.get_int("num", 1)
    anchors = [a for a in (head.get("anchors") or "").split(",") if a]
    if anchors and len(anchors) != 2 * num:
        problems.append(Problem("anchors-count", f"[{head.name}] has {len(anchors) // 2} anchor pairs but num={num}",
                                fix=f"set num={len(anchors) // 2}", file=cfg_file,
                                line=(head.option("num") or head.option("anchors") or head).line))  # type: ignore[union-attr]
    bad_mask = [m for m in head.get_ints("mask") if not 0 <= m < num]
    if bad_mask:
        problems.append(Problem("mask-out-of-range", f"[{head.name}] mask uses {bad_mask} but num={num}",
                                fix=f"mask indexes go 0..{num - 1}", file=cfg_file,
                                line=head.option("mask").line))  # type: ignore[union-attr]
    found = _filters_problem(cfg, head, head_classes, num, cfg_file)
    if found is not None:
        problems.append(found)


def _filters_problem(cfg: Cfg, head: Section, head_classes: int, num: int, cfg_file: str | None) -> Problem | None:
    """filters-mismatch for the convolution right before a head (none when no convolution is there)."""
    prev = cfg.sections[head.index - 1] if head.index > 0 else None
    if prev is None or prev.name not in ("convolutional", "conv"):
        return None
    # darknet checks filters against the head's own classes (an assertion that aborts it).
    want = head_filters(cfg, head, head_classes)
    have = prev.get_int("filters", 1)
    if have == want:
        return None
    fopt = prev.option("filters")
    n_masks = len(head.get_ints("mask")) or num
    formula = (f"(classes + 5) * {n_masks}" if head.name == "yolo" else
               f"(classes + 9) * {n_masks}" if head.name == "Gaussian_yolo" else f"(classes + 5) * num={num}")
    return Problem("filters-mismatch",
                   f"filters={have} before the [{head.name}] at line {head.line} (classes={head_classes}); "
                   f"it needs {formula} = {want}",
                   fix=f"set filters={want} (or remake the cfg with `%yolo cfg`)", file=cfg_file,
                   line=fopt.line if fopt else prev.line)
