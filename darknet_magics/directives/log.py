"""`%yolo log`: an existing darknet log parsed into the same run object and chart as a live run."""
from __future__ import annotations

from ..language import Pos, Spec, Step
from ..session import Context, Done
from ..train.runs import load_log
from ._runs import keep_run, live_view

SPEC = Spec("log", "yolo", "Parse an existing darknet log into the same run object and chart.",
            positionals=(Pos("PATH", "a darknet log file"),), allows_as=True,
            example="%yolo log {workspace}/runs/run1/train.log", order=130)


def run(step: Step, ctx: Context) -> Done:
    run, flavor = load_log(ctx.path(step.args["PATH"]))
    history = run.history
    view = live_view(ctx)(title=run.name, key=f"log:{run.log_path}", max_batches=run.max_batches,
                          start_iteration=None)
    view.update(history, final=True)
    ctx.reporter.info(f"{flavor or 'unknown'} darknet log: {len(history.iterations)} iterations, "
                      f"{len(history.maps)} mAP results, {len(history.weights)} weights saved, "
                      f"{len(history.problems)} problem(s)")
    for p in history.problem_list:
        ctx.reporter.warn(p.describe())
    return keep_run(step, ctx, run)


def preview(step: Step, ctx: Context) -> list[str]:
    return [f"parse {ctx.path(step.args['PATH'])} (reads it, writes nothing)"]
