"""The chart's series: a history of 500,000 iterations cut down to a few hundred points per series, incrementally.

`Downsampler` keeps fixed buckets by iteration (their min and max, plus the first and last point), so an update
stays small; `ChartData` holds the downsampled series of the iteration panels between updates and is fed only the
rows that arrived since the last one. The readers of a history (`_counts`, `_last_values`, `best_map`) are here
too: the chart, the progress line and the comparison read a history the same way.
"""
from __future__ import annotations

import math
from typing import Any, Optional

import numpy as np


def downsample_indices(y: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of the points that keep the shape of `y`: first, last, and min and max of each bucket.

    NaNs never win a bucket (a bucket of only NaNs keeps its first point). Returns all indices when `y` has at
    most `max_points` points. Buckets by index, from scratch: for the short series (mAP rows, per-class AP); the
    iteration series, which grow by thousands of rows, go through the incremental `Downsampler`.
    """
    n = len(y)
    if n <= max_points:
        return np.arange(n)
    buckets = max(1, (max_points - 2) // 2)
    size = math.ceil(n / buckets)
    pad = buckets * size - n
    yf = np.asarray(y, dtype=np.float64)
    lo = np.concatenate([np.where(np.isnan(yf), np.inf, yf), np.full(pad, np.inf)]).reshape(buckets, size)
    hi = np.concatenate([np.where(np.isnan(yf), -np.inf, yf), np.full(pad, -np.inf)]).reshape(buckets, size)
    base = np.arange(buckets) * size
    idx = np.concatenate([[0, n - 1], base + lo.argmin(axis=1), base + hi.argmax(axis=1)])
    idx = idx[idx < n]
    return np.unique(idx)


def _column(df: Any, name: str) -> Optional[np.ndarray]:
    if df is None or name not in getattr(df, "columns", ()):
        return None
    return df[name].to_numpy(dtype=np.float64, na_value=np.nan)


def _int_x(x: np.ndarray) -> np.ndarray:
    return x.astype(np.int64) if np.all(x == np.floor(x)) else x.astype(np.float64)


def _xy(x: np.ndarray, y: np.ndarray, max_points: int) -> dict:
    """Trace coordinates, downsampled to `max_points`; evenly spaced x (mAP every N iterations) as ``x0``/``dx``,
    which halves the bytes of an update."""
    if len(x) > max_points:
        idx = downsample_indices(y, max_points)
        x, y = x[idx], y[idx]
    y = y.astype(np.float32)
    if len(x) > 2:
        step = np.diff(x)
        if np.all(step == step[0]) and step[0] > 0:
            return {"x0": int(x[0]) if x[0] == int(x[0]) else float(x[0]),
                    "dx": int(step[0]) if step[0] == int(step[0]) else float(step[0]), "y": y}
    return {"x": _int_x(x), "y": y}


def loss_cap(avg_loss: Optional[np.ndarray]) -> Optional[float]:
    """The top of the loss axis, as darknet's chart caps it: the start of training (loss ~800) must not squash it.

    1.2 x the highest avg loss after the first 10 % of iterations (at least twice the last avg loss); None when
    there is too little to judge (plotly's own autorange is then right).
    """
    if avg_loss is None:
        return None
    a = avg_loss[np.isfinite(avg_loss)]
    if len(a) < 20:
        return None
    rest = a[len(a) // 10:]
    top = max(float(rest.max()) * 1.2, float(a[-1]) * 2)
    return top if top < float(a.max()) else None


def _first_extremes(values: np.ndarray, starts: np.ndarray, ufunc: Any) -> np.ndarray:
    """For each segment of `values` (segments begin at `starts`), the index of its first minimum (`np.minimum`) or
    maximum (`np.maximum`): ties go to the earlier point, which is what makes merged buckets equal fresh ones."""
    ext = ufunc.reduceat(values, starts)
    hit = np.flatnonzero(values == np.repeat(ext, np.diff(np.append(starts, len(values)))))
    hseg = np.searchsorted(starts, hit, side="right") - 1  # the segment of each hit
    return hit[np.flatnonzero(np.concatenate(([True], hseg[1:] != hseg[:-1])))]


_EMPTY = np.empty(0)


class Downsampler:
    """A growing series (x not decreasing, e.g. by iteration) kept in at most `max_points` points, incrementally.

    Up to `max_points` points every point is kept. Beyond that the x axis is cut into fixed buckets of `width`
    iterations (a power of two, aligned on 0) and each bucket keeps its minimum and its maximum (the first one on
    ties), plus the series' first and last points: a loss spike is never lost. New points only touch the buckets
    they fall in; when the buckets spanned pass ``(max_points - 2) // 2``, the width doubles and neighbouring
    buckets merge (min of mins, max of maxes). So `extend` costs O(new points + buckets), and the points are the
    same however the series was split into `extend` calls (`downsample` is the from-scratch form).

    Non-finite y (NaN, inf) never win a bucket; a bucket of only non-finite values keeps one NaN point (a gap).
    """

    def __init__(self, max_points: int) -> None:
        self.max_points = max(4, int(max_points))
        self.buckets = (self.max_points - 2) // 2
        self.width = 0.0  # 0: every point kept (in _x, _y)
        self.count = 0
        self.finite = False  # any finite y seen
        self._x, self._y = _EMPTY, _EMPTY
        self._first: Optional[tuple[float, float]] = None
        self.last: Optional[tuple[float, float]] = None
        # one entry per non-empty bucket, by id (floor(x / width)): x and y of its first min and of its first max
        # (y with non-finite values as +inf for the min, -inf for the max)
        self._id = _EMPTY
        self._lx, self._ly, self._hx, self._hy = _EMPTY, _EMPTY, _EMPTY, _EMPTY

    def extend(self, x: Any, y: Any) -> "Downsampler":
        """Add points; `x` must not decrease, within the call and from the last point (ValueError otherwise)."""
        x = np.asarray(x, dtype=np.float64)
        y = np.asarray(y, dtype=np.float64)
        if not len(x):
            return self
        if (self.last is not None and x[0] < self.last[0]) or (len(x) > 1 and np.any(x[1:] < x[:-1])):
            raise ValueError("x decreases: Downsampler takes points in order")
        if self._first is None:
            self._first = (float(x[0]), float(y[0]))
        self.last = (float(x[-1]), float(y[-1]))
        self.count += len(x)
        self.finite = self.finite or bool(np.isfinite(y).any())
        if not self.width:
            if len(self._x):
                x, y = np.concatenate((self._x, x)), np.concatenate((self._y, y))
            if len(x) <= self.max_points:
                self._x, self._y = np.array(x), np.array(y)  # copies: the caller's arrays may change
                return self
            self._x, self._y = _EMPTY, _EMPTY
            self.width = 1.0
        self._add(x, y)
        return self

    def _span(self, x_last: float) -> int:
        return math.floor(x_last / self.width) - math.floor(self._first[0] / self.width) + 1

    def _merge(self) -> None:
        """Double the width: buckets 2k and 2k+1 become bucket k."""
        self.width *= 2
        if not len(self._id):
            return
        ids = np.floor(self._id / 2)
        starts = np.flatnonzero(np.concatenate(([True], ids[1:] != ids[:-1])))
        lo, hi = _first_extremes(self._ly, starts, np.minimum), _first_extremes(self._hy, starts, np.maximum)
        self._id = ids[starts]
        self._lx, self._ly, self._hx, self._hy = self._lx[lo], self._ly[lo], self._hx[hi], self._hy[hi]

    def _add(self, x: np.ndarray, y: np.ndarray) -> None:
        while self._span(float(x[-1])) > self.buckets:
            self._merge()
        w = self.width
        # where each bucket starts: x is sorted, so a search for the bucket edges (not a bucket id per point,
        # which np.floor makes slow on 500,000 points); empty buckets have no start
        edges = np.arange(math.floor(x[0] / w) + 1, math.floor(x[-1] / w) + 1) * w
        starts = np.concatenate(([0], np.searchsorted(x, edges, side="left")))
        starts = starts[np.concatenate(([True], starts[1:] != starts[:-1]))]
        finite = np.isfinite(y)
        if finite.all():  # the usual case: no copies
            low = high = y
        else:
            low, high = np.where(finite, y, np.inf), np.where(finite, y, -np.inf)
        lo, hi = _first_extremes(low, starts, np.minimum), _first_extremes(high, starts, np.maximum)
        nid = np.floor(x[starts] / w)  # float ids: exact below 2**53
        lx, ly, hx, hy = x[lo], low[lo], x[hi], high[hi]
        if len(self._id) and self._id[-1] == nid[0]:  # the last bucket goes on: the earlier point wins ties
            if ly[0] < self._ly[-1]:
                self._lx[-1], self._ly[-1] = lx[0], ly[0]
            if hy[0] > self._hy[-1]:
                self._hx[-1], self._hy[-1] = hx[0], hy[0]
            nid, lx, ly, hx, hy = nid[1:], lx[1:], ly[1:], hx[1:], hy[1:]
        self._id = np.concatenate((self._id, nid))
        self._lx, self._ly = np.concatenate((self._lx, lx)), np.concatenate((self._ly, ly))
        self._hx, self._hy = np.concatenate((self._hx, hx)), np.concatenate((self._hy, hy))

    def points(self) -> tuple[np.ndarray, np.ndarray]:
        """The points to draw, by x: first, each bucket's min and max in x order, last (no point twice)."""
        if not self.width:
            return self._x.copy(), self._y.copy()
        empty = ~np.isfinite(self._ly)  # no finite value in the bucket: one NaN at its first point
        lo_first = self._lx <= self._hx
        ax, bx = np.where(lo_first, self._lx, self._hx), np.where(lo_first, self._hx, self._lx)
        ay, by = np.where(lo_first, self._ly, self._hy), np.where(lo_first, self._hy, self._ly)
        ay = np.where(empty, np.nan, ay)
        xs = np.concatenate(([self._first[0]], np.column_stack((ax, bx)).ravel(), [self.last[0]]))
        ys = np.concatenate(([self._first[1]], np.column_stack((ay, by)).ravel(), [self.last[1]]))
        keep = np.ones(len(xs), dtype=bool)
        keep[2:-1:2] = ~(empty | ((bx == ax) & (by == ay)))  # a bucket's second point when it is its first
        xs, ys = xs[keep], ys[keep]
        same = (xs[1:] == xs[:-1]) & ((ys[1:] == ys[:-1]) | (np.isnan(ys[1:]) & np.isnan(ys[:-1])))
        keep = np.concatenate(([True], ~same))
        return xs[keep], ys[keep]


def downsample(x: Any, y: Any, max_points: int) -> tuple[np.ndarray, np.ndarray]:
    """`Downsampler` from scratch: the points of (x, y) that keep its shape in at most `max_points` points."""
    return Downsampler(max_points).extend(x, y).points()


class ChartData:
    """The downsampled series of the chart's iteration panels, fed the new rows after each chunk (`feed`).

    Loss and avg loss keep `max_points` points each, images/s half of that, the learning rate a quarter: its
    change points only (a step function, drawn ``hv``), plus its last point. `feed` raises ValueError when the
    iterations go back (a stitched or shuffled history): the caller starts a new one from the sorted rows.
    """

    def __init__(self, max_points: int) -> None:
        self.max_points = max_points
        self.loss, self.avg = Downsampler(max_points), Downsampler(max_points)
        self.rate, self.ips = Downsampler(max(4, max_points // 4)), Downsampler(max(4, max_points // 2))
        self.rows = 0
        self.last_x: Optional[float] = None
        self._rate_last: Optional[tuple[float, float]] = None
        self._images_last = math.nan

    def feed(self, cols: dict) -> None:
        """Add rows given column by column (``iteration``, ``loss``, ``avg_loss``, ``rate``, ``images``,
        ``seconds``; any may be missing but the iteration)."""
        x = np.asarray(cols["iteration"], dtype=np.float64)
        n = len(x)
        if not n:
            return
        if (self.last_x is not None and x[0] < self.last_x) or (n > 1 and np.any(x[1:] < x[:-1])) \
                or np.isnan(x).any():
            raise ValueError("iterations go back (or are missing)")

        def col(name: str) -> Optional[np.ndarray]:
            v = cols.get(name)
            return None if v is None else np.asarray(v, dtype=np.float64)

        for name, ds in (("loss", self.loss), ("avg_loss", self.avg)):
            y = col(name)
            if y is not None:
                ds.extend(x, y)
        rate = col("rate")
        if rate is not None:
            ok = np.isfinite(rate)
            xr, yr = x[ok], rate[ok]
            if len(yr):
                prev = np.concatenate(([self._rate_last[1] if self._rate_last else np.nan], yr[:-1]))
                change = yr != prev
                self.rate.extend(xr[change], yr[change])
                self._rate_last = (float(xr[-1]), float(yr[-1]))
        images, secs = col("images"), col("seconds")
        if images is not None and secs is not None:
            with np.errstate(divide="ignore", invalid="ignore"):
                per_s = np.diff(np.concatenate(([self._images_last], images))) / secs
            per_s[~np.isfinite(per_s) | (per_s <= 0)] = np.nan
            first = 1 if self.rows == 0 else 0  # the first row has no images/s
            self.ips.extend(x[first:], per_s[first:])
            self._images_last = float(images[-1])
        self.rows += n
        self.last_x = float(x[-1])

    @classmethod
    def from_columns(cls, cols: dict, max_points: int) -> "ChartData":
        """A new ChartData of all `cols` (sorted by iteration first when they are not; NaN iterations dropped)."""
        x = np.asarray(cols["iteration"], dtype=np.float64)
        keep = ~np.isnan(x)
        order = None
        if not keep.all() or (len(x) > 1 and np.any(x[1:] < x[:-1])):  # stitched or replayed histories
            order = np.flatnonzero(keep)[np.argsort(x[keep], kind="stable")]
        data = cls(max_points)
        data.feed({k: (np.asarray(v)[order] if order is not None else v) for k, v in cols.items() if v is not None})
        return data

    def rate_points(self) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.rate.points()
        if self._rate_last is not None and (not len(x) or self._rate_last[0] > x[-1]):
            x, y = np.append(x, self._rate_last[0]), np.append(y, self._rate_last[1])
        return x, y


def _frame_columns(df: Any, start: int = 0) -> Optional[dict]:
    """The iteration columns of a dataframe from row `start` on (numpy), or None without an iteration column."""
    if df is None or "iteration" not in getattr(df, "columns", ()):
        return None
    part = df.iloc[start:] if start else df
    return {name: part[name].to_numpy(dtype=np.float64, na_value=np.nan)
            for name in ("iteration", "loss", "avg_loss", "rate", "images", "seconds") if name in df.columns}


def _chart_data(iterations_df: Any, max_points: int) -> ChartData:
    cols = _frame_columns(iterations_df)
    return ChartData.from_columns(cols, max_points) if cols is not None else ChartData(max_points)


def _last_valid(a: Optional[np.ndarray]) -> Optional[float]:
    if a is None or not len(a):
        return None
    ok = a[~np.isnan(a)]
    return float(ok[-1]) if len(ok) else None


def _counts(history: Any) -> tuple[int, int, int]:
    """Iteration, mAP and class AP rows: a `History` counts them without building its dataframes."""
    counts = getattr(history, "row_counts", None)
    if counts is not None:
        return tuple(counts)
    frames = (getattr(history, name, None) for name in ("iterations", "maps", "class_ap"))
    return tuple(0 if f is None else len(f) for f in frames)


def _at(df: Any, row: int) -> Any:
    """The iteration of a dataframe's row `row` (how `LiveView` sees that a dataframe is the one it read)."""
    return df["iteration"].iloc[row] if "iteration" in df.columns and len(df) > row else None


def _last_values(history: Any) -> tuple[Optional[float], Optional[float]]:
    """The last iteration and the avg loss of that row (None, None before any), cheaply: a `History` keeps them;
    of a dataframe only the last rows are read (the progress line is made after every update)."""
    if hasattr(history, "last_iteration") and hasattr(history, "last_avg_loss"):
        it = history.last_iteration
        return (None, None) if it is None else (float(it), float(history.last_avg_loss))
    its = getattr(history, "iterations", None)
    if its is None or not len(its) or "iteration" not in its.columns:
        return None, None
    tail = its.iloc[-64:]
    last = _last_valid(_column(tail, "iteration"))
    if last is None:
        last = _last_valid(_column(its, "iteration"))
    avg = _column(tail, "avg_loss")
    return last, (float(avg[-1]) if avg is not None and len(avg) else None)


def best_map(maps_df: Any) -> Optional[float]:
    """The best mAP@0.50 so far (a fraction): the max of every mAP row, and of darknet's own ``best`` column."""
    values = [a for a in (_column(maps_df, "map50"), _column(maps_df, "best_map50")) if a is not None and len(a)]
    if not values:
        return None
    joined = np.concatenate(values)
    return None if np.isnan(joined).all() else float(np.nanmax(joined))
