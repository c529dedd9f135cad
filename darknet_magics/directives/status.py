"""`%yolo status`: the current or last training run; after a kernel restart, re-attaches to a run still training."""
from __future__ import annotations

from ..train import background
from ..errors import DarknetMagicsError, StepError
from ..language import Spec, Step
from ..session import Context, Done
from ..train.drivesync import read_manifest
from ..train.guard import sync_status
from ..train.record import RUN_JSON, RunStatus, read_record
from ..train.runs import TrainingRun, status, weights_iteration
from ._runs import bind_found, find_run, first_line, live_view, run_folders, runs_root

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


def ended_with_vm(ctx: Context) -> list[str]:
    """Issue 24: the mirrored runs under {workspace}/runs whose VM is gone (their local twin is not here) and that
    were still running: how far each got on the drive, one line each."""
    lines = []
    for folder in run_folders(runs_root(ctx)):
        try:
            manifest = read_manifest(folder)
            if manifest is None or manifest.local == folder or (manifest.local / RUN_JSON).is_file():
                continue
            record = read_record(folder)
        except DarknetMagicsError as exc:
            lines.append(f"{folder.name}: {first_line(exc)}")
            continue
        if record.status is not RunStatus.RUNNING:
            continue
        run = TrainingRun.load(folder)
        point = _drive_resume_point(folder, manifest, record)
        lines.append(f"{record.name}: ended with its VM; the drive has it to iteration {run.last_iteration or 0} "
                     f"(synced {manifest.synced_at}); {point}; `%yolo resume {record.name}` continues it")
    return lines


def _drive_resume_point(folder, manifest, record) -> str:
    """The newest verified weights to resume from on the drive, with the iteration its header says."""
    stem = record.args.cfg.stem if record.args.cfg else ""
    names = [n for n in manifest.files if n.endswith((f"/{stem}_last.weights", f"/{stem}.backup"))]
    if not names:
        return "no weights on the drive yet (it starts again from its first weights)"
    newest = max(names, key=lambda n: (folder / n).stat().st_mtime if (folder / n).is_file() else 0)
    at = weights_iteration(folder / newest, record.args.cfg) if record.args.cfg else None
    return f"resume point {newest}" + (f" (iteration {at:,})" if at is not None else "")


def run(step: Step, ctx: Context) -> Done:
    found_lines = reattach_left_runs(ctx) + ended_with_vm(ctx)
    try:
        found = find_run(None, ctx, restore=False)
    except StepError:
        return Done("\n".join(found_lines + ["no training run in this session or under {workspace}/runs"]))
    drive_line = sync_status(found.run_dir)  # issue 24: when the drive last got everything
    return Done("\n".join(found_lines + [status(found)] + ([f"  {drive_line}"] if drive_line else [])), found)


def preview(step: Step, ctx: Context) -> list[str]:
    return ["re-attach to background runs under {workspace}/runs whose darknet still trains (after a kernel restart)",
            "report the last run of this session, else the newest run folder under {workspace}/runs"]
