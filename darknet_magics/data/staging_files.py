"""What a staged copy is made of: the source's walk, the manifest that says a copy is complete, the swap of a
finished work folder into place, and a native copy run beside its listing.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Optional, Sequence, TypeVar

from ..errors import DarknetMagicsError
from ..report import TransferProgress
from ..run.native import run_native
from .staging_plan import StagePlan, _check_space


_CHUNK = 1 << 20


T = TypeVar("T")


def _walk_files(root: Path, links: Optional[list[str]] = None) -> list[tuple[str, int, int]]:
    """(relative posix path, size, mtime_ns) of every file under `root`, following links; sorted.

    `links`, when given, gets the relative path of every symlink met (from the listing's file types: no extra
    stat), so that a caller need not walk the tree a second time to ask whether it has any.

    Raises:
        DarknetMagicsError: a symlink loop (a link to a folder above it, or a link to itself), or a broken link.
    """
    out: list[tuple[str, int, int]] = []
    root_st = os.stat(root)
    stack: list[tuple[str, str, tuple[tuple[int, int], ...]]] = [("", str(root), ((root_st.st_dev, root_st.st_ino),))]
    while stack:
        rel, folder, above = stack.pop()
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            name = f"{rel}{entry.name}"
            if links is not None and entry.is_symlink():
                links.append(name)
            try:
                st = entry.stat(follow_symlinks=True)
            except OSError as err:
                if entry.is_symlink():
                    why = "a symlink loop" if err.errno == errno.ELOOP else f"a broken link ({err.strerror})"
                    raise DarknetMagicsError(f"{root}: {name} is {why}",
                                             fix=f"remove the link {entry.path} or point it at a real file") from None
                raise
            if stat.S_ISDIR(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if key in above:
                    raise DarknetMagicsError(f"{root}: the link {name} points at a folder above it (a symlink loop)",
                                             fix=f"remove the link {entry.path}")
                stack.append((name + "/", entry.path, above + (key,)))
            elif stat.S_ISREG(st.st_mode):
                out.append((name, st.st_size, st.st_mtime_ns))
    out.sort()
    return out








def _local_sizes(dest: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    if not dest.is_dir():
        return out
    for folder, _dirs, files in os.walk(dest):
        rel = os.path.relpath(folder, dest)
        prefix = "" if rel == "." else rel.replace(os.sep, "/") + "/"
        for n in files:
            try:
                out[prefix + n] = os.stat(os.path.join(folder, n)).st_size
            except OSError:
                pass
    return out


def _complete(dest: Path, files: Sequence[Sequence]) -> bool:
    if not dest.is_dir():
        return False
    local = _local_sizes(dest)
    return all(local.get(f[0]) == f[1] for f in files)


def _replace_tree(dest: Path, new: Optional[Path]) -> None:
    """Put `new` at `dest` (None: just remove `dest`): the old tree is renamed away first, then deleted."""
    old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
    if dest.exists():
        os.rename(dest, old)
    if new is not None:
        os.rename(new, dest)
    shutil.rmtree(old, ignore_errors=True)


def _run_with_listing(argv: list[str], listing: Callable[[], T], sizes: Callable[[T], tuple[int, int]],
                      plan: StagePlan, progress: TransferProgress,
                      done: Callable[[int, int], float]) -> tuple[int, str, T]:
    """Run `argv` (tar -x, cp -r: `run_native`) while `listing()` (the archive's vetted members, the folder's
    walk) runs in a thread beside it; (exit code, stderr, the listing).

    The listing's error stops the process and is raised before anything the process says (it names the member or
    the link). Once the listing is in, its `sizes` (files, bytes) are the progress totals and the room for them
    is checked, counting what is written already; `done(pid, total_bytes)` is the share of the work done.
    """
    listed: list[T] = []
    pool = ThreadPoolExecutor(1, thread_name_prefix="listing")
    try:
        job = pool.submit(listing)

        def tick(pid: int) -> None:
            share = done(pid, progress.total_bytes)
            if not listed and job.done():
                listed.append(job.result())  # its error raises here: run_native stops the process
                progress.total_files, progress.total_bytes = sizes(listed[0])
                _check_space(plan, progress.total_bytes, written=int(progress.total_bytes * share))
            progress.files, progress.bytes = int(progress.total_files * share), int(progress.total_bytes * share)
            progress.add(0, 0)

        code, err = run_native(argv, tick)
        return code, err, listed[0] if listed else job.result()
    finally:
        pool.shutdown(wait=False)  # an interrupt does not wait for the listing of a large folder or tar.gz
