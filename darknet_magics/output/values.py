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
    lacks) becomes `none`. A failing column is split in halves, so one bad row costs a few C passes, not a loop."""
    if none is None or None not in col:
        try:
            return list(map(f, col))
        except (ValueError, KeyError):
            pass
    if len(col) > 16:
        mid = len(col) // 2
        return convert(col[:mid], f, bad, none, offset) + convert(col[mid:], f, bad, none, offset + mid)
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
    data = (convert(cols[0], int, bad), convert(cols[1], float, bad), convert(cols[2], float, bad),
            convert(cols[3], float, bad), convert(cols[4], float, bad), convert(cols[5], int, bad), hours)
    return data, bad


def _times(values: Sequence, units: Sequence, n: int, bad: set, scale: float) -> list:
    """value * SECONDS[unit] / scale per row; None (and the row in `bad`) where either does not convert."""
    failed: set[int] = set()
    vf = convert(values, float, failed)
    us = convert(units, SECONDS.__getitem__, failed)
    bad |= failed
    if failed:
        return [v * u / scale if v is not None and u is not None else None for v, u in zip(vf, us)]
    if scale == 1.0:
        return list(map(mul, vf, us))
    return list(map(truediv, map(mul, vf, us), repeat(scale, n)))


def hank_columns(itc: Sequence, lo: Sequence, av: Sequence, ra: Sequence, tv: Sequence, tu: Sequence,
                 im: Sequence, rv: Sequence, ru: Sequence) -> tuple[tuple[list, ...], set[int]]:
    """The seven iteration columns of hank-ai rows (fields as captured), and the rows that do not convert
    strictly."""
    n = len(itc)
    bad: set[int] = set()
    it, loss, avg = convert(itc, int, bad), convert(lo, float, bad), convert(av, float, bad)
    rate, img = convert(ra, float, bad), convert(im, int, bad)
    sec = _times(tv, tu, n, bad, 1.0)
    if None in rv:  # lines without "time remaining"
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
    else:
        rem = _times(rv, ru, n, bad, 3600.0)  # e.g. hank-ai's first "time remaining=unknown"
    return (it, loss, avg, rate, sec, img, rem), bad
