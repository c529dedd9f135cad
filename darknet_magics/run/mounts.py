"""Which filesystem a path lies on, from the kernel's mount table (``/proc/self/mountinfo``), and whether it is a
high-latency one: a network filesystem or a FUSE mount, where each file costs a round trip (Colab's Google Drive is
FUSE, ``fuse.drive``). Staging copies such a folder with threads, since waiting is what threads do well.

`parse_mountinfo` and `is_remote` are pure (tested on mountinfo text); `is_high_latency` reads this process's table.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

from ..errors import DarknetMagicsError

__all__ = ["Mount", "MOUNTINFO", "parse_mountinfo", "mount_of", "is_remote", "is_high_latency"]

MOUNTINFO = Path("/proc/self/mountinfo")
# Network filesystems: every file is a round trip to a server (9p: WSL's Windows drives, VM shares).
_NETWORK = frozenset({"nfs", "nfs4", "cifs", "smb3", "smbfs", "9p", "sshfs", "ceph", "glusterfs", "afs", "davfs",
                      "lustre", "gpfs", "beegfs", "ncpfs", "coda"})
# FUSE filesystems that serve local data (a container's /proc, an overlay, a snap or AppImage): no round trip to a
# server. Any other FUSE mount (drive, gcsfuse, rclone, s3fs, sshfs, ...) counts as high latency: each call goes to
# a user-space daemon, and nearly all of them fetch over the network.
_LOCAL_FUSE = frozenset({"lxcfs", "fuse-overlayfs", "snapfuse", "squashfuse", "portal", "appimage", "fuseiso",
                         "bindfs", "ntfs-3g", "ntfs", "exfat"})
_OCTAL = re.compile(r"\\([0-7]{3})")  # the kernel writes space, tab, newline and backslash as \040 \011 \012 \134


@dataclass(frozen=True)
class Mount:
    """One line of mountinfo: where (`point`, unescaped), what (`fstype`, e.g. ``ext4``, ``fuse.drive``), from
    where (`source`, e.g. ``drive``, ``server:/export``), and its device (``MAJ:MIN``, what `os.stat` gives the
    files on it as ``st_dev``)."""

    point: str
    fstype: str
    source: str
    device: str = ""


def parse_mountinfo(text: str, *, name: str = str(MOUNTINFO)) -> list[Mount]:
    """The mounts of mountinfo `text`, in its order (a later mount on the same point hides the earlier one).

    Format (proc(5)): ``ID PARENT MAJ:MIN ROOT POINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTIONS``.

    Raises:
        DarknetMagicsError: a line that is not in that format (named by `name` and its line number).
    """
    mounts = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        head, sep, tail = line.partition(" - ")
        fields, after = head.split(" "), tail.split(" ")
        if not sep or len(fields) < 6 or len(after) < 2 or not fields[4].startswith("/") or not after[0]:
            raise DarknetMagicsError(f"{name}:{lineno}: not a mountinfo line: {line[:200]!r}",
                                     fix="the kernel's mount table is unreadable here; stage from local disk")
        mounts.append(Mount(_unescape(fields[4]), after[0], _unescape(after[1]), fields[2]))
    return mounts


def mount_of(path: str, mounts: Sequence[Mount]) -> Optional[Mount]:
    """The mount that `path` (absolute, links resolved) lies on: the longest mount point above it, the last one
    mounted there when several are stacked."""
    best: Optional[Mount] = None
    for m in mounts:
        point = m.point.rstrip("/") or "/"
        if path == point or path.startswith(point if point == "/" else point + "/"):
            if best is None or len(point) >= len(best.point.rstrip("/") or "/"):
                best = m
    return best


def is_remote(mount: Mount) -> bool:
    """True for a network filesystem or a FUSE mount that is not one of the known local ones."""
    kind, _, subtype = mount.fstype.partition(".")
    if kind in _NETWORK or subtype in _NETWORK:  # "sshfs", and FUSE's "fuse.sshfs"
        return True
    if kind == "fuseblk":  # a FUSE driver of a local block device (ntfs-3g, exfat)
        return False
    if kind == "fuse":  # "fuse.drive", "fuse.gcsfuse", ..., or a bare "fuse" (the subtype then names the source)
        return (subtype or mount.source) not in _LOCAL_FUSE
    return False


def is_high_latency(path: Union[str, Path], mountinfo: Optional[str] = None) -> bool:
    """True when `path` lies on a network or FUSE mount (Google Drive in Colab), read from this process's mount
    table (or from `mountinfo` text). False where there is no table to read (not Linux)."""
    if mountinfo is None:
        try:
            mountinfo = MOUNTINFO.read_text(encoding="utf-8", errors="surrogateescape")
        except OSError:
            return False
    mount = mount_of(os.path.realpath(path), parse_mountinfo(mountinfo))
    return mount is not None and is_remote(mount)


def _unescape(field: str) -> str:
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), field)
