"""`%yolo show`: an image or a video file inline (the imShow idiom); in Colab, download=on offers the file."""
from __future__ import annotations

from ..view.show import show
from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done

SPEC = Spec("show", "yolo", "Show an image or a video file inline; download=on offers it for download in Colab.",
            positionals=(Pos("PATH", "an image or video file"),),
            options=(Opt("download", "onoff", "offer the file for download (Colab)", default=False),),
            example="%yolo show predictions/dog_predictions.jpg download=on", order=175)


def run(step: Step, ctx: Context) -> Done:
    path = show(ctx.path(step.args["PATH"]), reporter=ctx.reporter, download=bool(step.get("download")))
    return Done(f"shown: {path}", path)


def preview(step: Step, ctx: Context) -> list[str]:
    return [f"show {ctx.path(step.args['PATH'])}" + (" and offer its download" if step.get("download") else "")]
