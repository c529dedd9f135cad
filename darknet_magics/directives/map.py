"""`%yolo map`: darknet's `detector map` on one weights file, or on every checkpoint of a folder (the best named)."""
from __future__ import annotations

from ..model.darknet_map import checkpoint_files, evaluate_checkpoints, evaluate_map
from ..model.evaluate import checkpoint_scorer
from ..language import Opt, Spec, Step
from ..session import Context, Done
from ._darknet import darknet_cwd
from ._model_out import ARGS, BIN, darknet_args, model_positionals, require_inputs

SPEC = Spec("map", "yolo", "Compute mAP with darknet's `detector map`; WEIGHTS may be a run's (backup) folder: every "
            "checkpoint is evaluated and the best named.",
            positionals=model_positionals(".weights, or a folder of them"),
            options=(Opt("iou_thresh", "float", "IoU for a true positive (darknet's -iou_thresh, default 0.5)"),
                     Opt("points", "int", "0: area under the curve, 11: VOC2007, 101: COCO (darknet's -points)"),
                     Opt("metric", "str", "what names the best checkpoint of a folder: map50 (darknet's detector "
                         "map) or map50_95 (%yolo eval's matching, on any flavor)", choices=("map50", "map50_95"),
                         default="map50"),
                     ARGS, BIN), allows_as=True,
            example="%yolo map obj.data yolo-obj.cfg backup/ points=11", order=150)


def run(step: Step, ctx: Context) -> Done:
    paths = require_inputs(step, ctx, "DATA", "CFG", "WEIGHTS", folder_ok=("WEIGHTS",))
    weights, binary = paths["WEIGHTS"], ctx.darknet_binary(step)
    common = dict(darknet=binary, data=paths["DATA"], cfg=paths["CFG"], cwd=darknet_cwd(ctx, binary),
                  reporter=ctx.reporter, iou_thresh=step.get("iou_thresh"),
                  points=step.get("points"), extra_args=darknet_args(step, ctx, "map"))
    if weights.is_dir():
        scorer = None
        if step.get("metric") == "map50_95":  # %yolo eval's matching, on any flavor (pjreddie has no detector map)
            scorer = checkpoint_scorer(darknet=binary, data=paths["DATA"], cfg=paths["CFG"],
                                       cwd=darknet_cwd(ctx, binary), reporter=ctx.reporter)
        report = evaluate_checkpoints(folder=weights, scorer=scorer, **common)
    else:
        report = evaluate_map(weights=weights, **common)
    ctx.bind(step, report)
    return Done(report.summary(), report)


def preview(step: Step, ctx: Context) -> list[str]:
    weights = ctx.path(step.args["WEIGHTS"])
    files = [p for _, _, p in checkpoint_files(weights)] if weights.is_dir() else [weights]
    if weights.is_dir() and step.get("metric") == "map50_95":
        return [f"%yolo eval's matching on each of {len(files)} checkpoint(s) of {weights} (one darknet process "
                "each on the validation list), the best named by mAP@0.50:0.95"]
    lines = []
    for path in files or [weights]:
        argv = [str(ctx.darknet_binary(step)), "detector", "map", str(ctx.path(step.args["DATA"])),
                str(ctx.path(step.args["CFG"])), str(path), "-dont_show"]
        if step.get("iou_thresh") is not None:
            argv += ["-iou_thresh", str(step.get("iou_thresh"))]
        if step.get("points") is not None:
            argv += ["-points", str(step.get("points"))]
        lines.append(" ".join(argv) + f"   (in {darknet_cwd(ctx, ctx.darknet_binary(step))})")
    return lines
