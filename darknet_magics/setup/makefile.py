"""Darknet's Makefile, read and patched as text (pure): the ``GPU=0``-style flags at its top and the ``ARCH=``
block. `patch_makefile` is text in, text out; `write_makefile` keeps the original as Makefile.orig.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from ..errors import DarknetMagicsError
from ..fileio import atomic_write_text

_FLAG_RE = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_]*)(?P<op>[ \t]*:?=[ \t]*)(?P<value>[01])(?P<rest>[ \t]*(?:#.*)?)$")
_ARCH_RE = re.compile(r"^ARCH[ \t]*:?=")
_ARCH_ADD_RE = re.compile(r"^ARCH[ \t]*\+=")
_COND_OPEN = re.compile(r"^\s*(ifeq|ifneq|ifdef|ifndef)\b")
_COND_CLOSE = re.compile(r"^\s*endif\b")
ARCH_DISABLED_NOTE = "  # darknet_magics: off, ARCH is set above"


def _split(text: str) -> list[tuple[str, str]]:
    """Lines as (body, line ending) so every untouched line is written back byte for byte."""
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        out.append((body, line[len(body):]))
    return out


def _scan(text: str) -> list[tuple[int, str, str, bool]]:
    """(index, body, ending, top_level) per line; continuation lines are not top level."""
    rows = []
    depth, cont = 0, False
    for i, (body, end) in enumerate(_split(text)):
        top = not cont and depth == 0 and not body.startswith("\t")
        if not cont and not body.startswith("\t"):
            if _COND_OPEN.match(body):
                depth += 1
            elif _COND_CLOSE.match(body):
                depth = max(0, depth - 1)
        rows.append((i, body, end, top))
        cont = body.endswith("\\")
    return rows


def makefile_flags(text: str) -> dict[str, int]:
    """The 0/1 switches a Makefile declares at top level, in order: {'GPU': 0, 'CUDNN': 0, ...}."""
    flags: dict[str, int] = {}
    for _, body, _, top in _scan(text):
        m = _FLAG_RE.match(body) if top else None
        if m and m.group("name") not in flags:
            flags[m.group("name")] = int(m.group("value"))
    return flags


def read_arch(text: str) -> Optional[str]:
    """The value of the top-level ``ARCH=`` block, continuation lines joined (None when there is none)."""
    rows = _scan(text)
    for k, (_, body, _, top) in enumerate(rows):
        if top and _ARCH_RE.match(body):
            parts = [body.split("=", 1)[1]]
            j = k
            while rows[j][1].endswith("\\") and j + 1 < len(rows):
                parts[-1] = parts[-1][:-1]
                j += 1
                parts.append(rows[j][1])
            return " ".join(" ".join(parts).split())
    return None


def arch_block(capabilities: list[int]) -> str:
    """``ARCH= -gencode arch=compute_75,code=[sm_75,compute_75]`` (one -gencode per capability, one line).

    `code=[sm_XX,compute_XX]` puts both the binary for that GPU and PTX in the build, so a newer GPU can still
    JIT-compile the kernels.
    """
    if not capabilities:
        raise ValueError("arch_block needs at least one compute capability")
    gencodes = " ".join(f"-gencode arch=compute_{c},code=[sm_{c},compute_{c}]" for c in sorted(set(capabilities)))
    return f"ARCH= {gencodes}"


def patch_makefile(text: str, flags: dict[str, int], arch: Optional[str]) -> str:
    """Set `flags` on the Makefile's switch lines and replace its ARCH block by `arch` (an ``ARCH=`` line).

    Pure and idempotent; every other line is kept byte for byte. With `arch` set, ``ARCH+=`` lines (AlexeyAB adds
    compute_70 under CUDNN_HALF, which CUDA 13 rejects) are commented out, so the ARCH you asked for is all that
    nvcc gets. Raises DarknetMagicsError for a flag this Makefile does not have, or a value other than 0/1.
    """
    known = makefile_flags(text)
    unknown = [k for k in flags if k not in known]
    if unknown:
        raise DarknetMagicsError(f"this Makefile has no flag {', '.join(unknown)}",
                                 fix=f"valid flags here: {' '.join(known)}")
    for k, v in flags.items():
        if v not in (0, 1):
            raise DarknetMagicsError(f"{k}={v}: flags are 0 or 1", fix=f"write {k}=0 or {k}=1")
    if arch is not None and not arch.startswith("ARCH"):
        raise ValueError("arch must be a full `ARCH= ...` line, see arch_block()")

    out: list[str] = []
    rows = _scan(text)
    done: set[str] = set()
    skip_cont = False
    arch_done = False
    for _, body, end, top in rows:
        if skip_cont:
            # Continuation lines of the ARCH block we replaced.
            skip_cont = body.endswith("\\")
            continue
        m = _FLAG_RE.match(body) if top else None
        if m and m.group("name") in flags and m.group("name") not in done:
            done.add(m.group("name"))
            out.append(f"{m.group('name')}{m.group('op')}{int(flags[m.group('name')])}{m.group('rest')}{end}")
            continue
        if arch is not None and top and not arch_done and _ARCH_RE.match(body):
            arch_done = True
            out.append(arch + (end or "\n"))
            skip_cont = body.endswith("\\")
            continue
        if arch is not None and not body.startswith("\t") and _ARCH_ADD_RE.match(body.lstrip()):
            out.append("#" + body + ARCH_DISABLED_NOTE + end)
            continue
        out.append(body + end)
    if arch is not None and not arch_done:
        # No ARCH block at all (a trimmed Makefile): put ours after the switches.
        out.insert(_after_flags(rows), arch + "\n")
    return "".join(out)


def _after_flags(rows: list[tuple[int, str, str, bool]]) -> int:
    last = 0
    for i, body, _, top in rows:
        if top and _FLAG_RE.match(body):
            last = i + 1
    return last


def write_makefile(darknet_dir: Path, text: str) -> bool:
    """Write the Makefile atomically, keeping the first original as Makefile.orig; False when unchanged.

    An unchanged Makefile is not rewritten: its mtime is a dependency of every object file.
    """
    path = darknet_dir / "Makefile"
    old = path.read_text()
    if old == text:
        return False
    orig = darknet_dir / "Makefile.orig"
    if not orig.exists():
        atomic_write_text(orig, old)
    atomic_write_text(path, text)
    return True
