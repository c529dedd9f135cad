"""A `Reporter` for notebooks: text goes to the cell's stdout, progress and live output update in place.

Each in-place region is one `IPython.display` handle (``display(..., display_id=True)`` then ``.update``), never
`clear_output`, which would wipe the whole cell. Colab re-appends a plotly `Figure` that is re-displayed, so the
live chart arrives here as HTML (see live.py). Updates are throttled: a training run can report far more
often than a browser wants to redraw.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Optional, Sequence

from IPython.display import HTML, Image, display

from .report import Reporter


class NotebookReporter(Reporter):
    """Shows step output in a notebook cell (or in a terminal IPython, as text)."""

    def __init__(self, min_interval: float = 0.25) -> None:
        self.min_interval = min_interval
        self._progress_handle: Any = None
        self._last_progress = 0.0
        self._pending: Optional[str] = None
        self._handles: dict[str, Any] = {}

    def header(self, text: str) -> None:
        self._close_progress()
        print(text, flush=True)

    def info(self, text: str) -> None:
        self._close_progress()
        print(text, flush=True)

    def warn(self, text: str) -> None:
        self._close_progress()
        print("warning: " + text, file=sys.stderr, flush=True)

    def progress(self, text: str, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last_progress < self.min_interval:
            self._pending = text
            return
        self._last_progress = now
        self._pending = None
        obj = _Text(text)
        if self._progress_handle is None:
            self._progress_handle = display(obj, display_id=True)
        else:
            self._progress_handle.update(obj)
        if final:
            self._progress_handle = None

    def _close_progress(self) -> None:
        # The last throttled progress text must not be lost: show it before the next line.
        if self._pending is not None and self._progress_handle is not None:
            self._progress_handle.update(_Text(self._pending))
        self._pending = None
        self._progress_handle = None

    def table(self, rows: Sequence[tuple[str, str]], title: Optional[str] = None) -> None:
        self._close_progress()
        width = max((len(k) for k, _ in rows), default=0)
        body = "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows)
        print((title + "\n" if title else "") + body, flush=True)

    def html(self, key: str, html: str, text: str = "") -> None:
        obj = _Rich(html, text)
        handle = self._handles.get(key)
        if handle is None:
            self._handles[key] = display(obj, display_id=True)
        else:
            handle.update(obj)

    def image(self, path: str) -> None:
        self._close_progress()
        display(Image(filename=path))

    def dataframe(self, df: Any, title: Optional[str] = None) -> None:
        self._close_progress()
        if title:
            print(title, flush=True)
        display(df)


class _Text:
    """Plain text as a display object (so a handle can update it in place)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __repr__(self) -> str:
        return self.text

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        p.text(self.text)


class _Rich(HTML):
    """HTML for notebooks with a plain-text form for terminals and logs."""

    def __init__(self, html: str, text: str) -> None:
        super().__init__(html)
        self._text = text

    def __repr__(self) -> str:
        return self._text or "<live training view>"
