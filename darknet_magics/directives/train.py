"""`%yolo train`: darknet trains with a live chart, dataframes, and every byte logged in the run folder."""
from __future__ import annotations

from pathlib import Path

from ..setup.binary import darknet_flavor
from ..data.checks import check
from ..errors import StepError
from ..language import Opt, Pos, Spec, Step
from ..session import DEFAULT_RUN_NAME, Context, Done
from ..train import background
from ..train.plan import TrainPlan, plan_train, refuse_shared_backup
from ..train.runs import make_run_dir
from ..train.training import train
from ._model_out import darknet_args
from ._runs import keep_run, keep_run_on_failure, live_view, runs_root

SPEC = Spec("train", "yolo", "Train with darknet, with a live chart, dataframes and a log on the drive.",
            positionals=(Pos("DATA", "obj.data"), Pos("CFG", "the training .cfg"),
                         Pos("WEIGHTS", "pretrained or previous weights", False)),
            options=(Opt("gpus", "ints", "GPU ids, e.g. 0,1"),
                     Opt("backup", "path", "where darknet saves weights (default: the run's own folder, "
                                           "{workspace}/runs/NAME/backup, unless your own obj.data names one)"),
                     Opt("bin", "path", "the darknet binary (default: the last make, else darknet on PATH)"),
                     Opt("stop_on_nan", "onoff", "stop darknet when the loss turns nan", default="on"),
                     Opt("args", "str", "darknet's own flags, e.g. args=\"-mAP_epochs 2 -points 0\" (checked per "
                                        "flavor, passed as argv words)")),
            flags=(("map", "compute mAP during training (-map)"), ("clear", "reset the iteration counter (-clear)"),
                   ("force", "start even when the pre-flight check finds errors"),
                   ("background", "return at once; the chart keeps updating in this cell (%yolo stop, run.wait()); "
                                 "darknet survives a kernel restart (`%yolo status` re-attaches)")),
            allows_as=True, example="%yolo train {workspace}/obj.data yolo-obj.cfg {weights} map", order=110)


def _plan(step: Step, ctx: Context, run_dir: Path, *, check_files: bool = True) -> TrainPlan:
    weights = step.args.get("WEIGHTS")
    return plan_train(darknet=ctx.darknet_binary(step), data=ctx.path(step.args["DATA"]),
                      cfg=ctx.path(step.args["CFG"]), weights=ctx.path(weights) if weights else None,
                      map="map" in step.flags, gpus=step.get("gpus"),
                      backup=ctx.path(step.get("backup")) if step.get("backup") else None,
                      clear="clear" in step.flags, run_dir=run_dir, stop_on_nan=step.get("stop_on_nan", True),
                      check_files=check_files, extra_args=tuple(darknet_args(step, ctx, "train")))


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


def run(step: Step, ctx: Context) -> Done:
    _preflight(step, ctx)
    run_dir = make_run_dir(runs_root(ctx), Path(step.args["CFG"]).stem)
    try:
        plan = _plan(step, ctx, run_dir)
        refuse_shared_backup(plan, None)
    except BaseException:
        try:
            run_dir.rmdir()  # still empty: a refused run leaves no folder behind
        except OSError:
            pass
        raise
    if "background" in step.flags:
        started = background.start(plan=plan, reporter=ctx.reporter, name=step.as_name or DEFAULT_RUN_NAME,
                                   view=live_view(ctx))
        done = keep_run(step, ctx, started)
        started.save()  # run.json names the variable, so that `%yolo status` in a new kernel binds it again
        return Done(f"training in the background: {' '.join(plan.argv)} (bound to `{started.name}`; "
                    f"`%yolo stop {started.name}` or `{started.name}.wait()`)", done.result)
    with keep_run_on_failure(step, ctx):
        result = train(plan=plan, reporter=ctx.reporter, view=live_view(ctx))
    return keep_run(step, ctx, result)


def preview(step: Step, ctx: Context) -> list[str]:
    folder = runs_root(ctx) / f"{Path(step.args['CFG']).stem}-YYYYmmdd-HHMMSS"
    plan = _plan(step, ctx, folder, check_files=False)
    return ["pre-flight check of the obj.data, its lists and labels, and the cfg"] + plan.describe()
