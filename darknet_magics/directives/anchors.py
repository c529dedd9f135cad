"""`%yolo anchors`: k-means anchors from the label boxes, optionally written into a cfg."""
from __future__ import annotations

from ..data.anchors import anchors_line, compute_anchors, set_anchors
from ..data.checks import TINY_BOX_PX
from ..fileio import atomic_write_text
from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done
from ..untrusted import read_text, writing


def _check(step: Step) -> None:
    raw = step.options.get("clusters")
    if raw is not None and raw.isdigit() and int(raw) < 1:
        raise step.error("clusters= must be at least 1", "write e.g. clusters=9 (yolov3/v4) or clusters=6 (tiny)")
    raw = step.options.get("min_box")
    if raw is not None and raw.startswith("-"):
        raise step.error(f"min_box={raw} must be 0 or more", f"write e.g. min_box={TINY_BOX_PX:g} (0 keeps every box)")


SPEC = Spec("anchors", "yolo", "Compute anchors by k-means (IoU distance) on the label boxes; optionally write them "
            "into a cfg.",
            positionals=(Pos("DATA", "obj.data"),),
            options=(Opt("clusters", "int", "number of anchors", default=9),
                     Opt("width", "int", "network width", default=416),
                     Opt("height", "int", "network height", default=416),
                     Opt("min_box", "float", "leave out boxes under this many pixels wide or high at width x height "
                         "(0 keeps every box)", default=TINY_BOX_PX),
                     Opt("cfg", "path", "write the anchors into this cfg's [yolo] sections")),
            allows_as=True, example="%yolo anchors obj.data clusters=6 width=416 height=416 cfg=yolo-obj.cfg",
            check=_check, order=220)


def run(step: Step, ctx: Context) -> Done:
    result = compute_anchors(ctx.path(step.args["DATA"]), clusters=step.get("clusters"), width=step.get("width"),
                             height=step.get("height"), min_box=step.get("min_box"))
    ctx.reporter.info(anchors_line(result))
    ctx.reporter.info(f"avg IoU = {result.avg_iou * 100:.2f} % over {result.boxes} boxes"
                      + (f" ({result.ignored} boxes under {step.get('min_box'):g} px left out)" if result.ignored else ""))
    if step.get("cfg"):
        cfg_path = ctx.path(step.get("cfg"))
        text = set_anchors(read_text(cfg_path), result)
        with writing("the cfg", cfg_path):
            atomic_write_text(cfg_path, text)
        ctx.reporter.info(f"wrote the anchors into {cfg_path}")
    ctx.bind(step, result)
    return Done(f"{len(result.anchors)} anchors, avg IoU {result.avg_iou * 100:.2f} %", result)


def preview(step: Step, ctx: Context) -> list[str]:
    lines = [f"k-means of the label boxes of {ctx.path(step.args['DATA'])} into {step.get('clusters')} anchors at "
             f"{step.get('width')}x{step.get('height')}"
             + (f", boxes under {step.get('min_box'):g} px left out" if step.get("min_box") else "")]
    if step.get("cfg"):
        lines.append(f"write them into {ctx.path(step.get('cfg'))} (every [yolo] section)")
    return lines
