"""Small helpers the benchmarks share: a timer, sizes, and figure/ratio lines in one format."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Iterator


class Timer:
    """Wall-clock seconds of a block: ``with timed() as t: ...; t.seconds``."""

    seconds: float = 0.0


@contextmanager
def timed() -> Iterator[Timer]:
    """Time the block with `time.perf_counter`."""
    timer = Timer()
    start = time.perf_counter()
    try:
        yield timer
    finally:
        timer.seconds = time.perf_counter() - start


def mb(nbytes: float) -> float:
    """Bytes as megabytes (10**6, like the MB/s figures)."""
    return nbytes / 1e6


def ratio(a: float, b: float) -> str:
    """``a / b`` as '2.31x'; 'n/a' when b is 0."""
    return f"{a / b:.2f}x" if b > 0 else "n/a"


def figure_line(label: str, value: float, unit: str) -> str:
    """One measured figure: '  label: 12.34 unit'."""
    return f"  {label}: {value:,.2f} {unit}"


def ratio_line(label: str, value: float, target: float, *, higher_is_better: bool = True, unit: str = "x") -> str:
    """'ratio: label = 0.73x (target >= 0.5x): ok' — the line run_all's readers look for."""
    ok = value >= target if higher_is_better else value <= target
    sign = ">=" if higher_is_better else "<="
    return f"ratio: {label} = {value:.2f}{unit} (target {sign} {target:g}{unit}): {'ok' if ok else 'MISSED'}"
