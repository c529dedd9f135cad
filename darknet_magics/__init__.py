"""darknet_magics: `%%darknet` and `%yolo`, IPython magics to set up, build and train Darknet YOLO detectors.

Load it in a notebook with ``%load_ext darknet_magics``. The pure parts are usable from plain Python too::

    from darknet_magics import parse_log
    log = parse_log("train.log")
    log.iterations.plot(x="iteration", y="avg_loss")

Imports here stay light: IPython, pandas and plotly are imported only when used.
"""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["load_ipython_extension", "unload_ipython_extension", "parse_log", "LogParser", "__version__"]


def load_ipython_extension(ipython: Any) -> None:
    """Called by ``%load_ext darknet_magics``: registers `%%darknet` and `%yolo`."""
    from .magics import register

    register(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """Called by ``%unload_ext darknet_magics``: removes the magics again."""
    from .magics import unregister

    unregister(ipython)


def __getattr__(name: str) -> Any:
    # Lazy public API: `from darknet_magics import parse_log` imports the parser (and pandas) only then.
    if name == "parse_log":
        from .output.logs import parse_log

        return parse_log
    if name == "TrainingLog":
        from .output.history import TrainingLog

        return TrainingLog
    if name == "LogParser":
        from .output.logparse import LogParser

        return LogParser
    raise AttributeError(f"module 'darknet_magics' has no attribute {name!r}")
