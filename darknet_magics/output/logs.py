"""The one whole-log reader: a darknet log (a file, a byte range of one, its text, or chunks) -> `ParsedLog`.

Every place that reads a whole log calls `read_log`: `parse_log` (its dataframes: the public
``darknet_magics.parse_log``), `%yolo log` and a run loaded without its history (`train.runs.history_from_log`),
and a re-attached background run rebuilding its earlier sessions (a byte range per session). Above both the parser
and the history (no import cycle). A live run feeds a `LogParser` itself.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional, Union

from ..errors import DarknetMagicsError, Problem
from .history import History, TrainingLog
from .logparse import LogParser

__all__ = ["ParsedLog", "read_log", "parse_log"]

Source = Union[str, Path, bytes, bytearray, Iterable[Union[str, bytes]]]
_BLOCK = 4 << 20  # bytes read at a time: the parser's scan size (bounded memory)
_SLICE = 1 << 20  # text fed at a time: cache-friendly, and the same code path as a live run's chunks


@dataclass(frozen=True)
class ParsedLog:
    """A whole log, read.

    Attributes:
        history: its events (iterations column by column), stitched across the sessions it holds.
        flavor: the darknet flavor, as given or as the output told it (None: it did not say).
        last_iteration: the last training iteration printed (None before any).
        unfinished: a problem whose location line came with no message before the log ended (a library's
            failure darknet printed only the place of; `LineDiagnoser.unfinished`), or None.
    """

    history: History
    flavor: Optional[str]
    last_iteration: Optional[int]
    unfinished: Optional[Problem] = None

    def frames(self) -> TrainingLog:
        """The dataframes (``iterations``, ``maps``, ``class_ap``, ``weights``, ``problems``)."""
        return self.history.to_log(self.flavor)


def read_log(source: Source, *, flavor: Optional[str] = None, data_paths: Optional[Iterable[str]] = None,
             start: int = 0, stop: Optional[int] = None) -> ParsedLog:
    """Read a whole darknet log.

    Args:
        source: a path (a `Path`, or a str naming an existing file), the log text or bytes, or an iterable of
            chunks or of lines (str or bytes; lines without their endings get one).
        flavor: force a flavor instead of detecting it.
        data_paths: the paths obj.data names (to diagnose one darknet read with its spaces stripped).
        start, stop: the byte range of a file to read (one session of a run's log); a file only.

    Returns:
        The `ParsedLog`. A log that holds several sessions (a resumed run appended to its log) is stitched as the
        live run was: a later session starting at iteration k supersedes the earlier rows from k on.

    Raises:
        DarknetMagicsError: a path that is no readable file, or a byte range that is not one.
    """
    history = History()
    # the columnar fast path: iteration rows never become event objects
    parser = LogParser(flavor, data_paths=data_paths, iteration_sink=history.iteration_sink())
    for chunk in _chunks(source, start, stop):
        history.add(parser.feed(chunk))
    history.add(parser.close())
    return ParsedLog(history, parser.flavor, parser.iteration, parser.diagnoser.unfinished(parser.iteration))


def parse_log(source: Source, flavor: Optional[str] = None) -> TrainingLog:
    """Parse a whole darknet log into dataframes: ``read_log(source, flavor=flavor).frames()``.

    Args:
        source: a path (str or Path of an existing file), the log text itself, or an iterable of lines/chunks
            (str or bytes).
        flavor: force a flavor instead of detecting it.

    Returns:
        A `TrainingLog` with the ``iterations``, ``maps``, ``class_ap``, ``weights`` and ``problems`` frames.
    """
    return read_log(source, flavor=flavor).frames()


def _chunks(source: Source, start: int, stop: Optional[int]) -> Iterator[Union[str, bytes]]:
    path = _path_of(source)
    if path is not None:
        yield from _file_blocks(path, start, stop)
        return
    if start or stop is not None:
        raise DarknetMagicsError("a byte range (start/stop) can only be read from a log file",
                                 fix="pass the log's path, or slice the text yourself")
    if isinstance(source, (str, bytes, bytearray)):
        for i in range(0, len(source), _SLICE):
            yield source[i:i + _SLICE]
    else:
        yield from _batched(source)


def _path_of(source: Source) -> Optional[Path]:
    """The file `source` names, or None when it is the log itself (text, bytes, chunks)."""
    if isinstance(source, Path):
        return source
    if isinstance(source, str) and "\n" not in source and len(source) < 4096:
        if _is_file(source):
            return Path(source)
        if source.strip().endswith((".log", ".txt")):  # a path, not a one-line log: never parse its name
            raise DarknetMagicsError(f"no darknet log at {source}",
                                     fix="check the path; to parse text, pass the text itself (with its newlines)")
    return None


def _file_blocks(path: Path, start: int, stop: Optional[int]) -> Iterator[bytes]:
    """The bytes of path[start:stop] in `_BLOCK`s, decoded by the parser (errors="replace": a log with garbage in
    it still parses)."""
    if isinstance(start, bool) or not isinstance(start, int) or start < 0 or (
            stop is not None and (isinstance(stop, bool) or not isinstance(stop, int) or stop < start)):
        raise DarknetMagicsError(f"{path}: no byte range {start!r}..{stop!r} (start >= 0, stop >= start)",
                                 fix="give the offsets run.json records for the session")
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DarknetMagicsError(f"cannot read the darknet log {path}: {e.strerror or e}",
                                 fix="check the path (a log file, not a folder) and that it is readable") from None
    with f:
        f.seek(start)
        left = None if stop is None else stop - start
        while left is None or left > 0:
            block = f.read(_BLOCK if left is None else min(_BLOCK, left))
            if not block:
                return
            if left is not None:
                left -= len(block)
            yield block


def _is_file(s: str) -> bool:
    try:
        return Path(s).is_file()
    except (OSError, ValueError):
        return False


def _batched(items: Iterable[Union[str, bytes]], size: int = 8 << 20) -> Iterator[Union[str, bytes]]:
    """Join many small pieces into big chunks (one feed per line is slow).

    Pieces are taken as chunks of the stream (a file object's lines keep their endings) unless the first one has
    no line break at all: then they are lines without endings (``text.splitlines()``) and get a newline each.
    """
    parts: list = []
    n = 0
    kind = None
    add_newline: Optional[bool] = None
    for item in items:
        if kind is not None and type(item) is not kind:
            yield ("" if kind is str else b"").join(parts)
            parts, n = [], 0
        kind = type(item)
        nl = "\n" if kind is str else b"\n"
        if add_newline is None:
            add_newline = nl not in item and not item.endswith("\r" if kind is str else b"\r")
        if add_newline:
            item = item + nl
        parts.append(item)
        n += len(item)
        if n >= size:
            yield ("" if kind is str else b"").join(parts)
            parts, n = [], 0
    if parts:
        yield ("" if kind is str else b"").join(parts)
