"""Stand-in for `google.colab.drive`: mount() makes the folder and MyDrive inside it, as Colab shows them."""
from __future__ import annotations

import os

mounted: list[str] = []


def mount(mountpoint: str, force_remount: bool = False, timeout_ms: int = 120000, readonly: bool = False) -> None:
    """Create `mountpoint`/MyDrive like a fresh Colab mount, and remember the call."""
    os.makedirs(os.path.join(mountpoint, "MyDrive"), exist_ok=True)
    mounted.append(mountpoint)


flushed: list[bool] = []


def flush_and_unmount(timeout_ms: int = 24 * 60 * 60 * 1000) -> None:
    """Colab pushes its Drive cache and unmounts; the stand-in remembers the call."""
    flushed.append(True)
