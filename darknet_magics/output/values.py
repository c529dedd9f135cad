"""darknet's number text -> Python numbers: one field, one iteration row, or whole columns of rows. Pure.

The parser queues the captured text of iteration lines and converts them here, column by column with C-level
``map(float, ..)`` where a column converts strictly; a row where a field does not (hank-ai's first
``time remaining=unknown``, ``-nan``, garbage) is marked bad and converted alone by the per-row functions, which
never raise: what does not convert becomes NaN.
"""
from __future__ import annotations

import math
from itertools import count, repeat
from operator import mul, truediv
from typing import Callable, Optional, Sequence

from .events import Iteration

__all__ = ["SECONDS", "num", "duration", "convert", "pjab_iteration", "hank_iteration", "pjab_columns",
           "hank_columns"]

NAN = math.nan
# hank-ai prints durations with a unit: seconds per unit.
SECONDS = {"": 1.0, "ms": 1e-3, "millisecond": 1e-3, "milliseconds": 1e-3, "second": 1.0, "seconds": 1.0,
           "s": 1.0, "minute": 60.0, "minutes": 60.0, "hour": 3600.0, "hours": 3600.0, "day": 86400.0,
           "days": 86400.0}
_STRICT_ERRORS = (ValueError, KeyError, TypeError)  # a field that is not a number, a unit not in SECONDS, a None
_UNIT = SECONDS.__getitem__
_FEW_MIN = 32  # a shorter column is converted as it stands (the distinct texts would not pay for their set)


def num(s: Optional[str]) -> float:
    """darknet's number text -> float; ``-nan``/garbage/None -> NaN (never raises)."""
    if s is None:
        return NAN
    try:
        return float(s)
    except ValueError:
        return NAN


def duration(value: Optional[str], unit: Optional[str]) -> float:
    """hank-ai's ``921.8 milliseconds`` -> seconds; NaN for an unknown unit or value."""
    scale = SECONDS.get(unit or "", None)
    return NAN if scale is None else num(value) * scale


def convert(col: Sequence, f: Callable, bad: set, none: object = None, offset: int = 0) -> list:
    """``list(map(f, col))``; where f fails (ValueError/KeyError, as the per-row path's strict conversion would),
    None goes in and the index (plus `offset`) into `bad`. With `none` given, a None in `col` (a field the line
    lacks) becomes `none`.

    One C pass whatever fails: a map resumes after the item it raised on, and ``list.extend`` keeps what it took
    before the error, so a bad row costs one exception, not a re-run of the column (hank-ai's last row,
    ``time remaining=unknown``, is in half the queues of a log with mAP calculations). Checked as it goes: the
    item at the error must fail again, and the result must be as long as `col`; if either does not hold (another
    Python), the column is converted item by item."""
    if none is None or None not in col:
        out: list = []
        it = map(f, col)
        failed = []
        while True:
            try:
                out.extend(it)
                break
            except (ValueError, KeyError):
                k = len(out)
                if k >= len(col) or not _fails(f, col[k]):
                    break  # not where the error was: take the careful path
                failed.append(k)
                out.append(None)
        if len(out) == len(col):
            if failed:
                bad.update(k + offset for k in failed)
            return out
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


def _fails(f: Callable, x: object) -> bool:
    try:
        f(x)
    except (ValueError, KeyError):
        return True
    return False


# ------------------------------------------------------------------------------------------------- one row
def pjab_iteration(g: Sequence[Optional[str]]) -> Iteration:
    """A pjreddie/AlexeyAB row (iteration, loss, avg, rate, seconds, images, hours left or None)."""
    try:
        return Iteration(int(g[0]), float(g[1]), float(g[2]), float(g[3]), float(g[4]), int(g[5]),
                         NAN if g[6] is None else float(g[6]))
    except _STRICT_ERRORS:
        return Iteration(int(g[0]), num(g[1]), num(g[2]), num(g[3]), num(g[4]), num(g[5]), num(g[6]))


def hank_iteration(h: Sequence[Optional[str]]) -> Iteration:
    """A hank-ai row (max_batches, iteration, loss, avg, mAP, rate, train value, unit, images, remaining value,
    unit); durations in seconds, the remaining time in hours like AlexeyAB's ``hours left``."""
    try:
        return Iteration(int(h[1]), float(h[2]), float(h[3]), float(h[5]), float(h[6]) * SECONDS[h[7]], int(h[8]),
                         NAN if h[9] is None else float(h[9]) * SECONDS[h[10]] / 3600.0)
    except _STRICT_ERRORS:
        return Iteration(int(h[1]), num(h[2]), num(h[3]), num(h[5]), duration(h[6], h[7]), num(h[8]),
                         duration(h[9], h[10]) / 3600.0)


# ------------------------------------------------------------------------------------------------- columns
def pjab_columns(rows: Sequence[tuple]) -> tuple[tuple[list, ...], set[int]]:
    """The seven iteration columns of pjreddie/AlexeyAB rows, and the rows that do not convert strictly."""
    n = len(rows)
    cols = list(zip(*rows))
    bad: set[int] = set()
    hl = cols[6]
    if None in hl:  # pjreddie: no "hours left"
        hours = [NAN] * n if hl.count(None) == n else convert(hl, float, bad, NAN)
    else:
        hours = convert(hl, float, bad)
    rate = _few(cols[3], float, bad)
    data = (convert(cols[0], int, bad), convert(cols[1], float, bad), convert(cols[2], float, bad),
            convert(cols[3], float, bad) if rate is None else rate, convert(cols[4], float, bad),
            convert(cols[5], int, bad), hours)
    return data, bad


def _few(texts: Sequence, f: Callable, bad: set) -> Optional[list]:
    """``list(map(f, texts))`` with f run once per distinct text, for a column that repeats its texts (darknet's
    learning rate, constant between steps); None where it does not (over half of its texts distinct, or a None
    among them). A text that does not convert gives None on its rows, which go into `bad` (found by ``index``, in
    C).

    A set of the texts hashes each once, and the lookups reuse that hash: about a third of a float() each."""
    if len(texts) < _FEW_MIN:
        return None
    distinct = set(texts)
    if 2 * len(distinct) > len(texts) or None in distinct:
        return None
    try:
        table = dict(zip(distinct, map(f, distinct)))
    except (ValueError, KeyError):
        table = {}
        for t in distinct:
            try:
                table[t] = f(t)
            except (ValueError, KeyError):
                table[t] = None
                k = texts.index(t)
                while True:
                    bad.add(k)
                    try:
                        k = texts.index(t, k + 1)
                    except ValueError:
                        break
    return list(map(table.__getitem__, texts))


def _times(values: Sequence, units: Sequence, bad: set, scale: float) -> list:
    """value * SECONDS[unit] / scale per row; None (and the row in `bad`) where either does not convert.

    One fused C pass (no list per step). Where a row fails (hank-ai's ``time remaining=unknown``, the last row of
    half the queues of a log with mAP calculations), the pass goes on from the next row, like `convert`: a bad row
    costs one exception, not a second pass over the column. The row at the error must fail again on its own;
    if it does not (another Python), the column is converted item by item. A None value raises TypeError (the
    caller's case: lines without the field)."""
    out: list = []
    start = 0
    failed = []
    while True:
        rest_values = values[start:] if start else values  # a fresh pass from `start`: the maps stay aligned
        rest_units = units[start:] if start else units
        step = map(mul, map(float, rest_values), map(_UNIT, rest_units))
        try:
            out.extend(step if scale == 1.0 else map(truediv, step, repeat(scale)))
            break
        except (ValueError, KeyError):
            k = len(out)
            if k >= len(values) or not _fails_time(values[k], units[k]):
                return _times_careful(values, units, bad, scale)
            failed.append(k)
            out.append(None)
            start = k + 1
    if len(out) != len(values):
        return _times_careful(values, units, bad, scale)
    bad.update(failed)
    return out


def _fails_time(value: object, unit: object) -> bool:
    try:
        float(value) * SECONDS[unit]
    except (ValueError, KeyError):
        return True
    return False


def _times_careful(values: Sequence, units: Sequence, bad: set, scale: float) -> list:
    """`_times` item by item (its fallback)."""
    out: list = []
    for k, v, u in zip(count(), values, units):
        try:
            x = float(v) * SECONDS[u]
        except (ValueError, KeyError):
            out.append(None)
            bad.add(k)
            continue
        out.append(x if scale == 1.0 else x / scale)
    return out


def hank_columns(itc: Sequence, lo: Sequence, av: Sequence, ra: Sequence, tv: Sequence, tu: Sequence,
                 im: Sequence, rv: Sequence, ru: Sequence) -> tuple[tuple[list, ...], set[int]]:
    """The seven iteration columns of hank-ai rows (fields as captured), and the rows that do not convert
    strictly."""
    bad: set[int] = set()
    it, loss, avg = convert(itc, int, bad), convert(lo, float, bad), convert(av, float, bad)
    rate, img = _few(ra, float, bad), convert(im, int, bad)
    if rate is None:
        rate = convert(ra, float, bad)
    sec = _times(tv, tu, bad, 1.0)
    try:
        rem = _times(rv, ru, bad, 3600.0)  # e.g. hank-ai's first "time remaining=unknown"
    except TypeError:  # a None: lines without "time remaining"
        rem = []
        for k, v, u in zip(count(), rv, ru):
            if v is None:
                rem.append(NAN)
                continue
            try:
                rem.append(float(v) * SECONDS[u] / 3600.0)
            except (ValueError, KeyError):
                rem.append(None)
                bad.add(k)
    return (it, loss, avg, rate, sec, img, rem), bad
