"""The verdict on one darknet session: finished, failed, diverged, interrupted; the message and the problems,
from what the live parse saw and how darknet ended (never from its exit code alone: pjreddie exits 0 after
``Couldn't open file``, AlexeyAB and hank-ai abort in glibc after a finished run).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

from ..output import problems
from ..run import runner
from ..data.cfg_weights import check_weights
from ..output.judge import verdict
from ..setup.runtime import nvidia_gpu_found
from ..errors import DarknetMagicsError, Problem
from .record import LOG_NAME, RUN_JSON, RecordError, RunArgs, RunRecord, RunStatus, confirm_binary, read_record  # noqa: F401 (RUN_JSON, LOG_NAME: re-exported)
from . import guard
from .runs import TrainingRun, weights_iteration
from .watch import Watch

__all__ = ["judge_session"]


def judge_session(run: TrainingRun, watch: Watch, result: runner.ProcessResult, max_batches: Optional[int]) -> None:
    """Set run.status, run.message and run.problems_found from what darknet printed and how it ended."""
    if _judge_stop(run, watch, result):
        return
    # what the live parse saw, all of it (not a second parse of the kept start and end of the output)
    found = verdict(watch.problems, watch.parser, finished=watch.finished_seen, printed=watch.saw_output,
                    returncode=result.returncode, signal=result.signal, command=run.argv,
                    gpu_found=nvidia_gpu_found)
    if watch.nan_iteration is not None and not any(p.code.startswith("nan") for p in found):
        found = [_nan_problem(watch.diverged_from or watch.nan_iteration, severity="warning")] + list(found)
    limit = watch.max_batches_seen or max_batches
    reached = watch.finished_seen or watch.final_weights is not None or (
        limit is not None and watch.last_iteration is not None and watch.last_iteration >= limit)
    if reached:
        _judge_reached(run, watch, result, found, limit)
    else:
        _judge_failed(run, result, found)


def _judge_stop(run: TrainingRun, watch: Watch, result: runner.ProcessResult) -> bool:
    """Judge a run that something stopped (the guard's budget or patience, the user, a log that cannot be
    written, a nan); False when nothing did and the output must say how it went."""
    last = run.last_iteration
    unwritable = result.log_error or (str(watch.error) if isinstance(watch.error, OSError) else None)
    asked = run.stop_requested.is_set()
    stopped = guard.verdict(result.stopped_by_caller, last)  # issue 24 hook: the time budget, patience
    if stopped is not None:
        run.status = RunStatus.FINISHED if stopped[0] else RunStatus.INTERRUPTED
        run.message = stopped[1]
    elif (result.interrupted or (result.stopped_by_caller and asked)) and not (unwritable and not asked):
        how = "stopped on request" if not result.interrupted else "interrupted"
        run.status, run.message = RunStatus.INTERRUPTED, f"{how} at iteration {last or 0}"
    elif unwritable:  # before an interrupt: a keeper that cannot be asked in writing is stopped with SIGINT
        problem = problems.unwritable(unwritable, str(run.run_dir))
        run.status, run.problems_found = RunStatus.FAILED, [problem]
        run.message = (f"stopped at iteration {last or 0}: {problem.message}; the log so far is kept "
                       f"({run.log_path})")
    elif watch.nan_iteration is not None and result.stopped_by_caller:
        began = watch.diverged_from or watch.nan_iteration
        run.status = RunStatus.DIVERGED
        run.message = (f"training diverged at iteration {began} (loss nan from iteration {watch.nan_iteration}); "
                       f"darknet stopped there (stop_on_nan)")
        run.problems_found = [_nan_problem(began)]
    else:
        return False
    return True


def _judge_reached(run: TrainingRun, watch: Watch, result: runner.ProcessResult, found: Sequence[Problem],
                   limit: Optional[int]) -> None:
    """Judge a run that trained to its end: finished, finished with a crash on exit, or failed to save."""
    last = run.last_iteration
    lost = _unsaved_weights(watch.final_weights, run.args.cwd or Path("."), run.args.cfg or Path("x.cfg"))
    if lost is not None:
        run.status, run.problems_found = RunStatus.FAILED, [lost] + [p for p in found if p.severity == "error"]
        run.message = f"darknet trained to iteration {last or 0} but could not save its weights: {lost.message}"
        return
    clean_exit = result.returncode == 0 and result.signal is None and not result.killed_by_watchdog
    run.status = RunStatus.FINISHED if clean_exit else RunStatus.FINISHED_CRASHED
    run.message = "finished" if clean_exit else f"finished, darknet crashed on exit ({result.describe()})"
    run.problems_found = [p for p in found if p.severity != "info"]
    if watch.last_iteration is None:  # it stopped at once: the weights say it is trained that far already
        run.problems_found = [_already_trained(run, limit)] + [p for p in run.problems_found
                                                               if p.code != "already-trained"]


def _judge_failed(run: TrainingRun, result: runner.ProcessResult, found: Sequence[Problem]) -> None:
    """Judge a run that ended before its end: killed, hung, or stopped; the first error says why."""
    last = run.last_iteration
    run.status = RunStatus.FAILED
    run.problems_found = list(found)
    how = result.describe()
    if result.signal is not None and not result.killed_by_watchdog:
        run.message = f"darknet was {how} at iteration {last or 0}"
        if not any(p.severity == "error" for p in found):
            run.problems_found.append(problems.killed(last, how=how))
    elif result.killed_by_watchdog:
        run.message = f"darknet hung and was ended by the watchdog ({result.killed_by_watchdog}) at iteration {last or 0}"
    else:
        run.message = f"darknet stopped before finishing ({how}) at iteration {last or 0}"
    errors = [p for p in run.problems_found if p.severity == "error"]
    if errors:
        run.message += ": " + errors[0].message


def _unsaved_weights(final: Optional[str], cwd: Path, cfg: Path) -> Optional[Problem]:
    """A problem when darknet said "Saving weights to X_final.weights" and X is not there whole: darknet does not
    check its fopen or fwrite, so a full disk leaves a short file (or none) and a run that looks finished. The cause
    (a full disk, a read-only folder) is what is reported."""
    if not final:
        return None
    path = Path(final) if Path(final).is_absolute() else cwd / final
    try:
        short = check_weights(cfg.read_text(encoding="utf-8", errors="replace"), path) if path.is_file() else None
    except DarknetMagicsError:  # a cfg we cannot size: only a missing or empty file is known to be lost
        short = None
    if path.is_file() and path.stat().st_size > 0 and (short is None or short.code != "truncated-weights"):
        return None
    folder = path.parent
    try:
        stats = os.statvfs(folder)
        free = stats.f_bavail * stats.f_frsize
    except OSError:
        free = None
    if free is not None and free < (1 << 20):
        return problems.unwritable(f"No space left on device: {free:,} bytes free in {folder}", str(path))
    if folder.is_dir() and not os.access(folder, os.W_OK):
        return problems.unwritable(f"Read-only file system or no permission: {folder}", str(path))
    return problems.missing_file(str(path), evidence=f"Saving weights to {final}")


def _already_trained(run: TrainingRun, limit: Optional[int]) -> Problem:
    weights = run.args.weights
    at = weights_iteration(weights, run.args.cfg) if weights and run.args.cfg else None
    return problems.already_trained(str(weights) if weights else "the weights", at=at, max_batches=limit)


def _nan_problem(iteration: int, severity: str = "error") -> Problem:
    return problems.nan_loss(iteration, severity=severity)
