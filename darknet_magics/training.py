"""One training run: runner + parser + history + live view; resume, log, status; `detector test` and `map`.

A run lives in a folder (`run_dir`) that survives a VM reset when it is on the drive:

* ``train.log``     every byte darknet wrote, appended as it arrives (all sessions of a resumed run);
* ``history.jsonl`` the parsed events, appended as they arrive (history.py's format);
* ``run.json``      the arguments, argv and outcome of each session, so `TrainingRun.load` and `resume` work
  in a new kernel;
* ``obj.data``      a per-run copy of the data file, only when `backup=` overrides the data file's backup.

Outcomes are judged from darknet's output, never from its exit code alone: pjreddie exits 0 after
``Couldn't open file``, AlexeyAB and hank-ai abort in glibc after a finished run, hank-ai may hang after its
fatal-error banner (the runner's watchdog ends it). Statuses: ``running``, ``finished``,
``finished-crashed-on-exit``, ``failed``, ``interrupted``, ``diverged``. Failures and divergence raise
`StepError` (with diagnose()'s problems) whose ``run`` attribute is the saved `TrainingRun`; an interrupt saves
everything and re-raises KeyboardInterrupt.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

from . import runner
from .errors import DarknetMagicsError, Problem, StepError
from .binary import darknet_flavor, last_output, require_file, resolve_darknet
from .fileio import atomic_write_text
from .report import Reporter

__all__ = [
    "TrainingRun", "train", "resume", "load_log", "status", "darknet_flavor", "find_resume_weights",
    "training_watchdog",
]

RUN_JSON = "run.json"
LOG_NAME = "train.log"
HISTORY_NAME = "history.jsonl"
_HEAD_KEEP = 64 * 1024   # the start of a session's output kept in memory for the diagnosis
_TAIL_KEEP = 256 * 1024  # and its end


# ------------------------------------------------------------------------------------------------- helpers


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _kind(event: Any) -> str:
    return type(event).__name__


def read_data_file(path: Path, *, as_darknet_reads: bool = True) -> dict[str, str]:
    """obj.data as ``key = value`` lines (``#`` comments skipped).

    With `as_darknet_reads` (the default) all whitespace is stripped from each line, as darknet does (so a path
    with a space comes out without it); otherwise only the ends of keys and values are.
    """
    values: dict[str, str] = {}
    for raw in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        line = "".join(raw.split()) if as_darknet_reads else raw.strip()
        if not line or line[0] in "#;" or "=" not in line:
            continue
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip()
    return values


def _write_data_copy(data: Path, backup: Path, out: Path) -> Path:
    """A copy of `data` whose ``backup=`` is `backup` (other lines kept as they are)."""
    if any(c.isspace() for c in str(backup)):
        raise DarknetMagicsError(f"backup folder {backup} contains a space, which darknet strips from obj.data",
                                 fix="choose a backup folder whose path has no spaces")
    lines = Path(data).read_text(encoding="utf-8", errors="replace").splitlines()
    kept = [ln for ln in lines if "".join(ln.split()).split("=", 1)[0] != "backup"]
    kept.append(f"backup = {backup}")
    atomic_write_text(out, "\n".join(kept) + "\n")
    return out


def _cfg_net_int(cfg: Path, key: str) -> Optional[int]:
    from .cfg import Cfg

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


def training_watchdog() -> runner.Watchdog:
    """The watchdog for training: a fatal banner then 30 s of silence, a finished run that hangs for 2 min,
    or silence 30x longer than the longest gap so far (at least 30 min: AlexeyAB's mAP pass is quiet)."""
    return runner.Watchdog(after_fatal_s=30.0, done=(r"Saving weights to \S*_final\.weights",),
                           after_done_s=120.0, silence_factor=30.0, min_silence_s=1800.0)


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

    def __init__(self, *, run_dir: Path, history: Any, args: Optional[dict] = None, argv: Sequence[str] = (),
                 name: Optional[str] = None, max_batches: Optional[int] = None, status: str = "running",
                 log_path: Optional[Path] = None, sessions: Optional[list[dict]] = None) -> None:
        self.run_dir = Path(run_dir)
        self.history = history
        self.args = dict(args or {})
        self.argv = [str(a) for a in argv]
        self.name = name or self.run_dir.name
        self.max_batches = max_batches
        self.status = status
        self.log_path = Path(log_path) if log_path else self.run_dir / LOG_NAME
        self.history_path = self.run_dir / HISTORY_NAME
        self.sessions: list[dict] = list(sessions or [])
        self.result: Optional[runner.ProcessResult] = None
        self.problems_found: list[Problem] = []
        self.message = ""

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
        from .live import build_figure

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
        fast = getattr(self.history, "last_iteration", None)
        if fast is not None or hasattr(self.history, "last_iteration"):
            return fast
        its = self.iterations
        if its is None or not len(its):
            return None
        value = its["iteration"].max()
        return None if value is None or (isinstance(value, float) and math.isnan(value)) else int(value)

    @property
    def backup_dir(self) -> Optional[Path]:
        value = self.args.get("backup_dir")
        return Path(value) if value else None

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

    def _repr_html_(self) -> str:
        from .live import figure_html
        import html

        return f"<p><b>{html.escape(self.summary())}</b></p>" + figure_html(self.figure, include_plotlyjs=True)

    # persistence
    def _state(self) -> dict:
        return {"version": 1, "name": self.name, "status": self.status, "argv": self.argv, "args": self.args,
                "max_batches": self.max_batches, "log": str(self.log_path), "sessions": self.sessions,
                "message": self.message}

    def save(self) -> None:
        """Write run.json (atomically)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run_dir / RUN_JSON, json.dumps(self._state(), indent=2, default=str) + "\n")

    @classmethod
    def load(cls, run_dir: Path | str) -> "TrainingRun":
        """Rebuild a run from its folder (run.json + history.jsonl, else the log) in a new kernel."""
        run_dir = Path(run_dir)
        meta_path = run_dir / RUN_JSON
        if not meta_path.is_file():
            raise DarknetMagicsError(f"{run_dir} is not a run folder (no {RUN_JSON})",
                                     fix="give the folder `%yolo train` wrote under {workspace}/runs")
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        history = _load_history(run_dir / HISTORY_NAME, Path(meta.get("log") or run_dir / LOG_NAME))
        status_ = meta.get("status", "failed")
        if status_ == "running":  # the kernel died while it ran (VM reset): it is not running now
            status_ = "interrupted"
        run = cls(run_dir=run_dir, history=history, args=meta.get("args", {}), argv=meta.get("argv", []),
                  name=meta.get("name"), max_batches=meta.get("max_batches"), status=status_,
                  log_path=Path(meta["log"]) if meta.get("log") else None, sessions=meta.get("sessions", []))
        run.message = meta.get("message", "")
        return run


def _new_history() -> Any:
    from .history import History

    return History()


def _load_history(history_path: Path, log_path: Path) -> Any:
    from .history import History

    if history_path.is_file():
        return History.load(history_path)
    if log_path.is_file():  # no history file (it was lost, or the log came from elsewhere): parse the log again
        return _history_from_log(log_path)[0]
    return History()


def _history_from_log(log_path: Path, flavor: Optional[str] = None) -> tuple[Any, Any]:
    """(History, LogParser) of a whole log file, read in big chunks."""
    from .history import History

    parser = _parser(flavor)
    history = History()
    with open(log_path, "rb") as f:
        while True:
            block = f.read(16 << 20)
            if not block:
                break
            history.add(parser.feed(block))
    history.add(parser.close())
    return history, parser


# ------------------------------------------------------------------------------------------------- train


@dataclass
class _Session:
    """The live part of one darknet session: parser, history sink, live view, NaN watch."""

    run: TrainingRun
    parser: Any
    live: Any
    stop_on_nan: bool
    history_file: Path
    recorder: _Recorder = field(default_factory=_Recorder)
    nan_iteration: Optional[int] = None
    diverged_from: Optional[int] = None  # the first iteration with a non-finite loss (inf often precedes nan)
    finished_seen: bool = False
    final_weights: Optional[str] = None
    max_batches_seen: Optional[int] = None
    events: int = 0
    data_paths: tuple[str, ...] = ()
    resumed: bool = False
    stitched: bool = False
    error: Optional[BaseException] = None
    last_iteration: Optional[int] = None  # of this session (a resumed run's history also has the earlier ones)

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

    def _take(self, events: list) -> None:
        from .history import History

        self.events += len(events)
        for ev in events:  # what the run itself needs to know, before anything can fail
            kind = _kind(ev)
            if kind == "Iteration":
                self.last_iteration = int(ev.iteration)
            if kind == "Iteration" and self.nan_iteration is None:
                loss, avg = getattr(ev, "loss", 0.0), getattr(ev, "avg_loss", 0.0)
                if self.diverged_from is None and (_nonfinite(loss) or _nonfinite(avg)):
                    self.diverged_from = int(ev.iteration)
                if _isnan(loss) or _isnan(avg):
                    self.nan_iteration = int(ev.iteration)
            elif kind == "Finished":
                self.finished_seen = True
            elif kind == "WeightsSaved":
                path = str(getattr(ev, "path", ""))
                if path.endswith("_final.weights"):
                    self.final_weights = path
            elif kind == "MaxBatches":
                value = getattr(ev, "n", None)
                if value:
                    self.max_batches_seen = int(value)
        history = self.run.history
        if self.resumed and not self.stitched and any(_kind(e) == "Iteration" for e in events):
            # The first iteration of a resumed session: drop what the previous session logged at or after it
            # (it resumed from older weights), and rewrite the history file to match.
            self.stitched = True
            history.extend(History(events))
            history.save(self.history_file)
        else:
            history.add(events)
            History.append_to(self.history_file, events)

    def should_stop(self) -> Optional[str]:
        if self.stop_on_nan and self.nan_iteration is not None:
            return f"loss became nan at iteration {self.nan_iteration}"
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


def _parser(flavor: Optional[str], data_paths: Sequence[str] = ()) -> Any:
    """A LogParser that also knows obj.data's paths (to recognise a path whose spaces darknet stripped)."""
    from .logparse import LogParser

    return LogParser(flavor=flavor, data_paths=list(data_paths))


def _build_argv(darknet: Path, data: Path, cfg: Path, weights: Optional[Path], *, map: bool, gpus: Optional[str],
                clear: bool, flavor: Optional[str], extra_args: Sequence[str], reporter: Reporter) -> list[str]:
    argv = [str(darknet), "detector", "train", str(data), str(cfg)]
    if weights is not None:
        argv.append(str(weights))
    if flavor != "pjreddie":
        argv.append("-dont_show")
    if map:
        if flavor == "pjreddie":
            reporter.warn("pjreddie's darknet cannot compute mAP while training: `map` ignored "
                          "(build AlexeyAB's or hank-ai's darknet for -map)")
        else:
            argv.append("-map")
    if gpus:
        argv += ["-gpus", str(gpus)]
    if clear:
        argv.append("-clear")
    argv += [str(a) for a in extra_args]
    return argv


def train(*, darknet: Path | str, data: Path, cfg: Path, weights: Optional[Path] = None, map: bool = False,
          gpus: Optional[str] = None, backup: Optional[Path] = None, clear: bool = False, run_dir: Path,
          reporter: Optional[Reporter] = None, stop_on_nan: bool = True, extra_args: Sequence[str] = (),
          cwd: Optional[Path] = None, previous: Optional[TrainingRun] = None, flavor: Optional[str] = None,
          watchdog: Optional[runner.Watchdog] = None, live_interval: float = 1.0,
          env: Optional[dict] = None) -> TrainingRun:
    """Train with darknet and watch it: log, history, live chart; judge the outcome from the output.

    Args:
        darknet: the binary (a path, or a name on PATH).
        data, cfg, weights: obj.data, the training cfg, optional starting weights.
        map: compute mAP while training (``-map``; not in pjreddie's darknet: warned and ignored).
        gpus: ``-gpus`` value, e.g. ``"0,1"``.
        backup: where weights go; overrides the data file's ``backup=`` through a per-run copy of it.
        clear: ``-clear`` (reset the iteration counter of `weights`).
        run_dir: the run's folder (train.log, history.jsonl, run.json).
        reporter: where the live view and messages go.
        stop_on_nan: stop darknet at the first nan loss (status ``diverged``).
        extra_args: more darknet arguments, appended as they are.
        cwd: darknet's working folder (relative paths in obj.data are relative to it); default: ours.
        previous: the run this one continues (resume): same run_dir, the history goes on.
        flavor: 'pjreddie', 'alexeyab' or 'hank-ai' when known; else guessed from the binary.

    Returns:
        The `TrainingRun` (status ``finished`` or ``finished-crashed-on-exit``).

    Raises:
        StepError: a missing file, or darknet failed or diverged (``.problems`` has the diagnosis, ``.run`` the
            saved run).
        KeyboardInterrupt: (runner.RunInterrupted) the user interrupted; darknet is stopped and everything saved.
    """
    reporter = reporter or Reporter()
    darknet_path = resolve_darknet(darknet)
    data_path = require_file(Path(data), "data")
    cfg_path = require_file(Path(cfg), "cfg")
    weights_path = require_file(Path(weights), "weights") if weights else None
    run_dir = Path(run_dir).expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    cwd = Path(cwd).expanduser().resolve() if cwd else Path.cwd()
    flavor = flavor or darknet_flavor(darknet_path)

    data_values = read_data_file(data_path)
    if backup is not None:
        backup_dir = Path(backup).expanduser().resolve()
        data_arg = _write_data_copy(data_path, backup_dir, run_dir / "obj.data")
    else:
        data_arg = data_path
        backup_dir = Path(data_values.get("backup", "backup"))
        if not backup_dir.is_absolute():
            backup_dir = cwd / backup_dir
    backup_dir.mkdir(parents=True, exist_ok=True)  # pjreddie does not create it and fails to save
    max_batches = _cfg_net_int(cfg_path, "max_batches")

    argv = _build_argv(darknet_path, data_arg, cfg_path, weights_path, map=map, gpus=gpus, clear=clear,
                       flavor=flavor, extra_args=extra_args, reporter=reporter)
    args = {"darknet": str(darknet_path), "data": str(data_path), "cfg": str(cfg_path),
            "weights": str(weights_path) if weights_path else None, "map": map, "gpus": gpus,
            "backup": str(backup) if backup is not None else None, "backup_dir": str(backup_dir),
            "clear": clear, "stop_on_nan": stop_on_nan, "extra_args": [str(a) for a in extra_args],
            "cwd": str(cwd), "flavor": flavor}

    if previous is not None:
        run = previous
        run.args.update({k: v for k, v in args.items() if k != "weights"})
        run.argv, run.max_batches, run.status = argv, max_batches, "running"
        run.message, run.result, run.problems_found = "", None, []
    else:
        run = TrainingRun(run_dir=run_dir, history=_new_history(), args=args, argv=argv,
                          name=run_dir.name, max_batches=max_batches)
    start_iteration = run.last_iteration or 0
    session_info = {"argv": argv, "started": _now(), "weights": args["weights"], "start_iteration": start_iteration,
                    "log_offset": run.log_path.stat().st_size if run.log_path.exists() else 0}
    run.sessions.append(session_info)
    run.save()

    from .live import LIVE_KEY, LiveView

    live = LiveView(reporter, min_interval=live_interval, max_batches=max_batches, title=run.name,
                    start_iteration=start_iteration or None, key=f"{LIVE_KEY}:{run.run_dir.name}:{len(run.sessions)}")
    written = read_data_file(data_arg, as_darknet_reads=False)
    data_paths = tuple(v for k, v in written.items() if k in ("train", "valid", "names", "backup"))
    session = _Session(run=run, parser=_parser(flavor, data_paths), live=live, stop_on_nan=stop_on_nan,
                       history_file=run.history_path, data_paths=data_paths, resumed=previous is not None)
    reporter.info(("resuming" if previous is not None else "training") + f": {' '.join(argv)}")
    reporter.info(f"log: {run.log_path}")
    live.update(run.history, force=True)

    interrupted: Optional[runner.RunInterrupted] = None
    try:
        result = runner.run(argv, cwd=cwd, log_path=run.log_path, on_text=session.on_text,
                            watchdog=watchdog or training_watchdog(), env=env, should_stop=session.should_stop)
    except runner.RunInterrupted as exc:
        interrupted = exc
        result = exc.result
    except FileNotFoundError as exc:
        raise StepError(f"cannot start darknet: {exc}", fix="check the binary path (bin=PATH)") from exc
    run.result = result
    try:
        session.close()
    except Exception as exc:
        session.error = session.error or exc
    if session.error is not None:
        reporter.warn(f"reading darknet's output failed ({session.error!r}); the log is complete: "
                      f"`%yolo log {run.log_path}` parses it again")
    _judge(run, session, result, max_batches)
    session_info.update({"ended": _now(), "status": run.status, "returncode": result.returncode,
                         "signal": result.signal, "seconds": round(result.seconds, 3),
                         "watchdog": result.killed_by_watchdog, "last_iteration": run.last_iteration,
                         "message": run.message})
    run.save()
    live.update(run.history, final=True)

    if interrupted is not None:
        reporter.warn(f"interrupted at iteration {run.last_iteration or 0}: darknet stopped "
                      f"({result.describe()}); the log and the dataframes are kept ({run.log_path})")
        interrupted.run = run  # type: ignore[attr-defined]
        raise interrupted
    if run.status in ("finished", "finished-crashed-on-exit"):
        if run.status == "finished-crashed-on-exit":
            reporter.warn(f"training finished, then darknet crashed on exit ({result.describe()}); "
                          "the weights were saved before the crash")
        for p in run.problems_found:
            reporter.warn(p.describe())
        reporter.info(run.summary())
        return run
    error = StepError(run.message, fix=run.problems_found[0].fix if run.problems_found else None,
                      problems=run.problems_found, details=last_output(session.recorder.text()))
    error.run = run  # type: ignore[attr-defined]
    raise error


def _judge(run: TrainingRun, session: _Session, result: runner.ProcessResult, max_batches: Optional[int]) -> None:
    """Set run.status, run.message and run.problems_found from what darknet printed and how it ended."""
    from .judge import diagnose

    last = run.last_iteration
    limit = session.max_batches_seen or max_batches
    reached = session.finished_seen or session.final_weights is not None or (
        limit is not None and session.last_iteration is not None and session.last_iteration >= limit)
    clean_exit = result.returncode == 0 and result.signal is None and not result.killed_by_watchdog
    if result.interrupted:
        run.status, run.message = "interrupted", f"interrupted at iteration {last or 0}"
        return
    if session.nan_iteration is not None and result.stopped_by_caller:
        began = session.diverged_from or session.nan_iteration
        run.status = "diverged"
        run.message = (f"training diverged at iteration {began} (loss nan from iteration {session.nan_iteration}); "
                       f"darknet stopped there (stop_on_nan)")
        run.problems_found = [_nan_problem(began)]
        return
    problems = diagnose(session.recorder.text(), returncode=result.returncode, signal=result.signal,
                        flavor=run.args.get("flavor"), data_paths=session.data_paths, command=run.argv)
    if session.nan_iteration is not None and not any(p.code.startswith("nan") for p in problems):
        problems = [_nan_problem(session.diverged_from or session.nan_iteration, severity="warning")] + list(problems)
    if reached:
        run.status = "finished" if clean_exit else "finished-crashed-on-exit"
        run.message = ("finished" if clean_exit else f"finished, darknet crashed on exit ({result.describe()})")
        run.problems_found = [p for p in problems if p.severity != "info"]
        return
    run.status = "failed"
    run.problems_found = list(problems)
    how = result.describe()
    if result.signal is not None and not result.killed_by_watchdog:
        run.message = f"darknet was {how} at iteration {last or 0}"
        if not any(p.severity == "error" for p in problems):
            run.problems_found.append(Problem(
                "killed", f"darknet was {how} before finishing (iteration {last or 0})",
                fix=("SIGKILL from outside is usually the out-of-memory killer: lower batch/subdivisions or the "
                     "image size" if result.signal == 9 else "see the last lines of the log"),
                iteration=last))
    elif result.killed_by_watchdog:
        run.message = f"darknet hung and was ended by the watchdog ({result.killed_by_watchdog}) at iteration {last or 0}"
    else:
        run.message = f"darknet stopped before finishing ({how}) at iteration {last or 0}"
    errors = [p for p in run.problems_found if p.severity == "error"]
    if errors:
        run.message += ": " + errors[0].message


def _nan_problem(iteration: int, severity: str = "error") -> Problem:
    return Problem("nan-loss", "training diverged here: the loss is inf or nan from this iteration on",
                   fix="lower learning_rate (or raise burn_in), check the labels (coordinates in 0..1, class ids "
                       "< classes), and resume from weights saved before the divergence",
                   severity=severity, iteration=iteration)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------- resume / log


def resume(run: TrainingRun | Path | str, reporter: Optional[Reporter] = None, *, darknet: Optional[Path | str] = None,
           max_batches: Optional[int] = None, weights: Optional[Path] = None, **overrides: Any) -> TrainingRun:
    """Restart `run` from its backup's newest weights with the same arguments; the history goes on.

    `run` may be a `TrainingRun` or its folder (after a VM reset). `darknet` overrides the binary;
    `weights` the weights to resume from. To train past the old max_batches, raise it in the cfg first.
    """
    if not isinstance(run, TrainingRun):
        run = TrainingRun.load(run)
    args = dict(run.args)
    if "cfg" not in args or "data" not in args:
        raise StepError("this run was read from a log (`%yolo log`): it has no darknet arguments to resume with",
                        fix="resume its run folder (%yolo resume {workspace}/runs/NAME), or start again with "
                            "%yolo train DATA CFG WEIGHTS using its last weights")
    cfg = Path(args["cfg"])
    backup_dir = Path(args.get("backup_dir") or "backup")
    start = Path(weights) if weights else find_resume_weights(backup_dir, cfg)
    if start is None:
        raise StepError(f"nothing to resume from: no {cfg.stem}_last.weights, {cfg.stem}.backup or "
                        f"{cfg.stem}_final.weights in {backup_dir}",
                        fix="darknet saves them every 100 iterations (pjreddie) or 1,000 (AlexeyAB, hank-ai); "
                            "start again with %yolo train")
    if max_batches is not None:
        from .cfg import Cfg

        parsed = Cfg.parse(cfg.read_text(encoding="utf-8"))
        parsed.set(parsed.net, "max_batches", int(max_batches))
        atomic_write_text(cfg, parsed.render())
    kwargs = dict(darknet=darknet or args["darknet"], data=Path(args["data"]), cfg=cfg, weights=start,
                  map=args.get("map", False), gpus=args.get("gpus"),
                  backup=Path(args["backup"]) if args.get("backup") else None, clear=False, run_dir=run.run_dir,
                  reporter=reporter, stop_on_nan=args.get("stop_on_nan", True),
                  extra_args=args.get("extra_args", ()), cwd=Path(args["cwd"]) if args.get("cwd") else None,
                  previous=run, flavor=args.get("flavor"))
    kwargs.update(overrides)
    if reporter is not None:
        reporter.info(f"resuming {run.name} from {start} (iteration {run.last_iteration or 0})")
    return train(**kwargs)


def load_log(path: Path | str, reporter: Optional[Reporter] = None, *, name: Optional[str] = None) -> TrainingRun:
    """Parse an existing darknet log into a run object (status finished/failed/stopped) with its chart."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise StepError(f"the log {path} does not exist",
                        problems=[Problem("missing-file", f"log not found: {path}", file=str(path))])
    history, parser = _history_from_log(path)
    run = TrainingRun(run_dir=path.parent, history=history, name=name or path.stem, log_path=path,
                      status=_log_status(history), max_batches=history.max_batches)
    run.args["flavor"] = parser.flavor
    if reporter is not None:
        from .live import LIVE_KEY, LiveView

        LiveView(reporter, title=run.name, max_batches=run.max_batches,
                 key=f"{LIVE_KEY}:log:{path}").update(history, final=True)
        reporter.info(f"{parser.flavor or 'unknown'} darknet log: {len(history.iterations)} iterations, "
                      f"{len(history.maps)} mAP results, {len(history.weights)} weights saved, "
                      f"{len(history.problems)} problem(s)")
        for p in history.problem_list:
            reporter.warn(p.describe())
    return run


def _log_status(history: Any) -> str:
    if history.finished:
        return "finished"
    if any(p.severity == "error" for p in history.problem_list):
        return "failed"
    return "stopped"


def status(run: Optional[TrainingRun]) -> str:
    """A few lines on a run: status, progress, sessions, files."""
    if run is None:
        return "no training run"
    lines = [run.summary()]
    for i, s in enumerate(run.sessions, 1):
        lines.append(f"  session {i}: {s.get('status', 'running')} at iteration {s.get('last_iteration')}, "
                     f"{s.get('seconds', '?')} s, started {s.get('started')}")
    for p in run.problems_found:
        lines.append("  - " + p.describe())
    if run.backup_dir:
        found = find_resume_weights(run.backup_dir, Path(run.args.get("cfg", "x")))
        if found:
            lines.append(f"  resume point: {found}")
    return "\n".join(lines)
