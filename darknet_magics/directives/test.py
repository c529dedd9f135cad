"""`%yolo test`: detections on an image, a folder, a list file or a glob, in one darknet process."""
from __future__ import annotations

from ..model.detect import detect

from ..model.inputs import resolve_images
from ..errors import DarknetMagicsError
from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done
from ..untrusted import writing
from ._darknet import darknet_cwd
from ._model_out import BIN, THRESH, darknet_args, model_positionals, require_inputs, results_folder

SPEC = Spec("test", "yolo", "Detect objects in an image, a folder, a list file or a glob (one darknet process); "
            "annotated images under out=, detections as one dataframe.",
            positionals=model_positionals(".weights", Pos("SOURCE", "an image, a folder, a list file (.txt) or a glob")),
            options=(THRESH, Opt("out", "path", "folder for the annotated images (default: WORKSPACE/predictions)"),
                     Opt("args", "str", "darknet's own flags, e.g. args=\"-letter_box\" (checked per flavor)"), BIN),
            allows_as=True, example="%yolo test obj.data yolo-obj.cfg backup/yolo-obj_best.weights images/ thresh=0.3",
            order=160)


def run(step: Step, ctx: Context) -> Done:
    paths = require_inputs(step, ctx, "DATA", "CFG", "WEIGHTS")  # SOURCE may be a glob: detect checks it
    binary = ctx.darknet_binary(step)
    out = results_folder(step, ctx, "predictions")
    with writing("the annotated images", out):  # a full or read-only disk: a clear error, the scratch folder gone
        result = detect(darknet=binary, data=paths["DATA"], cfg=paths["CFG"], weights=paths["WEIGHTS"],
                        image=ctx.path(step.args["SOURCE"]), thresh=step.get("thresh"),
                        cwd=darknet_cwd(ctx, binary), out=out, reporter=ctx.reporter,
                        extra_args=darknet_args(step, ctx, "test"))
    ctx.bind(step, result)
    return Done(result.summary(), result)


def preview(step: Step, ctx: Context) -> list[str]:
    source = ctx.path(step.args["SOURCE"])
    try:
        count = f"{len(resolve_images(source))} image(s)"
    except (DarknetMagicsError, OSError):  # a dry run describes; the real run reports the error
        count = "images"
    argv = [str(ctx.darknet_binary(step)), "detector", "test", str(ctx.path(step.args["DATA"])),
            str(ctx.path(step.args["CFG"])), str(ctx.path(step.args["WEIGHTS"])), "-thresh", str(step.get("thresh"))]
    return [" ".join(argv) + f"   (one process for {count} of {source}, in "
            f"{darknet_cwd(ctx, ctx.darknet_binary(step))}; annotated images to "
            f"{results_folder(step, ctx, 'predictions')})"]
