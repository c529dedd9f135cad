"""`%yolo map`: darknet's `detector map` into the maps and class_ap dataframes."""
from __future__ import annotations

from ..inference import evaluate_map
from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done
from ._darknet import darknet_cwd

SPEC = Spec("map", "yolo", "Compute mAP with darknet's `detector map` into the maps/class_ap frames.",
            positionals=(Pos("DATA", "obj.data"), Pos("CFG", ".cfg"), Pos("WEIGHTS", ".weights")),
            options=(Opt("bin", "path", "the darknet binary"),), allows_as=True,
            example="%yolo map obj.data yolo-obj.cfg backup/yolo-obj_best.weights", order=150)


def run(step: Step, ctx: Context) -> Done:
    report = evaluate_map(darknet=ctx.darknet_binary(step), data=ctx.path(step.args["DATA"]),
                          cfg=ctx.path(step.args["CFG"]), weights=ctx.path(step.args["WEIGHTS"]),
                          cwd=darknet_cwd(ctx), reporter=ctx.reporter)
    ctx.bind(step, report)
    return Done(report.summary(), report)


def preview(step: Step, ctx: Context) -> list[str]:
    argv = [str(ctx.darknet_binary(step)), "detector", "map", str(ctx.path(step.args["DATA"])),
            str(ctx.path(step.args["CFG"])), str(ctx.path(step.args["WEIGHTS"])), "-dont_show"]
    return [" ".join(argv) + f"   (in {darknet_cwd(ctx)})"]
