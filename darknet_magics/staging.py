"""Staging: bring a dataset from the drive onto fast local disk, once per VM.

A folder is copied file by file (threads: on Drive's FUSE mount each file is a network round trip), an archive
(.tar, .tar.gz/.tgz, .zip) is copied once and unpacked, and `pack=True` turns a folder into one archive on the
drive so that later VMs copy one file instead of thousands. A manifest of sizes and mtimes beside the copy says it
is complete, so a re-run skips without reading any bytes. Archive members are vetted (no absolute or '..' names,
no links leaving the folder, no devices) before anything is written.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal, Optional, Sequence

from .errors import DarknetMagicsError
from .fileio import atomic_write_text, copy_stream, remove_if_exists
from .report import Reporter, TransferProgress
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
_CHUNK = 1 << 20
_COPY_THREADS = 8

__all__ = ["ARCHIVE_SUFFIXES", "StageResult", "stage", "pack_folder"]

# ----------------------------------------------------------------------------------------------------------------
# Staging


@dataclass(frozen=True)
class StageResult:
    """What `stage` did: `action` is 'copied', 'unpacked' or 'skipped'; `packed` when it wrote the archive."""

    path: Path
    action: Literal["copied", "unpacked", "skipped"]
    files: int
    bytes: int
    seconds: float
    source: Path
    packed: bool = False


def _is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def _archive_stem(path: Path) -> str:
    name = path.name
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _walk_files(root: Path) -> Iterator[tuple[str, int, int]]:
    """(relative posix path, size, mtime_ns) of every regular file under `root`; one scandir per folder."""
    stack = [("", str(root))]
    while stack:
        rel, folder = stack.pop()
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
        for entry in entries:
            name = f"{rel}{entry.name}"
            if entry.is_dir(follow_symlinks=True):
                stack.append((name + "/", entry.path))
            elif entry.is_file(follow_symlinks=True):
                st = entry.stat(follow_symlinks=True)
                yield name, st.st_size, st.st_mtime_ns


def _manifest_path(into: Path, src: Path) -> Path:
    # Beside the staged copy, not inside it: the dataset folder stays exactly the user's files.
    return into / f".{src.name}.stage.json"


def _read_manifest(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _write_manifest(path: Path, data: dict) -> None:
    atomic_write_text(path, json.dumps(data))


@dataclass(frozen=True)
class StagePlan:
    """What `stage` will do with `source`: `kind` is 'folder' or 'archive', `target` the dataset folder it makes."""

    source: Path
    kind: Literal["folder", "archive"]
    target: Path
    pack: bool = False

    def describe(self) -> list[str]:
        how = "copy the folder" if self.kind == "folder" else "copy the archive once and unpack it"
        pack = " (packing the folder into one archive on the drive first)" if self.pack else ""
        return [f"{how} {str(self.source)!r} to {str(self.target)!r}{pack}; skipped when the local copy is complete"]


def plan_stage(src: Path, into: Path, *, pack: bool = False) -> StagePlan:
    """Where `stage` puts `src` (nothing is written): a folder lands at ``into/NAME``; an archive whose members all
    lie under one top folder lands at ``into/TOP``, else at ``into/STEM``. An archive not there yet (a dry run
    before it is made) is planned by its name."""
    src, into = Path(src).expanduser(), Path(into).expanduser()
    if (src.is_dir() and not pack) or (not src.exists() and not _is_archive(src)):
        return StagePlan(src, "folder", into / src.name)
    archive = src.parent / f"{src.name}.tar" if src.is_dir() else src
    if not _is_archive(archive):
        raise DarknetMagicsError(f"{src} is neither a folder nor a .tar, .tar.gz, .tgz or .zip",
                                 fix="stage the folder that holds the images, or an archive of it")
    stem = _archive_stem(archive) if not src.is_dir() else src.name
    top = _single_top(_member_names(archive)) if archive.is_file() else None
    return StagePlan(src, "archive", into / (top or stem), pack=pack and src.is_dir())


def _member_names(archive: Path) -> list[str]:
    try:
        if archive.name.lower().endswith(".zip"):
            with zipfile.ZipFile(archive) as zf:
                return [_safe_name(n, archive) for n in zf.namelist()]
        with tarfile.open(archive, "r:*") as tar:
            return [_safe_name(n, archive) for n in tar.getnames()]
    except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
        raise DarknetMagicsError(f"cannot read the archive {archive}: {exc}",
                                 fix="check that it is a complete .tar/.tar.gz/.zip (copy it again)") from None


def _single_top(names: Sequence[str]) -> Optional[str]:
    """The one top folder every member lies under, or None."""
    named = [n for n in names if n]
    tops = {n.split("/", 1)[0] for n in named}
    return next(iter(tops)) if len(tops) == 1 and any("/" in n for n in named) else None


def stage(src: Path, into: Path, *, pack: bool = False, reporter: Optional[Reporter] = None) -> StageResult:
    """Bring a dataset (folder or .tar/.tar.gz/.tgz/.zip) from `src` (e.g. the drive) into the folder `into`.

    A folder lands at ``into/NAME``; an archive is copied once and unpacked (into ``into`` when all its members lie
    under one top folder, the result being that folder; else into ``into/STEM``). A manifest of the source's sizes
    and mtimes, written last, says a copy is complete, so a later call skips without reading any bytes.
    With ``pack=True`` a folder is first written as ``SRC.tar`` beside it (once; again when a top-level entry of
    the folder is newer than the archive) and every call stages that one file instead of thousands.

    Raises:
        DarknetMagicsError: `src` missing, or an archive member that would land outside `into`.
    """
    reporter = reporter or Reporter()
    src = Path(src).expanduser()
    into = Path(into).expanduser()
    if not src.exists():
        raise DarknetMagicsError(f"nothing to stage at {src}",
                                 fix="check the path (on Colab, mount the drive first: drive is under /content/drive/MyDrive)")
    into.mkdir(parents=True, exist_ok=True)
    packed = False
    if src.is_dir() and pack:
        archive = src.parent / f"{src.name}.tar"
        if _pack_is_stale(src, archive):
            pack_folder(src, archive, reporter=reporter)
            packed = True
        src = archive
    if src.is_dir():
        result = _stage_folder(src, into, reporter)
    elif _is_archive(src):
        result = _stage_archive(src, into, reporter)
    else:
        raise DarknetMagicsError(f"{src} is neither a folder nor a .tar, .tar.gz, .tgz or .zip",
                                 fix="stage the folder that holds the images, or an archive of it")
    if packed:
        result = StageResult(result.path, result.action, result.files, result.bytes, result.seconds, result.source, True)
    return result


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
    files = list(_walk_files(folder))
    progress = TransferProgress(reporter, f"packing {folder.name}", len(files), sum(s for _, s, _ in files))
    fd, tmp = tempfile.mkstemp(prefix=f".{archive.name}.", suffix=".tmp", dir=archive.parent)
    try:
        tar_bin = shutil.which("tar")
        if tar_bin:
            os.close(fd)
            sizes = {f"{folder.name}/{rel}": size for rel, size, _ in files}
            _run_tar([tar_bin, "-c", "-v", "--format=gnu", "-f", tmp, "-C", str(folder.parent), "--", folder.name],
                     sizes, progress)
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


def _run_tar(argv: list[str], sizes: dict[str, int], progress: "TransferProgress") -> None:
    """Run GNU tar with -v, counting the member names it prints as progress; error with its message on failure."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
    assert proc.stdout is not None and proc.stderr is not None
    for line in proc.stdout:
        size = sizes.get(line.rstrip("\n"))
        if size is not None:
            progress.add(1, size)
    err = proc.stderr.read()
    if proc.wait() != 0:
        raise DarknetMagicsError(f"tar failed ({proc.returncode}): {err.strip()[-500:]}",
                                 fix="check the archive (tar -tf FILE) and the free disk space (df -h)")



def _stage_folder(src: Path, into: Path, reporter: Reporter) -> StageResult:
    start = time.monotonic()
    dest = into / src.name
    manifest_path = _manifest_path(into, src)
    reporter.progress(f"listing {src} ...")
    files = list(_walk_files(src))
    listing = [[rel, size, mtime] for rel, size, mtime in files]
    total = sum(size for _, size, _ in files)
    manifest = _read_manifest(manifest_path)
    if manifest and manifest.get("kind") == "folder" and manifest.get("files") == listing and dest.is_dir():
        # Trust but verify cheaply: the local copy still has every file at its size (one scandir per folder).
        local = {rel: size for rel, size, _ in _walk_files(dest)}
        if all(local.get(rel) == size for rel, size, _ in files):
            return StageResult(dest, "skipped", len(files), total, time.monotonic() - start, src)
    remove_if_exists(manifest_path)
    progress = TransferProgress(reporter, f"copying {src.name}", len(files), total)
    # Resume an interrupted copy: a file already there with the source's size and mtime is done. One listing of
    # the local copy instead of a stat per file.
    local = {rel: (size, mtime) for rel, size, mtime in _walk_files(dest)} if dest.is_dir() else {}
    todo = []
    for rel, size, mtime in files:
        if local.get(rel) == (size, mtime):
            progress.add(1, size)
        else:
            todo.append((rel, size, mtime))
    for parent in sorted({os.path.dirname(rel) for rel, _, _ in todo}):
        os.makedirs(dest / parent, exist_ok=True)

    def copy_one(item: tuple[str, int, int]) -> int:
        rel, size, mtime = item
        target = dest / rel
        shutil.copyfile(src / rel, target)
        os.utime(target, ns=(mtime, mtime))
        return size

    # Threads: on a network mount (Drive) each file is a round trip, and waiting is what threads do well.
    with ThreadPoolExecutor(max_workers=_COPY_THREADS) as pool:
        for size in pool.map(copy_one, todo):
            progress.add(1, size)
    progress.done()
    _write_manifest(manifest_path, {"kind": "folder", "source": str(src), "files": listing})
    return StageResult(dest, "copied", len(files), total, time.monotonic() - start, src)


def _stage_archive(src: Path, into: Path, reporter: Reporter) -> StageResult:
    start = time.monotonic()
    st = src.stat()
    key = [st.st_size, st.st_mtime_ns]
    manifest_path = _manifest_path(into, src)
    manifest = _read_manifest(manifest_path)
    if manifest and manifest.get("kind") == "archive" and manifest.get("archive") == key:
        dest = Path(manifest["path"])
        local = {rel: size for rel, size, _ in _walk_files(dest)} if dest.is_dir() else {}
        if all(local.get(rel) == size for rel, size in manifest.get("files", [])) and dest.is_dir():
            return StageResult(dest, "skipped", len(manifest["files"]), sum(s for _, s in manifest["files"]),
                               time.monotonic() - start, src)
    remove_if_exists(manifest_path)
    # Copy the one file first: reading an archive member by member over a network mount is slow.
    local_copy = into / f".{src.name}.part"
    progress = TransferProgress(reporter, f"copying {src.name}", 1, st.st_size)
    with open(src, "rb") as fin, open(local_copy, "wb") as fout:
        copy_stream(fin, fout, lambda n: progress.add(0, n), _CHUNK)
    progress.add(1, 0)
    progress.done()
    try:
        dest, members = _extract(local_copy, src, into, reporter)
    finally:
        remove_if_exists(local_copy)
    _write_manifest(manifest_path, {"kind": "archive", "archive": key, "path": str(dest),
                                    "files": [[rel, size] for rel, size in members]})
    return StageResult(dest, "unpacked", len(members), sum(s for _, s in members), time.monotonic() - start, src)


def _safe_name(name: str, archive: Path) -> str:
    """A member name that stays inside the extraction folder, or an error naming the member."""
    norm = name.replace("\\", "/")
    parts = [p for p in norm.split("/") if p not in ("", ".")]
    if norm.startswith("/") or re.match(r"^[A-Za-z]:", norm) or ".." in parts:
        raise DarknetMagicsError(f"{archive.name}: member {name!r} would be written outside the dataset folder",
                                 fix="re-create the archive with relative paths (e.g. `tar -cf data.tar -C parent folder`)")
    return "/".join(parts)


def _extract(local: Path, original: Path, into: Path, reporter: Reporter) -> tuple[Path, list[tuple[str, int]]]:
    stem = _archive_stem(original)
    members: list[tuple[str, int]] = []
    if original.name.lower().endswith(".zip"):
        with zipfile.ZipFile(local) as zf:
            infos = [i for i in zf.infolist()]
            names = [_safe_name(i.filename, original) for i in infos]
            base, prefix = _extract_base(names, into, stem)
            n_files = sum(1 for i in infos if not i.is_dir())  # folder entries are not files to count
            progress = TransferProgress(reporter, f"unpacking {original.name}", n_files, sum(i.file_size for i in infos))
            for info, name in zip(infos, names):
                if not name:
                    continue
                target = base / name
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                # zip symlinks (unix mode S_IFLNK) are extracted as plain files holding the link text by
                # zipfile; refuse them instead, since a dataset has no business holding links.
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise DarknetMagicsError(f"{original.name}: member {info.filename!r} is a symlink",
                                             fix="archive the files themselves, not links")
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(info) as fin, open(target, "wb") as fout:
                    shutil.copyfileobj(fin, fout, _CHUNK)
                mtime = time.mktime(info.date_time + (0, 0, -1))
                os.utime(target, (mtime, mtime))
                members.append((name[len(prefix):], info.file_size))
                progress.add(1, info.file_size)
            progress.done()
    else:
        with tarfile.open(local, "r:*") as tar:
            infos = tar.getmembers()
            names = [_safe_name(i.name, original) for i in infos]
            for info in infos:
                if info.issym() or info.islnk():
                    _safe_name(os.path.join(os.path.dirname(info.name), info.linkname) if info.issym() else info.linkname,
                               original)
                elif not (info.isfile() or info.isdir()):
                    raise DarknetMagicsError(f"{original.name}: member {info.name!r} is a device or fifo",
                                             fix="archive only files and folders")
            base, prefix = _extract_base(names, into, stem)
            progress = TransferProgress(reporter, f"unpacking {original.name}", sum(1 for i in infos if i.isfile()),
                                 sum(i.size for i in infos))
            files = [(info, name) for info, name in zip(infos, names) if info.isfile()]
            members = [(name[len(prefix):], info.size) for info, name in files]
            tar_bin = shutil.which("tar")
            if tar_bin:
                # GNU tar unpacks ~10x faster than tarfile member by member; every member was vetted above (no
                # absolute or '..' names, no links leaving the folder, no devices), and tar refuses those too.
                sizes = {info.name: info.size for info, _ in files}
                _run_tar([tar_bin, "-x", "-v", "-f", str(local), "-C", str(base), "--no-same-owner"], sizes, progress)
            else:
                for info in infos:
                    # tarfile's 'data' filter refuses absolute names, '..', links out of the folder, devices,
                    # and strips set-uid bits: the checks above only give a clearer message first.
                    tar.extract(info, base, filter="data")
                    if info.isfile():
                        progress.add(1, info.size)
            progress.done()
    dest = base / prefix.rstrip("/") if prefix else base
    return dest, members


def _extract_base(names: Sequence[str], into: Path, stem: str) -> tuple[Path, str]:
    """Where to extract: `into` when every member lies under one top folder (then result = that folder)."""
    top = _single_top(names)
    if top is not None:
        return into, top + "/"
    base = into / stem
    base.mkdir(parents=True, exist_ok=True)
    return base, ""
