"""`%yolo resume`: a run continues from its newest weights, with its history stitched."""
from __future__ import annotations

import dataclasses
import shutil
from datetime import datetime, timezone
from pathlib import Path

from ..language import Opt, Pos, Spec, Step
from ..session import DEFAULT_RUN_NAME, Context, Done
from ..train import background, guard
from ..train.plan import plan_resume
from ..train.runs import TrainingRun, find_resume_weights
from ..train.training import train
from ._runs import TRACK, find_run, track_from_now, keep_run, keep_run_on_failure, live_view

SPEC = Spec("resume", "yolo", "Continue a run from its backup/*_last.weights, with the history stitched.",
            positionals=(Pos("NAME", "the run's variable (default yolo_run) or its run folder", False),),
            options=(Opt("bin", "path", "the darknet binary (a run folder's run.json never chooses it alone: without bin=, "
                                         "the darknet it names runs only when this session's is that file or of "
                                         "its flavor)"),
                     Opt("max_batches", "int", "train on to this many iterations (rewrites max_batches in the cfg)"),
                     Opt("time", "str", "a new time budget for this session, e.g. time=11h30m (the run's own "
                                        "budget, if any, otherwise)"),
                     Opt("until", "str", "stop by this time of day (HH:MM, UTC), as time="), TRACK),
            flags=(("background", "return at once, as `%yolo train ... background` (darknet survives a kernel "
                                  "restart)"),),
            allows_as=True, example="%yolo resume", order=120)


def run(step: Step, ctx: Context) -> Done:
    previous = find_run(step.args.get("NAME"), ctx)
    track_from_now(step, previous.run_dir)
    in_background = "background" in step.flags
    found = shutil.which("darknet")
    with keep_run_on_failure(step, ctx):
        previous, plan = plan_resume(previous, ctx.reporter,
                                     darknet=ctx.path(step.get("bin")) if step.get("bin") else None,
                                     session_binary=ctx.session.binary or (Path(found) if found else None),
                                     max_batches=step.get("max_batches"))
        _new_budget(step, previous, ctx)
        if in_background:
            result = background.start(plan=plan, reporter=ctx.reporter, previous=previous,
                                      name=step.as_name or DEFAULT_RUN_NAME, view=live_view(ctx))
        else:
            result = train(plan=plan, reporter=ctx.reporter, previous=previous, view=live_view(ctx))
    done = keep_run(step, ctx, result)
    if in_background:
        result.save()  # run.json names the variable, so that `%yolo status` in a new kernel binds it again
        return Done(f"resumed in the background (bound to `{result.name}`; `%yolo stop {result.name}` or "
                    f"`{result.name}.wait()`)", done.result)
    return done


def _new_budget(step: Step, run: TrainingRun, ctx: Context) -> None:
    """Issue 24: `time=` / `until=` replace the run's budget in its guard.json (a new VM brings a new 12 h)."""
    if step.get("time") is None and step.get("until") is None:
        return
    now = datetime.now(timezone.utc)
    options = guard.read_options(run.run_dir)
    if options is None:  # a run without a guard until now
        options = guard.plan_options(
            backup_dir=run.args.backup_dir or run.run_dir / "backup", cfg=run.args.cfg or Path("x.cfg"),
            flavor=run.args.flavor.value if run.args.flavor else None, drive=None, sync=None, save_every=None,
            keep=None, time_budget=step.get("time"), until=step.get("until"), patience=None, map_on=False, now=now)
    else:
        options = dataclasses.replace(
            options, budget_s=guard.parse_budget(step.get("time")) if step.get("time") else None,
            deadline=guard.parse_until(step.get("until"), now) if step.get("until") else None)
    guard.write_options(run.run_dir, options)
    for line in options.describe():
        ctx.reporter.info(line)


def preview(step: Step, ctx: Context) -> list[str]:
    previous = find_run(step.args.get("NAME"), ctx, restore=False)
    backup = previous.args.backup_dir or Path("backup")
    start = find_resume_weights(backup, previous.args.cfg or Path("x"))
    lines = [f"continue {previous.name} ({previous.run_dir}) from {start or 'its newest weights in ' + str(backup)}"]
    if step.get("max_batches"):
        lines.append(f"set max_batches={step.get('max_batches')} in {previous.args.cfg}")
    return lines + [" ".join(previous.argv)]
