"""`%yolo test`: detections on an image, shown, and as a dataframe."""
from __future__ import annotations

from ..inference import detect
from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done
from ._darknet import darknet_cwd

SPEC = Spec("test", "yolo", "Detect objects in one image; show the predictions image and the detections as a dataframe.",
            positionals=(Pos("DATA", "obj.data"), Pos("CFG", ".cfg"), Pos("WEIGHTS", ".weights"),
                         Pos("IMAGE", "an image")),
            options=(Opt("thresh", "float", "confidence threshold", default=0.25),
                     Opt("bin", "path", "the darknet binary")),
            allows_as=True, example="%yolo test obj.data yolo-obj.cfg backup/yolo-obj_best.weights dog.jpg thresh=0.3",
            order=160)


def run(step: Step, ctx: Context) -> Done:
    result = detect(darknet=ctx.darknet_binary(step), data=ctx.path(step.args["DATA"]),
                    cfg=ctx.path(step.args["CFG"]), weights=ctx.path(step.args["WEIGHTS"]),
                    image=ctx.path(step.args["IMAGE"]), thresh=step.get("thresh"), cwd=darknet_cwd(ctx),
                    reporter=ctx.reporter)
    ctx.bind(step, result)
    return Done(result.summary(), result)


def preview(step: Step, ctx: Context) -> list[str]:
    argv = [str(ctx.darknet_binary(step)), "detector", "test", str(ctx.path(step.args["DATA"])),
            str(ctx.path(step.args["CFG"])), str(ctx.path(step.args["WEIGHTS"])), str(ctx.path(step.args["IMAGE"])),
            "-thresh", str(step.get("thresh"))]
    return [" ".join(argv) + f"   (in {darknet_cwd(ctx)})"]
