"""What the directives established in one kernel, typed, and the `Context` a directive runs in.

`Session` holds each thing a directive makes (the drive, the workspace, the darknet source and binary, the staged
dataset, the weights, the runtime probe, the training runs) as a typed field; the ``{placeholders}`` are derived
from those fields, never stored beside them. Values of ``set`` live apart in `user_values`, and the parser refuses
``set`` for a name the session owns, so ``set bin=...`` cannot silently change what ``make`` and ``train`` use.
A dry run works on `Session.simulation()`, a copy whose fields the previews fill with what the steps would make.
"""
from __future__ import annotations

import copy
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, MutableMapping, Optional

from .setup.runtime import RuntimeInfo, probe_runtime
from .errors import StepError
from .report import Reporter

if TYPE_CHECKING:  # the rich results; only for annotations (those modules do not import this one)
    from .setup.build import BuildResult
    from .setup.clone import CloneResult
    from .setup.drive import DriveInfo
    from .language import Step
    from .train.runs import TrainingRun

__all__ = ["Session", "Context", "Done", "DEFAULT_RUN_NAME"]

DEFAULT_RUN_NAME = "yolo_run"


@dataclass
class Session:
    """What earlier directives established, kept across the cells of one kernel by the magics instance."""

    platform: str = "terminal"
    # the paths behind the placeholders
    drive_root: Optional[Path] = None  # {drive}: the drive's space-free root
    workspace: Optional[Path] = None  # {workspace}
    darknet_dir: Optional[Path] = None  # {darknet}: the source folder
    binary: Optional[Path] = None  # {bin}: the binary the last `make` made
    dataset: Optional[Path] = None  # {dataset}: the last staged dataset
    weights: Optional[Path] = None  # {weights}: the last fetched weights
    # what the steps returned, for the steps after them
    drive: Optional["DriveInfo"] = None
    clone: Optional["CloneResult"] = None
    build: Optional["BuildResult"] = None
    runtime: Optional[RuntimeInfo] = None
    runs: dict[str, "TrainingRun"] = field(default_factory=dict)
    last_run: Optional[str] = None
    user_values: dict[str, str] = field(default_factory=dict)  # `set NAME=VALUE`

    _PLACEHOLDERS = {"drive": "drive_root", "workspace": "workspace", "darknet": "darknet_dir", "bin": "binary",
                     "dataset": "dataset", "weights": "weights"}

    def local(self) -> Path:
        """Fast local disk: /content in Colab (what survives until the VM goes), else the working folder."""
        return Path("/content") if self.platform == "colab" else Path.cwd()

    def builtins(self) -> dict[str, str]:
        """Placeholders that always have a value: fast local disk, the working folder, home."""
        return {"local": str(self.local()), "cwd": os.getcwd(), "home": str(Path.home())}

    def established(self) -> dict[str, str]:
        """The placeholders the directives gave values to so far."""
        out = {}
        for name, attr in self._PLACEHOLDERS.items():
            value = getattr(self, attr)
            if value is not None:
                out[name] = str(value)
        return out

    def placeholder_values(self, python: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """Every value a ``{name}`` can take: Python variables, then `set` values, then the session's own."""
        values: dict[str, Any] = dict(python or {})
        values.update(self.user_values)
        values.update(self.builtins())
        values.update(self.established())
        return values

    def known(self) -> set[str]:
        """Names the parser accepts as set already (placeholders of later lines are checked against these)."""
        return set(self.established()) | set(self.user_values) | set(self.builtins())

    def simulation(self) -> "Session":
        """A copy for a dry run: previews set its fields, the real session stays as it is (runs are shared)."""
        twin = copy.copy(self)
        twin.user_values = dict(self.user_values)
        return twin


@dataclass(frozen=True)
class Done:
    """What a directive's run returns: a one-line summary and its result (bound with ``as NAME``)."""

    summary: str
    result: Any = None


@dataclass
class Context:
    """What a directive's `run` and `preview` get: the session, where to report, and the user's namespace."""

    session: Session
    reporter: Reporter
    namespace: MutableMapping[str, Any] = field(default_factory=dict)
    dry_run: bool = False

    def path(self, text: str | Path) -> Path:
        """Absolute (darknet may run in another folder) but not resolved: a space-free alias must stay one."""
        return Path(os.path.abspath(os.path.expanduser(str(text))))

    def local(self) -> Path:
        return self.session.local()

    def output(self, text: str | Path, what: str = "the file to write", step: Optional["Step"] = None) -> Path:
        """`path` for a file a step writes, checked before anything is written: an existing file where its folder
        should be, a read-only folder (or disk), or a folder where the file should be, is a clear error instead of
        NotADirectoryError/PermissionError later. With `step`, the error names its line and directive."""
        path = self.path(text)

        def refuse(message: str, fix: str) -> None:
            if step is not None:
                raise step.error(message, fix)
            raise StepError(message, fix=fix)

        for parent in [path.parent, *path.parent.parents]:
            if parent.exists():
                if not parent.is_dir():
                    refuse(f"{what} {path} cannot be written: {parent} is a file, not a folder",
                           "give a path inside a folder (or remove that file)")
                # access() says EROFS for a read-only disk even to root, and the mode bits to everyone else
                elif not os.access(parent, os.W_OK | os.X_OK):
                    refuse(f"{what} {path} cannot be written: {parent} is read-only",
                           f"give a path in a writable folder (e.g. {{workspace}}/{path.name}), or make {parent} "
                           "writable")
                break
        if path.is_dir():
            refuse(f"{what} {path} is a folder", "give a file name, e.g. .../obj.data")
        return path

    def workspace(self, what: str) -> Path:
        """The workspace, or a StepError saying that `what` needs one."""
        if self.session.workspace is None:
            raise StepError(f"{what} needs a workspace", fix="add a `workspace PATH` (or `drive`) line first")
        return self.session.workspace

    def runtime(self) -> RuntimeInfo:
        """The runtime probe, made once per session (`runtime` and `cudnn` refresh it)."""
        if self.session.runtime is None:
            self.session.runtime = probe_runtime()
        return self.session.runtime

    def darknet_binary(self, step: "Step") -> Path:
        """``bin=``, else the binary the last `make` produced, else `darknet` on PATH."""
        if step.get("bin"):
            return self.path(step.get("bin"))
        if self.session.binary is not None:
            return self.session.binary
        found = shutil.which("darknet")
        if found:
            return Path(found)
        raise StepError("no darknet binary: no `make` ran in this session and `darknet` is not on PATH",
                        fix="run `clone` and `make` in a %%darknet cell, or pass bin=/path/to/darknet")

    def bind(self, step: "Step", value: Any, default: Optional[str] = None) -> Optional[str]:
        """Put `value` into the user's namespace under ``as NAME`` (or `default`); returns the name used."""
        name = step.as_name or default
        if name:
            self.namespace[name] = value
        return name
