"""Iteration rows -> `Iteration` events: the part of the parser that its hot loop feeds. Pure: no IPython.

The parser's scan queues the captured text of the iteration lines (a tuple of fields per line: 7 for
pjreddie/AlexeyAB, 11 for hank-ai, 10 for hank-ai through a gate specialised to its max_batches) and calls
`IterationRows._flush` before any other event and at the end, so the events keep the order of the lines. A queue
is converted column by column (`values.pjab_columns` / `values.hank_columns`) and, for `logs.read_log`, handed to
the history's columns without one object per row; a short queue, a row that does not convert strictly, and
``bulk = False`` (the reference the tests hold the bulk path to) take the per-row path.

Along the way: `Resumed` where the iterations go back (a later session of the same log), the nan-loss problem
after the first NaN, and hank-ai's max_batches and next mAP iteration where they change.
"""
from __future__ import annotations

from itertools import count, groupby, islice, repeat
from operator import ge
from typing import TYPE_CHECKING, Optional

from . import problems as _problems
from .events import Iteration, MaxBatches, NextMapAt, ProblemFound, Resumed
from .values import hank_columns, hank_iteration, pjab_columns, pjab_iteration
if TYPE_CHECKING:  # for the annotation only: history.py does not import this module
    from .history import IterationSink

__all__ = ["IterationRows"]

_BULK_MIN = 8  # fewer queued iteration rows than this go through the per-row path (a live chunk has one or two)
_tuple_new = tuple.__new__


class IterationRows:
    """The iteration state of a parser, and the conversion of its queued rows into events.

    Args:
        flavor: the flavor, if known.
        iteration_sink: where iteration rows go column by column instead of becoming `Iteration` events
            (`History.iteration_sink()`); a resumed session then goes to its ``resumed``.

    Attributes:
        flavor: the flavor (None until something tells it).
        iteration: the last training iteration seen (None before any).
        max_batches, next_map_at: as the output said them so far.
        bulk: convert a queue column by column (True, the default) or row by row (the reference path).
    """

    bulk: bool = True

    def __init__(self, flavor: Optional[str] = None, iteration_sink: Optional["IterationSink"] = None) -> None:
        self.flavor = flavor
        self.iteration: Optional[int] = None
        self.max_batches: Optional[int] = None
        self.next_map_at: Optional[int] = None
        self._nan_reported = False
        self._next_map_text: Optional[str] = None  # the text of the last next-mAP value (an event when it changes)
        self._max_text: Optional[str] = None  # ... and of the last max_batches
        self._sink = iteration_sink
        self._spec: Optional[str] = None  # the max_batches text the current scan's gate has as a literal

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
        data, bad = pjab_columns(rows)  # bad: rows that do not convert strictly; the per-row path takes them
        a = 0
        for k in (*sorted(bad), n) if bad else (n,):
            if k > a:
                self._emit(data, a, k, out)
                if self.flavor is None:
                    self.flavor = "pjreddie" if rows[a][6] is None else "alexeyab"
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
        data, bad = hank_columns(itc, lo, av, ra, tv, tu, im, rv, ru)
        a = 0
        for k in (*sorted(bad), n) if bad else (n,):
            if k > a:
                self._emit_hank(data, mb, nm, a, k, out)
            if k < n:
                self._row_hank(self._hank_row(rows[k]), out)
            a = k + 1

    def _emit_hank(self, data: tuple, mb: tuple, nm: tuple, a: int, b: int, out: list) -> None:
        # max_batches (window title) and the next mAP iteration change rarely: events only where they do, before
        # the iteration of the line that changed them. A queue usually has one of each (the next mAP iteration
        # changes after a calculation, which flushes the queue): then no pass over the rows in Python.
        whole = a == 0 and b == len(nm)
        mbs = set(mb if whole else mb[a:b])
        nms = set(nm if whole else nm[a:b])
        if len(mbs) == 1 and len(nms) == 1:
            self._hank_marks(mbs.pop(), nms.pop(), out)
            self._emit(data, a, b, out)
        else:
            for (m, k), run in groupby(zip(mb[a:b], nm[a:b])):
                end = a + len(list(run))
                self._hank_marks(m, k, out)
                self._emit(data, a, end, out)
                a = end
        if self.flavor is None:
            self.flavor = "hank-ai"

    def _hank_marks(self, mb: Optional[str], nm: str, out: list) -> None:
        """The events of a hank-ai line's max_batches (window title) and next mAP iteration, where they change."""
        if mb is not None and mb != self._max_text:
            self._max_text = mb
            self._set_max_batches(int(mb), out)
        if nm != self._next_map_text and nm.isdigit():
            self._next_map_text = nm
            self._set_next_map(int(nm), out)

    def _emit(self, data: tuple, a: int, b: int, out: list) -> None:
        """Rows a..b-1 of the converted columns `data` as iterations; `Resumed` where the iterations go back (a
        later session of the same log), checked in C (one ``map(ge, ..)`` pass) before any row is looked at."""
        its = data[0]
        last = self.iteration
        run = its if a == 0 and b == len(its) else its[a:b]  # a slice, not islice(its, a, ..): that walks from 0
        if (last is None or run[0] > last) and not any(map(ge, run, islice(run, 1, None))):
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
        """One pjreddie/AlexeyAB iteration row (the gate's groups `G_PJAB`)."""
        self._iteration(pjab_iteration(g), out)
        if self.flavor is None:
            self.flavor = "pjreddie" if g[6] is None else "alexeyab"

    def _row_hank(self, h: tuple, out: list) -> None:
        """One hank-ai iteration row of 11 fields (`values.hank_iteration`): max_batches (window title) and the
        next mAP iteration first, where they change, then the iteration."""
        it = hank_iteration(h)
        self._hank_marks(h[0], h[4], out)
        if self.flavor is None:
            self.flavor = "hank-ai"
        self._iteration(it, out)

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

    def _set_max_batches(self, n: int, out: list) -> None:
        if n != self.max_batches:
            self.max_batches = n
            out.append(MaxBatches(n))

    def _set_next_map(self, n: int, out: list) -> None:
        if n != self.next_map_at:
            self.next_map_at = n
            out.append(NextMapAt(n))

