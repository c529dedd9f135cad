"""The typed events of darknet output: what `LogParser` emits and `History` stores. The bottom layer.

Nothing here imports another module of the package except `errors` (for `Problem`), so that the parser
(`logparse`), the line rules (`diagnose`), the history (`history`) and the whole-output judge (`judge`) all import
these types from one place without an import cycle.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Optional, Union

from ..errors import Problem

__all__ = ["Iteration", "MapResult", "ClassAP", "WeightsSaved", "ProblemFound", "MaxBatches", "NextMapAt",
           "Finished", "Prompt", "Resumed", "Event", "EVENT_TYPES"]

NAN = math.nan


class Iteration(NamedTuple):
    """One training iteration line (NaN where the flavor does not print a field).

    A named tuple (immutable, fields by name or position): a log has hundreds of thousands of them, and a tuple is
    built in C (``tuple.__new__(Iteration, row)``), about 10x cheaper than a frozen dataclass.
    """

    iteration: int
    loss: float
    avg_loss: float
    rate: float = NAN
    seconds: float = NAN
    images: float = NAN  # an int when printed; float so that NaN fits
    hours_left: float = NAN


@dataclass(frozen=True, slots=True)
class MapResult:
    """One mAP calculation (AlexeyAB prints it twice, in two formats: still one event). Fractions in 0..1."""

    iteration: Optional[int]
    map50: float
    best_map50: float = NAN
    precision: float = NAN
    recall: float = NAN
    f1: float = NAN
    avg_iou: float = NAN
    tp: float = NAN
    fp: float = NAN
    fn: float = NAN
    detections: float = NAN
    unique_truth: float = NAN


@dataclass(frozen=True, slots=True)
class ClassAP:
    """Average precision of one class in one mAP calculation; `ap` in 0..1."""

    iteration: Optional[int]
    class_id: int
    name: str
    ap: float
    tp: float = NAN
    fp: float = NAN
    fn: float = NAN
    gt: float = NAN
    f1: float = NAN
    avg_iou: float = NAN


@dataclass(frozen=True, slots=True)
class WeightsSaved:
    """A ``Saving weights to PATH`` line; `iteration` is the training iteration it followed (None before any)."""

    iteration: Optional[int]
    path: str


@dataclass(frozen=True, slots=True)
class ProblemFound:
    """A diagnosed problem (see `darknet_magics.output.diagnose` for the codes)."""

    problem: Problem


@dataclass(frozen=True, slots=True)
class MaxBatches:
    """max_batches as darknet shows it in its ``N/M: loss=..`` window title (emitted when it changes)."""

    n: int


@dataclass(frozen=True, slots=True)
class NextMapAt:
    """The iteration of the next mAP calculation (emitted when it changes)."""

    iteration: int


@dataclass(frozen=True, slots=True)
class Finished:
    """Training ended normally: final weights saved, or "reached max batch limit"."""

    reason: str
    iteration: Optional[int] = None


@dataclass(frozen=True, slots=True)
class Prompt:
    """darknet waits on stdin (hank-ai's CPU build: ``Type "yes" to begin training``). Informational: the runner
    matches and answers the prompt itself."""

    text: str


@dataclass(frozen=True, slots=True)
class Resumed:
    """A later session in the same log starts at `iteration`, at or before the last one seen: a resumed run
    appended to its log. Rows of the earlier session at or beyond it are superseded (`History.extend` semantics),
    so a log read back gives the rows the live run had."""

    iteration: int


Event = Union[Iteration, MapResult, ClassAP, WeightsSaved, ProblemFound, MaxBatches, NextMapAt, Finished, Prompt,
              Resumed]
EVENT_TYPES = (Iteration, MapResult, ClassAP, WeightsSaved, ProblemFound, MaxBatches, NextMapAt, Finished, Prompt,
               Resumed)
