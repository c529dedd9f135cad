"""A `Reporter` for notebooks: text goes to the cell's stdout, progress and live output update in place.

Each in-place region is one `IPython.display` handle (``display(..., display_id=True)`` then ``.update``), never
`clear_output`, which would wipe the whole cell. The live chart arrives as mime bundles (`display`): its host once,
then a small feed script replaced on every update, then the finished chart (view/renderer.py). Updates are
throttled: a training run can report far more often than a browser wants to redraw.

`CellReporter` is the same sink for a background thread: ipykernel routes every output by the parent header of
the message being executed, so output from a thread would land in whatever cell runs *now*. A `CellReporter`
captures the parent message of the cell that created it and sends every message (stream, display_data,
update_display_data) on the kernel's IOPub socket with that parent, so a background training run keeps
updating its own cell while other cells run.
"""
from __future__ import annotations

import sys
import threading
import time
import uuid
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

    def html(self, key: str, html: str, text: str = "", *, final: bool = True) -> None:
        obj = _Rich(html, text)
        handle = self._handles.get(key)
        if handle is None:
            self._handles[key] = display(obj, display_id=True)
        else:
            handle.update(obj)

    def display(self, key: str, bundle: dict, text: str = "") -> None:
        """A raw mime bundle identified by `key`, updated in place on the next call with the same key."""
        handle = self._handles.get(key)
        if handle is None:
            self._handles[key] = display(bundle, raw=True, display_id=True)
        else:
            handle.update(bundle, raw=True)

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


class CellReporter(NotebookReporter):
    """A `NotebookReporter` whose output always goes to the cell that created it, from any thread.

    Create it in the cell (the main thread, while that cell executes); hand it to a background thread. Outside an
    ipykernel (terminal IPython) it behaves as a `NotebookReporter`.
    """

    def __init__(self, min_interval: float = 0.25) -> None:
        super().__init__(min_interval)
        self._lock = threading.Lock()
        self._ids: dict[str, str] = {}
        self._progress_id: Optional[str] = None
        self.kernel, self.parent = _kernel_and_parent()

    @property
    def attached(self) -> bool:
        """True when output is sent with the creating cell's parent header (inside an ipykernel)."""
        return self.kernel is not None and self.parent is not None

    def _send(self, msg_type: str, content: dict) -> None:
        kernel = self.kernel
        with self._lock:  # the IOPub socket is thread-safe; the lock keeps our own messages in order
            kernel.session.send(kernel.iopub_socket, msg_type, content, parent=self.parent,
                                ident=msg_type.encode() if msg_type != "stream" else b"stream.stdout")

    def _stream(self, text: str, name: str = "stdout") -> None:
        self._send("stream", {"name": name, "text": text})

    def _show(self, key: Optional[str], bundle: dict) -> None:
        display_id = self._ids.get(key) if key is not None else None
        new = display_id is None
        if new:
            display_id = uuid.uuid4().hex
            if key is not None:
                self._ids[key] = display_id
        self._send("display_data" if new else "update_display_data",
                   {"data": bundle, "metadata": {}, "transient": {"display_id": display_id}})

    def header(self, text: str) -> None:
        self.info(text)

    def info(self, text: str) -> None:
        if not self.attached:
            return super().info(text)
        self._close_progress()
        self._stream(text + "\n")

    def warn(self, text: str) -> None:
        if not self.attached:
            return super().warn(text)
        self._close_progress()
        self._stream("warning: " + text + "\n", "stderr")

    def progress(self, text: str, *, final: bool = False) -> None:
        if not self.attached:
            return super().progress(text, final=final)
        now = time.monotonic()
        if not final and now - self._last_progress < self.min_interval:
            self._pending = text
            return
        self._last_progress, self._pending = now, None
        if self._progress_id is None:
            self._progress_id = "progress:" + uuid.uuid4().hex
        self._show(self._progress_id, {"text/plain": text})
        if final:
            self._progress_id = None

    def _close_progress(self) -> None:
        if not self.attached:
            return super()._close_progress()
        if self._pending is not None and self._progress_id is not None:
            self._show(self._progress_id, {"text/plain": self._pending})
        self._pending, self._progress_id = None, None

    def table(self, rows: Sequence[tuple[str, str]], title: Optional[str] = None) -> None:
        if not self.attached:
            return super().table(rows, title)
        width = max((len(k) for k, _ in rows), default=0)
        self.info((title + "\n" if title else "") + "\n".join(f"  {k.ljust(width)}  {v}" for k, v in rows))

    def html(self, key: str, html: str, text: str = "", *, final: bool = True) -> None:
        if not self.attached:
            return super().html(key, html, text, final=final)
        self._show(key, {"text/html": html, "text/plain": text or "<live training view>"})

    def display(self, key: str, bundle: dict, text: str = "") -> None:
        if not self.attached:
            return super().display(key, bundle, text)
        self._show(key, bundle)

    def image(self, path: str) -> None:
        if not self.attached:
            return super().image(path)
        self._close_progress()
        self._show(None, _format(Image(filename=path)))

    def dataframe(self, df: Any, title: Optional[str] = None) -> None:
        if not self.attached:
            return super().dataframe(df, title)
        if title:
            self.info(title)
        self._show(None, _format(df))


def _format(obj: Any) -> dict:
    from IPython import get_ipython

    data, _ = get_ipython().display_formatter.format(obj)
    return data


def _kernel_and_parent() -> tuple[Any, Optional[dict]]:
    """The running ipykernel and the parent message of the cell now executing, or (None, None)."""
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython is a dependency
        return None, None
    shell = get_ipython()
    kernel = getattr(shell, "kernel", None)
    if kernel is None or not hasattr(kernel, "session") or not hasattr(kernel, "iopub_socket"):
        return None, None
    get_parent = getattr(kernel, "get_parent", None)
    parent = None
    if callable(get_parent):
        try:
            parent = get_parent("shell")
        except TypeError:  # ipykernel 6.0-6.x without a channel argument
            parent = get_parent()
    if not parent:
        parent = getattr(kernel, "_parent_header", None) or getattr(shell, "parent_header", None)
    return kernel, (dict(parent) if parent else None)
