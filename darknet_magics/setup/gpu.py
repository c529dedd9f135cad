"""GPU readings while darknet trains: utilisation and memory from ``nvidia-smi``, polled rarely."""
from __future__ import annotations

import math
import shutil
import subprocess
import time
from typing import Optional


class GpuPoller:
    """GPU utilisation and memory from ``nvidia-smi``, at most once per `interval` seconds (never per line)."""

    def __init__(self, interval: float = 5.0, command: Optional[list[str]] = None) -> None:
        self.interval = interval
        exe = shutil.which("nvidia-smi")
        self.command = command or ([exe, "--query-gpu=utilization.gpu,memory.used,memory.total",
                                    "--format=csv,noheader,nounits"] if exe else None)
        self._last = -math.inf
        self.samples: dict[str, list] = {"iteration": [], "util": [], "mem": []}

    def poll(self, iteration: Optional[int]) -> bool:
        """Sample once if the interval passed; True when a sample was added."""
        now = time.monotonic()
        if self.command is None or iteration is None or now - self._last < self.interval:
            return False
        self._last = now
        try:
            out = subprocess.run(self.command, capture_output=True, text=True, timeout=3).stdout
            util, used, total = (float(v) for v in out.splitlines()[0].split(",")[:3])
        except (OSError, subprocess.SubprocessError, ValueError, IndexError):
            self.command = None  # a broken nvidia-smi is not asked again every few seconds
            return False
        self.samples["iteration"].append(int(iteration))
        self.samples["util"].append(util)
        self.samples["mem"].append(100.0 * used / total if total else math.nan)
        return True
