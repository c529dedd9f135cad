"""The watch of one darknet session: its output goes to the sinks (the recorder of its start and end, the parser,
the history, the view), and what the verdict needs is noted as it passes (nan, the end of training, max_batches).

The same watch serves a foreground run (fed by the runner) and a background one (fed by the log follower).
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Protocol, Sequence

from ..data import objdata
from .keeper import StopReason
from ..errors import DarknetMagicsError, Problem
from ..output.events import ProblemFound
from ..output.logparse import Finished, Iteration, LogParser, MaxBatches, WeightsSaved
from .runs import TrainingRun

if TYPE_CHECKING:
    from ..output.history import History

__all__ = ["RunView", "ViewMaker", "no_view", "Watch", "make_watch"]


_HEAD_KEEP = 64 * 1024   # the start of a session's output kept in memory for the diagnosis
_TAIL_KEEP = 256 * 1024  # and its end


class RunView(Protocol):
    """Whoever shows a run while it trains: the notebook's live chart (view/live.py's `LiveView`), or nothing.

    The watch calls it as it calls its other sinks; train/ never imports view/: the directive that starts a run
    gives the watch a `ViewMaker` (the live view in a notebook, `no_view` in a terminal or a test).
    """

    def add_text(self, text: str) -> None: ...

    def update(self, history: "History", *, force: bool = False, final: bool = False) -> None: ...

    def interrupted(self, line: str, history: "History") -> None: ...

    def fail(self, message: str, history: "History") -> None: ...

    def save(self, history: "History", folder: Path, *, title: str) -> None:
        """The run's chart kept in its folder when the session ends (chart.html, and a PNG where it is shown)."""


# (title, key, max_batches, start_iteration) -> the view of one session
ViewMaker = Callable[..., RunView]


class _NoView:
    """The view of a run nobody watches (the CLI's plain output, a test): every call does nothing."""

    def add_text(self, text: str) -> None:
        pass

    def update(self, history: "History", *, force: bool = False, final: bool = False) -> None:
        pass

    def interrupted(self, line: str, history: "History") -> None:
        pass

    def fail(self, message: str, history: "History") -> None:
        pass

    def save(self, history: "History", folder: Path, *, title: str) -> None:
        pass


def no_view(**_: Any) -> RunView:
    """A `ViewMaker` for runs that nobody watches."""
    return _NoView()


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


class Watch:
    """The live part of one darknet session: the sinks of its output (recorder, parser, history, live view) and
    what the verdict needs to know (nan, the end of training, max_batches)."""

    def __init__(self, run: TrainingRun, live: RunView, *, stop_on_nan: bool, data_paths: Sequence[str],
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
        self.problems: list[Problem] = []  # what the live parse found: the verdict's evidence, with the exit status
        self.saw_output = False
        self.drawing = True  # False while a re-attach catches up: the view's first frame would time parsing
        self.appended = False  # history.jsonl has been written to: gone later, the run folder was deleted

    def on_text(self, text: str) -> None:
        self.recorder.add(text)
        if not self.saw_output and text.strip():
            self.saw_output = True
        self.live.add_text(text)
        try:
            events = self.parser.feed(text)
            if events:
                self._take(events)
            if self.drawing:
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
        elif isinstance(ev, ProblemFound):
            self.problems.append(ev.problem)
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


def make_watch(run: TrainingRun, *, data_arg: Path, max_batches: Optional[int], resumed: bool,
               view: ViewMaker = no_view, key: str = "") -> Watch:
    """The sinks of one darknet session's output (recorder, parser, history, the caller's view): fed by the runner
    in the foreground, by the log follower for a background run (background.py)."""
    live = view(title=run.name, key=f"{run.run_dir.name}:{len(run.sessions)}{key}", max_batches=max_batches,
                start_iteration=run.last_iteration or None)
    try:
        written = objdata.values(data_arg, as_written=True)
    except (OSError, DarknetMagicsError):  # re-attached to a run whose obj.data copy is gone or damaged: the paths
        written = {}                      # only sharpen the diagnosis
    data_paths = tuple(v for k, v in written.items() if k in ("train", "valid", "names", "backup"))
    return Watch(run, live, stop_on_nan=run.args.stop_on_nan, data_paths=data_paths, resumed=resumed)
