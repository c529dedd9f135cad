"""Our error types and the `Problem` record every checker and diagnoser returns.

User mistakes raise `DarknetMagicsError` (or a subclass); the magics turn it into IPython's
`UsageError` so the user sees one clear message and no traceback. Nothing here imports IPython.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional


class DarknetMagicsError(Exception):
    """Base class for every error we raise on purpose (shown without a traceback)."""

    def __init__(self, message: str, *, fix: Optional[str] = None) -> None:
        super().__init__(message)
        self.message = message
        self.fix = fix

    def __str__(self) -> str:
        if self.fix:
            return f"{self.message}\n  fix: {self.fix}"
        return self.message


class DirectiveError(DarknetMagicsError):
    """A line of a `%%darknet` cell or a `%yolo` line that cannot be parsed or validated.

    The message names the line number, the directive and what is wrong; `fix` says what to write instead.
    """

    def __init__(
        self,
        message: str,
        *,
        lineno: Optional[int] = None,
        directive: Optional[str] = None,
        source: Optional[str] = None,
        column: Optional[int] = None,
        fix: Optional[str] = None,
    ) -> None:
        super().__init__(message, fix=fix)
        self.lineno = lineno
        self.directive = directive
        self.source = source
        self.column = column

    def __str__(self) -> str:
        where = []
        if self.lineno is not None:
            where.append(f"line {self.lineno}")
        if self.directive:
            where.append(f"`{self.directive}`")
        head = (", ".join(where) + ": ") if where else ""
        text = head + self.message
        if self.source is not None:
            source, column = _window(self.source, self.column)
            text += f"\n    {source}"
            if column is not None:
                text += "\n    " + " " * column + "^"
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


_WINDOW = 100  # characters of a line an error quotes: a 200,000-character line is not echoed whole


def _window(source: str, column: Optional[int]) -> tuple[str, Optional[int]]:
    """The part of `source` around `column` that an error shows (with "..." where it was cut), and the column in it."""
    if len(source) <= _WINDOW:
        return source, column
    start = max(0, min((column or 0) - _WINDOW // 2, len(source) - _WINDOW))
    piece = source[start:start + _WINDOW]
    prefix = "..." if start else ""
    suffix = "..." if start + _WINDOW < len(source) else ""
    return prefix + piece + suffix, None if column is None else column - start + len(prefix)


class StepError(DarknetMagicsError):
    """A step ran and failed; the message is a diagnosis, `details` the evidence (e.g. first error lines)."""

    def __init__(self, message: str, *, fix: Optional[str] = None, details: Optional[str] = None,
                 problems: Optional[list["Problem"]] = None) -> None:
        super().__init__(message, fix=fix)
        self.details = details
        self.problems = list(problems or [])

    def __str__(self) -> str:
        text = super().__str__()
        for p in self.problems:  # each said once: a problem's message or fix already above is not repeated
            text += "\n  - " + p.describe(said=text)
        if self.details:
            text += "\n" + self.details
        return text


Severity = Literal["error", "warning", "info"]


@dataclass(frozen=True)
class Problem:
    """One finding: a diagnosis of darknet's output, a dataset/cfg check result, a build failure.

    `code` is a stable identifier (e.g. ``"missing-file"``, ``"cuda-oom"``, ``"filters-mismatch"``) that the
    docs' troubleshooting page lists; `message` says what is wrong, `fix` what to do about it.
    """

    code: str
    message: str
    fix: str = ""
    severity: Severity = "error"
    file: Optional[str] = None
    line: Optional[int] = None
    iteration: Optional[int] = None
    evidence: Optional[str] = None

    def describe(self, said: str = "") -> str:
        """One line: severity, code, where, message and fix; the message and the fix are left out where `said`
        (the text this line follows) already has them."""
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        elif self.iteration is not None:
            where = f"iteration {self.iteration}: "
        # The code names the section of docs/troubleshooting.md that explains it.
        text = f"[{self.severity}: {self.code}] "
        text += where + self.message if not (said and self.message in said) else where.removesuffix(": ")
        text = text.rstrip()
        if self.fix and not (said and self.fix in said):
            text += f" (fix: {self.fix})"
        return text
