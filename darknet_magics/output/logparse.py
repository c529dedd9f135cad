"""Darknet output -> typed events, for the three flavors (pjreddie, AlexeyAB, hank-ai). Pure: no IPython.

Two entry points:

* `LogParser().feed(chunk) -> list[Event]` for a live run: chunks of any size, as a pty delivers them
  (lines split across reads, ``\\r`` progress, ANSI/OSC escapes, bells, ``-nan``, undecodable bytes);
  `close()` flushes a truncated last line.
* `logs.read_log(source)` for a whole log (a path, the text, or an iterable of chunks), and `logs.parse_log`,
  its dataframes: above this module and the history, so they are not re-exported here.

Modules, one job each (no import cycle): `events` (the event types) at the bottom; `problems` (one factory per
problem code) and `diagnose` (the line rules) above it; `patterns` (the compiled regexes, the keyword alternation,
the gates) and `values` (number text -> numbers, a row or whole columns); this parser above those; `history`
(events -> frames) beside it, importing only `events`; `logs` (the whole-log reader) and `judge` (the whole output
plus the exit status) on top.

Sessions: a log that holds several runs (a resumed run appended to its log) has iterations that go back; the
parser emits `Resumed(k)` there, and the history drops the earlier rows from k on, as `History.extend` does for the
live object.

Memory: a scan covers at most 4 MiB of text (`_FEED_MAX`), matches after a lone ``\\r`` are taken lazily: a whole
log's peak is the rows it gives plus a few scans' worth, whatever the input.

Speed (1.3-2 million lines a second on one busy core for pjreddie/AlexeyAB logs, pty captures and plain ``tee``'d
text alike, at or above a hand-written one-regex-per-line parser that extracts far less; hank-ai's 200-byte,
all-iteration, ANSI-coloured lines ~0.8x that parser; see ``benchmarks/bench_parser.py``): the gates of `patterns`
skip every line that is no event inside the regex engine. Iteration lines, most of the matches, are queued as
captured text and converted in bulk, column by column (`values.pjab_columns` / `values.hank_columns`), when another
event comes or the buffer ends (`LogParser._flush`); `Iteration` is a named tuple built with ``tuple.__new__``.
`read_log` goes further: the columns go straight into the history, no event object per iteration. The per-row
path (``LogParser.bulk = False``) is the reference: the tests check that both give the same events and frames on
every real log and on fuzzed input.

Events are read from the start of a segment (text between ``\\n`` / ``\\r`` separators); the few events that follow
an escape on the same segment (AlexeyAB's ``N/M: loss=..`` title after ``(next mAP calculation ...)``) are read by
that keyword's handler.
"""
from __future__ import annotations

import codecs
import math
import re
from dataclasses import dataclass, field
from operator import itemgetter
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Optional, Union

from . import problems as _problems
from .diagnose import LineDiagnoser
from ..errors import Problem
from .patterns import (G_FAST, G_HANK, G_HANK_PLAIN, G_PJAB, G_SPEC, GATE_CR, GATE_NL, HANK_LENIENT, KW_HANDLERS,
                       LONE_CR, RX_CLASSID, RX_DETS, RX_IT_LOOSE, RX_LIMIT, RX_LOADED, RX_LOADED_COUNT, RX_MAP, RX_PREC,
                       RX_PROMPT, RX_ROW, RX_TITLE, RX_TPFP, gate_for, segment_end, strip_escapes)
from .rows import IterationRows
from .values import num
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
_FEED_MAX = 4 << 20  # characters parsed in one scan (memory: the queued rows of a scan are ~0.5 KB a line)
_MAX_PENDING = 1 << 20  # a "line" longer than this (binary garbage, no newline) is parsed as it stands
# Keywords the scan handles inline (the hot ones: AlexeyAB prints them every iteration), with no handler method.
_INLINE = frozenset({"nextmap", "lastacc", "title"})
_GET_PLAIN, _GET_PJAB, _GET_SPEC, _GET_FAST, _GET_HANK = (itemgetter(*g) for g in (G_HANK_PLAIN, G_PJAB, G_SPEC, G_FAST,
                                                                                 G_HANK))


@dataclass
class _MapBlock:
    """Fields of the mAP calculation being printed, merged into one MapResult."""

    fields: dict = field(default_factory=dict)
    emitted: bool = False  # the MapResult of this calculation went out (a second format merges, not repeats)
    iteration: Optional[int] = None  # ... at this training iteration (a new iteration means a new calculation)


class LogParser(IterationRows):
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
            (the reference path; both give the same events, which the tests check). See `rows.IterationRows`.
    """

    def __init__(self, flavor: Optional[str] = None, *, data_paths: Optional[Iterable[str]] = None,
                 iteration_sink: Optional["IterationSink"] = None) -> None:
        if flavor is not None and flavor not in FLAVORS:
            raise ValueError(f"unknown darknet flavor {flavor!r}; expected one of {', '.join(FLAVORS)}")
        super().__init__(flavor, iteration_sink)
        self.best_map50 = NAN
        self.finished: Optional[str] = None
        self._buf = "\n"  # always starts with the newline that ended the previous line (the gate's anchor)
        self._decoder: Optional[codecs.IncrementalDecoder] = None
        self._map = _MapBlock()
        self._in_table = False
        self._prompted = False
        self._diag = LineDiagnoser(data_paths)
        self._loaded_layers: Optional[int] = None
        self._weights_file: Optional[str] = None
        self._lastacc_text: Optional[str] = None  # the value text of the last "Last accuracy" line
        self._last_map50: Optional[float] = None  # the last mAP reported (a calculation or a "Last accuracy")
        self._hank_seen: Optional[str] = None  # the max_batches text of the last hank-ai line (window title)
        self._handlers: dict[str, Callable[[str, list], None]] = {
            group: getattr(self, "_on_" + handler) for group, handler in KW_HANDLERS.items()
            if handler not in _INLINE}

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

        One long loop on purpose: it runs once per gate match (a million a second), and the inline branches with
        their local names are what keeps it at the speed of a one-regex-per-line parser; a method call per match
        costs ~10%. The cold keywords go to their `_on_*` handler.
        """
        # A lone \r (not part of \r\n) is rare: one search finds the first, and the \r gate runs from there. Its
        # matches are taken one at a time (a list of them all would hold one Match object per \r of the buffer:
        # hundreds of MB for a few MB of progress output).
        cr_rest: Iterator[re.Match] = iter(())
        cr: Optional[re.Match] = None
        if "\r" in buf:
            first = LONE_CR.search(buf, 0, end)
            if first is not None:
                cr_rest = GATE_CR.finditer(buf, first.start(), end)
                cr = next(cr_rest, None)
        gate = self._gate()
        rows: list[tuple] = []  # captured text of the iteration lines not yet turned into events
        add_row = rows.append
        # A hank-ai row may be queued: its mAP= / window title change _next_map_text / _max_text only when it is
        # flushed, so those are stale until then and the cheap "no change, no flush" tests below must not trust
        # them (a pjreddie/AlexeyAB row changes neither). Set on a hank-ai row, cleared where a flush is decided.
        hank_q = False
        flush = self._flush
        handlers = self._handlers
        # which part of the gate matched (m.lastindex <= the part's last group), and its fields as one tuple
        # (an itemgetter: cheaper than m.group(*groups))
        plain_end, pjab_end, spec_end, fast_end, hank_end = (G_HANK_PLAIN[-1], G_PJAB[-1], G_SPEC[-1], G_FAST[-1],
                                                             G_HANK[-1])
        get_plain, get_pjab, get_spec, get_fast, get_hank = _GET_PLAIN, _GET_PJAB, _GET_SPEC, _GET_FAST, _GET_HANK
        # a row of 10 fields is a specialised gate's, whose max_batches is `_spec`: with none (no window title
        # seen), a hank-ai line without its title is one as it stands, not (None,) + 10 fields
        plain_as_spec = self._spec is None
        pos = 0
        while True:
            # The newline gate runs up to the end of the line of the next lone-\r match (a match never spans a
            # newline), then that \r match is handled: events in the order of their positions, with no check per
            # match.
            stop = end
            if cr is not None:
                stop = buf.find("\n", cr.start(), end)
                if stop < 0:
                    stop = end
            while pos < stop:
                for m in gate.finditer(buf, pos, stop):
                    # which part of the gate matched: the iteration groups (unnamed) come first, see G_PJAB, ..;
                    # every group after them is a keyword's (named): no m.lastgroup on the hot path
                    i = m.lastindex
                    if i <= hank_end:  # an iteration line: the hot path
                        if i <= plain_end:  # no window title, no max_batches
                            add_row(get_plain(m) if plain_as_spec else (None,) + get_plain(m))
                            hank_q = True
                        elif i <= pjab_end:
                            add_row(get_pjab(m))
                        elif i <= spec_end:
                            add_row(get_spec(m))
                            hank_q = True
                        elif i <= fast_end:
                            g = get_fast(m)
                            add_row(g)
                            hank_q = True
                            if self.bulk:  # a hank-ai line the gate is not specialised to: specialise it from here
                                flush(rows, out)
                                self._hank_seen = g[0]
                                gate = self._gate()
                                plain_as_spec = self._spec is None
                                pos = m.end()
                                break
                        else:
                            add_row(get_hank(m))
                            hank_q = True
                    elif (name := m.lastgroup) == "k_nextmap":  # AlexeyAB prints this every iteration: cheap
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
                    elif name != "k_row" or self._in_table:  # a layer table's row: no event, not even a flush
                        if rows:
                            flush(rows, out)
                        handlers[name](buf[m.start() + 1:segment_end(buf, m.end(), end)], out)
                else:
                    pos = stop  # the piece is done (not left for a new gate)
            if cr is None:
                break
            if rows:
                flush(rows, out)
            cr = self._drain_cr(cr, cr_rest, stop, buf, end, out)
        if rows:
            flush(rows, out)

    def _gate(self) -> re.Pattern:
        """The newline gate for this scan: specialised to the last hank-ai line's max_batches when there was one
        (bulk mode only: the per-row reference keeps the plain gate)."""
        seen = self._hank_seen
        self._spec = seen
        if seen is None or not self.bulk:
            self._spec = None
            return GATE_NL
        return gate_for(seen)

    def _drain_cr(self, m: Optional[re.Match], rest: Iterator[re.Match], before: int, buf: str, end: int,
                  out: list) -> Optional[re.Match]:
        """Handle the lone-\\r match `m` and those after it in `rest` that start before `before`; returns the
        next one (None: no more)."""
        while m is not None and m.start() < before:
            name = m.lastgroup
            if name in ("k_nextmap", "k_lastacc", "k_title"):
                seg = buf[m.start() + 1:segment_end(buf, m.end(), end)]
                self._on_title(seg, out)
                if name == "k_lastacc" and m.group("la_v") != self._lastacc_text:
                    self._last_accuracy(m.group("la_v"), out)
            elif name is not None:
                self._handlers[name](buf[m.start() + 1:segment_end(buf, m.end(), end)], out)
            m = next(rest, None)
        return m

    def _check_prompt(self, tail: str, out: list, *, partial: bool = False) -> None:
        # A prompt has no newline until it is answered: look at the partial line itself.
        if not self._prompted and 'Type "yes"' in tail:
            text = strip_escapes(tail)
            m = RX_PROMPT.search(text)
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
    def _on_title(self, seg: str, out: list) -> None:
        m = RX_TITLE.search(seg)
        if m:
            self._set_max_batches(int(m.group(2)), out)

    def _last_accuracy(self, text: str, out: list) -> None:
        """AlexeyAB's ``Last accuracy mAP@0.50 = X %``: a `MapResult` unless it is the calculation already reported
        (to its two printed decimals): a log cut before the calculation (a user's paste) still has its mAP."""
        self._lastacc_text = text
        value = num(text) / 100.0
        last = self._last_map50
        if value != value or (last is not None and abs(last - value) < 0.00006):
            return
        self._last_map50 = value
        if not (self.best_map50 >= value):
            self.best_map50 = value
        out.append(MapResult(self.iteration, value, self.best_map50))

    def _on_itesc(self, seg: str, out: list) -> None:
        m = RX_IT_LOOSE.search(strip_escapes(seg))
        if m:
            g = m.groups()
            self._iteration(Iteration(int(g[0]), num(g[1]), num(g[2]), num(g[3]), num(g[4]), num(g[5]),
                                      num(g[6])), out)
            self.flavor = self.flavor or ("pjreddie" if g[6] is None else "alexeyab")

    def _on_hanklenient(self, seg: str, out: list) -> None:
        # a hank-ai iteration line that the strict pattern did not take (another version's fields)
        m = HANK_LENIENT.match(strip_escapes(seg).strip())
        if not m:
            return
        self._row_hank((None,) + m.groups()[:3] + (m.group(4) or "",) + m.groups()[4:], out)

    def _on_mapstart(self, seg: str, out: list) -> None:
        self._map = _MapBlock()

    def _on_mapline(self, seg: str, out: list) -> None:
        m = RX_MAP.search(strip_escapes(seg))
        if not m:
            return
        value = num(m.group(1))
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
        m = RX_PREC.search(seg)
        if m:
            f["precision"], f["recall"], f["f1"] = num(m.group(1)), num(m.group(2)), num(m.group(3))
            return
        m = RX_TPFP.search(seg)
        if m:
            f["tp"], f["fp"], f["fn"] = float(m.group(1)), float(m.group(2)), float(m.group(3))
            iou = num(m.group(4))
            f["avg_iou"] = iou / 100.0 if m.group(5) else iou
        self._in_table = False

    def _on_dets(self, seg: str, out: list) -> None:
        m = RX_DETS.search(seg)
        if m:
            self._map.fields["detections"] = float(m.group(1))
            self._map.fields["unique_truth"] = float(m.group(2))

    def _on_classid(self, seg: str, out: list) -> None:
        m = RX_CLASSID.search(seg)
        if m:
            out.append(ClassAP(self.iteration, int(m.group(1)), m.group(2), num(m.group(3)) / 100.0,
                               num(m.group(4)), num(m.group(5))))

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
        m = RX_ROW.match(strip_escapes(seg))
        if m:  # hank-ai prints AP in percent, F1 and AvgIoU as they come
            out.append(ClassAP(self.iteration, int(m.group(1)), m.group(2), num(m.group(3)) / 100.0,
                               float(m.group(4)), float(m.group(5)), float(m.group(6)), float(m.group(7)),
                               num(m.group(8)), num(m.group(9))))

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
        m = RX_LIMIT.search(strip_escapes(seg))
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
        m = RX_LOADED.search(seg.strip())
        if not m:
            return
        if m.group(1) is not None:
            count = RX_LOADED_COUNT.search(seg)
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

