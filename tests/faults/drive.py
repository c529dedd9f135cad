"""A drive that syncs as Google Drive does in Colab, and a VM that dies (issue 24).

Colab's Drive uploads from a cache on the VM, lazily: a file still open for writing when the VM goes has not reached
Drive, a closed one has (colabtools#2607, #287, #521). `vm_death` models that: it freezes every process of the "VM"
(SIGSTOP, so nothing closes a file on its way out), notes which files under the drive folder any of them holds open
for writing (/proc/PID/fd and fdinfo's flags), kills them all (SIGKILL), removes those files from the drive (they
never reached it) and wipes the VM's local disk folder. What is left on the drive is what a new VM finds.
"""
from __future__ import annotations

import os
import shutil
import signal
import time
from pathlib import Path
from typing import Iterable, Optional

_WRITE_MODES = (os.O_WRONLY, os.O_RDWR)


def descendants(pids: Iterable[int]) -> set[int]:
    """`pids` and every process below them (by /proc/*/stat's parent pid), and darknet under a keeper alike."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parents[int(entry.name)] = int(stat[stat.rfind(")") + 2:].split()[1])
    found = {p for p in pids if p}
    grew = True
    while grew:
        more = {child for child, parent in parents.items() if parent in found} - found
        found |= more
        grew = bool(more)
    return found


def on_vm(root: Path) -> set[int]:
    """The processes working in the VM's folder `root` (their cwd under it, or it in their command line): a
    background run's keeper and darknet detach from the shell that started them, and die with the VM all the same."""
    root = Path(os.path.realpath(root))
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
            cmdline = (entry / "cmdline").read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        if cwd == root or root in cwd.parents or str(root) in cmdline:
            found.add(int(entry.name))
    return found


def open_for_writing(pids: Iterable[int], under: Path) -> set[Path]:
    """The files under `under` that one of `pids` holds open for writing now."""
    under = Path(os.path.realpath(under))
    held = set()
    for pid in pids:
        fd_dir = Path(f"/proc/{pid}/fd")
        try:
            fds = list(fd_dir.iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                target = Path(os.readlink(fd))
                flags = int(Path(f"/proc/{pid}/fdinfo/{fd.name}").read_text().split("flags:")[1].split()[0], 8)
            except (OSError, IndexError, ValueError):
                continue
            if flags & os.O_ACCMODE in _WRITE_MODES and (target == under or under in target.parents):
                held.add(target)
    return held


def _signal_all(pids: Iterable[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def kill_all(pids: Iterable[int], vm: Optional[Path] = None) -> None:
    """SIGKILL `pids`, all below them and all working in the VM's folder `vm` (a failed test must not leave a VM's
    keeper and darknet training)."""
    everyone = descendants(set(pids) | (on_vm(vm) if vm else set()))
    _signal_all(everyone, signal.SIGKILL)
    _wait_gone(everyone)


def vm_death(pids: Iterable[int], *, drive: Path, local: Path) -> list[str]:
    """The VM dies: its processes are frozen, their files open for writing under `drive` are noted, they are killed,
    those files are removed from `drive` (never uploaded) and `local` (the VM's disk) is wiped. Returns the drive
    files that were lost, relative to `drive`."""
    everyone = descendants(set(pids) | on_vm(local))
    _signal_all(everyone, signal.SIGSTOP)
    everyone = descendants(everyone)  # a child forked meanwhile
    lost = open_for_writing(everyone, drive)
    _signal_all(everyone, signal.SIGKILL)
    _wait_gone(everyone)
    for path in lost:
        try:
            path.unlink()
        except OSError:  # gone, or a read-only drive: then nothing was written there either
            pass
    shutil.rmtree(local, ignore_errors=True)
    real = Path(os.path.realpath(drive))
    return sorted(str(p.relative_to(real)) for p in lost)


def _wait_gone(pids: set[int], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        alive = [p for p in pids if Path(f"/proc/{p}").exists() and not _zombie(p)]
        if not alive:
            return
        time.sleep(0.05)


def _zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rfind(")") + 2] in "ZX"
