"""The CUDA ARCH a GPU build compiles for: the GPU at hand wins, within what this nvcc can build; each fallback
is said (`choose_arch`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from ..errors import DarknetMagicsError
from .runtime import RuntimeInfo


def parse_arch(arch: str) -> list[int]:
    """'75,86' / '7.5 8.6' / 'sm_75' / 'compute_75' -> [75, 86]."""
    caps = []
    for tok in re.split(r"[,;\s]+", arch.strip()):
        if not tok:
            continue
        m = re.fullmatch(r"(?:sm_|compute_)?(\d+)(?:\.(\d))?", tok)
        if not m:
            raise DarknetMagicsError(f"ARCH={arch}: {tok!r} is not a compute capability",
                                     fix="write ARCH=auto, or numbers such as ARCH=75 (T4) or ARCH=75,86")
        caps.append(int(m.group(1)) * 10 + int(m.group(2)) if m.group(2) is not None else int(m.group(1)))
    if not caps:
        raise DarknetMagicsError("ARCH= is empty", fix="write ARCH=auto or ARCH=75")
    return sorted(set(caps))


@dataclass(frozen=True)
class ArchChoice:
    """The compute capabilities a GPU build targets, and why, when that is not what was asked for."""

    caps: list[int]
    note: Optional[str] = None  # said to the user: a fallback (another GPU than asked, a toolkit too old)


# The GPU a capability stands for in messages (Colab's, and a few others).
GPU_NAMES = {75: "T4", 80: "A100", 86: "A10", 89: "L4", 90: "H100", 100: "B200", 120: "G4 (RTX PRO 6000)"}


def _gpu_label(cap: int) -> str:
    return f"{_cap_str(cap)} ({GPU_NAMES[cap]})" if cap in GPU_NAMES else _cap_str(cap)


def choose_arch(arch: Optional[str], gpu: bool, runtime: RuntimeInfo) -> Optional[ArchChoice]:
    """The compute capabilities to build for, checked against what this nvcc can build (pure).

    GPU=0: None (the ARCH block is left alone: nothing reads it). GPU=1 with no ARCH or ``auto``: the GPU's own
    capability, because the stock compute_30/35 lines fail with every CUDA from 11 on. An ARCH that leaves out the
    GPU this VM has (Colab often gives a G4 when an H100 is asked for) builds for the GPU that is here, and says so.
    A GPU newer than this nvcc can name (12.0 with CUDA 12.6) gets the newest architecture nvcc has, with its PTX,
    which the driver compiles for the GPU at the first run. Every `-gencode` carries PTX (`arch_block`).
    """
    if not gpu:
        return None
    if not runtime.nvcc:
        raise DarknetMagicsError(
            "GPU=1 needs nvcc (the CUDA compiler) and none was found",
            fix="in Colab pick a GPU runtime (Runtime > Change runtime type); elsewhere install the CUDA toolkit "
                "(nvcc in /usr/local/cuda/bin), or build with GPU=0")
    here = runtime.capability_int
    auto = arch is None or arch.strip().lower() == "auto"
    if auto and here is None:
        raise DarknetMagicsError(
            "ARCH=auto needs a GPU to read its compute capability, and none was found",
            fix="give it explicitly, e.g. ARCH=75 (T4), ARCH=80 (A100), ARCH=89 (L4), ARCH=90 (H100), ARCH=120 (G4)")
    caps = [here] if auto else parse_arch(arch or "")
    note = None
    if here is not None and here not in caps:
        note = (f"asked for {' '.join(_gpu_label(c) for c in caps)}, got {runtime.gpu_name or 'a GPU'} "
                f"({_cap_str(here)}): building for {_cap_str(here)}")
        caps = [here]
    known = runtime.nvcc_archs
    if known:
        bad = [c for c in caps if c not in known]
        if bad and caps == [here] and any(k < here for k in known):
            # The GPU is newer than this toolkit: its newest architecture, as PTX the driver JIT-compiles.
            best = max(k for k in known if k < here)
            note = ((note + "; ") if note else "") + (
                f"nvcc {runtime.cuda_version or ''} cannot build for {_cap_str(here)}: building for "
                f"{_cap_str(best)} with its PTX, which the driver compiles for this GPU at the first run "
                f"(minutes; CUDA >= 12.8 builds 12.0 directly)")
            caps = [best]
        elif bad:
            raise DarknetMagicsError(
                f"nvcc {runtime.cuda_version or ''} cannot build for compute capability "
                f"{', '.join(_cap_str(c) for c in bad)} (it builds: {','.join(map(str, known))})",
                fix="use an ARCH from that list, or a CUDA version that still supports this GPU")
    return ArchChoice(caps, note)


def resolve_arch(arch: Optional[str], gpu: bool, runtime: RuntimeInfo) -> Optional[list[int]]:
    """`choose_arch`'s capabilities (None for GPU=0)."""
    choice = choose_arch(arch, gpu, runtime)
    return choice.caps if choice else None


def _cap_str(c: int) -> str:
    return f"{c // 10}.{c % 10}"
