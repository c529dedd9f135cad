"""Staging: bring a dataset from the drive (or a URL) onto fast local disk, once per VM, equal to its source.

`plan_stage` says what `stage` will do (source kind, archive type read from the file's CONTENT, the target
folder) and writes nothing; `stage` runs that same plan, so a dry run cannot drift from the run.

- The dataset always lands at ``INTO/NAME``: NAME is the folder's name, or the archive's name without its
  suffix. When every member of an archive lies under one top folder, that folder's content is the dataset.
  Two archives with the same top folder therefore never write into each other's dataset.
- Nothing half-written looks complete: a first copy or an unpack goes into a hidden folder beside the target and
  is renamed into place at the end; the manifest ``INTO/.NAME.stage.json`` that says "complete" is written last.
- The local copy is kept equal to its source: files deleted at the source disappear locally on the next stage
  (files you created in the local copy, such as converted labels, are kept).
- Speed: from local disk the first copy is one `cp -r` and an archive one `tar -x` (both native, several times
  faster than Python per file). From a high-latency mount (Drive's FUSE, NFS, sshfs, ...) a folder is copied
  with threads, since each file is a network round trip and waiting is what threads do well.
- A URL is downloaded with progress and HTTP Range resume (`weights.download_file`) into `downloads` (the drive,
  so the next VM finds it), then staged as an archive. Google Drive share links go through gdown when installed.
- Bad input ends in a `DarknetMagicsError` naming the archive and the member: truncated, empty or mislabelled
  archives, corrupt members, a zip holding both ``a/x`` and ``a/x/y``, symlink loops, a full disk, a file where
  a folder is meant.

The work is shared out: `staging_plan` (what will happen, and the errors that name the source), `archives`
(members listed and vetted, pure), `staging_files` (walk, manifest, swap into place), `staging_folders` and
`staging_archives` (the two kinds of source), and `run.native` (cp and tar at native speed). This module is the
entry: `stage` and `pack_folder`.
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Optional, Union

from ..errors import DarknetMagicsError
from ..fileio import remove_if_exists
from ..report import Reporter, TransferProgress
from ..run.native import io_count, run_native
from .archives import sniff_archive
from .staging_archives import _fetch_url, _stage_archive
from .staging_files import _walk_files
from .staging_folders import _stage_folder
from .staging_plan import (ARCHIVE_SUFFIXES, StagePlan, StageResult, _ensure_folder, _os_error, _plan_source,
                           gdrive_file_id, is_high_latency, plan_stage)

__all__ = ["ARCHIVE_SUFFIXES", "StagePlan", "StageResult", "plan_stage", "stage", "pack_folder", "sniff_archive",
           "is_high_latency", "gdrive_file_id"]


def stage(src: Union[str, Path], into: Union[str, Path], *, pack: bool = False, reporter: Optional[Reporter] = None,
          downloads: Optional[Path] = None, threads: Optional[int] = None) -> StageResult:
    """Bring a dataset (folder, archive or URL) into ``into/NAME``, equal to its source; see `plan_stage`.

    Args:
        src: a folder, an archive (.tar, .tar.gz/.tgz, .tar.bz2, .tar.xz, .zip: the type is read from its
            content), or an http(s) URL of one (a Google Drive share link needs the gdown package).
        into: the local folder the dataset lands in.
        pack: first write the folder as ``SRC.tar`` beside it (again when a top entry is newer).
        reporter: progress and notes.
        downloads: where a URL's archive is kept (the drive, for the next VM); default `into`.
        threads: copy a folder with this many threads (default: 8 on a network mount, else one `cp -r`).

    Raises:
        DarknetMagicsError: a missing source, a file where a folder is meant, a malformed archive (naming the
            member), a member that would land outside the dataset, a symlink loop, a full or read-only disk.
    """
    reporter = reporter or Reporter()
    # The plan short of an archive's members: they are vetted while tar unpacks into a hidden folder (`_unpack`).
    plan = _plan_source(src, into, pack=pack, downloads=downloads)
    if plan.note and plan.kind == "archive":
        reporter.info(plan.note)
    # a source that is not there is refused before into= is made: a failed stage leaves no empty folder
    if plan.kind == "missing":
        raise DarknetMagicsError(f"nothing to stage at {plan.src}",
                                 fix="check the path (on Colab, mount the drive first: drive is under /content/drive/MyDrive)")
    if plan.kind == "other":
        raise DarknetMagicsError(f"{plan.src} is neither a folder nor a tar, tar.gz, tar.bz2, tar.xz or zip archive"
                                 + (f": {plan.note}" if plan.note else ""),
                                 fix="stage the folder that holds the images, or an archive of it")
    _ensure_folder(plan.into, "the stage folder (into=)")
    downloaded = False
    if plan.kind == "url":
        assert plan.url is not None
        downloaded = _fetch_url(plan, reporter)
        kind = sniff_archive(plan.src)
        if kind is None:
            raise DarknetMagicsError(f"{plan.url} gave {plan.src.name}, whose content is no tar, gzip/bz2/xz tar or zip",
                                     fix="give the URL of the archive itself")
        plan = replace(plan, kind="archive", archive_type=kind, high_latency=is_high_latency(plan.src), note="")
    try:
        if plan.kind == "folder" and plan.pack:
            archive = plan.src.parent / f"{plan.target.name}.tar"
            packed = False
            if _pack_is_stale(plan.src, archive):
                _walk_files(plan.src)  # refuses symlink loops before tar meets them
                pack_folder(plan.src, archive, reporter=reporter)
                packed = True
            plan = replace(plan, kind="archive", src=archive, archive_type="tar", pack=False)
            return replace(_stage_archive(plan, reporter), packed=packed)
        if plan.kind == "folder":
            return _stage_folder(plan, reporter, threads)
        result = _stage_archive(plan, reporter)
        return replace(result, downloaded=downloaded)
    except OSError as err:
        raise _os_error(err, plan) from None


def _pack_is_stale(folder: Path, archive: Path) -> bool:
    try:
        archived = archive.stat().st_mtime_ns
    except FileNotFoundError:
        return True
    # One listing of the top folder, not of every file: adding/removing files changes their folder's mtime.
    newest = folder.stat().st_mtime_ns
    with os.scandir(folder) as it:
        for entry in it:
            newest = max(newest, entry.stat(follow_symlinks=True).st_mtime_ns)
    return newest > archived


def pack_folder(folder: Path, archive: Path, *, reporter: Optional[Reporter] = None) -> Path:
    """Write `folder` as an uncompressed tar `archive` (members under ``NAME/``), atomically.

    Uncompressed because images are compressed already; tar then costs one sequential write.
    """
    reporter = reporter or Reporter()
    files = _walk_files(folder)
    progress = TransferProgress(reporter, f"packing {folder.name}", len(files), sum(s for _, s, _ in files))
    fd, tmp = tempfile.mkstemp(prefix=f".{archive.name}.", suffix=".tmp", dir=archive.parent)
    try:
        tar_bin = shutil.which("tar")
        if tar_bin:
            os.close(fd)
            total = sum(size for _, size, _ in files)
            code, err = _run_tar([tar_bin, "-c", "-h", "--format=gnu", "-f", tmp, "-C", str(folder.parent),
                                  "--", folder.name], total, len(files), total, progress)
            if code != 0:
                raise DarknetMagicsError(f"packing {folder} failed: {err.strip()[-500:]}",
                                         fix="check the free space on the drive (df -h)")
            progress.files, progress.bytes = len(files), total
            with open(tmp, "rb+") as raw:
                os.fsync(raw.fileno())
        else:
            with os.fdopen(fd, "wb") as raw:
                with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    for rel, size, _ in files:
                        tar.add(os.path.join(folder, rel), arcname=f"{folder.name}/{rel}", recursive=False)
                        progress.add(1, size)
                raw.flush()
                os.fsync(raw.fileno())
        os.replace(tmp, archive)
    except BaseException:
        remove_if_exists(Path(tmp))
        raise
    progress.done()
    return archive


def _run_tar(argv: list[str], to_read: int, n_files: int, total: int,
             progress: TransferProgress) -> tuple[int, str]:
    """Run tar; progress from the bytes it has read (of `to_read`: the archive when unpacking, the files when
    packing); (exit code, stderr).

    Not ``tar -v`` read line by line: on 20,000 small files, printing, piping and matching every member name cost
    a third of tar's own time. The share read stands for the share of files and bytes done.
    """
    def tick(pid: int) -> None:
        done = io_count(pid, b"rchar:")
        if done is not None and to_read:
            share = min(1.0, done / to_read)
            progress.files, progress.bytes = int(n_files * share), int(total * share)
        progress.add(0, 0)

    return run_native(argv, tick)
