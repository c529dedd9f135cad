"""Atomic file writes: a file that matters (Makefile, cfg, obj.data, run.json, weights, reports) is either the old
one or the complete new one, never half-written, even when the kernel dies mid-write.

The new content goes to a temporary file in the same folder (same filesystem, so the rename is atomic), is
fsynced, takes over the old file's permission bits, and is renamed over the target.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Optional, Union


def atomic_write_bytes(path: Union[str, Path], data: bytes) -> None:
    """Write `data` to `path` atomically (creating its folder)."""
    tmp = write_beside(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        remove_if_exists(tmp)
        raise


def write_beside(path: Union[str, Path], data: bytes) -> str:
    """`data` in a new temporary file beside `path` (``.NAME.*.tmp``: same folder, so renaming it over `path` is
    atomic), fsynced, with `path`'s permission bits; returns its name. The caller renames it or removes it (several
    files that must change together are all written first, then renamed: datasets' obj.data with its lists)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if path.exists():
            shutil.copymode(path, tmp)  # an executable or read-only target stays so
        else:
            os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; a new file gets the usual mode
    except BaseException:
        remove_if_exists(tmp)
        raise
    return tmp


def atomic_write_text(path: Union[str, Path], text: str, encoding: str = "utf-8") -> None:
    """Write `text` to `path` atomically, byte for byte (no newline translation)."""
    atomic_write_bytes(path, text.encode(encoding))


def copy_stream(source: BinaryIO, dest: BinaryIO, on_bytes: Callable[[int], None], chunk: int = 1 << 20) -> None:
    """Copy one open file into another in chunks, telling `on_bytes` how much each chunk was (for progress)."""
    while True:
        data = source.read(chunk)
        if not data:
            return
        dest.write(data)
        on_bytes(len(data))


def remove_if_exists(path: Union[str, Path]) -> None:
    """Delete a file that may not be there (a temp or partial file being cleaned up)."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def file_in_the_way(path: Path) -> Optional[Path]:
    """The file that stands where `path` or one of its parent folders should be (a folder cannot be made there),
    or None: the nearest existing one of `path` and its parents decides."""
    for parent in [path, *path.parents]:
        if parent.exists() or parent.is_symlink():
            return None if parent.is_dir() else parent
    return None
