"""`%yolo status`: the current or last training run."""
from __future__ import annotations

from ..errors import StepError
from ..language import Spec, Step
from ..session import Context, Done
from ..training import status
from ._runs import find_run

SPEC = Spec("status", "yolo", "Report the current or last training run.", example="%yolo status", order=140)


def run(step: Step, ctx: Context) -> Done:
    try:
        found = find_run(None, ctx)
    except StepError:
        return Done("no training run in this session or under {workspace}/runs")
    return Done(status(found), found)


def preview(step: Step, ctx: Context) -> list[str]:
    return ["report the last run of this session, else the newest run folder under {workspace}/runs"]
