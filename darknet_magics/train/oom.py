"""CUDA out of memory at start: retry with subdivisions doubled until it fits or reaches batch (AlexeyAB#1149).

`next_subdivisions` decides from darknet's output (the line diagnoser's ``cuda-oom`` rule) and the cfg's batch and
subdivisions: pure. `train_fitting` runs a training function and, on an OOM before the first iteration, rewrites
the cfg's subdivisions (atomically) and runs it again, saying what it chose.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

from ..data.cfg import Cfg
from ..errors import DarknetMagicsError, StepError
from ..fileio import atomic_write_text
from ..output.judge import diagnose
from ..report import Reporter

__all__ = ["next_subdivisions", "cfg_batch", "train_fitting", "ASK"]

ASK = "add subdivisions=auto to `%yolo train` to retry with subdivisions doubled until it fits"


def next_subdivisions(output: str, *, iterations_seen: bool, batch: int, subdivisions: int) -> Optional[int]:
    """The subdivisions to retry with after this output, or None: only an out-of-memory before the first
    iteration (later, it is the random resize or the mAP pass: another fix), doubled and at most `batch` (a
    mini-batch of one image is the least darknet can do)."""
    if iterations_seen or subdivisions >= batch:
        return None
    if not any(p.code == "cuda-oom" for p in diagnose(output)):
        return None
    return min(batch, max(1, subdivisions) * 2)


def cfg_batch(cfg: Path) -> tuple[int, int]:
    """The cfg's [net] (batch, subdivisions); DarknetMagicsError when they are no whole numbers."""
    net = Cfg.parse(Path(cfg).read_text(encoding="utf-8", errors="replace")).net
    try:
        return int(net.get("batch") or 1), int(net.get("subdivisions") or 1)
    except ValueError:
        raise DarknetMagicsError(f"{cfg}: batch={net.get('batch')!r} or subdivisions={net.get('subdivisions')!r} "
                                 "is not a whole number", fix="write whole numbers in the cfg's [net]") from None


def _set_subdivisions(cfg: Path, value: int) -> None:
    parsed = Cfg.parse(Path(cfg).read_text(encoding="utf-8"))
    parsed.set(parsed.net, "subdivisions", value)
    atomic_write_text(cfg, parsed.render())


def train_fitting(run_once: Callable[[Optional[object]], object], cfg: Path, reporter: Reporter, *,
                  session_output: Callable[[object], str]) -> object:
    """`run_once(previous)` until darknet fits in GPU memory. On a StepError whose run diagnosed ``cuda-oom`` before
    its first iteration, the cfg's subdivisions are doubled and the run goes on in the same run folder."""
    previous = None
    while True:
        try:
            run = run_once(previous)
        except StepError as exc:
            failed = getattr(exc, "run", None)
            if failed is None:
                raise
            batch, subdivisions = cfg_batch(cfg)
            chosen = next_subdivisions(session_output(failed), iterations_seen=failed.last_iteration is not None,
                                       batch=batch, subdivisions=subdivisions)
            if chosen is None:
                raise
            reporter.warn(f"CUDA ran out of memory with subdivisions={subdivisions} (batch={batch}): retrying with "
                          f"subdivisions={chosen} ({cfg})")
            _set_subdivisions(cfg, chosen)
            previous = failed
            continue
        if previous is not None:
            reporter.info(f"subdivisions={cfg_batch(cfg)[1]} fits in GPU memory (written to {cfg})")
        return run
