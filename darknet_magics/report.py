"""Where steps say what they are doing: a small sink interface, and its terminal and in-memory forms.

Steps (environment, build, datasets, training) never print or import IPython; they call a `Reporter`.
The notebook face (`notebook.py`) gives them one that updates display handles in place; the CLI gives them
`ConsoleReporter`; tests use `RecordingReporter` to read back what a user would have seen.
"""
from __future__ import annotations

import sys
import time
from typing import Any, Optional, Sequence, TextIO


class Reporter:
    """The sink interface. Every method has a harmless default so a sink overrides only what it shows."""

    def header(self, text: str) -> None:
        """A step starts (e.g. ``[3/7] make GPU=1 ...``)."""
        self.info(text)

    def info(self, text: str) -> None:
        """A line of plain output."""

    def warn(self, text: str) -> None:
        """Something the user must know that does not stop the step."""
        self.info("warning: " + text)

    def progress(self, text: str, *, final: bool = False) -> None:
        """A status line that replaces the previous one in place (build, copy, download progress).

        Callers may call this often; sinks throttle. ``final=True`` is always shown.
        """

    def table(self, rows: Sequence[tuple[str, str]], title: Optional[str] = None) -> None:
        """Key/value rows (the runtime report)."""
        if title:
            self.info(title)
        width = max((len(k) for k, _ in rows), default=0)
        for key, value in rows:
            self.info(f"  {key.ljust(width)}  {value}")

    def html(self, key: str, html: str, text: str = "", *, final: bool = True) -> None:
        """Rich output identified by `key`, updated in place on the next call with the same key.

        Terminal sinks show `text` (a plain summary) instead: as a throttled status line while the output is
        updated often (`final=False`, the live chart), always for a finished one (a figure's summary line must
        not be the one the throttle drops).
        """
        if text:
            self.progress(text, final=final)

    def image(self, path: str) -> None:
        """Show an image file (predictions.jpg)."""
        self.info(f"image: {path}")

    def dataframe(self, df: Any, title: Optional[str] = None) -> None:
        """Show a dataframe."""
        if title:
            self.info(title)
        self.info(df.to_string())


class ConsoleReporter(Reporter):
    """Plain text on a stream; progress redrawn with `\\r` on a terminal, throttled lines elsewhere."""

    def __init__(self, stream: Optional[TextIO] = None, min_interval: float = 0.5) -> None:
        self.stream = stream or sys.stdout
        self.min_interval = min_interval
        self._last_progress = 0.0
        self._progress_open = False
        self._tty = bool(getattr(self.stream, "isatty", lambda: False)())

    def _end_progress(self) -> None:
        if self._progress_open:
            self.stream.write("\n")
            self._progress_open = False

    def info(self, text: str) -> None:
        self._end_progress()
        self.stream.write(text + "\n")
        self.stream.flush()

    def progress(self, text: str, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last_progress < self.min_interval:
            return
        self._last_progress = now
        if self._tty:
            self.stream.write("\r\x1b[K" + text)
            self._progress_open = True
            if final:
                self._end_progress()
        else:
            self.stream.write(text + "\n")
        self.stream.flush()


class RecordingReporter(Reporter):
    """Keeps every call as ``(kind, payload)``; used by tests and by code that wants a transcript."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def header(self, text: str) -> None:
        self.events.append(("header", text))

    def info(self, text: str) -> None:
        self.events.append(("info", text))

    def warn(self, text: str) -> None:
        self.events.append(("warn", text))

    def progress(self, text: str, *, final: bool = False) -> None:
        self.events.append(("progress", text))

    def table(self, rows: Sequence[tuple[str, str]], title: Optional[str] = None) -> None:
        self.events.append(("table", (title, list(rows))))

    def html(self, key: str, html: str, text: str = "", *, final: bool = True) -> None:
        self.events.append(("html", (key, html)))

    def image(self, path: str) -> None:
        self.events.append(("image", path))

    def dataframe(self, df: Any, title: Optional[str] = None) -> None:
        self.events.append(("dataframe", (title, df)))

    def text(self) -> str:
        """Everything textual, one line per event, as a user would read it."""
        out = []
        for kind, payload in self.events:
            if kind in ("header", "info", "progress"):
                out.append(payload)
            elif kind == "warn":
                out.append("warning: " + payload)
            elif kind == "table":
                title, rows = payload
                if title:
                    out.append(title)
                out.extend(f"{k}: {v}" for k, v in rows)
        return "\n".join(out)


class TransferProgress:
    """Copy/unpack/download progress for `reporter.progress`: formats 'verb: 1,234/20,000 files, 12.3/45.6 MB, 8.1 MB/s, ETA 0:04' lines for `reporter.progress`."""

    def __init__(self, reporter: Reporter, verb: str, total_files: int, total_bytes: int) -> None:
        self.reporter = reporter
        self.verb = verb
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.files = 0
        self.bytes = 0
        self.start = time.monotonic()
        self._last = 0.0

    def add(self, files: int = 0, nbytes: int = 0) -> None:
        self.files += files
        self.bytes += nbytes
        now = time.monotonic()
        # The sinks throttle too, but formatting 20,000 lines costs time of its own.
        if now - self._last >= 0.2:
            self._last = now
            self.reporter.progress(self.line())

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        rate = self.bytes / elapsed
        parts = [f"{self.verb}:"]
        if self.total_files:
            parts.append(f"{self.files:,}/{self.total_files:,} files,")
        parts.append(f"{_mb(self.bytes)}/{_mb(self.total_bytes)} MB," if self.total_bytes else f"{_mb(self.bytes)} MB,")
        parts.append(f"{rate / 1e6:.1f} MB/s")
        if self.total_bytes and rate > 0 and self.bytes < self.total_bytes:
            eta = int((self.total_bytes - self.bytes) / rate)
            parts.append(f", ETA {eta // 60}:{eta % 60:02d}")
        return " ".join(parts).replace(" ,", ",")

    def done(self) -> None:
        self.reporter.progress(self.line() + f" in {time.monotonic() - self.start:.1f} s", final=True)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f}"
