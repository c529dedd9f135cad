"""Strict readers of the small JSON files a run folder holds (run.json, keeper.json, follower.json).

A run folder may come from someone else's Drive: its files are data, never trusted. `load_json` refuses broken
UTF-8, non-finite numbers (``NaN``, ``Infinity``, ``1e999``), deep nesting and oversized files; `Fields` reads one
object's values by type and refuses control characters in strings. Every refusal is a `RecordError` naming the
file and the line. Pure but for the one read; imported by the keeper, so it imports nothing heavy.
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Optional

from .errors import DarknetMagicsError, Problem

__all__ = ["RecordError", "load_json", "parse_json", "Fields", "MAX_BYTES", "MAX_DEPTH"]

MAX_BYTES = 4 << 20  # a run.json of 1,000 sessions is ~1 MB; more is not ours
MAX_DEPTH = 8        # our files nest 4 deep at most
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")  # \t and \n are checked per field
_LINE_BREAKS = re.compile(r"[\t\n]")


class RecordError(DarknetMagicsError):
    """A run folder's file that cannot be read as ours: `file` and `line` say where."""

    def __init__(self, file: Path | str, line: Optional[int], what: str, *, fix: Optional[str] = None) -> None:
        self.file, self.line, self.what = str(file), line, what
        where = self.file + (f":{line}" if line else "")
        fix = fix or ("this file was not written by darknet_magics as it is now (damaged, or edited): restore it, "
                      "or remove the run folder")
        super().__init__(f"{where}: {what}", fix=fix)
        self.problem = Problem("run-record-damaged", what, fix=fix, file=self.file, line=line)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows here")


def parse_json(data: bytes, file: Path | str) -> Any:
    """`data` as JSON, refusing what our writers never write; a RecordError names the file and the line."""
    if len(data) > MAX_BYTES:
        raise RecordError(file, None, f"{len(data):,} bytes: larger than any file of ours ({MAX_BYTES:,} at most)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordError(file, data[:exc.start].count(b"\n") + 1, f"not UTF-8 (byte {exc.start})") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise RecordError(file, exc.lineno, f"not JSON: {exc.msg} (column {exc.colno})") from None
    except ValueError as exc:
        raise RecordError(file, None, str(exc)) from None
    except RecursionError:
        raise RecordError(file, None, f"nested deeper than {MAX_DEPTH} levels") from None
    _check_tree(value, file, text)
    return value


def load_json(path: Path) -> tuple[Any, str]:
    """Read and parse `path` (see `parse_json`): (value, text). OSError passes through (the caller knows what a
    missing file means); a folder where the file should be is a RecordError."""
    if Path(path).is_dir():
        raise RecordError(path, None, "a folder, not a file")
    with open(path, "rb") as handle:
        data = handle.read(MAX_BYTES + 1)
    return parse_json(data, path), data.decode("utf-8")


def line_of(text: str, key: str) -> Optional[int]:
    """The line where ``"key"`` first appears in `text` (for a message), or None."""
    at = text.find(json.dumps(key))
    return text.count("\n", 0, at) + 1 if at >= 0 else None


def _check_tree(value: Any, file: Path | str, text: str) -> None:
    """Depth, finite numbers and control characters, without recursion (a deep file must not crash the check)."""
    stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while stack:
        item, depth, key = stack.pop()
        if depth > MAX_DEPTH:
            raise RecordError(file, line_of(text, key) if key else None, f"nested deeper than {MAX_DEPTH} levels")
        if isinstance(item, float) and not math.isfinite(item):
            raise RecordError(file, line_of(text, key), f"{key or 'a value'}: {item} is not a finite number")
        if isinstance(item, dict):
            for k, v in item.items():
                if _CONTROL.search(k):
                    raise RecordError(file, None, f"a key with a control character: {k!r}")
                stack.append((v, depth + 1, k))
        elif isinstance(item, list):
            stack.extend((v, depth + 1, key) for v in item)
        elif isinstance(item, str) and _CONTROL.search(item):
            raise RecordError(file, line_of(text, key), f"{key or 'a string'}: a control character in {item[:80]!r}")


class Fields:
    """One JSON object's values, read by type; a wrong type is a RecordError naming the file, line and key."""

    def __init__(self, obj: Any, file: Path | str, what: str = "the file", text: str = "") -> None:
        if not isinstance(obj, dict):
            raise RecordError(file, line_of(text, what) if text else 1,
                              f"{what} is a JSON {type(obj).__name__}, not an object")
        self.obj, self.file, self.text = obj, file, text

    def fail(self, key: str, what: str) -> RecordError:
        return RecordError(self.file, line_of(self.text, key) if self.text else None, f"{key}: {what}")

    def unknown(self, known: set[str]) -> None:
        """Refuse keys we never write (a newer or foreign file: its meaning is not ours to guess)."""
        extra = sorted(set(self.obj) - known)
        if extra:
            raise self.fail(extra[0], f"a key darknet_magics does not write (known: {', '.join(sorted(known))})")

    def str_(self, key: str, default: Optional[str] = None, *, lines: bool = False) -> Optional[str]:
        """A string or None; `lines` allows tabs and newlines (messages), else they are refused too."""
        value = self.obj.get(key, default)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(key, f"a string expected, got {type(value).__name__}")
        if not lines and _LINE_BREAKS.search(value):
            raise self.fail(key, f"a line break or tab in {value[:80]!r}")
        return value

    def int_(self, key: str, default: Optional[int] = None, *, low: int = 0) -> Optional[int]:
        value = self.obj.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < low or value > (1 << 62):
            raise self.fail(key, f"an integer >= {low} expected, got {value!r:.80}")
        return value

    def number(self, key: str, default: Optional[float] = None) -> Optional[float]:
        value = self.obj.get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(key, f"a finite number expected, got {value!r:.80}")
        return float(value)

    def bool_(self, key: str, default: bool = False) -> bool:
        value = self.obj.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"true or false expected, got {value!r:.80}")
        return value

    def strs(self, key: str, *, limit: int = 256, lines: bool = False) -> tuple[str, ...]:
        value = self.obj.get(key) or []
        if not isinstance(value, list) or len(value) > limit or not all(isinstance(v, str) for v in value):
            raise self.fail(key, f"a list of at most {limit} strings expected")
        for v in value:
            if not lines and _LINE_BREAKS.search(v):
                raise self.fail(key, f"a line break or tab in {v[:80]!r}")
        return tuple(value)

    def obj_(self, key: str) -> Optional["Fields"]:
        value = self.obj.get(key)
        if value is None:
            return None
        return Fields(value, self.file, key, self.text)

    def objs(self, key: str, *, limit: int = 10000) -> list["Fields"]:
        value = self.obj.get(key) or []
        if not isinstance(value, list) or len(value) > limit:
            raise self.fail(key, f"a list of at most {limit} objects expected")
        return [Fields(v, self.file, key, self.text) for v in value]
