"""The progress line of a run: iteration, avg loss, best mAP, measured rate, ETA, elapsed."""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .series import _last_values, best_map


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    if h:
        return f"{h}h {m:02d}m"
    if m:
        return f"{m}m {s:02d}s"
    return f"{s}s"


def progress_line(history: Any, max_batches: Optional[int], elapsed: float, *,
                  start_iteration: Optional[int] = None, rate: Optional[float] = None) -> str:
    """``iteration 1,234/6,000 (20.6%) | avg loss 1.234 | best mAP 45.60% | 2.10 it/s | ETA 38m 12s | elapsed 9m``.

    `history` is anything with `iterations` and `maps` dataframes. The rate and the ETA come from measured wall
    time only (darknet's own ``hours left`` disagrees with it): `rate` when given (iterations/s, see
    `LiveView`), else the iterations since `start_iteration` over `elapsed` seconds. No rate, no ETA.
    """
    maps = getattr(history, "maps", None)
    parts: list[str] = []
    last_it, value = _last_values(history)
    if last_it is None:
        parts.append("waiting for the first iteration")
    else:
        text = f"iteration {int(last_it):,}"
        if max_batches:
            text += f"/{int(max_batches):,} ({100.0 * last_it / max_batches:.1f}%)"
        parts.append(text)
        if value is not None:
            parts.append("avg loss nan" if np.isnan(value) else f"avg loss {value:.4g}")
    best = best_map(maps)
    if best is not None:
        parts.append(f"best mAP {100 * best:.2f}%")
    if rate is None and last_it is not None and start_iteration is not None and elapsed > 0 \
            and last_it > start_iteration:
        rate = (last_it - start_iteration) / elapsed
    if rate:
        parts.append(f"{rate:.2f} it/s" if rate >= 0.1 else f"{rate * 60:.2f} it/min")
        if max_batches and last_it is not None and last_it < max_batches:
            parts.append(f"ETA {_duration((max_batches - last_it) / rate)}")
    parts.append(f"elapsed {_duration(elapsed)}")
    return " | ".join(parts)


def _nice_every(max_batches: Optional[int]) -> int:
    """About 20 permanent lines per run, on round iterations (100, 200, 500, 1,000, ...)."""
    target = (max_batches or 20_000) / 20
    for step in (10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000, 20_000, 50_000):
        if step >= target:
            return step
    return 100_000
