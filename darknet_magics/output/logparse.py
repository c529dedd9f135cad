"""Darknet output -> typed events, for the three flavors (pjreddie, AlexeyAB, hank-ai). Pure: no IPython.

Two entry points:

* `LogParser().feed(chunk) -> list[Event]` for a live run: chunks of any size, as a pty delivers them
  (lines split across reads, ``\\r`` progress, ANSI/OSC escapes, bells, ``-nan``, undecodable bytes);
  `close()` flushes a truncated last line.
* `logs.parse_log(source) -> TrainingLog` for a finished log (a path, the text, or an iterable of chunks): above
  this module and the history, so it is not re-exported here.

Layers (no import cycle): `events` (the event types) at the bottom; `problems` (one factory per problem code) and
`diagnose` (the line rules) above it; this parser above those; `history` (events -> frames) beside it, importing
only `events`; `logs.parse_log` and `judge.diagnose` (the whole output plus the exit status) on top.

Sessions: a log that holds several runs (a resumed run appended to its log) has iterations that go back; the
parser emits `Resumed(k)` there, and the history drops the earlier rows from k on, as `History.extend` does for the
live object.

Memory: a scan covers at most 4 MiB of text (`_FEED_MAX`), matches after a lone ``\r`` are taken lazily, escape
runs in the patterns are bounded (a repeated group keeps a backtracking state per repetition), and numbers that go
to ``int()`` are at most 18 digits in the patterns (a longer one is no iteration): parse_log's peak is the rows it
returns plus a few scans' worth, whatever the input.

How it stays fast (1.3-2 million lines a second on one busy core for pjreddie/AlexeyAB logs, at or above a
hand-written one-regex-per-line parser that extracts far less; hank-ai's 200-byte, all-iteration, ANSI-coloured lines
run at ~0.35 million lines (~75 MB) a second, ~0.8x that parser; see ``benchmarks/bench_parser.py``): no Python loop
over lines. One compiled "gate" regex is run with ``finditer`` over the whole buffer. It is anchored on the
newline literal (the regex engine jumps between newlines in C), matches the iteration lines of every flavor with
their fields in one go (hank-ai's usual line first through a cheaper exact pattern), and otherwise only a fixed set
of keywords at the start of a line, behind a one-character lookahead and grouped by first character, so that a line
that is none of them costs one or two comparisons. Only lines that pass the gate cost Python time; the rest of a
darknet log (layer tables, ``Region ...``/``v3 (iou loss ...`` lines) is skipped inside the regex engine. A second
gate does the same after a lone ``\\r``, where AlexeyAB starts its ``class_id = ..`` line after the
``rank = N of ranks = M`` progress on the same line.

Iteration lines, most of the matches, are queued as captured text and converted in bulk, column by column with
C-level ``map(float, ..)``, when another event comes or the buffer ends (`LogParser._flush`); `Iteration` is a named
tuple built with ``tuple.__new__``. `parse_log` goes further: the columns go straight into the history, no event
object per iteration. The per-row path (``LogParser.bulk = False``) is the reference: the tests check that both
give the same events and frames on every real log and on fuzzed input.

Line model: a "segment" is text between ``\\n`` / ``\\r`` separators, which is what a terminal shows. Events are
read from the start of a segment; escapes before it (colours, AlexeyAB's ``ESC[H ESC[J`` title, hank-ai's OSC
window title) are skipped, and the few events that follow an escape on the same segment (AlexeyAB's
``N/M: loss=..`` title after ``(next mAP calculation ...)``) are read by that keyword's handler.
"""
from __future__ import annotations

import codecs
import math
import re
from dataclasses import dataclass, field
from itertools import count, groupby, islice, repeat
from operator import ge, mul, truediv
from typing import TYPE_CHECKING, Callable, Iterable, Optional, Union

from . import problems as _problems
from .diagnose import TRIGGER_PATTERNS, TRIGGERS, LineDiagnoser
from ..errors import Problem
if TYPE_CHECKING:  # for the annotation only: history.py does not import this module
    from .history import IterationSink
# The event types live in events.py (the bottom layer); re-exported here, where they have always been imported from.
from .events import (ClassAP, Event, Finished, Iteration, MapResult, MaxBatches, NextMapAt, ProblemFound, Prompt,
                     Resumed, WeightsSaved)

__all__ = [
    "Iteration", "MapResult", "ClassAP", "WeightsSaved", "ProblemFound", "MaxBatches", "NextMapAt", "Finished",
    "Prompt", "Resumed", "Event", "LogParser", "FLAVORS", "strip_escapes",
]

NAN = math.nan
FLAVORS = ("pjreddie", "alexeyab", "hank-ai")


# ------------------------------------------------------------------------------------------------- regexes
# Colour codes (CSI ... m) inside hank-ai's lines.
_C = r"(?:\x1b\[[0-9;]*m){0,8}"
# Any escape sequence at the start of a segment: CSI (colours, cursor home, clear screen) or OSC (window title).
_ESCANY = r"(?:\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07\n]*(?:\x07|\x1b\\)){0,16}"
_ESC_RE = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07\n]*(?:\x07|\x1b\\)?|\x1b[@-_]?|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")

# pjreddie: "12: 28.0, 28.1 avg, 0.000001 rate, 1.14 seconds, 24 images"
# AlexeyAB: " 12: 24.6, 24.7 avg loss, 0.000000 rate, 1.91 seconds, 32 images, 0.11 hours left"
_IT_PJ_AB = (r" ?(\d{1,18}): ([^,\s]+), ([^,\s]+) avg(?: loss)?, ([^,\s]+) rate, ([^,\s]+) seconds, (\d{1,18}) images"
             r"(?:, ([^,\s]+) hours left)?")
# hank-ai: OSC title "ESC]2;N/M: loss=.. time=..BEL" then "N: loss=X, avg loss=Y, last=.., best=.., mAP=N|DISABLED,
# rate=R, load B=T unit, train=T unit, N images, time remaining=T unit" with colour codes around the values.
# Written out field by field (no lazy ".*?"), and behind the literal ESC it starts with: every line of a hank-ai
# log runs through it, and no other line should pay for it.
_IT_HANK = (r"\x1b(?:\[0m\x1b|)(?:\]2;\d+/(\d{1,18}):[^\x07\n]*\x07\x1b|)\[[0-9;]*m(\d{1,18})" + _C + r": loss=" + _C
            + r"([^\x1b,\s]+)" + _C + r", avg loss=" + _C + r"([^\x1b,\s]+)" + _C + r", last=[^,\n]*, best=[^,\n]*,"
            r" mAP=" + _C + r"(\w+)" + _C + r", rate=([^,\s]+), load [^,\n]*, train=([^,\s]+) ?([a-z]*), (\d{1,18}) images"
            r"(?:, time remaining=([^,\s]+) ?([a-z]*))?")
# The same line as hank-ai's own build prints it (the window title, then exactly one colour code where it puts one),
# tried first: ~40% cheaper than the general pattern above, which takes any other arrangement. Where this one
# matches, the general one matches the same text into the same fields (each of its colour slots takes the one code).
_E1 = r"\x1b\[[0-9;]*m"
_IT_HANK_FAST_T = (r"\x1b\]2;\d+/<MB>:[^\x07\n]*\x07" + _E1 + r"(\d{1,18})" + _E1 + r": loss=" + _E1 + r"([^\x1b,\s]+)" + _E1
                   + r", avg loss=" + _E1 + r"([^\x1b,\s]+)" + _E1 + r", last=[^,\n]*, best=[^,\n]*, mAP=(?:" + _E1
                   + r"|)<NM>(?:" + _E1 + r"|), rate=([^,\s]+), load [^,\n]*, train=([^,\s]+) ?([a-z]*), (\d{1,18}) images"
                   r", time remaining=([^,\s]+) ?([a-z]*)")
_IT_HANK_FAST = _IT_HANK_FAST_T.replace("<MB>", r"(\d{1,18})").replace("<NM>", r"(\w+)")
# ... and the same with max_batches (constant in a run) as a literal, the value of the lines before: one capture less
# on every line, and no change to look for in it. A line with another value falls through to _IT_HANK_FAST.


def _hank_spec(mb: str) -> str:
    return _IT_HANK_FAST_T.replace("<MB>", re.escape(mb)).replace("<NM>", r"(\w+)")


# The slot in the gate before any hank-ai line: never matches, and has the specialised pattern's groups (so that
# the group numbers after it are the same in every gate).
_NO_SPEC = "(?!)" + "()" * re.compile(_hank_spec("1")).groups


# Keyword segments: (group name, handler, regex). Each regex starts with a literal character so that the regex
# engine rejects a line with one character comparison per keyword; values the hot handlers need are captured
# here (named groups), and the empty `(?P<k_...>)` group at the end tells the handler (Match.lastgroup).
_KEYWORDS: list[tuple[str, str, str]] = [
    ("nextmap", "nextmap", r"\(next mAP calculation at (?P<nm_at>\d{1,18}) iterations\) ?"
                           r"(?:\x1b\[H\x1b\[J\d+/(?P<nm_mb>\d{1,18}): )?"),
    # AlexeyAB repeats its last mAP every iteration ("mAP@0.5" in older versions): the value is captured so that a
    # log cut before the calculation still has it (an event only when it changes)
    ("lastacc", "lastacc", r"Last accuracy mAP@0\.50? = (?P<la_v>[^ \x1b\r\n%]*)[^\x1b\r\n]*"
                           r"(?:\x1b\[H\x1b\[J\d+/(?P<la_mb>\d{1,18}): )?"),
    ("mapline", "mapline", r"mean average precision \(mAP@0\.50\)"),
    ("mapline2", "mapline", r"mean_average_precision \(mAP@0\.50\)"),
    ("mapstart", "mapstart", r"calculation mAP"),
    ("mapstart2", "mapstart", r"Calculating mAP"),
    ("conf", "conf", r"for conf_thresh"),
    ("dets", "dets", r"detections_count"),
    ("classid", "classid", r"class_id = "),
    ("rank", "rank", r"rank ?= ?\d+ of ranks"),
    ("header", "header", r"Id Name "),
    ("saving", "saving", r"Saving weights to "),
    ("abdone", "abdone", r"If you want to train from the beginning"),
    ("maxbatch", "maxbatch", r"Training iteration has reached max batch"),
    ("prompt", "prompt", r'Type "yes" to begin training'),
    ("pjtable", "pjtable", r"layer     filters    size "),
    ("abtable", "abtable", r"layer   filters  size/strd"),
    ("hankbanner", "hankbanner", r"Darknet [Vv]\d"),
    ("loadw", "loadw", r"Loading weights from "),
    ("loadw2", "loadw", r"Done! Loaded \d+ layers"),
    ("loadw3", "loadw", r"Detection layer: ?\d+"),
    ("diag", "diag", ""),  # diagnose.TRIGGERS and TRIGGER_PATTERNS, one group each (below)
    # these start with a digit: last
    ("title", "title", r"\d+/(?P<t_mb>\d{1,18}): loss="),
    ("row", "row", r"\d+" + _C + r" +" + _C + r"\S"),
    ("hanklenient", "hanklenient", r"\d+" + _C + r": loss=" + _C + r"[^\x1b,\s]+" + _C + r", avg loss="),
    # a pjreddie/AlexeyAB iteration behind escapes, or re-spaced by a user's paste (tabs, doubled spaces)
    ("itesc", "itesc", r"\d+:[ \t]+[^,\s]+,[ \t]*[^,\s]+[ \t]+avg"),
]


def _keyword_alternation() -> tuple[str, dict[str, str]]:
    """The keyword regexes as one alternation, factored by first character, and {group name: handler}.

    Every line of a log is tried against the keywords, and most lines match none (layer tables, ``Region ..``,
    ``v3 (iou loss ..``, ``Loaded: ..``). Behind a one-character lookahead of all the first characters and with
    the alternatives grouped by their first character, such a line is rejected after one or two comparisons
    instead of one per keyword (~20% of the scan time of a pjreddie/AlexeyAB log). Same alternatives in the same
    order within a first character: the same matches as the plain alternation. The diagnosis triggers get one
    group each (``k_diag0``, ``k_diag1``, ..), all handled by `_on_diag`.
    """
    items: list[tuple[str, str, str]] = []  # (group name, handler, regex)
    for name, handler, rx in _KEYWORDS:
        if name == "diag":
            items += [(f"diag{i}", "diag", rx) for i, rx in
                      enumerate([*map(re.escape, TRIGGERS), *TRIGGER_PATTERNS])]
        else:
            items.append((name, handler, rx))
    groups: dict[str, list[str]] = {}
    handlers: dict[str, str] = {}
    for name, handler, rx in items:
        if rx.startswith("\\d"):
            first, rest = "\\d", rx  # \d+...: the lookahead's class, the alternative keeps its \d+
        elif rx.startswith("\\"):
            first, rest = rx[:2], rx[2:]
        else:
            first, rest = rx[0], rx[1:]
        if rest[:1] in ("*", "+", "?", "{") or first in ("(", "[", ".", "|", "^", "$"):
            first, rest = "", rx  # not a plain first character: refused below
        groups.setdefault(first, []).append(f"{rest}(?P<k_{name}>)")
        handlers["k_" + name] = handler
    if "" in groups:
        raise AssertionError("every keyword must start with a plain character or \\d")
    alts = [("" if first == "\\d" else first) + (v[0] if len(v) == 1 else "(?:" + "|".join(v) + ")")
            for first, v in groups.items()]
    lookahead = "(?=[" + "".join(f if f.startswith("\\") or f.isalnum() else "\\" + f for f in groups) + "])"
    return lookahead + "(?:" + "|".join(alts) + ")", handlers


_KW, _KW_HANDLERS = _keyword_alternation()
# Where a keyword may start: after blanks, or after escape sequences (colours, AlexeyAB's ESC[H ESC[J, hank-ai's
# window title), optionally behind hank-ai's "* " / "-> ". Written without repeated groups on the path every plain
# line takes (the regex engine enters a repeated group slowly): escapes are a separate branch behind a literal ESC.
_SEG_START = (r"[ \t\x07]*(?:\x1b(?:\[[0-9;?]*[A-Za-z]|\][^\x07\n]*(?:\x07|\x1b\\))" + _ESCANY + r"[ \t]*|)"
              r"(?:-> |\* |)")
# The newline gate: iteration lines (fields captured here: this is the hot path) or a keyword segment. Its
# unnamed groups, in this order: pjreddie/AlexeyAB, hank-ai specialised, hank-ai usual, hank-ai general; the keyword
# groups are all named. The group numbers of each part are computed from the patterns (below the gate).


def _gate_nl(spec: str) -> re.Pattern:
    return re.compile(r"\n(?:" + _IT_PJ_AB + "|" + spec + "|" + _IT_HANK_FAST + "|" + _IT_HANK + "|" + _SEG_START
                      + "(?:" + _KW + "))")


_GATE_NL = _gate_nl(_NO_SPEC)


def _span(start: int, pattern: str) -> tuple[int, ...]:
    """The gate's group numbers of `pattern`, whose first group is number `start`."""
    return tuple(range(start, start + re.compile(pattern).groups))


_G_PJAB = _span(1, _IT_PJ_AB)
_G_SPEC = _span(_G_PJAB[-1] + 1, _hank_spec("1"))
_G_FAST = _span(_G_SPEC[-1] + 1, _IT_HANK_FAST)
_G_HANK = _span(_G_FAST[-1] + 1, _IT_HANK)
_PJAB_PAD = (None,) * len(_G_PJAB)  # where a hank-ai row's fields start in a row shaped like the gate's groups
if re.compile(_NO_SPEC).groups != len(_G_SPEC) or _GATE_NL.groups != _G_HANK[-1] + len(_GATE_NL.groupindex):
    raise AssertionError("the gate's group numbering drifted from its patterns")
_GATES: dict[str, re.Pattern] = {}  # specialised gates by max_batches text
# The lone-\r gate (progress overwritten by an event on the same line); keywords only.
_GATE_CR = re.compile(r"\r(?!\n)" + _SEG_START + "(?:" + _KW + ")")
_RX_IT_PJ_AB = re.compile(_IT_PJ_AB)
# The same fields with any blanks between them: a line as a user's paste re-spaced it.
_RX_IT_LOOSE = re.compile(r"(\d{1,18}):\s+([^,\s]+),\s*([^,\s]+)\s+avg(?: loss)?,\s*([^,\s]+)\s+rate,\s*([^,\s]+)"
                          r"\s+seconds,\s*(\d{1,18})\s+images(?:,\s*([^,\s]+)\s+hours left)?")
# hank-ai's CPU build: 'Type "yes" to begin training, or anything else to quit:' (the whole sentence, so that a
# stray 'Type "yes"' glued to other output is not taken for it).
_RX_PROMPT = re.compile(r'Type "yes" to begin training[^:\r\n\x1b\x07]*:')
_HANK_LENIENT = re.compile(
    r"(\d{1,18}): loss=([^,\s]+), avg loss=([^,\s]+),.*?(?:mAP=(\w+))?.*?(?: rate=([^,\s]+))?.*?"
    r"(?: train=([^,\s]+) ?([a-z]*))?.*?(?:, (\d{1,18}) images)?(?:.*?time remaining=([^,\s]+) ?([a-z]*))?\s*$")

_NUM = r"(-?[\d.]+|[-+]?nan|[-+]?inf)"
_RX_LIMIT = re.compile(r"limit of (\d{1,18})")
_RX_LASTACC = re.compile(r"Last accuracy mAP@0\.50? = ([^ \r\n%]*)")
_RX_NEXTMAP = re.compile(r"next mAP calculation at (\d{1,18}) iterations")
_RX_TITLE = re.compile(r"(\d{1,18})/(\d{1,18}): loss=")
_RX_MAP = re.compile(r"mean[ _]average[ _]precision \(mAP@0\.50\)\s*=\s*" + _NUM + r"\s*(%?)")
_RX_PREC = re.compile(r"precision\s*=\s*" + _NUM + r",\s*recall\s*=\s*" + _NUM + r",\s*F1[- ]score\s*=\s*" + _NUM)
_RX_TPFP = re.compile(r"TP\s*=\s*(\d{1,18}),\s*FP\s*=\s*(\d{1,18}),\s*FN\s*=\s*(\d{1,18}),\s*average IoU\s*=\s*" + _NUM + r"\s*(%?)")
_RX_DETS = re.compile(r"detections_count\s*=\s*(\d{1,18}),\s*unique_truth_count\s*=\s*(\d{1,18})")
_RX_CLASSID = re.compile(r"class_id = (\d{1,18}), name = (.*?), ap = " + _NUM + r"\s*%(?:\s*\(TP = (\d{1,18}), FP = (\d{1,18})\))?")
_RX_ROW = re.compile(r"\s*(\d{1,18})\s+(.+?)\s+" + _NUM + r"\s+(\d{1,18})\s+(\d{1,18})\s+(\d{1,18})\s+(\d{1,18})\s+" + _NUM + r"\s+" + _NUM + r"\s*$")
# The file name stops at darknet's "..." (pjreddie prints "...Done!" on the same line, AlexeyAB "...Done! Loaded
# N layers from weights-file" on the same line or the next).
_RX_LOADED = re.compile(r"Loading weights from (.+?)\s*(?:\.{3}.*)?$|Done! Loaded (\d{1,18}) layers|Detection layer: ?(\d{1,18})")
_RX_LOADED_COUNT = re.compile(r"Loaded (\d{1,18}) layers")

_SECONDS = {"": 1.0, "ms": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3, "second": 1.0, "seconds": 1.0,
            "s": 1.0, "minute": 60.0, "minutes": 60.0, "hour": 3600.0, "hours": 3600.0, "day": 86400.0,
            "days": 86400.0}

_FEED_MAX = 4 << 20  # characters parsed in one scan (memory: the queued rows of a scan are ~0.5 KB a line)
_MAX_PENDING = 1 << 20  # a "line" longer than this (binary garbage, no newline) is parsed as it stands
_LONE_CR = re.compile(r"\r(?!\n)")
_BULK_MIN = 8  # fewer queued iteration rows than this go through the per-row path (a live chunk has one or two)
_tuple_new = tuple.__new__


def _convert(col: tuple, f: Callable, bad: set, none: object = None, offset: int = 0) -> list:
    """``list(map(f, col))``; where f fails (ValueError/KeyError, as the per-row path's strict conversion would),
    None goes in and the index (plus `offset`) into `bad`. With `none` given, a None in `col` (a field the line
    lacks) becomes `none`. A failing column is split in halves, so one bad row costs a few C passes, not a loop."""
    if none is None or None not in col:
        try:
            return list(map(f, col))
        except (ValueError, KeyError):
            pass
    if len(col) > 16:
        mid = len(col) // 2
        return _convert(col[:mid], f, bad, none, offset) + _convert(col[mid:], f, bad, none, offset + mid)
    out = []
    for k, x in enumerate(col, offset):
        if x is None and none is not None:
            out.append(none)
            continue
        try:
            out.append(f(x))
        except (ValueError, KeyError):
            out.append(None)
            bad.add(k)
    return out


def strip_escapes(text: str) -> str:
    """Remove ANSI/OSC escape sequences and control characters other than newline, ``\\r`` and tab."""
    return _ESC_RE.sub("", text)


def _num(s: Optional[str]) -> float:
    """darknet's number text -> float; ``-nan``/garbage -> NaN (never raises)."""
    if s is None:
        return NAN
    try:
        return float(s)
    except ValueError:
        return NAN


def _duration(value: Optional[str], unit: Optional[str]) -> float:
    scale = _SECONDS.get(unit or "", None)
    return NAN if scale is None else _num(value) * scale


@dataclass
class _MapBlock:
    """Fields of the mAP calculation being printed, merged into one MapResult."""

    fields: dict = field(default_factory=dict)
    emitted: bool = False  # the MapResult of this calculation went out (a second format merges, not repeats)
    iteration: Optional[int] = None  # ... at this training iteration (a new iteration means a new calculation)


class LogParser:
    """Streaming darknet output parser: `feed()` chunks, get events; `close()` at the end.

    Args:
        flavor: 'pjreddie', 'alexeyab' or 'hank-ai'; detected from the output when None.
        data_paths: the paths obj.data names, to diagnose a missing path that is one of them with its spaces
            stripped (``space-in-path``).
        iteration_sink: where iteration rows go column by column instead of becoming `Iteration` events
            (`History.iteration_sink()`; `parse_log` uses it); a resumed session then goes to its ``resumed``.

    Attributes:
        flavor: the flavor (None until something tells it).
        iteration: the last training iteration seen (None before any).
        max_batches, next_map_at, best_map50, finished: what the output said so far.
        bulk: turn queued iteration lines into events column by column (True, the default) or line by line
            (the reference path; both give the same events, which the tests check).
    """

    bulk: bool = True

    def __init__(self, flavor: Optional[str] = None, *, data_paths: Optional[Iterable[str]] = None,
                 iteration_sink: Optional["IterationSink"] = None) -> None:
        if flavor is not None and flavor not in FLAVORS:
            raise ValueError(f"unknown darknet flavor {flavor!r}; expected one of {', '.join(FLAVORS)}")
        self.flavor = flavor
        self.iteration: Optional[int] = None
        self.max_batches: Optional[int] = None
        self.next_map_at: Optional[int] = None
        self.best_map50 = NAN
        self.finished: Optional[str] = None
        self._buf = "\n"  # always starts with the newline that ended the previous line (the gate's anchor)
        self._decoder: Optional[codecs.IncrementalDecoder] = None
        self._map = _MapBlock()
        self._in_table = False
        self._nan_reported = False
        self._prompted = False
        self._diag = LineDiagnoser(data_paths)
        self._loaded_layers: Optional[int] = None
        self._weights_file: Optional[str] = None
        self._next_map_text: Optional[str] = None
        self._max_text: Optional[str] = None
        self._lastacc_text: Optional[str] = None  # the value text of the last "Last accuracy" line
        self._last_map50: Optional[float] = None  # the last mAP reported (a calculation or a "Last accuracy")
        # parse_log: the iterations go straight into the history's columns instead of events
        self._sink = iteration_sink
        self._hank_seen: Optional[str] = None  # the max_batches text of the last hank-ai line (window title)
        self._spec: Optional[str] = None  # ... that the gate of the current scan has as a literal
        self._handlers: dict[str, Callable[[str, list], None]] = {
            group: getattr(self, "_on_" + handler) for group, handler in _KW_HANDLERS.items()}

    # ------------------------------------------------------------------------------------------- public
    @property
    def diagnoser(self) -> LineDiagnoser:
        """The line rules this parser runs (its state: what was seen, a location waiting for its message)."""
        return self._diag

    def feed(self, text: Union[str, bytes]) -> list[Event]:
        """Parse a chunk; returns the events of the lines it completed (a partial last line waits)."""
        if isinstance(text, (bytes, bytearray)):
            if self._decoder is None:
                self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            text = self._decoder.decode(bytes(text))
        if not text:
            return []
        if len(text) > _FEED_MAX:  # one huge chunk: in slices, so that the queued rows and copies stay bounded
            events: list[Event] = []
            for i in range(0, len(text), _FEED_MAX):
                events += self._feed_text(text[i:i + _FEED_MAX])
            return events
        return self._feed_text(text)

    def _feed_text(self, text: str) -> list[Event]:
        buf = self._buf + text
        end = buf.rfind("\n")
        events: list[Event] = []
        if end <= 0:
            if len(buf) > _MAX_PENDING:
                self._buf = "\n"
                self._scan(buf + "\n", len(buf) + 1, events)
                return events
            self._buf = buf
            self._check_prompt(buf, events, partial=True)
            return events
        self._buf = buf[end:]
        self._scan(buf, end, events)
        if len(self._buf) > 1:
            self._check_prompt(self._buf, events, partial=True)
        return events

    def close(self) -> list[Event]:
        """Flush the last line even without its newline (a truncated log, a killed process)."""
        events: list[Event] = []
        tail = self._buf
        if self._decoder is not None:
            tail += self._decoder.decode(b"", final=True)
        self._buf = "\n"
        if len(tail) > 1:
            self._scan(tail + "\n", len(tail) + 1, events)
        return events

    # ------------------------------------------------------------------------------------------- scanning
    def _scan(self, buf: str, end: int, out: list) -> None:
        """Run the gates over buf[:end] (whole lines, buf[0] == '\\n') and append the events to `out`.

        Iteration lines (most of the matches) only queue their captured text here; `_flush` turns a queue into
        events in bulk, before any other event and at the end, so the events keep the order of the lines.
        """
        # A lone \r (not part of \r\n) is rare: one search finds the first, and the \r gate runs from there.
        cr = _Lazy(None)
        if "\r" in buf:
            first = _LONE_CR.search(buf, 0, end)
            if first is not None:
                cr = _Lazy(_GATE_CR.finditer(buf, first.start(), end))
        gate = self._gate()
        rows: list[tuple] = []  # captured text of the iteration lines not yet turned into events
        add_row = rows.append
        # A hank-ai row may be queued: its mAP= / window title change _next_map_text / _max_text only when it is
        # flushed, so those are stale until then and the cheap "no change, no flush" tests below must not trust
        # them (a pjreddie/AlexeyAB row changes neither). Set on a hank-ai row, cleared where a flush is decided.
        hank_q = False
        flush = self._flush
        handlers = self._handlers
        pjab, spec, fast, hank = _G_PJAB, _G_SPEC, _G_FAST, _G_HANK
        pos = 0
        while True:
            # The newline gate runs up to the end of the line of the next lone-\r match (a match never spans a
            # newline), then that \r match is handled: events in the order of their positions, with no check per
            # match.
            stop = end
            if cr:
                stop = buf.find("\n", cr[0].start(), end)
                if stop < 0:
                    stop = end
            while pos < stop:
                for m in gate.finditer(buf, pos, stop):
                    name = m.lastgroup  # keyword groups are named; the iteration groups are not
                    if name is None:  # an iteration line: the hot path
                        i = m.lastindex  # which part of the gate matched: see _G_PJAB, ..
                        if i <= pjab[-1]:
                            add_row(m.group(*pjab))
                        elif i <= spec[-1]:
                            add_row(m.group(*spec))
                            hank_q = True
                        elif i <= fast[-1]:
                            g = m.group(*fast)
                            add_row(g)
                            hank_q = True
                            if self.bulk:  # a hank-ai line the gate is not specialised to: specialise it from here
                                flush(rows, out)
                                self._hank_seen = g[0]
                                gate = self._gate()
                                pos = m.end()
                                break
                        else:
                            add_row(m.group(*hank))
                            hank_q = True
                    elif name == "k_nextmap":  # AlexeyAB prints this every iteration: keep it cheap
                        at = m.group("nm_at")
                        mb = m.group("nm_mb")
                        if rows and (hank_q or at != self._next_map_text or self.flavor is None
                                     or (mb is not None and mb != self._max_text)):
                            flush(rows, out)  # an event (or the flavor) follows the queued iterations
                            hank_q = False
                        if at != self._next_map_text:
                            self._next_map_text = at
                            self._set_next_map(int(at), out)
                        if mb is not None and mb != self._max_text:
                            self._max_text = mb
                            self._set_max_batches(int(mb), out)
                        if self.flavor is None:
                            self.flavor = "alexeyab"
                    elif name == "k_lastacc" or name == "k_title":
                        mb = m.group("la_mb" if name == "k_lastacc" else "t_mb")
                        if mb is not None:
                            if rows and (hank_q or mb != self._max_text):
                                flush(rows, out)  # queued rows first: they may change _max_text
                                hank_q = False
                            if mb != self._max_text:
                                self._max_text = mb
                                self._set_max_batches(int(mb), out)
                        if name == "k_lastacc" and m.group("la_v") != self._lastacc_text:
                            if rows:
                                flush(rows, out)
                                hank_q = False
                            self._last_accuracy(m.group("la_v"), out)
                    else:
                        if rows:
                            flush(rows, out)
                        handlers[name](buf[m.start() + 1:_segment_end(buf, m.end(), end)], out)
                else:
                    pos = stop  # the piece is done (not left for a new gate)
            if not cr:
                break
            if rows:
                flush(rows, out)
            self._drain_cr(cr, stop, buf, end, out)
        if rows:
            flush(rows, out)

    def _gate(self) -> re.Pattern:
        """The newline gate for this scan: specialised to the last hank-ai line's max_batches when there was one
        (bulk mode only: the per-row reference keeps the plain gate)."""
        seen = self._hank_seen
        self._spec = seen
        if seen is None or not self.bulk:
            self._spec = None
            return _GATE_NL
        gate = _GATES.get(seen)
        if gate is None:
            if len(_GATES) >= 64:
                _GATES.clear()
            gate = _GATES[seen] = _gate_nl(_hank_spec(seen))  # ~5 ms, once per max_batches
        return gate

    def _drain_cr(self, cr: "_Lazy", before: int, buf: str, end: int, out: list) -> int:
        """Handle the lone-\\r matches that start before `before`; returns the start of the next one."""
        while cr and cr[0].start() < before:
            m = cr.popleft()
            name = m.lastgroup
            if name in ("k_nextmap", "k_lastacc", "k_title"):
                seg = buf[m.start() + 1:_segment_end(buf, m.end(), end)]
                self._on_title(seg, out)
                if name == "k_lastacc" and m.group("la_v") != self._lastacc_text:
                    self._last_accuracy(m.group("la_v"), out)
            elif name is not None:
                self._handlers[name](buf[m.start() + 1:_segment_end(buf, m.end(), end)], out)
        return cr[0].start() if cr else end + 1

    # ------------------------------------------------------------------------------------------- iterations
    def _flush(self, rows: list[tuple], out: list) -> None:
        """Turn the queued iteration rows into events (in bulk when there are enough of them); empties `rows`.

        The bulk path converts column by column in C (``map(float, column)``) and builds the `Iteration` tuples
        with ``tuple.__new__`` (or, for `parse_log`, hands the columns to the history without any tuple); it
        gives exactly the events of the per-row path (`_row_pjab` / `_row_hank`, the reference), which is also
        taken for a short queue, for a row with a field that does not convert strictly (hank-ai's first
        ``time remaining=unknown``, garbage), and when `bulk` is off.
        """
        if len(rows) < _BULK_MIN or not self.bulk:
            self._rows(rows, out)
        else:
            widths = set(map(len, rows))  # 7: pjreddie/AlexeyAB, 11: hank-ai, 10: hank-ai, specialised gate
            if len(widths) > 1:  # more than one format in a queue: one run at a time, in order
                for _, run in groupby(rows, key=len):
                    self._flush(list(run), out)
            elif 7 in widths:
                self._bulk_pjab(rows, out)
            else:
                self._bulk_hank(rows, out)
        rows.clear()

    def _rows(self, rows: list[tuple], out: list) -> None:
        for g in rows:
            if len(g) == 7:
                self._row_pjab(g, out)
            else:
                self._row_hank(self._hank_row(g), out)

    def _hank_row(self, g: tuple) -> tuple:
        """A hank-ai row with all 11 fields (a row of the specialised gate lacks max_batches, its literal)."""
        return g if len(g) == 11 else (self._spec,) + g

    def _bulk_pjab(self, rows: list[tuple], out: list) -> None:
        n = len(rows)
        cols = list(zip(*rows))
        bad: set[int] = set()  # rows that do not convert strictly: the per-row path takes them
        hl = cols[6]
        if None in hl:
            hours = [NAN] * n if hl.count(None) == n else _convert(hl, float, bad, NAN)
        else:
            hours = _convert(hl, float, bad)
        data = (_convert(cols[0], int, bad), _convert(cols[1], float, bad), _convert(cols[2], float, bad),
                _convert(cols[3], float, bad), _convert(cols[4], float, bad), _convert(cols[5], int, bad), hours)
        a = 0
        for k in (*sorted(bad), n) if bad else (n,):
            if k > a:
                self._emit(data, a, k, out)
                if self.flavor is None:
                    self.flavor = "pjreddie" if hl[a] is None else "alexeyab"
            if k < n:
                self._row_pjab(rows[k], out)
            a = k + 1

    def _bulk_hank(self, rows: list[tuple], out: list) -> None:
        n = len(rows)
        if len(rows[0]) == 10:  # through the specialised gate: max_batches is its literal
            itc, lo, av, nm, ra, tv, tu, im, rv, ru = zip(*rows)
            mb = (self._spec,) * n
        else:
            mb, itc, lo, av, nm, ra, tv, tu, im, rv, ru = zip(*rows)
        bad: set[int] = set()  # rows that do not convert strictly: the per-row path takes them
        sec_of = _SECONDS.__getitem__
        it = _convert(itc, int, bad)
        loss = _convert(lo, float, bad)
        avg = _convert(av, float, bad)
        rate = _convert(ra, float, bad)
        img = _convert(im, int, bad)
        failed: set[int] = set()  # of these two columns (None in them)
        tvf = _convert(tv, float, failed)
        tus = _convert(tu, sec_of, failed)
        sec = list(map(mul, tvf, tus)) if not failed else [
            v * u if v is not None and u is not None else None for v, u in zip(tvf, tus)]
        bad |= failed
        if None in rv:  # lines without "time remaining"
            rem = []
            for k, v, u in zip(count(), rv, ru):
                if v is None:
                    rem.append(NAN)
                else:
                    try:
                        rem.append(float(v) * _SECONDS[u] / 3600.0)
                    except (ValueError, KeyError):
                        rem.append(None)
                        bad.add(k)
        else:
            failed = set()
            rvf = _convert(rv, float, failed)  # e.g. hank-ai's first "time remaining=unknown"
            rus = _convert(ru, sec_of, failed)
            rem = list(map(truediv, map(mul, rvf, rus), repeat(3600.0, n))) if not failed else [
                v * u / 3600.0 if v is not None and u is not None else None for v, u in zip(rvf, rus)]
            bad |= failed
        data = (it, loss, avg, rate, sec, img, rem)
        a = 0
        for k in (*sorted(bad), n) if bad else (n,):
            if k > a:
                self._emit_hank(data, mb, nm, a, k, out)
            if k < n:
                self._row_hank(self._hank_row(rows[k]), out)
            a = k + 1

    def _emit_hank(self, data: tuple, mb: tuple, nm: tuple, a: int, b: int, out: list) -> None:
        # max_batches (window title) and the next mAP iteration change rarely: events only where they do, before
        # the iteration of the line that changed them
        mbs = set(mb[a:b])
        mbs.discard(None)
        mbs.discard(self._max_text)
        if not mbs and not any(x != self._next_map_text and x.isdigit() for x in set(nm[a:b])):
            self._emit(data, a, b, out)
        else:
            for (m, k), run in groupby(zip(mb[a:b], nm[a:b])):
                end = a + len(list(run))
                if m is not None and m != self._max_text:
                    self._max_text = m
                    self._set_max_batches(int(m), out)
                if k != self._next_map_text and k.isdigit():
                    self._next_map_text = k
                    self._set_next_map(int(k), out)
                self._emit(data, a, end, out)
                a = end
        if self.flavor is None:
            self.flavor = "hank-ai"

    def _emit(self, data: tuple, a: int, b: int, out: list) -> None:
        """Rows a..b-1 of the converted columns `data` as iterations; `Resumed` where the iterations go back (a
        later session of the same log), checked in C (one ``map(ge, ..)`` pass) before any row is looked at."""
        its = data[0]
        last = self.iteration
        if (last is None or its[a] > last) and (b - a < 2 or not any(map(ge, islice(its, a, b - 1),
                                                                           islice(its, a + 1, b)))):
            self._emit_run(data, a, b, out)
            return
        k = a
        while k < b:
            if self.iteration is not None and its[k] <= self.iteration:
                self._resumed(its[k], out)
            j = next((i for i in range(k + 1, b) if its[i] <= its[i - 1]), b)
            self._emit_run(data, k, j, out)
            k = j

    def _resumed(self, iteration: int, out: list) -> None:
        if self._sink is not None:
            self._sink.resumed(iteration, out)  # the events so far go in first, then the later rows are dropped
        else:
            out.append(Resumed(iteration))

    def _emit_run(self, data: tuple, a: int, b: int, out: list) -> None:
        """Rows a..b-1 of the converted columns `data` as iterations, the nan-loss problem after the first NaN."""
        cols = data if a == 0 and b == len(data[0]) else tuple(c[a:b] for c in data)
        nan_at = -1
        if not self._nan_reported:
            loss, avg = cols[1], cols[2]
            total = sum(loss) + sum(avg)  # NaN iff a NaN is in there (or inf - inf: then the loop finds none)
            if total != total:
                nan_at = next((i for i, x, y in zip(count(), loss, avg) if x != x or y != y), -1)
        sink = self._sink
        if sink is not None:  # parse_log: the columns go straight into the history
            sink.extend(cols)
        if nan_at >= 0:
            it = _tuple_new(Iteration, tuple(c[nan_at] for c in cols))
            if sink is None:
                objs = list(map(_tuple_new, repeat(Iteration, b - a), zip(*cols)))
                out += objs[:nan_at + 1]
                self._nan(it, out)
                out += objs[nan_at + 1:]
            else:
                self._nan(it, out)
        elif sink is None:
            out += map(_tuple_new, repeat(Iteration, b - a), zip(*cols))
        self.iteration = cols[0][-1]

    def _row_pjab(self, g: tuple, out: list) -> None:
        """One pjreddie/AlexeyAB iteration line (groups 1-7 of the gate)."""
        try:
            it = Iteration(int(g[0]), float(g[1]), float(g[2]), float(g[3]), float(g[4]), int(g[5]),
                           NAN if g[6] is None else float(g[6]))
        except ValueError:
            it = Iteration(int(g[0]), _num(g[1]), _num(g[2]), _num(g[3]), _num(g[4]), _num(g[5]), _num(g[6]))
        self._iteration(it, out)
        if self.flavor is None:
            self.flavor = "pjreddie" if g[6] is None else "alexeyab"

    def _row_hank(self, h: tuple, out: list) -> None:
        """One hank-ai iteration line (groups 8-18 or 19-29 of the gate)."""
        try:
            it = Iteration(int(h[1]), float(h[2]), float(h[3]), float(h[5]), float(h[6]) * _SECONDS[h[7]],
                           int(h[8]), NAN if h[9] is None else float(h[9]) * _SECONDS[h[10]] / 3600.0)
        except (ValueError, KeyError):
            self._hank_iteration(_PJAB_PAD + h, out)
            return
        if h[0] is not None and h[0] != self._max_text:
            self._max_text = h[0]
            self._set_max_batches(int(h[0]), out)
        if h[4] != self._next_map_text and h[4].isdigit():
            self._next_map_text = h[4]
            self._set_next_map(int(h[4]), out)
        self._iteration(it, out)
        if self.flavor is None:
            self.flavor = "hank-ai"

    def _nan(self, it: Iteration, out: list) -> None:
        if not self._nan_reported:
            self._nan_reported = True
            out.append(ProblemFound(_problems.nan_loss(it.iteration, f"{it.iteration}: loss={it.loss}, "
                                                                      f"avg loss={it.avg_loss}")))

    def _iteration(self, it: Iteration, out: list) -> None:
        if self.iteration is not None and it.iteration <= self.iteration:
            self._resumed(it.iteration, out)
        self.iteration = it.iteration
        if self._sink is None:
            out.append(it)
        else:
            self._sink.extend([[value] for value in it])
        if it.loss != it.loss or it.avg_loss != it.avg_loss:
            self._nan(it, out)

    def _hank_iteration(self, g: tuple, out: list) -> None:
        b = len(_PJAB_PAD)  # a hank-ai row padded like the gate's groups: pjreddie/AlexeyAB's first
        if g[b] is not None and g[b] != self._max_text:
            self._max_text = g[b]
            self._set_max_batches(int(g[b]), out)
        try:
            it = Iteration(int(g[b + 1]), float(g[b + 2]), float(g[b + 3]), float(g[b + 5]),
                           float(g[b + 6]) * _SECONDS[g[b + 7]], int(g[b + 8]),
                           NAN if g[b + 9] is None else float(g[b + 9]) * _SECONDS[g[b + 10]] / 3600.0)
        except (ValueError, KeyError, TypeError):
            it = Iteration(int(g[b + 1]), _num(g[b + 2]), _num(g[b + 3]), _num(g[b + 5]),
                           _duration(g[b + 6], g[b + 7]), _num(g[b + 8]), _duration(g[b + 9], g[b + 10]) / 3600.0)
        nm = g[b + 4]
        if nm != self._next_map_text and nm.isdigit():
            self._next_map_text = nm
            self._set_next_map(int(nm), out)
        if self.flavor is None:
            self.flavor = "hank-ai"
        self._iteration(it, out)

    def _set_max_batches(self, n: int, out: list) -> None:
        if n != self.max_batches:
            self.max_batches = n
            out.append(MaxBatches(n))

    def _set_next_map(self, n: int, out: list) -> None:
        if n != self.next_map_at:
            self.next_map_at = n
            out.append(NextMapAt(n))

    def _check_prompt(self, tail: str, out: list, *, partial: bool = False) -> None:
        # A prompt has no newline until it is answered: look at the partial line itself.
        if not self._prompted and 'Type "yes"' in tail:
            text = strip_escapes(tail)
            m = _RX_PROMPT.search(text)
            # From a partial line only when the prompt starts it (as darknet prints it): anything before it on
            # the same line would give its events only once the line ends, and the order of events must not
            # depend on how the bytes were split. Otherwise the event comes with the whole line.
            if m and partial and text[:m.start()].strip(" \t\r\n"):
                return
            if m:  # report it once its colon arrived (the same text however the bytes were split)
                self._prompted = True
                out.append(Prompt(m.group(0)))

    def _finish(self, reason: str, out: list) -> None:
        if self.finished is None:
            self.finished = reason
            self._diag.finished = True
            out.append(Finished(reason, self.iteration))
            if self.iteration is None and self._weights_file is not None:
                self._emit_problem(_problems.already_trained(self._weights_file), out)

    # ------------------------------------------------------------------------------------------- handlers
    def _on_nextmap(self, seg: str, out: list) -> None:
        m = _RX_NEXTMAP.search(seg)
        if m:
            self._set_next_map(int(m.group(1)), out)
        self._on_title(seg, out)
        if self.flavor is None:
            self.flavor = "alexeyab"

    def _on_title(self, seg: str, out: list) -> None:
        m = _RX_TITLE.search(seg)
        if m:
            self._set_max_batches(int(m.group(2)), out)

    def _on_lastacc(self, seg: str, out: list) -> None:
        self._on_title(seg, out)
        m = _RX_LASTACC.search(strip_escapes(seg))
        if m and m.group(1) != self._lastacc_text:
            self._last_accuracy(m.group(1), out)

    def _last_accuracy(self, text: str, out: list) -> None:
        """AlexeyAB's ``Last accuracy mAP@0.50 = X %``: a `MapResult` unless it is the calculation already reported
        (to its two printed decimals): a log cut before the calculation (a user's paste) still has its mAP."""
        self._lastacc_text = text
        value = _num(text) / 100.0
        last = self._last_map50
        if value != value or (last is not None and abs(last - value) < 0.00006):
            return
        self._last_map50 = value
        if not (self.best_map50 >= value):
            self.best_map50 = value
        out.append(MapResult(self.iteration, value, self.best_map50))

    def _on_itesc(self, seg: str, out: list) -> None:
        m = _RX_IT_LOOSE.search(strip_escapes(seg))
        if m:
            g = m.groups()
            self._iteration(Iteration(int(g[0]), _num(g[1]), _num(g[2]), _num(g[3]), _num(g[4]), _num(g[5]),
                                      _num(g[6])), out)
            self.flavor = self.flavor or ("pjreddie" if g[6] is None else "alexeyab")

    def _on_hanklenient(self, seg: str, out: list) -> None:
        # a hank-ai iteration line that the strict pattern did not take (another version's fields)
        m = _HANK_LENIENT.match(strip_escapes(seg).strip())
        if not m:
            return
        g = _PJAB_PAD + (None,) + m.groups()[:3] + (m.group(4) or "",) + m.groups()[4:]
        self._hank_iteration(g, out)

    def _on_mapstart(self, seg: str, out: list) -> None:
        self._map = _MapBlock()

    def _on_mapline(self, seg: str, out: list) -> None:
        m = _RX_MAP.search(strip_escapes(seg))
        if not m:
            return
        value = _num(m.group(1))
        if m.group(2):
            value /= 100.0
        block = self._map
        if block.emitted and block.iteration == self.iteration:  # AlexeyAB's second format of the same calculation
            return
        self._in_table = False
        self._last_map50 = value
        if not (self.best_map50 >= value):  # NaN-safe running best, like darknet's own "best"
            self.best_map50 = value
        f = block.fields
        out.append(MapResult(self.iteration, value, self.best_map50, f.get("precision", NAN), f.get("recall", NAN),
                             f.get("f1", NAN), f.get("avg_iou", NAN), f.get("tp", NAN), f.get("fp", NAN),
                             f.get("fn", NAN), f.get("detections", NAN), f.get("unique_truth", NAN)))
        self._map = _MapBlock(emitted=True, iteration=self.iteration)

    def _on_conf(self, seg: str, out: list) -> None:
        seg = strip_escapes(seg)
        f = self._map.fields
        m = _RX_PREC.search(seg)
        if m:
            f["precision"], f["recall"], f["f1"] = _num(m.group(1)), _num(m.group(2)), _num(m.group(3))
            return
        m = _RX_TPFP.search(seg)
        if m:
            f["tp"], f["fp"], f["fn"] = float(m.group(1)), float(m.group(2)), float(m.group(3))
            iou = _num(m.group(4))
            f["avg_iou"] = iou / 100.0 if m.group(5) else iou
        self._in_table = False

    def _on_dets(self, seg: str, out: list) -> None:
        m = _RX_DETS.search(seg)
        if m:
            self._map.fields["detections"] = float(m.group(1))
            self._map.fields["unique_truth"] = float(m.group(2))

    def _on_classid(self, seg: str, out: list) -> None:
        m = _RX_CLASSID.search(seg)
        if m:
            out.append(ClassAP(self.iteration, int(m.group(1)), m.group(2), _num(m.group(3)) / 100.0,
                               _num(m.group(4)), _num(m.group(5))))

    def _on_rank(self, seg: str, out: list) -> None:
        # "rank = N of ranks = M class_id = ..": the class line glued on without a \r (else the \r gate has it).
        i = seg.find("class_id = ")
        if i >= 0 and "\r" not in seg[:i]:
            self._on_classid(seg[i:], out)

    def _on_header(self, seg: str, out: list) -> None:
        self._in_table = "AP" in seg

    def _on_row(self, seg: str, out: list) -> None:
        if not self._in_table:
            return
        m = _RX_ROW.match(strip_escapes(seg))
        if m:  # hank-ai prints AP in percent, F1 and AvgIoU as they come
            out.append(ClassAP(self.iteration, int(m.group(1)), m.group(2), _num(m.group(3)) / 100.0,
                               float(m.group(4)), float(m.group(5)), float(m.group(6)), float(m.group(7)),
                               _num(m.group(8)), _num(m.group(9))))

    def _on_saving(self, seg: str, out: list) -> None:
        path = strip_escapes(seg).split("Saving weights to ", 1)[-1].strip()
        if not path:
            return
        out.append(WeightsSaved(self.iteration, path))
        if path.endswith("_final.weights"):
            self._finish("final weights saved", out)

    def _on_abdone(self, seg: str, out: list) -> None:
        self._finish("reached max_batches", out)
        if self.flavor is None:
            self.flavor = "alexeyab"

    def _on_maxbatch(self, seg: str, out: list) -> None:
        m = _RX_LIMIT.search(strip_escapes(seg))
        if m:
            self._set_max_batches(int(m.group(1)), out)
        self._finish("reached max_batches", out)

    def _on_prompt(self, seg: str, out: list) -> None:
        if self.flavor is None:
            self.flavor = "hank-ai"
        self._check_prompt(seg, out)
        self._prompted = False  # answered (the line ended): a later prompt is a new one
        self._diag_segment(seg, out)  # pipes glue the fatal banner onto the prompt line

    def _on_pjtable(self, seg: str, out: list) -> None:
        self.flavor = self.flavor or "pjreddie"

    def _on_abtable(self, seg: str, out: list) -> None:
        self.flavor = self.flavor or "alexeyab"

    def _on_hankbanner(self, seg: str, out: list) -> None:
        self.flavor = self.flavor or "hank-ai"

    def _on_loadw(self, seg: str, out: list) -> None:
        # AlexeyAB loads a truncated weights file silently ("Loaded 2 layers"); the detection layers printed next
        # tell how deep the network is.
        m = _RX_LOADED.search(seg.strip())
        if not m:
            return
        if m.group(1) is not None:
            count = _RX_LOADED_COUNT.search(seg)
            path = m.group(1).strip().strip('"')
            self._weights_file, self._loaded_layers = path, int(count.group(1)) if count else None
            self._diag.weights = path
        elif m.group(2) is not None:
            self._loaded_layers = int(m.group(2))
        elif self._loaded_layers is not None and self._loaded_layers <= int(m.group(3)):
            p = _problems.truncated_weights_loaded(self._weights_file, self._loaded_layers, int(m.group(3)))
            self._loaded_layers = None
            if p is not None:
                self._emit_problem(p, out)

    def _on_diag(self, seg: str, out: list) -> None:
        self._diag_segment(seg, out)

    def _diag_segment(self, seg: str, out: list) -> None:
        text = strip_escapes(seg).strip()
        if text.startswith(("* ", "-> ")):  # hank-ai's banner and report prefixes
            text = text.split(" ", 1)[1].lstrip()
        p = self._diag.line(text, self.iteration)
        if p is not None:
            self._emit_problem(p, out)

    def _emit_problem(self, p: Problem, out: list) -> None:
        if self._diag.first_time(p):
            out.append(ProblemFound(p))


class _Lazy:
    """The lone-\r gate's matches, taken one at a time (a list of them all would hold one Match object per \r of
    the buffer: hundreds of MB for a few MB of progress output). Reads like the deque it replaces."""

    __slots__ = ("_it", "_head")

    def __init__(self, it: Optional[Iterable[re.Match]]) -> None:
        self._it = iter(it) if it is not None else iter(())
        self._head = next(self._it, None)

    def __bool__(self) -> bool:
        return self._head is not None

    def __getitem__(self, i: int) -> re.Match:
        if i != 0 or self._head is None:
            raise IndexError(i)
        return self._head

    def popleft(self) -> re.Match:
        m = self._head
        if m is None:
            raise IndexError("empty")
        self._head = next(self._it, None)
        return m


def _segment_end(buf: str, start: int, end: int) -> int:
    """End of the segment that starts before `start`: the next \n or lone \r (a \r\n ends at the \r).

    Looks for the \r first and for a \n only before it, so that each search stops at the next separator: a
    buffer of \r-separated progress with no newline costs linear time, not a scan to its end per segment.
    """
    cr = buf.find("\r", start, end)
    if cr < 0:
        nl = buf.find("\n", start, end)
        return nl if nl >= 0 else end
    nl = buf.find("\n", start, cr)
    if nl >= 0:
        return nl
    while cr + 1 < end and buf[cr + 1] == "\r":  # \r\r..: the segment ends at the last one
        cr += 1
    return cr
