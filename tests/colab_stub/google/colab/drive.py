"""Stand-in for `google.colab.drive`: mount() makes the folder and MyDrive inside it, as Colab shows them."""
from __future__ import annotations

import os

mounted: list[str] = []


def mount(mountpoint: str, force_remount: bool = False, timeout_ms: int = 120000, readonly: bool = False) -> None:
    """Create `mountpoint`/MyDrive like a fresh Colab mount, and remember the call."""
    os.makedirs(os.path.join(mountpoint, "MyDrive"), exist_ok=True)
    mounted.append(mountpoint)
