"""`%yolo train`: darknet trains with a live chart, dataframes, and every byte logged in the run folder."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

from ..setup.binary import darknet_flavor
from ..data.checks import check
from ..errors import StepError
from ..language import Opt, Pos, Spec, Step
from ..output.track_remote import TRACK_FOLDERS, TrackState, parse_track, write_state
from ..session import DEFAULT_RUN_NAME, Context, Done
from ..train import background, guard, oom
from ..train.plan import TrainPlan, plan_train, refuse_shared_backup
from ..train.runs import TrainingRun, make_run_dir
from ..train.training import train
from ._model_out import darknet_args
from ._runs import TRACK, keep_run, keep_run_on_failure, live_view, runs_root

SPEC = Spec("train", "yolo", "Train with darknet, with a live chart, dataframes and a log on the drive.",
            positionals=(Pos("DATA", "obj.data"), Pos("CFG", "the training .cfg"),
                         Pos("WEIGHTS", "pretrained or previous weights", False)),
            options=(Opt("gpus", "ints", "GPU ids, e.g. 0,1"),
                     Opt("backup", "path", "where darknet saves weights (default: the run's own folder, "
                                           "{workspace}/runs/NAME/backup, unless your own obj.data names one)"),
                     Opt("bin", "path", "the darknet binary (default: the last make, else darknet on PATH)"),
                     Opt("stop_on_nan", "onoff", "stop darknet when the loss turns nan", default="on"),
                     Opt("args", "str", "darknet's own flags, e.g. args=\"-mAP_epochs 2 -points 0\" (checked per "
                                        "flavor, passed as argv words)"),
                     Opt("sync", "int", "seconds between copies of the run to the drive (default 60 when the "
                                        "workspace is on Colab's Drive; darknet writes on local disk); 0: off"),
                     Opt("save_every", "int", "keep a numbered checkpoint every N iterations (and _last)"),
                     Opt("keep", "int", "how many numbered checkpoints stay (the newest)"),
                     Opt("time", "str", "a time budget, e.g. time=11h30m: darknet stops in time with its last "
                                        "weights saved and synced"),
                     Opt("until", "str", "stop by this time of day (HH:MM, UTC), as time="),
                     Opt("patience", "int", "stop when mAP has not improved for K evaluations (needs `map`)"),
                     Opt("subdivisions", "str", "auto: when CUDA runs out of memory at start, retry with "
                                                "subdivisions doubled until it fits"),
                     TRACK),
            flags=(("map", "compute mAP during training (-map)"), ("clear", "reset the iteration counter (-clear)"),
                   ("force", "start even when the pre-flight check finds errors"),
                   ("background", "return at once; the chart keeps updating in this cell (%yolo stop, run.wait()); "
                                 "darknet survives a kernel restart (`%yolo status` re-attaches)")),
            allows_as=True, example="%yolo train {workspace}/obj.data yolo-obj.cfg {weights} map", order=110)


def _plan(step: Step, ctx: Context, run_dir: Path, *, check_files: bool = True, extra: tuple[str, ...] = ()
          ) -> TrainPlan:
    weights = step.args.get("WEIGHTS")
    return plan_train(darknet=ctx.darknet_binary(step), data=ctx.path(step.args["DATA"]),
                      cfg=ctx.path(step.args["CFG"]), weights=ctx.path(weights) if weights else None,
                      map="map" in step.flags, gpus=step.get("gpus"),
                      backup=ctx.path(step.get("backup")) if step.get("backup") else None,
                      clear="clear" in step.flags, run_dir=run_dir, stop_on_nan=step.get("stop_on_nan", True),
                      check_files=check_files, extra_args=tuple(darknet_args(step, ctx, "train")) + extra)


def _preflight(step: Step, ctx: Context) -> None:
    """`%yolo check` before darknet starts: errors refuse to start (unless `force`), warnings are shown."""
    data, cfg = ctx.path(step.args["DATA"]), ctx.path(step.args["CFG"])
    weights = ctx.path(step.args["WEIGHTS"]) if step.args.get("WEIGHTS") else None
    # the binary's flavor: a CRLF cfg or list is an error for pjreddie (it keeps each \r), a warning for the others
    flavor = darknet_flavor(ctx.darknet_binary(step)) or "alexeyab"
    problems = check(data, cfg, weights=weights, flavor=flavor)
    problems = [p for p in problems if p.code != "missing-backup"]  # the run makes its weights folder itself
    errors = [p for p in problems if p.severity == "error"]
    unsafe = [p for p in errors if p.code == "unsafe-name"]
    if unsafe:  # `force` never starts darknet on names its own shell commands would run (docs/security.md)
        raise StepError("the image lists name files darknet may not get; training was not started",
                        fix=unsafe[0].fix, problems=unsafe)
    for p in problems:
        if p.severity != "error" or "force" in step.flags:
            ctx.reporter.warn(p.describe())
    if errors and "force" not in step.flags:
        raise StepError(f"the pre-flight check found {len(errors)} error(s); training was not started",
                        fix="fix them (see `%yolo check`), or add `force` to start anyway", problems=errors)


def _guarded_plan(step: Step, ctx: Context) -> TrainPlan:
    """Issue 24: the run folder on the drive and, when it is mirrored, its local twin darknet writes in; the plan;
    the guard's options (guard.json) for the drive mirror, checkpoints, the time budget and patience."""
    drive_dir = make_run_dir(runs_root(ctx), Path(step.args["CFG"]).stem)
    drive = ctx.session.drive
    on_drive = bool(drive and drive.in_colab and drive.mounted and _under(drive_dir, drive.real_root, drive.root))
    twin = None
    try:
        twin = guard.local_twin(drive_dir, ctx.session.local(), sync=step.get("sync"), on_drive=on_drive)
        run_dir = twin or drive_dir
        plan = _plan(step, ctx, run_dir)
        if step.get("save_every") and plan.flavor == "hank-ai":  # hank-ai's own flag: it saves _N.weights itself
            plan = _plan(step, ctx, run_dir, extra=("-saveweights", str(step.get("save_every"))))
        refuse_shared_backup(plan, None)
        options = _guard_options(step, plan, drive_dir if twin else None)
    except BaseException:
        for folder in (twin, drive_dir):
            try:
                if folder is not None:
                    folder.rmdir()  # still empty: a refused run leaves no folder behind
            except OSError:
                pass
        raise
    if options.active:
        guard.write_options(run_dir, options)
        for line in options.describe():
            ctx.reporter.info(line)
    if ctx.session.platform == "colab" and not (options.budget_s or options.deadline) \
            and id(ctx.session) not in _WARNED:
        _WARNED.add(id(ctx.session))  # once per session: the user has read it
        ctx.reporter.warn(guard.vm_left_warning(_uptime()))
    return plan


def _guard_options(step: Step, plan: TrainPlan, drive: Optional[Path]) -> guard.GuardOptions:
    return guard.plan_options(
        backup_dir=plan.backup_dir, cfg=plan.cfg, flavor=plan.flavor.value if plan.flavor else None, drive=drive,
        sync=step.get("sync"), save_every=step.get("save_every"), keep=step.get("keep"),
        time_budget=step.get("time"), until=step.get("until"), patience=step.get("patience"),
        map_on="map" in step.flags, now=datetime.now(timezone.utc))


_WARNED: set[int] = set()  # the sessions told how long their VM has left


def _under(path: Path, *roots: Path) -> bool:
    return any(root is not None and (path == root or root in path.parents) for root in roots)


def _uptime() -> float:
    try:
        return float(Path("/proc/uptime").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 0.0


def run(step: Step, ctx: Context) -> Done:
    tracker = parse_track(step.get("track"))  # a missing package stops here, before any folder or darknet
    _preflight(step, ctx)
    plan = _guarded_plan(step, ctx)
    if tracker is not None:
        write_state(plan.run_dir, TrackState(tracker))
    if "background" in step.flags:
        started = background.start(plan=plan, reporter=ctx.reporter, name=step.as_name or DEFAULT_RUN_NAME,
                                   view=live_view(ctx))
        done = keep_run(step, ctx, started)
        started.save()  # run.json names the variable, so that `%yolo status` in a new kernel binds it again
        return Done(f"training in the background: {' '.join(plan.argv)} (bound to `{started.name}`; "
                    f"`%yolo stop {started.name}` or `{started.name}.wait()`)", done.result)
    with keep_run_on_failure(step, ctx):
        result = _train_fitting(step, ctx, plan)
    return keep_run(step, ctx, result)


def _train_fitting(step: Step, ctx: Context, plan: TrainPlan) -> TrainingRun:
    """Issue 24: with subdivisions=auto, a CUDA out-of-memory at start is retried with subdivisions doubled; without
    it, the error asks for it once."""
    def once(previous):
        return train(plan=plan, reporter=ctx.reporter, previous=previous, view=live_view(ctx))

    if step.get("subdivisions") is not None:
        if step.get("subdivisions") != "auto":
            raise StepError(f"subdivisions={step.get('subdivisions')}: only `auto` is known here",
                            fix="write subdivisions=auto, or set a number in the cfg (%yolo cfg ... subdivisions=N)")
        return oom.train_fitting(once, plan.cfg, ctx.reporter, session_output=_session_output)
    try:
        return once(None)
    except StepError as exc:
        if any(p.code == "cuda-oom" for p in exc.problems) and oom.ASK not in (exc.fix or ""):
            exc.fix = f"{exc.fix}; or {oom.ASK}" if exc.fix else oom.ASK
        raise


def _session_output(run: TrainingRun) -> str:
    """What darknet printed in the run's last session (its log from that session's offset)."""
    offset = int(run.sessions[-1].get("log_offset") or 0) if run.sessions else 0
    try:
        with open(run.log_path, "rb") as handle:
            handle.seek(offset)
            return handle.read(4 << 20).decode("utf-8", errors="replace")
    except OSError:
        return ""


def preview(step: Step, ctx: Context) -> list[str]:
    folder = runs_root(ctx) / f"{Path(step.args['CFG']).stem}-YYYYmmdd-HHMMSS"
    plan = _plan(step, ctx, folder, check_files=False)
    lines = ["pre-flight check of the obj.data, its lists and labels, and the cfg"] + plan.describe()
    tracker = parse_track(step.get("track"))
    if tracker is not None:
        lines.append(f"rows also to {tracker.value}, offline in the run folder ({TRACK_FOLDERS[tracker]}), "
                     "when each session ends")
    if any(step.get(k) is not None for k in ("sync", "save_every", "keep", "time", "until", "patience")):
        lines += _guard_options(step, plan, folder if step.get("sync") else None).describe()
    return lines
