"""What the training directives share: naming and keeping runs in the session, finding a run to continue."""
from __future__ import annotations

import keyword
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

from ..errors import DarknetMagicsError, StepError
from ..language import Step
from ..session import DEFAULT_RUN_NAME, Context, Done
from ..train.record import RUN_JSON, read_record
from ..train.runs import TrainingRun
from ..train.watch import RunView


def live_view(ctx: Context) -> Callable[..., RunView]:
    """The `ViewMaker` of a run started from a cell: the notebook's live chart (a terminal prints its lines)."""
    from ..view.live import LiveView  # plotly: imported with the first run, not with %load_ext

    return LiveView.maker(ctx.reporter)


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


def find_run(ref: Optional[str], ctx: Context) -> TrainingRun:
    """The run `ref` names (a variable, a session run name, or a run folder); else the session's last run; else the
    newest run folder under {workspace}/runs (after a VM reset)."""
    if ref:
        obj = ctx.namespace.get(ref) or ctx.session.runs.get(ref)
        if isinstance(obj, TrainingRun):
            return obj
        path = ctx.path(ref)
        if path.is_dir():
            return TrainingRun.load(path)
        named = _run_dir_named(runs_root(ctx), ref)
        if named is not None:  # a new kernel: the run folder whose run.json has that name
            return TrainingRun.load(named)
        raise StepError(f"no run named {ref!r} and no run folder at {path}",
                        fix="give the run's variable name, or its folder under {workspace}/runs")
    last = ctx.session.runs.get(ctx.session.last_run or "")
    if last is not None:
        return last
    for folder in run_folders(ctx.session.workspace / "runs") if ctx.session.workspace else ():
        try:
            run = TrainingRun.load(folder)
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
