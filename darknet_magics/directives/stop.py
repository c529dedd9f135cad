"""`%yolo stop`: stop a background training run (its log, dataframes and weights are kept)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from ..train import background
from ..errors import DarknetMagicsError
from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done
from ..train.runs import TrainingRun, find_resume_weights
from ._runs import bind_found, find_run, runs_root

SPEC = Spec("stop", "yolo", "Stop a training run started with `background`, also one a restarted kernel left "
            "training (darknet gets SIGINT, then TERM, then KILL; what it wrote is kept and `%yolo resume` "
            "continues it).",
            positionals=(Pos("NAME", "the run's variable, or its run folder (default: the last run)", False),),
            options=(Opt("wait", "onoff", "wait until darknet has stopped", default="on"),),
            example="%yolo stop yolo_run", order=125)


def _kept(run: TrainingRun) -> str:
    weights = find_resume_weights(run.backup_dir, run.args.cfg or Path("x")) if run.backup_dir else None
    return f"kept: {run.log_path}" + (f" and {weights}" if weights else " (no weights saved yet)")


def _left_by_keeper(ref: Optional[str], ctx: Context) -> Optional[background.LiveRun]:
    """A run whose darknet still trains under its keeper although its run.json is damaged or gone: the folder
    `ref` names, else the one whose keeper.json has the name `ref` (no name: the only such run)."""
    if ref and ctx.path(ref).is_dir():
        left = background.live_run(ctx.path(ref))
        return left if left is not None and left.alive and left.damaged is not None else None
    damaged = [r for r in background.find_live(runs_root(ctx)) if r.alive and r.damaged is not None]
    named = [r for r in damaged if ref and r.name == ref] if ref else damaged
    return named[0] if len(named) == 1 else None


def run(step: Step, ctx: Context) -> Done:
    ref = step.args.get("NAME")
    try:
        target = find_run(ref, ctx, restore=False)
    except DarknetMagicsError:
        left = _left_by_keeper(ref, ctx)
        if left is None:
            raise
        return Done(background.stop_left(left))
    if not target.running:
        left = background.live_run(target.run_dir)
        if left is None or not left.alive:
            other = _left_by_keeper(ref, ctx)
            if other is not None:  # an older run has the name (or is the newest readable); the live one is damaged
                return Done(background.stop_left(other))
            return Done(f"{target.name} is not running ({target.status})", target)
        if left.follower is not None:  # another kernel follows it: that kernel sees it end and judges it
            left.keeper.stop()
            return Done(f"{target.name}: stop requested (the kernel pid {left.follower} that follows it judges "
                        f"it); {_kept(target)}", target)
        target, _ = background.reattach(left, ctx.reporter)  # left training by a kernel that is gone
        bind_found(ctx, target)
    target.stop()
    if not step.get("wait", True):
        return Done(f"{target.name}: stop requested (darknet gets SIGINT, then TERM, then KILL); {_kept(target)}",
                    target)
    target.wait(60)
    return Done(f"{target.name}: {target.status} at iteration {target.last_iteration or 0}; {_kept(target)}; "
                f"`%yolo resume {target.name}` continues it", target)


def preview(step: Step, ctx: Context) -> list[str]:
    return [f"stop {step.args.get('NAME') or 'the last run'} (SIGINT, TERM, KILL to darknet's process group)"]
