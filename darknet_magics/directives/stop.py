"""`%yolo stop`: stop a background training run (its log, dataframes and weights are kept)."""
from __future__ import annotations

from pathlib import Path

from ..train import background
from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done
from ..train.training import TrainingRun, find_resume_weights
from ._runs import bind_found, find_run

SPEC = Spec("stop", "yolo", "Stop a training run started with `background`, also one a restarted kernel left "
            "training (darknet gets SIGINT, then TERM, then KILL; what it wrote is kept and `%yolo resume` "
            "continues it).",
            positionals=(Pos("NAME", "the run's variable, or its run folder (default: the last run)", False),),
            options=(Opt("wait", "onoff", "wait until darknet has stopped", default="on"),),
            example="%yolo stop yolo_run", order=125)


def _kept(run: TrainingRun) -> str:
    weights = find_resume_weights(run.backup_dir, Path(run.args.get("cfg", "x"))) if run.backup_dir else None
    return f"kept: {run.log_path}" + (f" and {weights}" if weights else " (no weights saved yet)")


def run(step: Step, ctx: Context) -> Done:
    target = find_run(step.args.get("NAME"), ctx)
    if not target.running:
        left = background.live_run(target.run_dir)
        if left is None or not left.alive:
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
