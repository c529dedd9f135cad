"""`weights`: pretrained weights downloaded once into the workspace and reused on later VMs."""
from __future__ import annotations

from pathlib import Path

from ..errors import StepError
from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done
from ..data.weights import fetch_weights, weights_target

SPEC = Spec("weights", "darknet", "Fetch pretrained weights once into the workspace and reuse them on later VMs.",
            positionals=(Pos("NAME", "a known name (yolov4-tiny.conv.29, yolov4.conv.137, darknet53.conv.74, ...) "
                                     "or a URL"),),
            options=(Opt("into", "path", "destination folder (default {workspace}/weights)"),),
            establishes=("weights",), example="weights yolov4-tiny.conv.29", order=80)


def _folder(step: Step, ctx: Context) -> Path:
    into = step.get("into")
    if into:
        return ctx.path(into)
    if ctx.session.workspace is None:
        raise StepError("weights: no folder to keep them in", fix="add a `workspace` line first, or into=DIR")
    return ctx.session.workspace / "weights"


def run(step: Step, ctx: Context) -> Done:
    result = fetch_weights(step.args["NAME"], _folder(step, ctx), ctx.reporter)
    ctx.session.weights = Path(result.path)
    return Done(f"{result.action} {result.path}", result)


def preview(step: Step, ctx: Context) -> list[str]:
    target = weights_target(step.args["NAME"], _folder(step, ctx))
    ctx.session.weights = target
    return [f"download {step.args['NAME']} -> {target} (once; reused from the drive later)", f"{{weights}} = {target}"]
