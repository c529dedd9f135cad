"""`stage`: a dataset from the drive onto fast local disk, once per VM."""
from __future__ import annotations

from pathlib import Path

from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done
from ..staging import plan_stage, stage

SPEC = Spec("stage", "darknet",
            "Copy (or unpack) a dataset from the drive onto fast local disk; skipped when the local copy is complete.",
            positionals=(Pos("SRC", "a folder, or a .tar/.tar.gz/.tgz/.zip archive"),),
            options=(Opt("into", "path", "the local folder to put it in (default {local}/data): {dataset} = DIR/NAME"),
                     Opt("pack", "onoff", "write one archive of the folder to the drive on first use", default="off")),
            establishes=("dataset",), example="stage {drive}/datasets/helmets.zip", order=70)


def _into(step: Step, ctx: Context) -> Path:
    """The local folder the dataset lands in (like `cp -r SRC DIR`): into=, else {local}/data."""
    into = step.get("into")
    return ctx.path(into) if into else ctx.local() / "data"


def run(step: Step, ctx: Context) -> Done:
    result = stage(ctx.path(step.args["SRC"]), _into(step, ctx), pack=step.get("pack"), reporter=ctx.reporter)
    ctx.session.dataset = Path(result.path)
    return Done(f"{result.action} {result.files} files into {result.path}", result)


def preview(step: Step, ctx: Context) -> list[str]:
    plan = plan_stage(ctx.path(step.args["SRC"]), _into(step, ctx), pack=step.get("pack"))
    ctx.session.dataset = plan.target
    return plan.describe() + [f"{{dataset}} = {plan.target}"]
