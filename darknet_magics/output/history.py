"""Events -> pandas dataframes (`TrainingLog`), persisted beside the log and stitched across resumes.

Persistence format: one JSON-lines file (``train.history.jsonl`` beside ``train.log`` by convention), one event a
line, e.g. ``{"kind":"iteration","iteration":12,"loss":24.6,...}``. JSON has no NaN or infinity: NaN is written as
``null`` and +-infinity as the strings ``"inf"`` / ``"-inf"`` (pjreddie prints an ``inf`` loss the iteration before
it turns ``nan``); `History.load` reads both back as floats. Why: a live run
appends the events of each chunk with `History.append_to` (open, write, flush: no rewrite), so a crash or a VM
reset loses at most the line being written, and `History.load` skips a torn last line. It needs no extra
dependency, and ``pandas.read_json(path, lines=True)`` reads it too.

Resumes: `History.extend(other)` / `History.stitch(previous, current)` append a resumed run after the previous
one; rows of the previous run at or beyond the resume point (the first iteration of the resumed run) are dropped,
so iterations never restart at 0 and no iteration appears twice.
"""
from __future__ import annotations

import json
import math
import operator
import os
from dataclasses import dataclass, fields
from itertools import repeat
from pathlib import Path
from typing import Any, Iterable, Optional, Union

import numpy as np
import pandas as pd

from ..errors import Problem
from .events import (ClassAP, Event, Finished, Iteration, MapResult, MaxBatches, NextMapAt, ProblemFound, Prompt,
                     Resumed, WeightsSaved)
from ..fileio import atomic_write_text
from ..jsonread import RecordError

__all__ = ["History", "TrainingLog", "IterationSink", "ITERATION_COLUMNS", "MAP_COLUMNS", "CLASS_AP_COLUMNS", "WEIGHTS_COLUMNS",
           "PROBLEM_COLUMNS"]

ITERATION_COLUMNS = tuple(Iteration._fields)
_INT_COLUMNS = frozenset(("iteration", "images"))  # ints in the columns (the frame: iteration only)
MAP_COLUMNS = tuple(f.name for f in fields(MapResult))
CLASS_AP_COLUMNS = tuple(f.name for f in fields(ClassAP))
WEIGHTS_COLUMNS = ("iteration", "path")
PROBLEM_COLUMNS = ("code", "message", "fix", "severity", "iteration", "evidence")

_KIND = {Iteration: "iteration", MapResult: "map", ClassAP: "class_ap", WeightsSaved: "weights",
         ProblemFound: "problem", MaxBatches: "max_batches", NextMapAt: "next_map", Finished: "finished",
         Prompt: "prompt", Resumed: "resumed"}


@dataclass(frozen=True)
class TrainingLog:
    """A parsed training log: dataframes with stable columns (empty frames keep them) and the darknet flavor.

    Numeric columns are float64 (NaN where a flavor does not print a field); ``iteration`` is int64 in
    ``iterations`` and nullable Int64 elsewhere (None for a standalone ``detector map`` run).
    """

    iterations: pd.DataFrame
    maps: pd.DataFrame
    class_ap: pd.DataFrame
    weights: pd.DataFrame
    problems: pd.DataFrame
    flavor: Optional[str] = None

    def __repr__(self) -> str:
        return (f"TrainingLog(flavor={self.flavor!r}, iterations={len(self.iterations)}, maps={len(self.maps)}, "
                f"class_ap={len(self.class_ap)}, weights={len(self.weights)}, problems={len(self.problems)})")


class History:
    """Accumulates events of one or more runs; dataframes are built lazily and cached until new rows arrive."""

    def __init__(self, events: Iterable[Event] = ()) -> None:
        # the iteration rows, column by column (ITERATION_COLUMNS): what the frame is built from, and where
        # parse_log's columnar fast path writes
        self._itcols: tuple[list, ...] = tuple([] for _ in ITERATION_COLUMNS)
        self._maps: list[tuple] = []
        self._aps: list[tuple] = []
        self._weights: list[tuple] = []
        self._problems: list[Problem] = []
        self.max_batches: Optional[int] = None
        self.next_map_at: Optional[int] = None
        self.finished: Optional[str] = None
        self._cache: dict[str, pd.DataFrame] = {}
        self._revision = 0  # bumped when rows are dropped (a resume): incremental readers start over
        self.add(events)

    # ------------------------------------------------------------------------------------------- adding
    def add(self, events: Iterable[Event]) -> None:
        """Append events (cheap: tuples onto lists; the frames are rebuilt on next access)."""
        rows: list = []
        its, maps, aps, ws = rows.append, self._maps.append, self._aps.append, self._weights.append
        changed = False
        for e in events:
            t = type(e)
            changed = True
            if t is Iteration:
                its(e)  # columns below, in C
            elif t is MapResult:
                maps(tuple(getattr(e, c) for c in MAP_COLUMNS))
            elif t is ClassAP:
                aps(tuple(getattr(e, c) for c in CLASS_AP_COLUMNS))
            elif t is WeightsSaved:
                ws((e.iteration, e.path))
            elif t is ProblemFound:
                self._problems.append(e.problem)
            elif t is MaxBatches:
                self.max_batches = e.n
            elif t is NextMapAt:
                self.next_map_at = e.iteration
            elif t is Finished:
                self.finished = e.reason
            elif t is Resumed:  # a later session of the same log: its rows supersede the earlier ones from here
                self._add_rows(rows)
                rows = []
                its = rows.append
                self._drop_from(e.iteration)  # new lists: the bound appends must follow them
                maps, aps, ws = self._maps.append, self._aps.append, self._weights.append
        self._add_rows(rows)
        if changed:
            self._cache.clear()

    def _add_rows(self, rows: list) -> None:
        if rows:
            for i, column in enumerate(self._itcols):
                column += map(operator.itemgetter(i), rows)

    def _drop_from(self, start: int) -> None:
        """Drop the rows at or after iteration `start` (a resumed run restarts there)."""
        its = self._itcols[0]
        if its and its[-1] >= start:
            keep = [i for i, it in enumerate(its) if it < start]
            self._itcols = tuple([column[i] for i in keep] for column in self._itcols)
        self._revision += 1
        self._maps = [r for r in self._maps if r[0] is None or r[0] < start]
        self._aps = [r for r in self._aps if r[0] is None or r[0] < start]
        self._weights = [r for r in self._weights if r[0] is None or r[0] < start]
        self._cache.clear()

    def iteration_sink(self) -> "IterationSink":
        """Where a parser may write iteration rows column by column (`parse_log`'s fast path: no event object per
        iteration). Everything else still comes through `add`, in the order of the stream."""
        return IterationSink(self)

    def extend(self, other: "History") -> None:
        """Append a resumed run: drop this history's rows at or after `other`'s first iteration, then add its rows."""
        if other._itcols[0]:
            self._drop_from(other._itcols[0][0])
        for column, more in zip(self._itcols, other._itcols):
            column += more
        self._maps += other._maps
        self._aps += other._aps
        self._weights += other._weights
        self._problems += other._problems
        self.max_batches = other.max_batches or self.max_batches
        self.next_map_at = other.next_map_at or self.next_map_at
        self.finished = other.finished
        self._cache.clear()

    @classmethod
    def stitch(cls, previous: "History", current: "History") -> "History":
        """A new History: `previous` continued by the resumed run `current` (neither is changed)."""
        out = cls()
        out.extend(previous)
        out.extend(current)
        return out

    # ------------------------------------------------------------------------------------------- readers
    @property
    def revision(self) -> int:
        """Changes when rows were dropped or replaced (a resume); rows are otherwise only appended. A reader that
        keeps what it read (`iteration_columns`) starts over when it changes."""
        return self._revision

    @property
    def row_counts(self) -> tuple[int, int, int]:
        """The numbers of iteration, mAP and per-class AP rows, without building a dataframe."""
        return len(self._itcols[0]), len(self._maps), len(self._aps)

    def iteration_columns(self, start: int = 0) -> dict[str, np.ndarray]:
        """The iteration rows from row `start` on, one numpy array per column (`ITERATION_COLUMNS`; iteration
        int64, the rest float64). Why: the `iterations` frame is rebuilt from every row after each chunk (150 ms
        at 500,000 rows); the live chart reads only the rows that arrived since its last update."""
        return {c: np.fromiter(column[start:] if start else column,
                               dtype=np.int64 if c == "iteration" else np.float64, count=max(0, len(column) - start))
                for c, column in zip(ITERATION_COLUMNS, self._itcols)}

    # ------------------------------------------------------------------------------------------- frames
    @property
    def iterations(self) -> pd.DataFrame:
        """``iteration, loss, avg_loss, rate, seconds, images, hours_left`` (iteration int64, the rest float64)."""
        if "iterations" not in self._cache:
            # np.array reads a list of floats about twice as fast as fromiter; fromiter is the faster for ints
            # (the iteration; images, ints but for a row the strict conversion refused). The same values either way.
            data = {c: np.fromiter(column, dtype=np.int64 if c == "iteration" else np.float64, count=len(column))
                    if c in _INT_COLUMNS else np.array(column, dtype=np.float64)
                    for c, column in zip(ITERATION_COLUMNS, self._itcols)}
            df = pd.DataFrame(data, columns=list(ITERATION_COLUMNS), copy=False)
            self._cache["iterations"] = df
        return self._cache["iterations"]

    @property
    def maps(self) -> pd.DataFrame:
        """One row per mAP calculation: ``iteration, map50, best_map50, precision, recall, f1, avg_iou, tp, ...``."""
        return self._frame("maps", self._maps, MAP_COLUMNS)

    @property
    def class_ap(self) -> pd.DataFrame:
        """``iteration, class_id, name, ap, tp, fp, fn, gt, f1, avg_iou`` (ap in 0..1)."""
        return self._frame("class_ap", self._aps, CLASS_AP_COLUMNS, text=("name",), ints=("class_id",))

    @property
    def weights(self) -> pd.DataFrame:
        """``iteration, path`` for each ``Saving weights to`` line."""
        return self._frame("weights", self._weights, WEIGHTS_COLUMNS, text=("path",))

    @property
    def problems(self) -> pd.DataFrame:
        """``code, message, fix, severity, iteration, evidence`` of the diagnosed problems."""
        if "problems" not in self._cache:
            rows = [(p.code, p.message, p.fix, p.severity, p.iteration, p.evidence) for p in self._problems]
            df = pd.DataFrame(rows, columns=list(PROBLEM_COLUMNS), dtype=object)
            df["iteration"] = pd.array([r[4] for r in rows], dtype="Int64")
            self._cache["problems"] = df
        return self._cache["problems"]

    @property
    def problem_list(self) -> list[Problem]:
        """The diagnosed problems as `Problem` records."""
        return list(self._problems)

    def to_log(self, flavor: Optional[str] = None) -> TrainingLog:
        """The frames as a `TrainingLog`."""
        return TrainingLog(self.iterations, self.maps, self.class_ap, self.weights, self.problems, flavor)

    def _frame(self, key: str, rows: list[tuple], columns: tuple[str, ...], *, text: tuple[str, ...] = (),
               ints: tuple[str, ...] = ()) -> pd.DataFrame:
        df = self._cache.get(key)
        if df is not None:
            return df
        cols = list(zip(*rows)) if rows else [()] * len(columns)
        data: dict[str, Any] = {}
        for name, values in zip(columns, cols):
            if name == "iteration":
                data[name] = pd.array(list(values), dtype="Int64")
            elif name in text:
                data[name] = np.array(values, dtype=object)
            elif name in ints:
                data[name] = np.array(values, dtype=np.int64)
            else:
                data[name] = np.array(values, dtype=np.float64)
        df = pd.DataFrame(data, columns=list(columns))
        self._cache[key] = df
        return df

    # ------------------------------------------------------------------------------------------- summary
    @property
    def last_iteration(self) -> Optional[int]:
        """The last iteration seen (None before any)."""
        return self._itcols[0][-1] if self._itcols[0] else None

    @property
    def last_avg_loss(self) -> float:
        """The avg loss of the last iteration (NaN before any)."""
        return self._itcols[2][-1] if self._itcols[2] else math.nan

    @property
    def best_map50(self) -> float:
        """The best mAP@0.50 so far, 0..1 (NaN before any calculation)."""
        vals = [r[1] for r in self._maps if r[1] == r[1]]
        return max(vals) if vals else math.nan

    def __len__(self) -> int:
        return len(self._itcols[0])

    # ------------------------------------------------------------------------------------------- persistence
    def events(self) -> list[Event]:
        """The history as events again (what `save` writes)."""
        out: list[Event] = []
        if self.max_batches is not None:
            out.append(MaxBatches(self.max_batches))
        out += map(tuple.__new__, repeat(Iteration), zip(*self._itcols))
        out += [MapResult(*r) for r in self._maps]
        out += [ClassAP(*r) for r in self._aps]
        out += [WeightsSaved(*r) for r in self._weights]
        out += [ProblemFound(p) for p in self._problems]
        if self.next_map_at is not None:
            out.append(NextMapAt(self.next_map_at))
        if self.finished is not None:
            out.append(Finished(self.finished))
        return out

    def save(self, path: Union[str, Path]) -> None:
        """Write the whole history as JSON lines, atomically (never half written)."""
        # fileio's atomic write: temp file in the same folder, fsync, replace, and the mode a new file gets (umask)
        atomic_write_text(path, "".join(_lines(self.events())))

    @staticmethod
    def append_to(path: Union[str, Path], events: Iterable[Event], *, fsync: bool = False) -> int:
        """Append events to a history file as they arrive; returns how many were written.

        Each call opens, writes whole lines and flushes, so the file is readable after every call and a crash
        loses nothing already appended. `fsync` also survives a machine reset (slower: use it once a second).
        """
        lines = _lines(events)
        if not lines:
            return 0
        with open(path, "a", encoding="utf-8") as f:
            f.writelines(lines)
            f.flush()
            if fsync:
                os.fsync(f.fileno())
        return len(lines)

    @classmethod
    def load(cls, path: Union[str, Path]) -> "History":
        """Read a history file written by `save` or `append_to`. A torn last line (a crash mid-append: no newline)
        is skipped; any other line that is not ours (broken UTF-8, not JSON, a wrong type, a number JSON does not
        have) is a `RecordError` naming the file and the line."""
        with open(path, "rb") as f:
            lines = f.read().split(b"\n")
        events: list[Event] = []
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            try:
                events.append(_load_line(raw))
            except RecordError as exc:
                if number == len(lines):  # no newline after it: the line a crash cut
                    continue
                raise RecordError(path, number, exc.what, fix="the log has every byte: remove history.jsonl and "
                                  "load the run again (it is made again from train.log)") from None
        return cls(events)


class IterationSink:
    """A `History`'s iteration columns as a parser writes them (see `History.iteration_sink`)."""

    __slots__ = ("_history",)

    def __init__(self, history: History) -> None:
        self._history = history

    def extend(self, columns: Iterable[list]) -> None:
        """Append rows given column by column (in `ITERATION_COLUMNS` order)."""
        h = self._history
        for column, values in zip(h._itcols, columns):
            column.extend(values)
        h._cache.pop("iterations", None)

    def resumed(self, iteration: int, pending: list) -> None:
        """A later session starts at `iteration`: the `pending` events (stream order: before it) go in first, then
        the rows at or after it are dropped; `pending` is emptied."""
        h = self._history
        h.add(pending)
        pending.clear()
        h._drop_from(iteration)


_TEXT_FIELDS = frozenset(("path", "name", "reason", "text"))
_FIELDS: dict[type, tuple[str, ...]] = {cls: tuple(f.name for f in fields(cls)) for cls in _KIND
                                         if cls is not Iteration}
_FIELDS[Iteration] = ITERATION_COLUMNS
_PROBLEM_FIELDS = tuple(f.name for f in fields(Problem))
_encode = json.JSONEncoder(separators=(",", ":"), allow_nan=False, default=str).encode  # built once, not per line
# An iteration line, formatted in one step (str of an int or float is its JSON text when it is finite).
_ITERATION_LINE = ('{"kind":"iteration",' + ",".join(f'"{c}":%s' for c in ITERATION_COLUMNS) + "}\n")
_isfinite = math.isfinite


def _clean(v: Any) -> Any:
    """A value as JSON can hold it: NaN -> null, +-infinity -> "inf" / "-inf"."""
    if isinstance(v, float) and not _isfinite(v):
        return None if v != v else ("inf" if v > 0 else "-inf")
    return v


def _lines(events: Iterable[Event]) -> list[str]:
    """The JSON lines (newline included) of the events that are persisted (all but `Prompt`).

    An iteration (the bulk of a history) is one %-format of its seven numbers when they are all finite (their sum
    is): ~3x cheaper than building a dict and calling json.dumps (1.6 vs 4.8 µs an event on this project's 2-core
    VM); other events and non-finite numbers go through `_dumps` (with an encoder built once, not per call).
    """
    out = []
    add = out.append
    fmt = _ITERATION_LINE
    for e in events:
        t = type(e)
        if t is Iteration:
            try:
                if _isfinite(sum(e)):
                    add(fmt % e)
                    continue
            except TypeError:
                pass
            add(_dumps(e) + "\n")
        elif t in _KIND and t is not Prompt:
            add(_dumps(e) + "\n")
    return out


def _dumps(e: Event) -> str:
    kind = _KIND[type(e)]
    if kind == "problem":
        p = e.problem
        d = {"kind": kind, **{name: getattr(p, name) for name in _PROBLEM_FIELDS}}
    else:
        d = {"kind": kind, **{name: _clean(getattr(e, name)) for name in _FIELDS[type(e)]}}
    return _encode(d)


_FROM_KIND = {v: k for k, v in _KIND.items()}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} (our writer writes null, \"inf\" or \"-inf\")")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)  # built once: json.loads(..., kw) builds one a call
_PLAIN = frozenset((int, bool, type(None)))
_INFINITIES = frozenset(("inf", "-inf"))


def _load_line(raw: bytes) -> Event:
    """One history line as its event; RecordError (no file yet) says what is wrong with it."""
    try:
        d = _DECODER.decode(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise RecordError("", None, f"not UTF-8 (byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:
        raise RecordError("", None, f"not JSON: {str(exc)[:120]}") from None
    if type(d) is not dict or d.get("kind") not in _FROM_KIND or d["kind"] == "prompt":
        raise RecordError("", None, "not an event of ours (an object with a known \"kind\")")
    texts_free = d["kind"] == "problem"
    for key, value in d.items():
        t = type(value)
        if t is float:
            ok = _isfinite(value)
        elif t is str:
            ok = texts_free or key in _TEXT_FIELDS or key == "kind" or value in _INFINITIES
        else:
            ok = t in _PLAIN
        if not ok:
            raise RecordError("", None, f"{key}: {str(value)[:60]!r} is no value of ours")
    try:
        return _loads(d)
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordError("", None, f"not an event of ours ({str(exc)[:120]})") from None


def _loads(d: dict) -> Event:
    kind = d.pop("kind")
    if kind == "problem":
        return ProblemFound(Problem(**d))
    cls = _FROM_KIND[kind]
    names = _FIELDS[cls]
    args = {}
    for k, v in d.items():
        if k in names:
            if k not in _TEXT_FIELDS:
                # JSON null -> NaN for float fields (None stays None for optional iterations); "inf"/"-inf" -> +-inf
                if v is None:
                    v = None if k == "iteration" else math.nan
                elif isinstance(v, str):
                    v = float(v)  # "inf", "-inf" (a string that is no number: ValueError, the line is skipped)
            args[k] = v
    return cls(**args)
