"""`%yolo log`: an existing darknet log parsed into the same run object and chart as a live run."""
from __future__ import annotations

from ..language import Pos, Spec, Step
from ..session import Context, Done
from ..train.training import load_log
from ._runs import keep_run

SPEC = Spec("log", "yolo", "Parse an existing darknet log into the same run object and chart.",
            positionals=(Pos("PATH", "a darknet log file"),), allows_as=True,
            example="%yolo log {workspace}/runs/run1/train.log", order=130)


def run(step: Step, ctx: Context) -> Done:
    return keep_run(step, ctx, load_log(ctx.path(step.args["PATH"]), ctx.reporter))


def preview(step: Step, ctx: Context) -> list[str]:
    return [f"parse {ctx.path(step.args['PATH'])} (reads it, writes nothing)"]
