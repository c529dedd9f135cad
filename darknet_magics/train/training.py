"""A training session in the foreground: start -> watch -> finish; resume.

The run and its folder are `runs`, the plan `plan`, the watch and its sinks `watch`, the verdict `verdict`; a
background session (`background`) shares all four and `finish_session`.

`plan_train` works out the argv and files (the dry run prints it); `train` executes a plan: `start_session`
writes the run folder, `_watch` runs darknet through the runner with the watch's sinks (the parser, the history,
the caller's view), and `finish_session` judges the outcome (`verdict`). Failures and divergence raise `StepError`
(with the diagnosis) whose ``run`` attribute is the saved `TrainingRun`; an interrupt saves everything and
re-raises KeyboardInterrupt.
"""
from __future__ import annotations

import dataclasses
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

from ..data import objdata
from ..output import problems
from ..run import runner
from ..setup.binary import last_output
from ..errors import StepError
from . import guard
from .keeper import boot_id, guarded_callbacks, process_start, training_watchdog
from .record import RunStatus
from ..report import Reporter
from .plan import TrainPlan, live_run_warnings, plan_resume, plan_train, refuse_shared_backup, starting
from .runs import TrainingRun, history_class
from .verdict import judge_session
from .watch import ViewMaker, Watch, make_watch, no_view
from ..output.trackers import save_run as save_run_trackers


__all__ = ["train", "resume", "start_session", "finish_session"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def train(*, reporter: Optional[Reporter] = None, previous: Optional[TrainingRun] = None,
          watchdog: Optional[runner.Watchdog] = None, view: ViewMaker = no_view, env: Optional[dict] = None,
          plan: Optional[TrainPlan] = None, **plan_args: Any) -> TrainingRun:
    """Train with darknet and watch it: log, history, live chart; judge the outcome from the output.

    Give a `plan` (from `plan_train`) or `plan_train`'s arguments (darknet, data, cfg, weights, map, gpus, backup,
    clear, run_dir, stop_on_nan, extra_args, cwd, flavor). `previous` is the run this one continues (resume: same
    run_dir, the history goes on). `view` makes whoever shows the session (the notebook's live chart).

    Returns:
        The `TrainingRun` (status finished, or finished-crashed-on-exit).

    Raises:
        StepError: a missing file, or darknet failed or diverged (``.problems`` has the diagnosis, ``.run`` the
            saved run).
        KeyboardInterrupt: (runner.RunInterrupted) the user interrupted; darknet is stopped and everything saved.
    """
    reporter = reporter or Reporter()
    plan = plan or plan_train(**plan_args)
    with starting(plan):  # the check and this session's run.json, one kernel at a time
        refuse_shared_backup(plan, previous)
        run, session_info = start_session(plan, previous, reporter)
    watch, result, interrupted = _watch(plan, run, previous is not None, reporter, watchdog, view, env)
    try:
        return finish_session(plan, run, watch, result, interrupted, session_info, reporter)
    finally:
        guard.after_verdict(run.run_dir, reporter)  # issue 24 hook: the verdict reaches the drive


def start_session(plan: TrainPlan, previous: Optional[TrainingRun], reporter: Reporter) -> tuple[TrainingRun, dict]:
    """The run folder, the weights folder, the per-run obj.data and run.json; the run object (new, or continued)."""
    for warning in live_run_warnings(plan, previous):
        reporter.warn(warning)
    try:
        return start_files(plan, previous, reporter)
    except OSError as exc:
        problem = problems.unwritable(exc.strerror or str(exc), str(plan.run_dir))
        raise StepError(f"training was not started: {problem.message}", fix=problem.fix, problems=[problem]) from None


def start_files(plan: TrainPlan, previous: Optional[TrainingRun], reporter: Reporter) -> tuple[TrainingRun, dict]:
    plan.run_dir.mkdir(parents=True, exist_ok=True)
    plan.backup_dir.mkdir(parents=True, exist_ok=True)  # pjreddie does not create it and fails to save
    if plan.own_backup:
        objdata.write_with_backup(plan.data, plan.backup_dir, plan.data_arg)
    for warning in plan.warnings:
        reporter.warn(warning)
    if previous is not None:
        run = previous
        run.args = dataclasses.replace(plan.args, weights=run.args.weights)  # the weights it first started from
        run.argv, run.max_batches, run.status = list(plan.argv), plan.max_batches, RunStatus.RUNNING
        run.message, run.result, run.problems_found = "", None, []
        # `%yolo stop` set it for the session that ended: left set, the new darknet is stopped as it starts
        run.stop_requested.clear()
        run.error = None
    else:
        run = TrainingRun(run_dir=plan.run_dir, history=history_class()(), args=plan.args, argv=plan.argv,
                          name=plan.run_dir.name, max_batches=plan.max_batches)
    session_info = {"argv": list(plan.argv), "started": _now(),
                    "weights": str(plan.weights) if plan.weights else None,
                    "start_iteration": run.last_iteration or 0,
                    "log_offset": run.log_path.stat().st_size if run.log_path.exists() else 0,
                    "owner": {"pid": os.getpid(), "start": process_start(os.getpid()), "boot_id": boot_id()}}
    run.sessions.append(session_info)
    run.save()
    return run, session_info


def _watch(plan: TrainPlan, run: TrainingRun, resumed: bool, reporter: Reporter, watchdog: Optional[runner.Watchdog],
           view: ViewMaker, env: Optional[dict]) -> tuple[Watch, runner.ProcessResult, Optional[runner.RunInterrupted]]:
    """Run darknet with the sinks attached until it ends (or is interrupted, or stopped at the first nan)."""
    watch = make_watch(run, data_arg=plan.data_arg, max_batches=plan.max_batches, resumed=resumed, view=view)
    reporter.info(("resuming" if resumed else "training") + f": {' '.join(plan.argv)}")
    reporter.info(f"log: {run.log_path}")
    watch.live.update(run.history, force=True)
    interrupted: Optional[runner.RunInterrupted] = None
    guarded = guard.open_guard(run.run_dir)  # issue 24 hook: drive mirror, checkpoints, budget, patience
    on_text, should_stop = guarded_callbacks(guarded, watch.on_text, watch.should_stop)
    try:
        result = runner.run(list(plan.argv), cwd=plan.cwd, log_path=run.log_path, on_text=on_text,
                            watchdog=watchdog or training_watchdog(), env=env, should_stop=should_stop)
    except runner.RunInterrupted as exc:
        interrupted, result = exc, exc.result
    except FileNotFoundError as exc:
        raise StepError(f"cannot start darknet: {exc}", fix="check the binary path (bin=PATH)") from exc
    finally:
        if guarded is not None:
            guarded.finish()
    try:
        watch.close()
    except Exception as exc:  # the log is complete whatever went wrong in our reading of it
        watch.error = watch.error or exc
    return watch, result, interrupted


def finish_session(plan: TrainPlan, run: TrainingRun, watch: Watch, result: runner.ProcessResult,
                   interrupted: Optional[runner.RunInterrupted], session_info: dict, reporter: Reporter) -> TrainingRun:
    """Judge the run, record the session in run.json, give the view its last frame; return or raise."""
    run.result = result
    for notice in (*watch.notices, *result.notices):
        reporter.warn(notice)
    if watch.error is not None and not isinstance(watch.error, OSError):
        reporter.warn(f"reading darknet's output failed ({watch.error!r}); the log is complete: "
                      f"`%yolo log {run.log_path}` parses it again")
    judge_session(run, watch, result, plan.max_batches)
    session_info.update({"ended": _now(), "status": run.status.value, "returncode": result.returncode,
                         "signal": result.signal, "seconds": round(result.seconds, 3),
                         "watchdog": result.killed_by_watchdog, "last_iteration": run.last_iteration,
                         "message": run.message})
    try:
        run.save()
    except OSError as exc:  # the same full or read-only disk: the verdict is still shown, and says so
        reporter.warn(f"run.json could not be updated ({exc.strerror or exc}): it still says the run is running; "
                      "`%yolo status` reads such a run as interrupted")
    _save_chart(run, watch, reporter)
    save_run_trackers(run.history, run.run_dir, reporter)  # results.csv, TensorBoard events (output/trackers.py)
    if interrupted is not None:
        line = (f"interrupted at iteration {run.last_iteration or 0}: darknet stopped ({result.describe()}); "
                f"the log and the dataframes are kept ({run.log_path})")
        watch.live.interrupted(line, run.history)
        interrupted.run = run  # type: ignore[attr-defined]
        raise interrupted
    if run.status.ok:
        watch.live.update(run.history, final=True)
    else:  # the view says how darknet ended; the diagnosis and its fix are stated once, in the error below
        watch.live.fail(_ending(run), run.history)
    if run.status.ok:
        if run.status is RunStatus.FINISHED_CRASHED:
            reporter.warn(f"training finished, then darknet crashed on exit ({result.describe()}); "
                          "the weights were saved before the crash")
        for p in run.problems_found:
            reporter.warn(p.describe())
        reporter.info(run.summary())
        return run
    error = StepError(run.message, fix=run.problems_found[0].fix if run.problems_found else None,
                      problems=run.problems_found, details=last_output(watch.recorder.text()))
    error.run = run  # type: ignore[attr-defined]
    raise error


def _ending(run: TrainingRun) -> str:
    """A failed run's line in the view: its message without the diagnosis the error states (the judge puts the
    first problem's message after a colon)."""
    errors = [p.message for p in run.problems_found if p.severity == "error"]
    tail = ": " + errors[0] if errors else ""
    head = run.message[:-len(tail)] if tail and run.message.endswith(tail) else run.message
    return f"{head}; the diagnosis follows" if head != run.message else head


def _save_chart(run: TrainingRun, watch: Watch, reporter: Reporter) -> None:
    """The run's chart in its folder (the view's: chart.html, and chart.png where a notebook shows the run), as
    users keep darknet's own chart.png; a failure to write it never fails the run."""
    try:
        watch.live.save(run.history, run.run_dir, title=run.name)
    except OSError as exc:
        reporter.warn(f"the run's chart could not be saved in {run.run_dir} ({exc.strerror or exc})")


def resume(run: TrainingRun | Path | str, reporter: Optional[Reporter] = None, *, view: ViewMaker = no_view,
           **options: Any) -> TrainingRun:
    """Continue `run` in the foreground (`plan_resume`'s options); the history goes on. For a background resume,
    `background.start(plan=..., previous=run)` with `plan_resume`'s plan."""
    run, plan = plan_resume(run, reporter, **options)
    return train(plan=plan, reporter=reporter, previous=run, view=view)
