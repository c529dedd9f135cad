"""`%yolo video`: an annotated video (AlexeyAB's detector demo, hank-ai's darknet_04_process_videos), played inline."""
from __future__ import annotations

from ..model.video import detect_video
from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done
from ._darknet import darknet_cwd
from ._model_out import (ARGS, BIN, THRESH, darknet_args, model_positionals, require_inputs, require_video,
                         results_folder)

SPEC = Spec("video", "yolo", "Detect objects in a video; write the annotated video under out= and play it inline.",
            positionals=model_positionals(".weights", Pos("IN", "a video file")),
            options=(THRESH, Opt("out", "path", "folder for the annotated video (default: WORKSPACE/videos)"), ARGS, BIN),
            allows_as=True, example="%yolo video obj.data yolo-obj.cfg backup/yolo-obj_best.weights street.mp4",
            order=165)


def run(step: Step, ctx: Context) -> Done:
    paths = require_inputs(step, ctx, "DATA", "CFG", "WEIGHTS", "IN")
    require_video(step, paths["IN"])
    binary = ctx.darknet_binary(step)
    result = detect_video(darknet=binary, data=paths["DATA"], cfg=paths["CFG"], weights=paths["WEIGHTS"],
                          video=paths["IN"], out=results_folder(step, ctx, "videos"), thresh=step.get("thresh"),
                          cwd=darknet_cwd(ctx, binary), reporter=ctx.reporter,
                          extra_args=darknet_args(step, ctx, "video"))
    ctx.bind(step, result)
    return Done(result.summary(), result)


def preview(step: Step, ctx: Context) -> list[str]:
    binary = ctx.darknet_binary(step)
    return [f"{binary} detector demo {ctx.path(step.args['DATA'])} {ctx.path(step.args['CFG'])} "
            f"{ctx.path(step.args['WEIGHTS'])} {ctx.path(step.args['IN'])} -dont_show -out_filename "
            f"{results_folder(step, ctx, 'videos')}/...   (in {darknet_cwd(ctx, binary)}; hank-ai: "
            "darknet_04_process_videos)"]
