"""`%yolo check`: the dataset and cfg read for the classic mistakes before training."""
from __future__ import annotations

from typing import Optional

from ..data.checks import TINY_BOX_PX, check_dataset, format_report
from ..errors import StepError
from ..data.formats import boxes_frame
from ..data.health import health
from ..setup.binary import darknet_flavor
from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done
from ._dataset import show_and_bind


def _check(step: Step) -> None:
    raw = step.options.get("min_box")
    if raw is not None and raw.startswith("-"):
        raise step.error(f"min_box={raw} must be 0 or more", f"write e.g. min_box={TINY_BOX_PX:g} (0 reports none)")


SPEC = Spec("check", "yolo", "Check a dataset and cfg before training: files, image lists, labels, filters/classes, sizes.",
            positionals=(Pos("DATA", "obj.data"), Pos("CFG", ".cfg", False),
                         Pos("WEIGHTS", "weights to check against the cfg", False)),
            options=(Opt("min_box", "float", "report boxes under this many pixels wide or high at the cfg's network "
                         "size (416x416 without a cfg); 0 reports none", default=TINY_BOX_PX),),
            allows_as=True,
            notes="Shows the dataset darknet will read (images and boxes per class, boxes per image, box sizes at the "
                  "network size) and binds it as a dataframe, one row per box, to `as NAME` (default yolo_dataset).",
            example="%yolo check obj.data yolo-obj.cfg min_box=4", check=_check, order=230)


def _paths(step: Step, ctx: Context):
    get = step.args.get
    return (ctx.path(get("DATA")), ctx.path(get("CFG")) if get("CFG") else None,
            ctx.path(get("WEIGHTS")) if get("WEIGHTS") else None)


def _flavor(ctx: Context) -> Optional[str]:
    """The session's darknet flavor when a binary is set (its label-path rule is then the one that errs)."""
    binary = ctx.session.binary
    return darknet_flavor(binary) if binary is not None else None


def run(step: Step, ctx: Context) -> Done:
    data, cfg, weights = _paths(step, ctx)
    result = check_dataset(data, cfg, weights=weights, min_box=step.get("min_box"), flavor=_flavor(ctx))
    problems = result.problems
    ctx.reporter.info(format_report(problems))
    name = (show_and_bind(step, ctx, boxes_frame(result.box_rows), result.network,
                          health(result.labeled, result.names or [str(i) for i in range(result.classes or 0)]))
            if result.images else None)
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise StepError(f"check found {len(errors)} error(s)", fix="fix them before training (each line says how)")
    warnings = sum(1 for p in problems if p.severity == "warning")
    return Done(f"no errors, {warnings} warning(s)" + (f"; the boxes in `{name}`" if name else ""), problems)


def preview(step: Step, ctx: Context) -> list[str]:
    data, cfg, weights = _paths(step, ctx)
    return [f"check {data}" + (f", {cfg}" if cfg else "") + (f" and {weights}" if weights else "")
            + f": the lists, every label file (boxes under {step.get('min_box'):g} px reported), the cfg's heads "
            "(reads files, writes nothing)"]
