"""`%yolo status`: the current or last training run; after a kernel restart, re-attaches to a run still training."""
from __future__ import annotations

from ..train import background
from ..errors import DarknetMagicsError, StepError
from ..language import Spec, Step
from ..session import Context, Done
from ..train.runs import status
from ._runs import bind_found, find_run, first_line, live_view, runs_root

SPEC = Spec("status", "yolo", "Report the current or last training run; re-attach to a background run that a "
            "restarted kernel left training.", example="%yolo status", order=140)


def reattach_left_runs(ctx: Context) -> list[str]:
    """Re-attach to the runs under {workspace}/runs that a gone kernel left (training, or ended unwatched); one
    line each. A folder that cannot be re-attached (damaged run.json, another kernel follows it) is one line and
    never hides the others."""
    followed = {r.run_dir for r in ctx.session.runs.values() if r.running}
    lines = []
    for left in background.find_live(runs_root(ctx)):
        if left.run_dir in followed:
            continue
        if left.damaged is not None:
            lines.append(f"{left.run_dir.name}: darknet still trains (keeper pid {left.keeper.state.get('keeper_pid')}"
                         f"), but {left.damaged}; `%yolo stop {left.run_dir}` stops it")
        elif left.follower is not None:
            lines.append(f"{left.run_dir.name}: training, followed by another kernel (pid {left.follower}); "
                         f"its log: {left.run_dir / 'train.log'}")
        else:
            try:
                run, line = background.reattach(left, ctx.reporter, view=live_view(ctx))
            except DarknetMagicsError as exc:
                lines.append(f"{left.run_dir.name}: not re-attached: {first_line(exc)}")
                continue
            lines.append(f"{line} (bound to `{bind_found(ctx, run)}`)")
    return lines


def run(step: Step, ctx: Context) -> Done:
    found_lines = reattach_left_runs(ctx)
    try:
        found = find_run(None, ctx)
    except StepError:
        return Done("\n".join(found_lines + ["no training run in this session or under {workspace}/runs"]))
    return Done("\n".join(found_lines + [status(found)]), found)


def preview(step: Step, ctx: Context) -> list[str]:
    return ["re-attach to background runs under {workspace}/runs whose darknet still trains (after a kernel restart)",
            "report the last run of this session, else the newest run folder under {workspace}/runs"]
