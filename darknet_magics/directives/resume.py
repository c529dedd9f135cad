"""`%yolo resume`: a run continues from its newest weights, with its history stitched."""
from __future__ import annotations

from pathlib import Path

from ..language import Opt, Pos, Spec, Step
from ..session import Context, Done
from ..train.training import find_resume_weights, resume
from ._runs import find_run, keep_run, keep_run_on_failure

SPEC = Spec("resume", "yolo", "Continue a run from its backup/*_last.weights, with the history stitched.",
            positionals=(Pos("NAME", "the run's variable (default yolo_run) or its run folder", False),),
            options=(Opt("bin", "path", "the darknet binary"),
                     Opt("max_batches", "int", "train on to this many iterations (rewrites max_batches in the cfg)")),
            flags=(("background", "return at once, as `%yolo train ... background` (darknet survives a kernel "
                                  "restart)"),),
            allows_as=True, example="%yolo resume", order=120)


def run(step: Step, ctx: Context) -> Done:
    previous = find_run(step.args.get("NAME"), ctx)
    background = "background" in step.flags
    with keep_run_on_failure(step, ctx):
        result = resume(previous, ctx.reporter, darknet=ctx.path(step.get("bin")) if step.get("bin") else None,
                        max_batches=step.get("max_batches"), background=background)
    done = keep_run(step, ctx, result)
    if background:
        result.save()  # run.json names the variable, so that `%yolo status` in a new kernel binds it again
        return Done(f"resumed in the background (bound to `{result.name}`; `%yolo stop {result.name}` or "
                    f"`{result.name}.wait()`)", done.result)
    return done


def preview(step: Step, ctx: Context) -> list[str]:
    previous = find_run(step.args.get("NAME"), ctx)
    backup = Path(previous.args.get("backup_dir") or "backup")
    start = find_resume_weights(backup, Path(previous.args.get("cfg", "x")))
    lines = [f"continue {previous.name} ({previous.run_dir}) from {start or 'its newest weights in ' + str(backup)}"]
    if step.get("max_batches"):
        lines.append(f"set max_batches={step.get('max_batches')} in {previous.args.get('cfg')}")
    return lines + [" ".join(previous.argv)]
