"""Small and read-only filesystems (tmpfs mounts; needs root and mount rights, else the test skips)."""
from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path
from typing import Iterator

import pytest


def can_mount() -> bool:
    return os.geteuid() == 0 and Path("/proc/self/mounts").exists()


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "2m", readonly: bool = False) -> Iterator[Path]:
    """A tmpfs of `size` at `path` (read-only with `readonly`: root cannot write there either)."""
    path.mkdir(parents=True, exist_ok=True)
    opts = f"size={size}" + (",ro" if readonly else "")
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(path)], capture_output=True, text=True)
    if p.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({p.stderr.strip()}): full-disk and read-only cases not simulated")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def leftovers(folder: Path) -> list[str]:
    """Hidden work folders or partial files staging left behind (none may remain after a failure)."""
    if not folder.is_dir():
        return []
    return sorted(n for n in os.listdir(folder) if ".unpack-" in n or n.endswith((".staging", ".part", ".tmp")))
