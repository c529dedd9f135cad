"""Native tools (cp, tar) run at their own speed: a tick while they run, killed with us and on an interrupt.
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import tempfile
from typing import Callable, Optional



def die_with_parent() -> Optional[Callable[[], None]]:
    """A `preexec_fn` that makes the child killed when the process that started it dies (Linux prctl
    PDEATHSIG), or None where there is no prctl.

    tar and cp write into a hidden work folder; if a killed kernel left them running, the next stage's clean-up of
    that folder would race a writer that recreates it. (With ``-v`` on a pipe tar died of SIGPIPE.) libc is
    looked up here, in the parent: the child runs only the call, nothing that could take an import lock.
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return lambda: prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG = 1


def io_count(pid: int, field: bytes) -> Optional[int]:
    """A counter of process `pid`'s I/O (Linux /proc/PID/io: b"rchar:" bytes read, b"wchar:" written so far), or
    None where that is not available."""
    try:
        with open(f"/proc/{pid}/io", "rb") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def run_native(argv: list[str], tick: Callable[[int], None]) -> tuple[int, str]:
    """Run cp or tar (native speed, no per-file Python), calling `tick(pid)` 5 times a second while it runs; killed
    with us (and on an interrupt); (exit code, stderr)."""
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as errfile:
        # stderr into a file, not a pipe nobody reads while we wait (a full disk: one error per file or member)
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errfile, preexec_fn=die_with_parent())
        try:
            # A pidfd wakes us the moment the child ends; Popen.wait(timeout) polls with sleeps of up to 50 ms,
            # which is a tenth of `tar -x` on a RAM disk.
            pidfd = os.pidfd_open(proc.pid) if hasattr(os, "pidfd_open") else None
        except OSError:
            pidfd = None
        try:
            while True:
                if pidfd is not None:
                    if select.select([pidfd], [], [], 0.2)[0]:
                        proc.wait()
                        break
                    tick(proc.pid)
                    continue
                try:
                    proc.wait(timeout=0.2)
                    break
                except subprocess.TimeoutExpired:
                    tick(proc.pid)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        finally:
            if pidfd is not None:
                os.close(pidfd)
        errfile.seek(0)
        return proc.returncode, errfile.read(20000)
