"""Whole darknet logs -> dataframes: `parse_log`, above both the parser and the history (no import cycle).

`darknet_magics.parse_log` and `darknet_magics.output.logparse.parse_log` are this function.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Union

from .history import History, TrainingLog
from .logparse import LogParser

__all__ = ["parse_log"]


def parse_log(source: Union[str, Path, Iterable[Union[str, bytes]]], flavor: Optional[str] = None) -> TrainingLog:
    """Parse a whole darknet log into dataframes.

    Args:
        source: a path (str or Path of an existing file), the log text itself, or an iterable of lines/chunks
            (str or bytes).
        flavor: force a flavor instead of detecting it.

    Returns:
        A `TrainingLog` with the ``iterations``, ``maps``, ``class_ap``, ``weights`` and ``problems`` frames. A log
        that holds several sessions (a resumed run appended to its log) is stitched as the live run was: a later
        session starting at iteration k supersedes the earlier rows from k on.
    """
    history = History()
    # the columnar fast path: iteration rows never become event objects
    parser = LogParser(flavor, iteration_sink=history.iteration_sink())
    for chunk in _chunks(source):
        history.add(parser.feed(chunk))
    history.add(parser.close())
    return history.to_log(parser.flavor)


def _chunks(source: Union[str, Path, Iterable[Union[str, bytes]]]) -> Iterable[Union[str, bytes]]:
    if isinstance(source, Path) or (isinstance(source, str) and "\n" not in source and len(source) < 4096
                                     and _is_file(source)):
        # bytes, decoded by the parser with errors="replace": a log with garbage in it still parses
        with open(source, "rb") as f:
            while True:
                block = f.read(4 << 20)  # 4 MiB: the parser's scan size (bounded memory)
                if not block:
                    return
                yield block
    elif isinstance(source, (str, bytes, bytearray)):
        # 1 MiB slices, as a stream would come: measurably faster than one giant buffer (cache-friendly), and the
        # same code path as a live run
        step = 1 << 20
        for i in range(0, len(source), step):
            yield source[i:i + step]
    else:
        yield from _batched(source)


def _is_file(s: str) -> bool:
    try:
        return Path(s).is_file()
    except (OSError, ValueError):
        return False


def _batched(items: Iterable[Union[str, bytes]], size: int = 8 << 20) -> Iterable[Union[str, bytes]]:
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
