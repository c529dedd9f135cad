"""Staging a folder: one `cp -r` from local disk, threads from a high-latency mount, kept equal to its source.
"""
from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, Optional, Sequence

from ..errors import DarknetMagicsError
from ..fileio import remove_if_exists
from ..report import Reporter, TransferProgress
from ..run.native import io_count
from .staging_files import _CHUNK, _complete, _replace_tree, _run_with_listing, _walk_files
from .staging_plan import StagePlan, StageResult, _check_space, _full_disk, _manifest_path, _read_manifest, _write_manifest


_COPY_THREADS = 8


def _open_source(path: str) -> BinaryIO:
    """Open one source file for the threaded copy (one place, so a benchmark can add a per-file latency)."""
    return open(path, "rb")


def _copy_files(src: Path, dest: Path, todo: Sequence[tuple[str, int, int]], threads: int,
                progress: TransferProgress) -> None:
    for parent in sorted({os.path.dirname(rel) for rel, _, _ in todo}):
        os.makedirs(dest / parent, exist_ok=True)

    def copy_one(item: tuple[str, int, int]) -> int:
        rel, size, mtime = item
        target = str(dest / rel)
        with _open_source(str(src / rel)) as fin, open(target, "wb") as fout:
            shutil.copyfileobj(fin, fout, _CHUNK)
        os.utime(target, ns=(mtime, mtime))
        return size

    if threads <= 1:
        for item in todo:
            progress.add(1, copy_one(item))
        return
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for size in pool.map(copy_one, todo):
            progress.add(1, size)


def _stage_folder(plan: StagePlan, reporter: Reporter, threads: Optional[int]) -> StageResult:
    start = time.monotonic()
    src, dest = plan.src, plan.target
    manifest_path = _manifest_path(plan)
    beside = plan.into / f".{dest.name}.staging"
    if (not dest.exists() and not dest.is_symlink() and not beside.is_dir() and threads is None
            and not plan.high_latency and shutil.which("cp")):
        # A first copy from local disk: one `cp -r`, with the source walked meanwhile (the manifest's listing).
        files = _first_copy(plan, beside, reporter)
        if files is not None:
            remove_if_exists(manifest_path)
            os.rename(beside, dest)
            _write_manifest(manifest_path, {"kind": "folder", "source": str(src.resolve()),
                                            "files": [[rel, size, mtime] for rel, size, mtime in files]})
            return StageResult(dest, "copied", len(files), sum(f[1] for f in files), time.monotonic() - start, src)
    reporter.progress(f"listing {src} ...")
    links: list[str] = []
    files = _walk_files(src, links)
    listing = [[rel, size, mtime] for rel, size, mtime in files]
    total = sum(size for _, size, _ in files)
    manifest = _read_manifest(manifest_path)
    same_source = bool(manifest) and manifest.get("source") == str(src.resolve())
    if (manifest and same_source and manifest.get("kind") == "folder" and manifest.get("files") == listing
            and _complete(dest, files)):
        return StageResult(dest, "skipped", len(files), total, time.monotonic() - start, src)
    if dest.exists() and not dest.is_dir():
        raise DarknetMagicsError(f"{dest} is a file, so the dataset folder cannot go there",
                                 fix=f"remove the file {dest}, or give into= another folder")
    remove_if_exists(manifest_path)  # from here on the copy is not complete until the manifest is back
    n_threads = threads if threads is not None else (_COPY_THREADS if plan.high_latency else 1)
    progress = TransferProgress(reporter, f"copying {src.name}", len(files), total)
    removed = 0
    if dest.is_dir() and manifest and not same_source:
        reporter.warn(f"{dest} held a copy of {manifest.get('source')}: replacing it with {src}")
        _replace_tree(dest, None)
    if dest.is_dir():
        staged_before = {f[0] for f in (manifest or {}).get("files", [])} if same_source else set()
        removed = _update_in_place(plan, files, staged_before, n_threads, progress)
    else:
        _copy_beside(plan, beside, files, n_threads, progress)
    progress.done()
    _write_manifest(manifest_path, ({"kind": "folder", "source": str(src.resolve()), "files": listing}))
    return StageResult(dest, "copied", len(files), total, time.monotonic() - start, src, removed=removed)


def _missing(files: list, have: dict) -> list:
    """The files of the source whose size and mtime the copy at hand (`have`: name -> (size, mtime)) lacks."""
    return [(rel, size, mtime) for rel, size, mtime in files if have.get(rel) != (size, mtime)]


def _update_in_place(plan: StagePlan, files: list, staged_before: set, n_threads: int,
                     progress: TransferProgress) -> int:
    """Update the dataset folder in place: copy what changed, delete what the source no longer has (only files
    we staged, `staged_before`). Returns how many files were deleted."""
    dest = plan.target
    todo = _missing(files, {rel: (size, mtime) for rel, size, mtime in _walk_files(dest)})
    _check_space(plan, sum(s for _, s, _ in todo))
    progress.add(len(files) - len(todo), sum(size for _, size, _ in files) - sum(s for _, s, _ in todo))
    _copy_files(plan.src, dest, todo, n_threads, progress)
    removed = 0
    for rel in sorted(staged_before - {rel for rel, _, _ in files}):
        remove_if_exists(dest / rel)
        removed += 1
        _prune_empty(dest, (dest / rel).parent)
    return removed


def _copy_beside(plan: StagePlan, beside: Path, files: list, n_threads: int, progress: TransferProgress) -> None:
    """A first copy with threads (a network mount, a folder with links, a given `threads=`) or the resumption of
    one: into a hidden folder beside, renamed into place when complete. Files already there with the source's
    size and mtime are kept."""
    total = sum(size for _, size, _ in files)
    _check_space(plan, total)
    have = {rel: (size, mtime) for rel, size, mtime in _walk_files(beside)} if beside.is_dir() else {}
    todo = _missing(files, have)
    progress.add(len(files) - len(todo), total - sum(s for _, s, _ in todo))
    beside.mkdir(exist_ok=True)
    _copy_files(plan.src, beside, todo, n_threads, progress)
    os.rename(beside, plan.target)


def _prune_empty(root: Path, folder: Path) -> None:
    while folder != root and root in folder.parents:
        try:
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


class _HasLinks(Exception):
    """The source holds symlinks: `cp -r` would copy them as links, so the copy is redone by the file copy."""


def _first_copy(plan: StagePlan, beside: Path, reporter: Reporter) -> Optional[list[tuple[str, int, int]]]:
    """Copy the folder `plan.src` to `beside` with `cp -r` (native, no per-file Python) while a thread walks the
    source for the manifest; the walk's listing, or None when the source holds symlinks (`beside` removed: the
    caller copies file by file, following them).

    The walk checks what `cp` does not: a symlink loop or a broken link stops cp with the walk's error, and too
    little room for the listed bytes stops it before the disk is full. Progress is the bytes cp has written.
    """
    src = plan.src
    cp = shutil.which("cp")
    assert cp is not None

    def walk() -> list[tuple[str, int, int]]:
        links: list[str] = []
        files = _walk_files(src, links)  # a symlink loop or a broken link raises: cp is stopped
        if links:
            raise _HasLinks()
        return files

    progress = TransferProgress(reporter, f"copying {src.name}", 0, 0)
    def written(pid: int, total: int) -> float:  # the share of the listed bytes cp has written
        return min(1.0, (io_count(pid, b"wchar:") or 0) / total) if total else 0.0

    try:
        code, err, files = _run_with_listing([cp, "-r", "--preserve=timestamps", "--", str(src), str(beside)], walk,
                                             lambda f: (len(f), sum(x[1] for x in f)), plan, progress, written)
    except _HasLinks:
        shutil.rmtree(beside, ignore_errors=True)
        return None
    except BaseException:
        shutil.rmtree(beside, ignore_errors=True)
        raise
    total = sum(f[1] for f in files)
    if code != 0:
        shutil.rmtree(beside, ignore_errors=True)
        if "No space left" in err or "Disk quota" in err:
            raise _full_disk(plan, total)
        if "Read-only" in err or "Permission denied" in err:
            raise DarknetMagicsError(f"cannot write into {plan.into}: {err.strip().splitlines()[-1]}",
                                     fix="stage into a writable folder (into=...)")
        raise DarknetMagicsError(f"copying {src} failed: {err.strip()[-500:]}",
                                 fix="check the source and the disk (df -h), then run the same line again")
    progress.total_files = progress.files = len(files)
    progress.total_bytes = progress.bytes = total
    progress.done()
    return files
