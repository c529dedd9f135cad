"""`%yolo export`: the ONNX model through hank-ai's darknet_onnx_export, checked with onnx's checker."""
from __future__ import annotations

from ..model import export as _export
from ..errors import StepError
from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done
from ._model_out import require_inputs

SPEC = Spec("export", "yolo", "Export CFG + WEIGHTS to ONNX with hank-ai's darknet_onnx_export and check the model.",
            positionals=(Pos("CFG", ".cfg"), Pos("WEIGHTS", ".weights")),
            options=(Opt("out", "path", "the .onnx file or its folder (default: beside the cfg)"),
                     Opt("names", "path", "the class names file (obj.names)"),
                     Opt("bin", "path", "hank-ai's darknet binary")),
            allows_as=True, example="%yolo export yolo-obj.cfg backup/yolo-obj_best.weights out={drive}/models",
            order=170)


def run(step: Step, ctx: Context) -> Done:
    paths = require_inputs(step, ctx, "CFG", "WEIGHTS", "names")
    result = _export.export_onnx(darknet=ctx.darknet_binary(step), cfg=paths["CFG"], weights=paths["WEIGHTS"],
                                 names=paths.get("names"),
                                 out=ctx.path(step.get("out")) if step.get("out") else None, reporter=ctx.reporter)
    try:
        _export.check_onnx(result.path)
        checked = "checked by onnx"
    except StepError as exc:  # the model is written; the check's own words say why it is not verified
        ctx.reporter.warn(str(exc))
        checked = "not checked"
    ctx.bind(step, result)
    return Done(f"ONNX model {result.path} ({checked})", result)


def preview(step: Step, ctx: Context) -> list[str]:
    return [f"darknet_onnx_export {ctx.path(step.args['CFG'])} {ctx.path(step.args['WEIGHTS'])}   (beside "
            f"{ctx.darknet_binary(step)})"]
