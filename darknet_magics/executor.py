"""The loop that runs or previews a `Plan`: a header, the step, its duration and outcome, for every step.

It knows no directive by name: each step's directive comes from the registry (`directives.directive_for`), and
the run and the dry run call that directive's `run` and `preview`. It never imports IPython: the magics and the
CLI hand it a `Reporter` and a namespace to bind results into.
"""
from __future__ import annotations

import enum
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, MutableMapping, Optional

from .directives import GRAMMAR, directive_for
from .errors import DarknetMagicsError
from .language import Plan, Step
from .report import Reporter
from .session import Context, Session

__all__ = ["StepStatus", "Outcome", "Executor"]


class StepStatus(enum.Enum):
    """How a step ended."""

    DONE = "done"
    PLANNED = "planned"  # a dry run


@dataclass(frozen=True)
class Outcome:
    """How one step ended: its status, time, summary line and result. Failures and interrupts raise instead."""

    step: Step
    status: StepStatus
    seconds: float
    summary: str = ""
    result: Any = None


class Executor:
    """Runs plans against a `Session`, reporting through `reporter`, binding `as NAME` results into `namespace`."""

    def __init__(self, session: Session, reporter: Reporter,
                 namespace: Optional[MutableMapping[str, Any]] = None) -> None:
        self.session = session
        self.reporter = reporter
        self.namespace = namespace if namespace is not None else {}
        self.simulated: Optional[Session] = None

    def run_plan(self, plan: Plan, *, dry_run: bool = False, headers: bool = True) -> list[Outcome]:
        """Run every step in order; stop at the first failure (the error propagates after its outcome line)."""
        if dry_run:
            return self.preview(plan)
        ctx = Context(self.session, self.reporter, self.namespace)
        outcomes: list[Outcome] = []
        for index, step in enumerate(plan, start=1):
            if headers:
                self.reporter.header(f"[{index}/{len(plan)}] {step.source}")
            start = time.monotonic()
            try:
                resolved = step.resolve(self._values(), GRAMMAR)
                done = directive_for(step).run(resolved, ctx)
            except KeyboardInterrupt:
                self.reporter.info(f"  interrupted after {time.monotonic() - start:.1f} s")
                raise
            except DarknetMagicsError:
                if headers:
                    self.reporter.info(f"  failed after {time.monotonic() - start:.1f} s")
                raise
            seconds = time.monotonic() - start
            if headers:
                self.reporter.info(f"  done in {_fmt_seconds(seconds)}" + (f": {done.summary}" if done.summary else ""))
            elif done.summary:
                self.reporter.info(done.summary)
            outcomes.append(Outcome(step, StepStatus.DONE, seconds, done.summary, done.result))
        return outcomes

    def run_step(self, step: Step) -> Any:
        """Run one `%yolo` step without the plan header; returns its result (a run, a dataframe, ...)."""
        outcomes = self.run_plan(Plan((step,)), headers=False)
        return outcomes[0].result if outcomes else None

    def preview(self, plan: Plan) -> list[Outcome]:
        """Print what each step would do (commands, file edits) and run nothing.

        The previews work on a simulated copy of the session, so later lines show the paths earlier ones make.
        """
        ctx = Context(self.session.simulation(), self.reporter, dict(self.namespace), dry_run=True)
        outcomes = []
        for index, step in enumerate(plan, start=1):
            self.reporter.header(f"[{index}/{len(plan)}] {step.source}")
            resolved = step.resolve(self._values(ctx.session), GRAMMAR)
            lines = directive_for(step).preview(resolved, ctx)
            for line in lines:
                self.reporter.info("  " + line)
            outcomes.append(Outcome(step, StepStatus.PLANNED, 0.0, "; ".join(lines)))
        self.reporter.info("(dry run: nothing was run)")
        self.simulated = ctx.session  # what the plan would establish (the tests hold it against a real run)
        return outcomes

    def _values(self, session: Optional[Session] = None) -> dict[str, Any]:
        python = {k: v for k, v in self.namespace.items()
                  if not k.startswith("_") and isinstance(v, (str, int, float, Path)) and not isinstance(v, bool)}
        return (session or self.session).placeholder_values(python)


def _fmt_seconds(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(seconds), 60)
    return f"{minutes} min {sec} s"
