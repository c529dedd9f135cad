"""Shared by test/map/video/export: darknet's own flags from ``args="..."`` and where results go."""
from __future__ import annotations

import shlex
from pathlib import Path

from ..binary import check_darknet_args, darknet_flavor
from ..errors import StepError
from ..language import Step
from ..session import Context


def darknet_args(step: Step, ctx: Context, command: str) -> list[str]:
    """``args="-points 0 -mAP_epochs 2"`` as argv words (split like a shell would, never run by one), checked
    against the flags this darknet's flavor has."""
    text = step.get("args")
    if not text:
        return []
    try:
        words = shlex.split(str(text))
    except ValueError as exc:
        raise StepError(f"args={text!r}: {exc}", fix='quote the whole value: args="-points 0"') from None
    errors = check_darknet_args(darknet_flavor(ctx.darknet_binary(step)), command, words)
    if errors:
        raise StepError("; ".join(errors), fix=f"fix args= of %yolo {command} (see docs/directives/yolo-{command}.md)")
    return words


def results_folder(step: Step, ctx: Context, what: str) -> Path:
    """out= or, by default, WORKSPACE/what (the run's folder on the drive when the workspace is there), else ./what."""
    out = step.get("out")
    if out:
        return ctx.path(out)
    workspace = getattr(ctx.session, "workspace", None)
    return (Path(workspace) if workspace else Path.cwd()) / what
