"""`workspace`: the persistent folder (on the drive) for the build cache, weights, logs and runs."""
from __future__ import annotations

from pathlib import Path

from ..errors import StepError
from ..language import Pos, Spec, Step
from ..session import Context, Done
from ..untrusted import writing

SPEC = Spec("workspace", "darknet", "The persistent folder for the build cache, weights, logs and runs.",
            positionals=(Pos("PATH", "the folder (default {drive}/darknet)"),), establishes=("workspace",),
            example="workspace {drive}/yolo-project", order=30)


def _target(step: Step, ctx: Context) -> Path:
    path = ctx.path(step.args["PATH"])
    if path.exists() and not path.is_dir():
        raise StepError(f"the workspace {path} is a file, not a folder", fix="give a folder's path")
    return path


def run(step: Step, ctx: Context) -> Done:
    path = _target(step, ctx)
    with writing("the workspace", path):
        path.mkdir(parents=True, exist_ok=True)
    ctx.session.workspace = path
    if any(c.isspace() for c in str(path)):
        ctx.reporter.warn(f"the workspace path {str(path)!r} has spaces: darknet cannot read such paths in "
                          "obj.data; `drive` gives a space-free {drive} alias, use it")
    return Done(f"{{workspace}} = {path}", path)


def preview(step: Step, ctx: Context) -> list[str]:
    path = _target(step, ctx)
    ctx.session.workspace = path
    return [f"mkdir -p {str(path)!r}", f"{{workspace}} = {path}"]
