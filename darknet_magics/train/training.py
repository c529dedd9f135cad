"""One training run: plan -> start -> watch -> finish; resume, log, status.

A run lives in a folder (`run_dir`, created exclusively: two runs never share one) that survives a VM reset when it
is on the drive:

* ``train.log``     every byte darknet wrote, appended as it arrives (all sessions of a resumed run);
* ``history.jsonl`` the parsed events, appended as they arrive (history.py's format);
* ``run.json``      the arguments, argv and outcome of each session, so `TrainingRun.load` and `resume` work
  in a new kernel;
* ``obj.data``      a per-run copy of the data file whose ``backup=`` is this run's own weights folder;
* ``backup/``       the run's weights (``<cfg>_last.weights``, ...), unless ``backup=`` or the user's own obj.data
  names another folder: two runs with the same cfg name never share weight files.

`plan_train` works out the argv and files (the dry run prints it); `train` executes a plan: `_start` writes the
run folder, `_watch` runs darknet through the runner with the parser, history and live view as sinks, and
`_finish` judges the outcome from darknet's output, never from its exit code alone (pjreddie exits 0 after
``Couldn't open file``, AlexeyAB and hank-ai abort in glibc after a finished run, hank-ai may hang after its
fatal-error banner: the runner's watchdog ends it). Failures and divergence raise `StepError` (with the diagnosis)
whose ``run`` attribute is the saved `TrainingRun`; an interrupt saves everything and re-raises KeyboardInterrupt.
"""
from __future__ import annotations

import dataclasses
import html
import math
import os
import shutil
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Sequence

from ..data import objdata
from ..output import problems
from ..run import runner
from ..setup.binary import darknet_flavor, last_output, require_file, resolve_darknet
from ..setup.flavor import Flavor, flavor_of
from ..data.cfg import Cfg, check_weights, read_weights_header
from ..output.judge import diagnose
from ..errors import DarknetMagicsError, Problem, StepError
from ..fileio import atomic_write_text
from .keeper import Keeper, StopReason, boot_id, process_start, read_state, same_process, save_json, training_watchdog
from ..output.logparse import Finished, Iteration, LogParser, MaxBatches, WeightsSaved
from .record import LOG_NAME, RUN_JSON, RecordError, RunArgs, RunRecord, RunStatus, confirm_binary, read_record  # noqa: F401 (RUN_JSON, LOG_NAME: re-exported)
from ..report import Reporter
from ..safenames import check_argv_paths

if TYPE_CHECKING:  # pandas-backed; imported lazily at run time (import time of the magics matters)
    from ..output.history import History
    from ..view.live import LiveView

__all__ = [
    "RunStatus", "TrainPlan", "TrainingRun", "plan_train", "train", "plan_resume", "resume", "load_log", "status",
    "find_resume_weights", "training_watchdog", "make_run_dir", "latest_run_dir",
]

HISTORY_NAME = "history.jsonl"
_HEAD_KEEP = 64 * 1024   # the start of a session's output kept in memory for the diagnosis
_TAIL_KEEP = 256 * 1024  # and its end


# ------------------------------------------------------------------------------------------------- helpers


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _cfg_net_int(cfg: Path, key: str) -> Optional[int]:
    try:
        value = Cfg.parse(Path(cfg).read_text(encoding="utf-8", errors="replace")).net.get(key)
        return int(float(value)) if value is not None else None
    except Exception:  # an unreadable cfg is darknet's to report
        return None


def find_resume_weights(backup: Path, cfg: Path) -> Optional[Path]:
    """The weights to resume from in `backup`: the newest of ``<cfg>_last.weights`` (AlexeyAB, hank-ai),
    ``<cfg>.backup`` (pjreddie, every 100 iterations) and ``<cfg>_final.weights`` (a finished run, which goes on
    when max_batches was raised); None when there is none."""
    base = Path(cfg).stem
    candidates = [Path(backup) / f"{base}_last.weights", Path(backup) / f"{base}.backup",
                  Path(backup) / f"{base}_final.weights"]
    existing = [p for p in candidates if p.is_file() and p.stat().st_size > 0]
    if not existing:
        return None
    return max(existing, key=lambda p: p.stat().st_mtime)


def make_run_dir(root: Path, stem: str) -> Path:
    """A new run folder ``root/STEM-YYYYmmdd-HHMMSS`` created exclusively (``-2``, ``-3``, ... when two runs start
    in the same second), so that two runs never share a log, a history or weights."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    base = f"{stem}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        folder = root / (base if n == 1 else f"{base}-{n}")
        try:
            folder.mkdir()
            return folder
        except FileExistsError:
            continue
    raise StepError(f"cannot make a new run folder under {root}", fix="remove old run folders")


def latest_run_dir(root: Path) -> Optional[Path]:
    """The newest run folder (one with a run.json) under `root`, or None."""
    if not Path(root).is_dir():
        return None
    found = [p for p in Path(root).iterdir() if (p / RUN_JSON).is_file()]
    return max(found, key=lambda p: (p / RUN_JSON).stat().st_mtime) if found else None


class _Recorder:
    """What the run keeps of darknet's output besides the log: its start and its end, for the diagnosis."""

    def __init__(self) -> None:
        self.head: list[str] = []
        self.head_len = 0
        self._tail: list[str] = []
        self._tail_len = 0
        self.truncated = False

    def add(self, text: str) -> None:
        if self.head_len < _HEAD_KEEP:
            piece = text[: _HEAD_KEEP - self.head_len]
            self.head.append(piece)
            self.head_len += len(piece)
            text = text[len(piece):]
            if not text:
                return
        self._tail.append(text)
        self._tail_len += len(text)
        if self._tail_len > 2 * _TAIL_KEEP:  # amortised: trim once the kept end is twice what we need
            joined = "".join(self._tail)[-_TAIL_KEEP:]
            self._tail, self._tail_len, self.truncated = [joined], len(joined), True

    def text(self) -> str:
        tail = "".join(self._tail)
        if self.truncated or self._tail_len > _TAIL_KEEP:
            return "".join(self.head) + "\n...\n" + tail[-_TAIL_KEEP:]
        return "".join(self.head) + tail


# ------------------------------------------------------------------------------------------------- the run


class TrainingRun:
    """A training run (possibly resumed several times): its files, arguments, outcome and live dataframes.

    `iterations`, `maps`, `class_ap`, `weights` and `problems` are the history's dataframes (see history.py);
    `figure` is the plotly chart. `status` is one of ``running``, ``finished``, ``finished-crashed-on-exit``,
    ``failed``, ``interrupted``, ``diverged``.
    """

    def __init__(self, *, run_dir: Path, history: "History", args: Optional[RunArgs] = None, argv: Sequence[str] = (),
                 name: Optional[str] = None, max_batches: Optional[int] = None,
                 status: RunStatus = RunStatus.RUNNING,
                 log_path: Optional[Path] = None, sessions: Optional[list[dict]] = None) -> None:
        self.run_dir = Path(run_dir)
        self.history = history
        self.args = args or RunArgs()
        self.argv = [str(a) for a in argv]
        self.name = name or self.run_dir.name
        self.max_batches = max_batches
        self.status = RunStatus(status)
        self.log_path = Path(log_path) if log_path else self.run_dir / LOG_NAME
        self.history_path = self.run_dir / HISTORY_NAME
        self.sessions: list[dict] = list(sessions or [])
        self.result: Optional[runner.ProcessResult] = None
        self.problems_found: list[Problem] = []
        self.message = ""
        # a background run: its thread, what ended it, and the request to stop it (`%yolo stop`, `run.stop()`)
        self.thread: Optional[threading.Thread] = None
        self.error: Optional[BaseException] = None
        self.stop_requested = threading.Event()
        self.keeper: Optional["Keeper"] = None  # a background run's darknet runs under a keeper (background.py)
        self.from_disk = False  # read from a run folder: the binary its run.json names is not trusted as is

    def stop(self) -> None:
        """Ask a running darknet to stop (SIGINT, then TERM, then KILL to its process group); what it wrote is
        kept, and `resume` continues it."""
        self.stop_requested.set()
        if self.keeper is not None:
            self.keeper.stop()

    def wait(self, timeout: Optional[float] = None) -> "TrainingRun":
        """Wait for a background run to end (or `timeout` seconds); returns the run."""
        if self.thread is not None:
            self.thread.join(timeout)
        return self

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    # dataframes, live from the history
    @property
    def iterations(self):
        return self.history.iterations

    @property
    def maps(self):
        return self.history.maps

    @property
    def class_ap(self):
        return self.history.class_ap

    @property
    def weights(self):
        return self.history.weights

    @property
    def problems(self):
        return self.history.problems

    @property
    def figure(self):
        from ..view.live import build_figure

        return build_figure(self.iterations, self.maps, title=self.name)

    @property
    def returncode(self) -> Optional[int]:
        if self.result is not None:
            return self.result.returncode
        return self.sessions[-1].get("returncode") if self.sessions else None

    @property
    def signal(self) -> Optional[int]:
        if self.result is not None:
            return self.result.signal
        return self.sessions[-1].get("signal") if self.sessions else None

    @property
    def last_iteration(self) -> Optional[int]:
        return self.history.last_iteration

    @property
    def backup_dir(self) -> Optional[Path]:
        return self.args.backup_dir

    def summary(self) -> str:
        """One line: status, iterations, last avg loss, best mAP, where the log is."""
        parts = [f"{self.name}: {self.status}"]
        last = self.last_iteration
        if last is not None:
            parts.append(f"iteration {last:,}" + (f"/{self.max_batches:,}" if self.max_batches else ""))
            its = self.iterations
            if "avg_loss" in its.columns and len(its):
                parts.append(f"avg loss {float(its['avg_loss'].iloc[-1]):.4g}")
        maps = self.maps
        if maps is not None and len(maps) and "map50" in maps.columns and maps["map50"].notna().any():
            parts.append(f"best mAP@0.50 {100 * float(maps['map50'].max()):.2f}%")
        if self.message and self.message != self.status:
            parts.append(self.message)
        parts.append(f"log: {self.log_path}")
        return " | ".join(parts)

    def __repr__(self) -> str:
        return f"<TrainingRun {self.summary()}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict:
        """The run in a notebook: its summary and its chart as plotly's own mimetype (no 4.9 MB plotly.js per
        output), with the summary as text for front ends that render neither."""
        from ..view.live import figure_bundle  # plotly: imported when a run is first shown

        bundle = dict(figure_bundle(self.figure))
        bundle["text/plain"] = repr(self)
        bundle.setdefault("text/html", f"<p><b>{html.escape(self.summary())}</b></p>")
        return bundle

    # persistence
    def record(self) -> RunRecord:
        """The run as run.json holds it (schema 2)."""
        return RunRecord(name=self.name, status=self.status, argv=tuple(self.argv), args=self.args,
                         max_batches=self.max_batches, sessions=self.sessions, message=self.message,
                         run_dir=self.run_dir)

    def save(self) -> None:
        """Write run.json (atomically; on a full disk in place, so that it still says how the run ended)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_json(self.run_dir / RUN_JSON, self.record().to_json())

    @classmethod
    def load(cls, run_dir: Path | str, *, history: bool = True) -> "TrainingRun":
        """Rebuild a run from its folder (run.json + history.jsonl, else the log) in a new kernel; `history=False`
        leaves the history empty for a caller that rebuilds it (a re-attach parses the log anyway)."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise DarknetMagicsError(f"{run_dir} is not a run folder (no such folder)",
                                     fix="give the folder `%yolo train` wrote under {workspace}/runs")
        rec = read_record(run_dir)  # validated: a run folder from elsewhere is data, never code
        history_ = _load_history(run_dir / HISTORY_NAME, run_dir / LOG_NAME) if history else _history_type()()
        status_ = rec.status
        if status_ is RunStatus.RUNNING:  # the kernel died while it ran (VM reset): it is not running now
            status_ = RunStatus.INTERRUPTED
        run = cls(run_dir=run_dir, history=history_, args=rec.args, argv=rec.argv, name=rec.name,
                  max_batches=rec.max_batches, status=status_, sessions=rec.sessions)
        run.message = rec.message
        run.from_disk = True
        return run


def _history_type() -> type["History"]:
    # history.py imports pandas, which costs a second at import time: loaded with the first run, not with %load_ext
    from ..output.history import History

    return History


def _load_history(history_path: Path, log_path: Path) -> "History":
    History = _history_type()

    if history_path.is_file():
        try:
            return History.load(history_path)
        except RecordError:
            if not log_path.is_file():
                raise
            # a damaged history.jsonl: the log holds every byte darknet wrote, the history is made from it
    if log_path.is_file():  # no history file (it was lost, or the log came from elsewhere): parse the log again
        return _history_from_log(log_path)[0]
    return History()


def _history_from_log(log_path: Path, flavor: Optional[Flavor] = None) -> tuple["History", LogParser]:
    """(History, LogParser) of a whole log file, read in big chunks."""
    parser = LogParser(flavor=flavor)
    history = _history_type()()
    with open(log_path, "rb") as f:
        while True:
            block = f.read(16 << 20)
            if not block:
                break
            history.add(parser.feed(block))
    history.add(parser.close())
    return history, parser


# ------------------------------------------------------------------------------------------------- train


@dataclass(frozen=True)
class TrainPlan:
    """What `train` will run, worked out before anything starts (the dry run prints `describe()`).

    `data_arg` is the obj.data darknet gets: the per-run copy whose ``backup=`` is `backup_dir` when the run keeps
    its own weights folder (`own_backup`), else the user's file.
    """

    darknet: Path
    flavor: Optional[Flavor]
    data: Path
    cfg: Path
    weights: Optional[Path]
    run_dir: Path
    backup_dir: Path
    own_backup: bool
    data_arg: Path
    argv: tuple[str, ...]
    cwd: Path
    max_batches: Optional[int]
    args: RunArgs
    warnings: tuple[str, ...] = ()

    def describe(self) -> list[str]:
        lines = [f"run folder {self.run_dir} (train.log, history.jsonl, run.json)"]
        if self.own_backup:
            lines.append(f"weights into {self.backup_dir} (this run's own folder; obj.data copied to {self.data_arg})")
        else:
            lines.append(f"weights into {self.backup_dir}")
        lines.append(" ".join(self.argv) + f"   (in {self.cwd})")
        return lines + [f"warning: {w}" for w in self.warnings]


def _argv(darknet: Path, data: Path, cfg: Path, weights: Optional[Path], *, map: bool, gpus: Optional[str],
          clear: bool, flavor: Optional[Flavor], extra_args: Sequence[str]) -> tuple[list[str], list[str]]:
    """(argv, warnings). pjreddie takes neither -dont_show (it reads it as the weights file) nor -map; an unknown
    flavor gets both (it is AlexeyAB's or hank-ai's: pjreddie's is recognised by its bytes)."""
    argv = [str(darknet), "detector", "train", str(data), str(cfg)]
    warnings = []
    if weights is not None:
        argv.append(str(weights))
    if flavor is None or flavor.knows_dont_show:
        argv.append("-dont_show")
    if map:
        if flavor is not None and not flavor.maps_while_training:
            warnings.append("pjreddie's darknet cannot compute mAP while training: `map` ignored "
                            "(build AlexeyAB's or hank-ai's darknet for -map)")
        else:
            argv.append("-map")
    if gpus:
        argv += ["-gpus", str(gpus)]
    if clear:
        argv.append("-clear")
    return argv + [str(a) for a in extra_args], warnings


def _absolute(path: Path | str) -> Path:
    # abspath, not resolve(): a space-free link that `drive` made must stay the path darknet gets
    return Path(os.path.abspath(os.path.expanduser(str(path))))


def plan_train(*, darknet: Path | str, data: Path, cfg: Path, weights: Optional[Path] = None, map: bool = False,
               gpus: Optional[str] = None, backup: Optional[Path] = None, clear: bool = False, run_dir: Path,
               stop_on_nan: bool = True, extra_args: Sequence[str] = (), cwd: Optional[Path] = None,
               flavor: Optional[Flavor | str] = None, check_files: bool = True) -> TrainPlan:
    """Work out a training run: the binary and its flavor, the weights folder, the obj.data darknet gets, argv.

    The weights folder: `backup` when given; else the backup= of a user's own obj.data; else (an obj.data that
    `%yolo data` wrote, or one without backup=) the run's own ``run_dir/backup`` on the drive. Nothing is written.
    `check_files=False` plans for files that earlier lines of a dry run would make.
    """
    darknet_path = resolve_darknet(darknet) if check_files else _absolute(darknet)
    if check_files:
        data_path, cfg_path = require_file(Path(data), "data"), require_file(Path(cfg), "cfg")
        weights_path = require_file(Path(weights), "weights") if weights else None
        check_argv_paths(data=data_path, cfg=cfg_path, weights=weights_path)
    else:
        data_path, cfg_path = _absolute(data), _absolute(cfg)
        weights_path = _absolute(weights) if weights else None
    run_dir = _absolute(run_dir)
    cwd = _absolute(cwd) if cwd else Path.cwd()
    flavor = flavor_of(flavor or darknet_flavor(darknet_path))
    written = objdata.values(data_path) if data_path.is_file() else {}
    ours = data_path.is_file() and objdata.written_by_us(data_path)
    if backup is not None:
        backup_dir, own = _absolute(backup), True
    elif written.get("backup") and not ours:
        backup_dir, own = Path(written["backup"]), False
        if not backup_dir.is_absolute():
            backup_dir = cwd / backup_dir
    else:
        backup_dir, own = run_dir / "backup", True
    data_arg = run_dir / "obj.data" if own else data_path
    argv, warnings = _argv(darknet_path, data_arg, cfg_path, weights_path, map=map, gpus=gpus, clear=clear,
                           flavor=flavor, extra_args=extra_args)
    args = RunArgs(darknet=darknet_path, data=data_path, cfg=cfg_path, weights=weights_path, map=map,
                   gpus=str(gpus) if gpus else None, backup=backup_dir if own else None, backup_dir=backup_dir,
                   clear=clear, stop_on_nan=stop_on_nan, extra_args=tuple(str(a) for a in extra_args), cwd=cwd,
                   flavor=flavor)
    return TrainPlan(darknet=darknet_path, flavor=flavor, data=data_path, cfg=cfg_path, weights=weights_path,
                     run_dir=run_dir, backup_dir=backup_dir, own_backup=own, data_arg=data_arg, argv=tuple(argv),
                     cwd=cwd, max_batches=_cfg_net_int(cfg_path, "max_batches") if cfg_path.is_file() else None,
                     args=args, warnings=tuple(warnings))


class _Watch:
    """The live part of one darknet session: the sinks of its output (recorder, parser, history, live view) and
    what the verdict needs to know (nan, the end of training, max_batches)."""

    def __init__(self, run: TrainingRun, live: "LiveView", *, stop_on_nan: bool, data_paths: Sequence[str],
                 resumed: bool) -> None:
        self.run = run
        self.live = live
        self.stop_on_nan = stop_on_nan
        self.parser = LogParser(flavor=run.args.flavor, data_paths=list(data_paths))
        self.data_paths = tuple(data_paths)
        self.recorder = _Recorder()
        self.resumed = resumed
        self.stitched = False
        self.nan_iteration: Optional[int] = None
        self.diverged_from: Optional[int] = None  # the first non-finite loss (inf often precedes nan)
        self.finished_seen = False
        self.final_weights: Optional[str] = None
        self.max_batches_seen: Optional[int] = None
        self.last_iteration: Optional[int] = None  # of this session (a resumed run's history has the earlier ones)
        self.error: Optional[BaseException] = None
        self.notices: list[str] = []
        self.appended = False  # history.jsonl has been written to: gone later, the run folder was deleted

    def on_text(self, text: str) -> None:
        self.recorder.add(text)
        self.live.add_text(text)
        try:
            events = self.parser.feed(text)
            if events:
                self._take(events)
            self.live.update(self.run.history)
        except Exception as exc:  # a bug of ours must not stop a training run: the log has every byte
            if self.error is None:
                self.error = exc

    def _note(self, ev: Any) -> None:
        """What the verdict needs from one event, before anything can fail."""
        if isinstance(ev, Iteration):
            self.last_iteration = int(ev.iteration)
            if self.nan_iteration is None:
                if self.diverged_from is None and (_nonfinite(ev.loss) or _nonfinite(ev.avg_loss)):
                    self.diverged_from = int(ev.iteration)
                if _isnan(ev.loss) or _isnan(ev.avg_loss):
                    self.nan_iteration = int(ev.iteration)
        elif isinstance(ev, Finished):
            self.finished_seen = True
        elif isinstance(ev, WeightsSaved) and str(ev.path).endswith("_final.weights"):
            self.final_weights = str(ev.path)
        elif isinstance(ev, MaxBatches) and ev.n:
            self.max_batches_seen = int(ev.n)

    def _take(self, events: list) -> None:
        for ev in events:
            self._note(ev)
        history = self.run.history
        if self.resumed and not self.stitched and any(isinstance(e, Iteration) for e in events):
            # The first iteration of a resumed session: drop what the previous session logged at or after it
            # (it resumed from older weights), and rewrite the history file to match.
            self.stitched = True
            history.extend(type(history)(events))
            history.save(self.run.history_path)
        else:
            history.add(events)
            if self.appended and not self.run.history_path.exists():
                self._make_folder_again()  # deleted (the log's writer may have made the folder again already)
                return
            type(history).append_to(self.run.history_path, events)
            self.appended = True

    def _make_folder_again(self) -> None:
        """The run folder was deleted while darknet runs: make it again with what the kernel holds (the history,
        run.json, the weights folder); the log is made again by whoever writes it (runner._LogFile)."""
        run = self.run
        run.run_dir.mkdir(parents=True, exist_ok=True)
        if run.backup_dir is not None:
            run.backup_dir.mkdir(parents=True, exist_ok=True)  # darknet's next save would fail without it
        run.history.save(run.history_path)
        run.save()
        self.notices.append(f"the run folder {run.run_dir} was deleted while darknet ran: made it again (history, "
                            "run.json, backup/; the log with everything written so far)")

    def should_stop(self) -> Optional[str]:
        reason = self.stop_reason()
        if reason is StopReason.REQUEST:
            return reason.describe()
        if reason is StopReason.UNWRITABLE:  # history.jsonl cannot be written: the disk is full or read-only
            return reason.describe(getattr(self.error, "strerror", None) or str(self.error))
        if reason is StopReason.NAN:
            return reason.describe(str(self.nan_iteration))
        assert reason is None, f"unhandled stop reason {reason!r}"
        return None

    def stop_reason(self) -> Optional[StopReason]:
        """Why darknet must stop now (a request, an unwritable run folder, the first nan), or None."""
        if self.run.stop_requested.is_set():
            return StopReason.REQUEST
        if isinstance(self.error, OSError):
            return StopReason.UNWRITABLE
        if self.stop_on_nan and self.nan_iteration is not None:
            return StopReason.NAN
        return None

    def close(self) -> None:
        events = self.parser.close()
        if events:
            self._take(events)


def _nonfinite(value: Any) -> bool:
    try:
        return value is not None and not math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _isnan(value: Any) -> bool:
    try:
        return value is not None and math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def train(*, reporter: Optional[Reporter] = None, previous: Optional[TrainingRun] = None,
          watchdog: Optional[runner.Watchdog] = None, live_interval: float = 1.0, env: Optional[dict] = None,
          plan: Optional[TrainPlan] = None, **plan_args: Any) -> TrainingRun:
    """Train with darknet and watch it: log, history, live chart; judge the outcome from the output.

    Give a `plan` (from `plan_train`) or `plan_train`'s arguments (darknet, data, cfg, weights, map, gpus, backup,
    clear, run_dir, stop_on_nan, extra_args, cwd, flavor). `previous` is the run this one continues (resume: same
    run_dir, the history goes on).

    Returns:
        The `TrainingRun` (status finished, or finished-crashed-on-exit).

    Raises:
        StepError: a missing file, or darknet failed or diverged (``.problems`` has the diagnosis, ``.run`` the
            saved run).
        KeyboardInterrupt: (runner.RunInterrupted) the user interrupted; darknet is stopped and everything saved.
    """
    reporter = reporter or Reporter()
    plan = plan or plan_train(**plan_args)
    refuse_shared_backup(plan, previous)
    run, session_info = _start(plan, previous, reporter)
    watch, result, interrupted = _watch(plan, run, previous is not None, reporter, watchdog, live_interval, env)
    return _finish(plan, run, watch, result, interrupted, session_info, reporter)


def refuse_shared_backup(plan: TrainPlan, previous: Optional[TrainingRun]) -> None:
    """A StepError when another run under the same runs folder is still training into this plan's weights folder
    (a user's obj.data ``backup=`` or ``backup=PATH`` given twice): both would write ``<cfg>_last.weights``."""
    other = _training_into(plan.backup_dir, plan.run_dir.parent, skip=plan.run_dir)
    if other is None or (previous is not None and other == previous.run_dir):
        return
    message = f"the weights folder {plan.backup_dir} is in use by the run {other.name} (still training)"
    fix = (f"wait for it (or `%yolo stop {other}`), or give this run its own folder: backup=PATH (or remove "
           "backup= from your obj.data: each run then gets {workspace}/runs/NAME/backup)")
    raise StepError(message, fix=fix, problems=[Problem("shared-backup", "two live runs would overwrite each "
                                                        "other's weights", fix=fix, file=str(plan.backup_dir))])


def _training_into(backup_dir: Path, root: Path, *, skip: Path) -> Optional[Path]:
    """The folder of a run under `root` (not `skip`) whose darknet still trains into `backup_dir`, or None. Alive
    means its keeper or darknet (background), or the kernel that runs it (foreground), is still the recorded
    process; a damaged run.json is no evidence of anything and is passed over."""
    if not root.is_dir():
        return None
    for folder in root.iterdir():
        if folder == skip or not (folder / RUN_JSON).is_file():
            continue
        try:
            rec = read_record(folder)
        except (DarknetMagicsError, OSError):
            continue
        if rec.status is not RunStatus.RUNNING or rec.args.backup_dir is None or not rec.sessions:
            continue
        if _absolute(rec.args.backup_dir) != _absolute(backup_dir):
            continue
        last = rec.sessions[-1]
        owner, state = last.get("owner") or {}, read_state(folder) if last.get("keeper") else None
        if state and any(same_process(state.get(k), state.get(t), state.get("boot_id"))
                         for k, t in (("keeper_pid", "keeper_start"), ("darknet_pid", "darknet_start"))):
            return folder
        if not last.get("keeper") and same_process(owner.get("pid"), owner.get("start"), owner.get("boot_id")):
            return folder
    return None


def _start(plan: TrainPlan, previous: Optional[TrainingRun], reporter: Reporter) -> tuple[TrainingRun, dict]:
    """The run folder, the weights folder, the per-run obj.data and run.json; the run object (new, or continued)."""
    try:
        return _start_files(plan, previous, reporter)
    except OSError as exc:
        problem = problems.unwritable(exc.strerror or str(exc), str(plan.run_dir))
        raise StepError(f"training was not started: {problem.message}", fix=problem.fix, problems=[problem]) from None


def _start_files(plan: TrainPlan, previous: Optional[TrainingRun], reporter: Reporter) -> tuple[TrainingRun, dict]:
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
    else:
        run = TrainingRun(run_dir=plan.run_dir, history=_history_type()(), args=plan.args, argv=plan.argv,
                          name=plan.run_dir.name, max_batches=plan.max_batches)
    session_info = {"argv": list(plan.argv), "started": _now(),
                    "weights": str(plan.weights) if plan.weights else None,
                    "start_iteration": run.last_iteration or 0,
                    "log_offset": run.log_path.stat().st_size if run.log_path.exists() else 0,
                    "owner": {"pid": os.getpid(), "start": process_start(os.getpid()), "boot_id": boot_id()}}
    run.sessions.append(session_info)
    run.save()
    return run, session_info


def make_watch(run: TrainingRun, *, data_arg: Path, max_batches: Optional[int], resumed: bool, reporter: Reporter,
               live_interval: float = 1.0, key: str = "") -> _Watch:
    """The sinks of one darknet session's output (recorder, parser, history, live view): fed by the runner in the
    foreground, by the log follower for a background run (background.py)."""
    from ..view.live import LIVE_KEY, LiveView  # plotly: imported with the first run

    live = LiveView(reporter, min_interval=live_interval, max_batches=max_batches, title=run.name,
                    start_iteration=run.last_iteration or None,
                    key=f"{LIVE_KEY}:{run.run_dir.name}:{len(run.sessions)}{key}")
    try:
        written = objdata.values(data_arg, as_written=True)
    except OSError:  # re-attached to a run whose obj.data copy is gone: the paths only sharpen the diagnosis
        written = {}
    data_paths = tuple(v for k, v in written.items() if k in ("train", "valid", "names", "backup"))
    return _Watch(run, live, stop_on_nan=run.args.stop_on_nan, data_paths=data_paths,
                  resumed=resumed)


def _watch(plan: TrainPlan, run: TrainingRun, resumed: bool, reporter: Reporter, watchdog: Optional[runner.Watchdog],
           live_interval: float, env: Optional[dict]
           ) -> tuple[_Watch, runner.ProcessResult, Optional[runner.RunInterrupted]]:
    """Run darknet with the sinks attached until it ends (or is interrupted, or stopped at the first nan)."""
    watch = make_watch(run, data_arg=plan.data_arg, max_batches=plan.max_batches, resumed=resumed,
                       reporter=reporter, live_interval=live_interval)
    reporter.info(("resuming" if resumed else "training") + f": {' '.join(plan.argv)}")
    reporter.info(f"log: {run.log_path}")
    watch.live.update(run.history, force=True)
    interrupted: Optional[runner.RunInterrupted] = None
    try:
        result = runner.run(list(plan.argv), cwd=plan.cwd, log_path=run.log_path, on_text=watch.on_text,
                            watchdog=watchdog or training_watchdog(), env=env, should_stop=watch.should_stop)
    except runner.RunInterrupted as exc:
        interrupted, result = exc, exc.result
    except FileNotFoundError as exc:
        raise StepError(f"cannot start darknet: {exc}", fix="check the binary path (bin=PATH)") from exc
    try:
        watch.close()
    except Exception as exc:  # the log is complete whatever went wrong in our reading of it
        watch.error = watch.error or exc
    return watch, result, interrupted


def _finish(plan: TrainPlan, run: TrainingRun, watch: _Watch, result: runner.ProcessResult,
            interrupted: Optional[runner.RunInterrupted], session_info: dict, reporter: Reporter) -> TrainingRun:
    """Judge the run, record the session in run.json, give the view its last frame; return or raise."""
    run.result = result
    for notice in (*watch.notices, *result.notices):
        reporter.warn(notice)
    if watch.error is not None and not isinstance(watch.error, OSError):
        reporter.warn(f"reading darknet's output failed ({watch.error!r}); the log is complete: "
                      f"`%yolo log {run.log_path}` parses it again")
    _judge(run, watch, result, plan.max_batches)
    session_info.update({"ended": _now(), "status": run.status.value, "returncode": result.returncode,
                         "signal": result.signal, "seconds": round(result.seconds, 3),
                         "watchdog": result.killed_by_watchdog, "last_iteration": run.last_iteration,
                         "message": run.message})
    try:
        run.save()
    except OSError as exc:  # the same full or read-only disk: the verdict is still shown, and says so
        reporter.warn(f"run.json could not be updated ({exc.strerror or exc}): it still says the run is running; "
                      "`%yolo status` reads such a run as interrupted")
    _save_chart(run, reporter)
    if interrupted is not None:
        line = (f"interrupted at iteration {run.last_iteration or 0}: darknet stopped ({result.describe()}); "
                f"the log and the dataframes are kept ({run.log_path})")
        watch.live.interrupted(line, run.history)
        interrupted.run = run  # type: ignore[attr-defined]
        raise interrupted
    if run.status.ok:
        watch.live.update(run.history, final=True)
    else:  # the chart gives way to the diagnosis; the fix is stated once, in the error below
        watch.live.fail(run.message, run.history)
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


def _save_chart(run: TrainingRun, reporter: Reporter) -> None:
    """The run's chart in its folder (chart.html, and chart.png where a notebook shows the run), as users keep
    darknet's own chart.png; a failure to write it never fails the run."""
    from ..view.live import save_chart  # plotly

    try:
        save_chart(run.history, run.run_dir, title=run.name, png=hasattr(reporter, "display"))
    except OSError as exc:
        reporter.warn(f"the run's chart could not be saved in {run.run_dir} ({exc.strerror or exc})")


def _judge(run: TrainingRun, watch: _Watch, result: runner.ProcessResult, max_batches: Optional[int]) -> None:
    """Set run.status, run.message and run.problems_found from what darknet printed and how it ended."""

    last = run.last_iteration
    limit = watch.max_batches_seen or max_batches
    reached = watch.finished_seen or watch.final_weights is not None or (
        limit is not None and watch.last_iteration is not None and watch.last_iteration >= limit)
    clean_exit = result.returncode == 0 and result.signal is None and not result.killed_by_watchdog
    unwritable = result.log_error or (str(watch.error) if isinstance(watch.error, OSError) else None)
    asked = run.stop_requested.is_set()
    if (result.interrupted or (result.stopped_by_caller and asked)) and not (unwritable and not asked):
        how = "stopped on request" if not result.interrupted else "interrupted"
        run.status, run.message = RunStatus.INTERRUPTED, f"{how} at iteration {last or 0}"
        return
    if unwritable:  # before an interrupt: a keeper that cannot be asked in writing is stopped with SIGINT
        problem = problems.unwritable(unwritable, str(run.run_dir))
        run.status, run.problems_found = RunStatus.FAILED, [problem]
        run.message = (f"stopped at iteration {last or 0}: {problem.message}; the log so far is kept "
                       f"({run.log_path})")
        return
    if watch.nan_iteration is not None and result.stopped_by_caller:
        began = watch.diverged_from or watch.nan_iteration
        run.status = RunStatus.DIVERGED
        run.message = (f"training diverged at iteration {began} (loss nan from iteration {watch.nan_iteration}); "
                       f"darknet stopped there (stop_on_nan)")
        run.problems_found = [_nan_problem(began)]
        return
    found = diagnose(watch.recorder.text(), returncode=result.returncode, signal=result.signal,
                     flavor=run.args.flavor, data_paths=watch.data_paths, command=run.argv)
    if watch.nan_iteration is not None and not any(p.code.startswith("nan") for p in found):
        found = [_nan_problem(watch.diverged_from or watch.nan_iteration, severity="warning")] + list(found)
    lost = _unsaved_weights(watch.final_weights, run.args.cwd or Path("."), run.args.cfg or Path("x.cfg"))
    if reached and lost is not None:
        run.status, run.problems_found = RunStatus.FAILED, [lost] + [p for p in found if p.severity == "error"]
        run.message = f"darknet trained to iteration {last or 0} but could not save its weights: {lost.message}"
        return
    if reached:
        run.status = RunStatus.FINISHED if clean_exit else RunStatus.FINISHED_CRASHED
        run.message = "finished" if clean_exit else f"finished, darknet crashed on exit ({result.describe()})"
        run.problems_found = [p for p in found if p.severity != "info"]
        if watch.last_iteration is None:  # it stopped at once: the weights say it is trained that far already
            run.problems_found = [_already_trained(run, limit)] + [p for p in run.problems_found
                                                                   if p.code != "already-trained"]
        return
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


def weights_iteration(weights: Path, cfg: Path) -> Optional[int]:
    """The iteration a weights file was saved at: its header's images-seen count / the cfg's batch."""
    try:
        with open(weights, "rb") as handle:
            header = read_weights_header(handle.read(20))
        batch = _cfg_net_int(cfg, "batch")
    except OSError:
        return None
    if header is None or not batch:
        return None
    return int(header.seen) // batch


def _nan_problem(iteration: int, severity: str = "error") -> Problem:
    return problems.nan_loss(iteration, severity=severity)


# ------------------------------------------------------------------------------------------------- resume / log


def plan_resume(run: TrainingRun | Path | str, reporter: Optional[Reporter] = None, *,
                darknet: Optional[Path | str] = None, session_binary: Optional[Path] = None,
                max_batches: Optional[int] = None, weights: Optional[Path] = None,
                **overrides: Any) -> tuple[TrainingRun, TrainPlan]:
    """(the run, the plan that continues it from its backup's newest weights with the same arguments).

    `run` may be a `TrainingRun` or its folder (after a VM reset). `darknet` overrides the binary; a run read
    from a folder runs the darknet its run.json names only when `session_binary` (this session's `make`, else
    darknet on PATH) confirms it (`record.confirm_binary`). `weights` overrides the weights to resume from. To
    train past the old max_batches, raise it in the cfg first (`max_batches` does).
    """
    if not isinstance(run, TrainingRun):
        run = TrainingRun.load(run)
    args = run.args
    if not args.resumable or args.cfg is None or args.data is None:
        raise StepError("this run was read from a log (`%yolo log`): it has no darknet arguments to resume with",
                        fix="resume its run folder (%yolo resume {workspace}/runs/NAME), or start again with "
                            "%yolo train DATA CFG WEIGHTS using its last weights")
    if darknet is None:
        darknet = args.darknet
        if run.from_disk:
            found = shutil.which("darknet")
            darknet = confirm_binary(args.darknet, None, session_binary or (Path(found) if found else None),
                                     args.flavor, darknet_flavor)
            if reporter is not None and str(darknet) != str(args.darknet):
                reporter.info(f"run.json names the darknet {args.darknet}; using this session's {darknet} (the same "
                              f"flavor, {args.flavor}); bin=PATH chooses another")
    cfg = args.cfg
    backup_dir = args.backup_dir or Path("backup")
    start = Path(weights) if weights else find_resume_weights(backup_dir, cfg)
    if start is None:
        raise StepError(f"nothing to resume from: no {cfg.stem}_last.weights, {cfg.stem}.backup or "
                        f"{cfg.stem}_final.weights in {backup_dir}",
                        fix="darknet saves them every 100 iterations (pjreddie) or 1,000 (AlexeyAB, hank-ai); "
                            "start again with %yolo train")
    if max_batches is not None:
        parsed = Cfg.parse(cfg.read_text(encoding="utf-8"))
        parsed.set(parsed.net, "max_batches", int(max_batches))
        atomic_write_text(cfg, parsed.render())
    kwargs: dict[str, Any] = dict(darknet=darknet, data=args.data, cfg=cfg, weights=start, map=args.map,
                                  gpus=args.gpus, backup=args.backup, clear=False, run_dir=run.run_dir,
                                  stop_on_nan=args.stop_on_nan, extra_args=args.extra_args, cwd=args.cwd,
                                  flavor=None if darknet != args.darknet else args.flavor)
    kwargs.update(overrides)
    if reporter is not None:
        reporter.info(_resume_line(run, start, cfg))
    return run, plan_train(**kwargs)


def resume(run: TrainingRun | Path | str, reporter: Optional[Reporter] = None, **options: Any) -> TrainingRun:
    """Continue `run` in the foreground (`plan_resume`'s options); the history goes on. For a background resume,
    `background.start(plan=..., previous=run)` with `plan_resume`'s plan."""
    run, plan = plan_resume(run, reporter, **options)
    return train(plan=plan, reporter=reporter, previous=run)


def _resume_line(run: TrainingRun, start: Path, cfg: Path) -> str:
    """Where a resume starts: the weights file's own iteration (its header counts the images seen), and how many
    logged iterations darknet will train again (those after the weights were saved)."""
    at = weights_iteration(start, cfg)
    logged = run.last_iteration or 0
    text = f"resuming {run.name} from {start}"
    if at is None:
        return text + f" (logged up to iteration {logged})"
    text += f" at iteration {at:,} (its header)"
    if logged > at:
        text += f"; iterations {at + 1:,}-{logged:,} were logged after it was saved and are trained again"
    return text


def load_log(path: Path | str, reporter: Optional[Reporter] = None, *, name: Optional[str] = None) -> TrainingRun:
    """Parse an existing darknet log into a run object (status finished/failed/stopped) with its chart."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise StepError(f"the log {path} is a folder, not a file",
                        fix=f"give the log file inside it, e.g. %yolo log {path / LOG_NAME}")
    if not path.is_file():
        raise StepError(f"the log {path} does not exist",
                        problems=[Problem("missing-file", f"log not found: {path}", file=str(path))])
    history, parser = _history_from_log(path)
    run = TrainingRun(run_dir=path.parent, history=history, name=name or path.stem, log_path=path,
                      status=_log_status(history), max_batches=history.max_batches)
    run.args = RunArgs(flavor=flavor_of(parser.flavor))
    if reporter is not None:
        from ..view.live import LIVE_KEY, LiveView  # plotly: imported when a log is first shown

        LiveView(reporter, title=run.name, max_batches=run.max_batches,
                 key=f"{LIVE_KEY}:log:{path}").update(history, final=True)
        reporter.info(f"{parser.flavor or 'unknown'} darknet log: {len(history.iterations)} iterations, "
                      f"{len(history.maps)} mAP results, {len(history.weights)} weights saved, "
                      f"{len(history.problems)} problem(s)")
        for p in history.problem_list:
            reporter.warn(p.describe())
    return run


def _log_status(history: "History") -> RunStatus:
    if history.finished:
        return RunStatus.FINISHED
    if any(p.severity == "error" for p in history.problem_list):
        return RunStatus.FAILED
    return RunStatus.STOPPED


def status(run: Optional[TrainingRun]) -> str:
    """A few lines on a run: status, progress, sessions, files."""
    if run is None:
        return "no training run"
    lines = [run.summary() + (" (running in the background)" if run.running else "")]
    for i, s in enumerate(run.sessions, 1):
        last = s.get("last_iteration")
        if last is None and i == len(run.sessions) and run.running:  # recorded when it ends; now: as far as seen
            last = run.last_iteration
        at = f"at iteration {last:,}" if last is not None else "before its first iteration"
        lines.append(f"  session {i}: {s.get('status', 'running')} {at}, "
                     f"{s.get('seconds', '?')} s, started {s.get('started')}")
    for p in run.problems_found:
        lines.append("  - " + p.describe())
    if run.backup_dir:
        found = find_resume_weights(run.backup_dir, run.args.cfg or Path("x"))
        if found:
            lines.append(f"  resume point: {found}")
    return "\n".join(lines)
