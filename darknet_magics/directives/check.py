"""`%yolo check`: the dataset and cfg read for the classic mistakes before training."""
from __future__ import annotations

from ..checks import check, format_report
from ..errors import StepError
from ..language import Pos, Spec, Step
from ..session import Context, Done

SPEC = Spec("check", "yolo", "Check a dataset and cfg before training: files, image lists, labels, filters/classes, sizes.",
            positionals=(Pos("DATA", "obj.data"), Pos("CFG", ".cfg", False),
                         Pos("WEIGHTS", "weights to check against the cfg", False)),
            example="%yolo check obj.data yolo-obj.cfg", order=230)


def _paths(step: Step, ctx: Context):
    get = step.args.get
    return (ctx.path(get("DATA")), ctx.path(get("CFG")) if get("CFG") else None,
            ctx.path(get("WEIGHTS")) if get("WEIGHTS") else None)


def run(step: Step, ctx: Context) -> Done:
    data, cfg, weights = _paths(step, ctx)
    problems = check(data, cfg, weights=weights)
    ctx.reporter.info(format_report(problems))
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        raise StepError(f"check found {len(errors)} error(s)", fix="fix them before training (each line says how)")
    warnings = sum(1 for p in problems if p.severity == "warning")
    return Done(f"no errors, {warnings} warning(s)", problems)


def preview(step: Step, ctx: Context) -> list[str]:
    data, cfg, weights = _paths(step, ctx)
    return [f"check {data}" + (f", {cfg}" if cfg else "") + (f" and {weights}" if weights else "")
            + ": the lists, every label file, the cfg's heads (reads files, writes nothing)"]
