"""`%yolo eval`: how good the model is on obj.data's validation list, on every flavor (our matching, not darknet's)."""
from __future__ import annotations

from pathlib import Path

from ..model.darknet_map import checkpoint_run_dir
from ..model.inputs import unique_path
from ..language import Opt, Spec, Step
from ..model.evaluate import DETECT_THRESH, Evaluation, evaluate
from ..session import Context, Done
from ..output.trackers import save_evaluation
from ..setup.binary import darknet_flavor
from ..view.evaluation import show_evaluation
from ._darknet import darknet_cwd
from ._model_out import BIN, model_positionals, require_inputs, results_folder

SPEC = Spec("eval", "yolo", "Evaluate a model on obj.data's validation list (any flavor, pjreddie too): per-class "
            "precision, recall, F1, AP50 and AP50-95, mAP@0.50 and mAP@0.50:0.95, a confusion matrix, PR and F1 "
            "curves and the worst images, saved beside the weights' run.",
            positionals=model_positionals(".weights"),
            options=(Opt("thresh", "float", "confidence for TP/FP/FN, the confusion matrix and the images",
                         default=0.25),
                     Opt("iou", "float", "IoU a detection needs to count as a true positive there (AP50 and "
                         "mAP@0.50 are at 0.50 whatever this is)", default=0.5),
                     Opt("out", "path", "folder for the views (default: the run's eval/ folder, else "
                         "WORKSPACE/evaluations)"), BIN),
            allows_as=True, example="%yolo eval obj.data yolo-obj.cfg backup/yolo-obj_best.weights thresh=0.25",
            notes="Binds `yolo_eval` (or `as NAME`): `.per_class`, `.map50`, `.map50_95`, `.confusion`, `.curves`, "
                  "`.images`, `.detections`.", order=155)

DEFAULT_NAME = "yolo_eval"


def eval_folder(step: Step, ctx: Context, weights: Path) -> Path:
    """Where this evaluation's views go: a new folder each time (two evaluations never share files), under the
    run's folder when the weights are a run's (``RUN/eval/STEM``), else under out= or WORKSPACE/evaluations."""
    if step.get("out"):
        base = ctx.path(step.get("out"))
    else:
        run_dir = checkpoint_run_dir(weights.parent)
        base = run_dir / "eval" if run_dir != weights.parent else results_folder(step, ctx, "evaluations")
    return unique_path(base / weights.stem)


def run(step: Step, ctx: Context) -> Done:
    paths = require_inputs(step, ctx, "DATA", "CFG", "WEIGHTS")
    binary = ctx.darknet_binary(step)
    result: Evaluation = evaluate(darknet=binary, data=paths["DATA"], cfg=paths["CFG"], weights=paths["WEIGHTS"],
                                  thresh=step.get("thresh"), iou=step.get("iou"), cwd=darknet_cwd(ctx, binary),
                                  reporter=ctx.reporter)
    folder = eval_folder(step, ctx, paths["WEIGHTS"])
    folder.mkdir(parents=True, exist_ok=False)
    result.folder = folder
    ctx.reporter.dataframe(result.per_class, title=result.summary())
    result.saved = show_evaluation(result, folder, ctx.reporter)
    run_dir = checkpoint_run_dir(paths["WEIGHTS"].parent)  # a run's weights: its track= tracker gets the metrics
    save_evaluation(result, folder, reporter=ctx.reporter,  # the tables as CSV, the metrics for TensorBoard
                    run_dir=run_dir if run_dir != paths["WEIGHTS"].parent else None)
    ctx.bind(step, result, DEFAULT_NAME)
    return Done(result.summary(), result)


def preview(step: Step, ctx: Context) -> list[str]:
    binary = ctx.darknet_binary(step)
    data, cfg, weights = (str(ctx.path(step.args[k])) for k in ("DATA", "CFG", "WEIGHTS"))
    try:
        flavor = darknet_flavor(binary)
    except OSError:
        flavor = None
    if flavor == "pjreddie":
        argv = [str(binary), "detector", "valid", "eval.data", cfg, weights, "-out", "det_"]
    else:
        argv = [str(binary), "detector", "test", "eval.data", cfg, weights, "-thresh", str(DETECT_THRESH),
                "-dont_show", "-ext_output", "-out", "dets.json"]
    return [" ".join(argv) + f"   (one process for {data}'s valid= images, through our eval.data in a scratch "
            f"folder, in {darknet_cwd(ctx, binary)}; "
            f"matched to their labels at IoU {step.get('iou')}, thresh {step.get('thresh')}; views to "
            f"{eval_folder(step, ctx, ctx.path(step.args['WEIGHTS']))})"]
