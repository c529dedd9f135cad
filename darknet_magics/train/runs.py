"""A training run: its folder, its dataframes, its status; made new, read back from its folder, or from a log.

A run lives in a folder (`run_dir`, created exclusively: two runs never share one) that survives a VM reset when it
is on the drive:

* ``train.log``     every byte darknet wrote, appended as it arrives (all sessions of a resumed run);
* ``history.jsonl`` the parsed events, appended as they arrive (history.py's format);
* ``run.json``      the plan and outcome of each session (record.py's schema), so `TrainingRun.load` and resume
  work in a new kernel;
* ``obj.data``      a per-run copy of the data file whose ``backup=`` is this run's own weights folder;
* ``backup/``       the run's weights (``<cfg>_last.weights``, ...), unless ``backup=`` or the user's own obj.data
  names another folder: two runs with the same cfg name never share weight files.
"""
from __future__ import annotations

import html
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Optional, Sequence

from ..run import runner
from ..setup.flavor import Flavor, flavor_of
from ..data.cfg import Cfg
from ..data.cfg_weights import read_weights_header
from ..errors import DarknetMagicsError, Problem, StepError
from .keeper import Keeper, save_json
from .record import LOG_NAME, RUN_JSON, RecordError, RunArgs, RunRecord, RunStatus, read_record

if TYPE_CHECKING:
    from ..output.history import History
    from ..output.logs import ParsedLog

__all__ = ["TrainingRun", "HISTORY_NAME", "make_run_dir", "latest_run_dir", "find_resume_weights", "weights_iteration",
           "load_log", "status"]


HISTORY_NAME = "history.jsonl"


def cfg_net_int(cfg: Path, key: str) -> Optional[int]:
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


class TrainingRun:
    """A training run (possibly resumed several times): its files, arguments, outcome and live dataframes.

    `iterations`, `maps`, `class_ap`, `weights` and `problems` are the history's dataframes (see history.py);
    `figure` is the plotly chart. `status` is one of ``running``, ``finished``, ``finished-crashed-on-exit``,
    ``failed``, ``interrupted``, ``diverged``.
    """

    # How a run is drawn: (iterations, maps, title) -> a plotly figure, and a figure -> a notebook's mimebundle.
    # train/ draws nothing itself (it sits above view/ and must not import it): the directives, which import both
    # floors, give view/'s functions here when they load (directives/_runs.py).
    chart_maker: ClassVar[Optional[Callable[..., Any]]] = None
    bundle_maker: ClassVar[Optional[Callable[[Any], dict]]] = None

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
        """The run's chart (a plotly figure), as the live view draws it."""
        if TrainingRun.chart_maker is None:
            raise DarknetMagicsError("no chart maker is loaded (the charts come with the magics)",
                                     fix="%load_ext darknet_magics, or `import darknet_magics.directives`")
        return TrainingRun.chart_maker(self.iterations, self.maps, title=self.name)

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
        if TrainingRun.bundle_maker is None:
            return {"text/plain": repr(self)}
        bundle = dict(TrainingRun.bundle_maker(self.figure))
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
        history_ = load_history(run_dir / HISTORY_NAME, run_dir / LOG_NAME) if history else history_class()()
        status_ = rec.status
        if status_ is RunStatus.RUNNING:  # the kernel died while it ran (VM reset): it is not running now
            status_ = RunStatus.INTERRUPTED
        run = cls(run_dir=run_dir, history=history_, args=rec.args, argv=rec.argv, name=rec.name,
                  max_batches=rec.max_batches, status=status_, sessions=rec.sessions)
        run.message = rec.message
        run.from_disk = True
        return run


def history_class() -> type["History"]:
    # history.py imports pandas, which costs a second at import time: loaded with the first run, not with %load_ext
    from ..output.history import History

    return History


def load_history(history_path: Path, log_path: Path) -> "History":
    History = history_class()

    if history_path.is_file():
        try:
            return History.load(history_path)
        except RecordError:
            if not log_path.is_file():
                raise
            # a damaged history.jsonl: the log holds every byte darknet wrote, the history is made from it
    if log_path.is_file():  # no history file (it was lost, or the log came from elsewhere): parse the log again
        return history_from_log(log_path)[0]
    return History()


def history_from_log(log_path: Path, flavor: Optional[Flavor] = None) -> tuple["History", "ParsedLog"]:
    """(History, ParsedLog: its flavor) of a whole log file: the one whole-log reader, `logs.read_log`."""
    from ..output.logs import read_log  # pandas (history): loaded with the first run, not with %load_ext

    parsed = read_log(Path(log_path), flavor=flavor)
    return parsed.history, parsed


def weights_iteration(weights: Path, cfg: Path) -> Optional[int]:
    """The iteration a weights file was saved at: its header's images-seen count / the cfg's batch."""
    try:
        with open(weights, "rb") as handle:
            header = read_weights_header(handle.read(20))
        batch = cfg_net_int(cfg, "batch")
    except OSError:
        return None
    if header is None or not batch:
        return None
    return int(header.seen) // batch


def load_log(path: Path | str, *, name: Optional[str] = None) -> tuple[TrainingRun, Optional[str]]:
    """An existing darknet log parsed into a run object (status finished/failed/stopped); (the run, the flavor
    the log shows, if any)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise StepError(f"the log {path} is a folder, not a file",
                        fix=f"give the log file inside it, e.g. %yolo log {path / LOG_NAME}")
    if not path.is_file():
        raise StepError(f"the log {path} does not exist",
                        problems=[Problem("missing-file", f"log not found: {path}", file=str(path))])
    history, parser = history_from_log(path)
    run = TrainingRun(run_dir=path.parent, history=history, name=name or path.stem, log_path=path,
                      status=_log_status(history), max_batches=history.max_batches)
    run.args = RunArgs(flavor=flavor_of(parser.flavor))
    return run, parser.flavor


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
