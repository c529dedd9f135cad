"""Which darknet: find the binary, guess its flavor, check the files it is given, and quote its last words.

Shared by training runs and by `%yolo test` / `%yolo map`.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Optional

from .errors import Problem, StepError

_flavor_cache: dict[tuple[str, float], Optional[str]] = {}


def darknet_flavor(binary: Path | str) -> Optional[str]:
    """'pjreddie', 'alexeyab' or 'hank-ai', guessed from the binary's bytes; None if it cannot be read.

    AlexeyAB's and hank-ai's binaries know ``-dont_show`` (hank-ai's CLI links ``libdarknet.so``, where the
    option lives); pjreddie's does not, and treats an unknown ``-dont_show`` after the cfg as the weights file.
    """
    path = Path(binary)
    try:
        key = (str(path.resolve()), path.stat().st_mtime)
    except OSError:
        return None
    if key in _flavor_cache:
        return _flavor_cache[key]
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"libdarknet" in data or b"Hank.ai" in data or b"hank-ai" in data or b"darknet_cli" in data:
        flavor: Optional[str] = "hank-ai"
    elif b"dont_show" in data:
        flavor = "alexeyab"
    else:
        flavor = "pjreddie"
    _flavor_cache[key] = flavor
    return flavor


def resolve_darknet(darknet: Path | str) -> Path:
    """The binary as a path: a bare name is looked up on PATH; a missing one is a StepError with the fix."""
    text = str(darknet)
    if os.sep not in text:
        found = shutil.which(text)
        if found:
            return Path(found)
    path = Path(text).expanduser()
    if not path.exists():
        raise StepError(f"the darknet binary {text} does not exist",
                        fix="build it with `make` in a %%darknet cell, or give bin=PATH",
                        problems=[Problem("missing-file", f"darknet binary not found: {text}", file=text)])
    return path.resolve()


def require_file(path: Optional[Path], what: str) -> Optional[Path]:
    """`path` resolved, or a StepError naming the missing `what` (data, cfg, weights, image) and its fix."""
    if path is None:
        return None
    path = Path(path).expanduser()
    if not path.is_file():
        fix = {"data": "write it with `%yolo data`", "cfg": "write it with `%yolo cfg`",
               "weights": "fetch it with `weights NAME` in a %%darknet cell, or leave WEIGHTS out"}.get(what, "")
        raise StepError(f"the {what} file {path} does not exist", fix=fix,
                        problems=[Problem("missing-file", f"{what} file not found: {path}", fix=fix, file=str(path))])
    # abspath, not resolve(): darknet must get the space-free link `drive` made, not the spaced path behind it
    return Path(os.path.abspath(path))


def last_output(text: str, lines: int = 12) -> str:
    """The last `lines` non-empty lines of darknet's output, escapes removed, for an error's evidence."""
    from .live import _ANSI

    clean = [ln.rstrip("\r") for ln in _ANSI.sub("", text).replace("\r\n", "\n").split("\n")]
    clean = [ln.rsplit("\r", 1)[-1] for ln in clean if ln.strip()]
    return "last output:\n    " + "\n    ".join(clean[-lines:]) if clean else ""
