"""What the training directives share: naming and keeping runs in the session, finding a run to continue."""
from __future__ import annotations

import keyword
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from ..errors import DarknetMagicsError, StepError
from ..language import Opt, Step
from ..output.track_remote import TrackState, parse_track, read_state, write_state
from ..session import DEFAULT_RUN_NAME, Context, Done
from ..train.record import RUN_JSON, read_record
from ..train.drivesync import working_folder
from ..train.runs import TrainingRun, find_resume_weights, history_from_log
from ..train.watch import RunView


def live_view(ctx: Context) -> Callable[..., RunView]:
    """The `ViewMaker` of a run started from a cell: the notebook's live chart (a terminal prints its lines)."""
    from ..setup.gpu import GpuPoller
    from ..view.live import LiveView  # plotly: imported with the first run, not with %load_ext

    return LiveView.maker(ctx.reporter, gpu=GpuPoller)  # each session polls nvidia-smi (rarely) for the chart


def _run_chart(iterations: Any, maps: Any, *, title: str) -> Any:
    from ..view.live import build_figure  # plotly

    return build_figure(iterations, maps, title=title)


def _run_bundle(figure: Any) -> dict:
    from ..view.live import figure_bundle  # plotly

    return figure_bundle(figure)


# A run draws itself with view/'s charts (`yolo_run.figure`, its display in a notebook); train/ cannot import view/,
# so the directives, which load with the magics and the CLI, hand the two functions over.
TrainingRun.chart_maker = _run_chart
TrainingRun.bundle_maker = _run_bundle


def keep_run(step: Step, ctx: Context, run: TrainingRun) -> Done:
    """Bind `run` to ``as NAME`` (default ``yolo_run``) and remember it as the session's last run."""
    name = ctx.bind(step, run, DEFAULT_RUN_NAME) or DEFAULT_RUN_NAME
    run.name = name
    ctx.session.runs[name] = run
    ctx.session.last_run = name
    return Done(f"{run.summary()} (bound to `{name}`)", run)


def bind_found(ctx: Context, run: TrainingRun) -> str:
    """Bind a run found on the drive (re-attached after a kernel restart) to the name it had (run.json keeps it),
    else to ``yolo_run``; it becomes the session's last run. Returns the name."""
    name = run.name if run.name.isidentifier() and not keyword.iskeyword(run.name) else DEFAULT_RUN_NAME
    run.name = name
    ctx.namespace[name] = run
    ctx.session.runs[name] = run
    ctx.session.last_run = name
    return name


@contextmanager
def keep_run_on_failure(step: Step, ctx: Context) -> Iterator[None]:
    """A run that failed, diverged or was interrupted is still bound to its name: its log and dataframes are what
    the user needs to see what happened (and what `%yolo resume` continues)."""
    try:
        yield
    except (StepError, KeyboardInterrupt) as exc:
        run = getattr(exc, "run", None)
        if isinstance(run, TrainingRun):
            keep_run(step, ctx, run)
        raise


def load_run(folder: Path, ctx: Context, *, restore: bool = True) -> TrainingRun:
    """A run folder as a run. A folder mirrored from local disk (issue 24: a ``sync.json`` on the drive) is worked on
    in its local twin, which a new VM first gets back from the drive's verified copy (`restore`)."""
    working, lines = working_folder(folder, restore_missing=restore)
    for line in lines:
        (ctx.reporter.warn if "drive-copy-unverified" in line else ctx.reporter.info)(line)
    run = TrainingRun.load(working)
    # restored: the dead VM's kernel may have parsed less of the log than the keeper's mirror synced. A train.log
    # whose drive copy was not the verified one is not restored (said above): the run goes on from its checkpoint
    # and history.jsonl, as that warning promises.
    if lines and run.log_path.is_file():
        from_log = history_from_log(run.log_path, run.args.flavor)[0]
        if (from_log.last_iteration or 0) > (run.last_iteration or 0):
            ctx.reporter.info(f"the history is rebuilt from the drive's train.log (to iteration "
                              f"{from_log.last_iteration:,}; history.jsonl reached {run.last_iteration or 0:,})")
            run.history = from_log
            run.history.save(run.history_path)
    return run


def find_run(ref: Optional[str], ctx: Context, *, restore: bool = True) -> TrainingRun:
    """The run `ref` names (a variable, a session run name, or a run folder); else the session's last run; else the
    newest run folder under {workspace}/runs (after a VM reset)."""
    if ref:
        obj = ctx.namespace.get(ref) or ctx.session.runs.get(ref)
        if isinstance(obj, TrainingRun):
            return obj
        path = ctx.path(ref)
        if path.is_dir():
            return load_run(path, ctx, restore=restore)
        named = _run_dir_named(runs_root(ctx), ref)
        if named is not None:  # a new kernel: the run folder whose run.json has that name
            return load_run(named, ctx, restore=restore)
        raise StepError(f"no run named {ref!r} and no run folder at {path}",
                        fix="give the run's variable name, or its folder under {workspace}/runs")
    last = ctx.session.runs.get(ctx.session.last_run or "")
    if last is not None:
        return last
    for folder in run_folders(ctx.session.workspace / "runs") if ctx.session.workspace else ():
        try:
            run = load_run(folder, ctx, restore=restore)
        except DarknetMagicsError as exc:  # a damaged folder is one line; the one before it is the last run
            ctx.reporter.warn(f"skipped {folder.name}: {first_line(exc)}")
            continue
        ctx.reporter.info(f"the latest run folder: {folder}")
        return run
    raise StepError("no training run in this session",
                    fix="give the run folder: %yolo resume {workspace}/runs/NAME (after a VM reset run the "
                        "%%darknet cell with `drive`/`workspace` first)")


def runs_root(ctx: Context) -> Path:
    """Where run folders go: {workspace}/runs, else ./runs."""
    return (ctx.session.workspace or Path.cwd()) / "runs"


def run_folders(root: Path) -> list[Path]:
    """The run folders (with a run.json) under `root`, the newest first."""
    found = []
    for folder in (root.iterdir() if root.is_dir() else ()):
        try:
            found.append(((folder / RUN_JSON).stat().st_mtime, folder))
        except OSError:  # no run.json (or no folder): not a run
            continue
    return [folder for _, folder in sorted(found, reverse=True)]


def newest_weights(ctx: Context) -> tuple[Optional[Path], Optional[Path]]:
    """(the weights folder, the weights in it to use) of the newest run under `runs_root` that saved weights: its
    ``<cfg>_best.weights``, else the newest of last/backup/final; (the newest run's folder, None) when no run saved
    any; (None, None) without runs. `%yolo train` saves each run's weights in its own folder, so this is where
    `%yolo data`, `train` and `test` agree they are."""
    first: Optional[Path] = None
    for folder in run_folders(runs_root(ctx)):
        try:
            record = read_record(folder)
        except DarknetMagicsError:  # a damaged run.json names nothing
            continue
        backup = record.args.backup_dir or folder / "backup"
        cfg = record.args.cfg or Path("x.cfg")
        best = backup / f"{cfg.stem}_best.weights"
        weights = best if best.is_file() and best.stat().st_size else find_resume_weights(backup, cfg)
        if weights is not None:
            return backup, weights
        first = first or backup
    return first, None


def first_line(exc: BaseException) -> str:
    """An error's message without its fix (one line for a list of folders)."""
    return str(getattr(exc, "message", None) or exc).splitlines()[0]


def _run_dir_named(root: Path, name: str) -> Optional[Path]:
    """The newest run folder under `root` whose run.json names the run `name`, or None (damaged ones are passed
    over: they name nothing)."""
    for folder in run_folders(root):
        try:
            if read_record(folder).name == name:
                return folder
        except DarknetMagicsError:
            continue
    return None


TRACK = Opt("track", "str", "mlflow or wandb: the chart's scalars, the mAP rows and `%yolo eval`'s metrics of the "
                            "run's weights go there too, offline in the run folder (RUN/mlruns, RUN/wandb); "
                            "TensorBoard's event files and results.csv are always written")


def track_from_now(step: Step, run_dir: Path) -> None:
    """`%yolo resume ... track=`: the run tracks from this session on (the same tracker keeps its run id and what
    it was sent); without track= the run keeps what `%yolo train` chose."""
    tracker = parse_track(step.get("track"))
    if tracker is None:
        return
    state = read_state(run_dir)
    if state is None or state.tracker is not tracker:
        write_state(run_dir, TrackState(tracker))
