"""`%yolo stop`: stop a background training run (its log, dataframes and weights are kept)."""
from __future__ import annotations

from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done
from ._runs import find_run

SPEC = Spec("stop", "yolo", "Stop a training run started with `background` (darknet gets SIGINT, then TERM, then KILL; "
            "what it wrote is kept and `%yolo resume` continues it).",
            positionals=(Pos("NAME", "the run's variable (default: the last run)", False),),
            options=(Opt("wait", "onoff", "wait until darknet has stopped", default="on"),),
            example="%yolo stop yolo_run", order=125)


def run(step: Step, ctx: Context) -> Done:
    target = find_run(step.args.get("NAME"), ctx)
    if not target.running:
        return Done(f"{target.name} is not running ({target.status})", target)
    target.stop()
    if step.get("wait", True):
        target.wait(60)
    return Done(f"{target.name}: {target.status} at iteration {target.last_iteration or 0}; its log and weights "
                f"are kept ({target.run_dir})", target)


def preview(step: Step, ctx: Context) -> list[str]:
    return [f"stop {step.args.get('NAME') or 'the last run'} (SIGINT, TERM, KILL to darknet's process group)"]
