"""Datasets on local disk: staging from the drive, obj.data/.names/lists, pretrained weights downloads.

Step functions here take plain arguments and a `Reporter`, and return a frozen dataclass saying what they did.

Space-free paths: darknet's .data reader drops every whitespace character from a line (``/My Drive/x`` becomes
``/MyDrive/x``), so `write_data` never writes a path with a space into obj.data. Where a path has one, the deepest
folder with a space in its name is reached through a symlink without spaces (in ``links/`` beside obj.data, or in
the temp folder when that path has spaces itself), and obj.data and the image lists use the link's path. The
symlinks are listed in `DataResult.links`.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import stat
import struct
import subprocess
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Literal, Optional, Sequence, Union

from .cfg import layer_weights, read_weights_header, resolve_template
from .errors import DarknetMagicsError
from .fileio import atomic_write_bytes, atomic_write_text
from .report import Reporter

__all__ = [
    "IMAGE_EXTENSIONS", "ARCHIVE_SUFFIXES", "StageResult", "stage", "pack_folder", "DataResult", "write_data",
    "read_names", "find_images", "space_free", "KnownWeights", "KNOWN_WEIGHTS", "WeightsResult", "fetch_weights",
    "make_partial",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar", ".zip")
_CHUNK = 1 << 20
_COPY_THREADS = 8


# ----------------------------------------------------------------------------------------------------------------
# Progress


class _Progress:
    """Formats 'verb: 1,234/20,000 files, 12.3/45.6 MB, 8.1 MB/s, ETA 0:04' lines for `reporter.progress`."""

    def __init__(self, reporter: Reporter, verb: str, total_files: int, total_bytes: int) -> None:
        self.reporter = reporter
        self.verb = verb
        self.total_files = total_files
        self.total_bytes = total_bytes
        self.files = 0
        self.bytes = 0
        self.start = time.monotonic()
        self._last = 0.0

    def add(self, files: int = 0, nbytes: int = 0) -> None:
        self.files += files
        self.bytes += nbytes
        now = time.monotonic()
        # The sinks throttle too, but formatting 20,000 lines costs time of its own.
        if now - self._last >= 0.2:
            self._last = now
            self.reporter.progress(self.line())

    def line(self) -> str:
        elapsed = max(time.monotonic() - self.start, 1e-6)
        rate = self.bytes / elapsed
        parts = [f"{self.verb}:"]
        if self.total_files:
            parts.append(f"{self.files:,}/{self.total_files:,} files,")
        parts.append(f"{_mb(self.bytes)}/{_mb(self.total_bytes)} MB," if self.total_bytes else f"{_mb(self.bytes)} MB,")
        parts.append(f"{rate / 1e6:.1f} MB/s")
        if self.total_bytes and rate > 0 and self.bytes < self.total_bytes:
            eta = int((self.total_bytes - self.bytes) / rate)
            parts.append(f", ETA {eta // 60}:{eta % 60:02d}")
        return " ".join(parts).replace(" ,", ",")

    def done(self) -> None:
        self.reporter.progress(self.line() + f" in {time.monotonic() - self.start:.1f} s", final=True)


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f}"


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
    progress = _Progress(reporter, f"packing {folder.name}", len(files), sum(s for _, s, _ in files))
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
        _unlink(Path(tmp))
        raise
    progress.done()
    return archive


def _run_tar(argv: list[str], sizes: dict[str, int], progress: "_Progress") -> None:
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


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


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
    _unlink(manifest_path)
    progress = _Progress(reporter, f"copying {src.name}", len(files), total)
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
    _unlink(manifest_path)
    # Copy the one file first: reading an archive member by member over a network mount is slow.
    local_copy = into / f".{src.name}.part"
    progress = _Progress(reporter, f"copying {src.name}", 1, st.st_size)
    with open(src, "rb") as fin, open(local_copy, "wb") as fout:
        while True:
            chunk = fin.read(_CHUNK)
            if not chunk:
                break
            fout.write(chunk)
            progress.add(0, len(chunk))
    progress.add(1, 0)
    progress.done()
    try:
        dest, members = _extract(local_copy, src, into, reporter)
    finally:
        _unlink(local_copy)
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
            progress = _Progress(reporter, f"unpacking {original.name}", n_files, sum(i.file_size for i in infos))
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
            progress = _Progress(reporter, f"unpacking {original.name}", sum(1 for i in infos if i.isfile()),
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
    named = [n for n in names if n]
    tops = {n.split("/", 1)[0] for n in named}
    if len(tops) == 1 and any("/" in n for n in named):
        return into, next(iter(tops)) + "/"
    base = into / stem
    base.mkdir(parents=True, exist_ok=True)
    return base, ""


# ----------------------------------------------------------------------------------------------------------------
# obj.data, .names, train/valid lists


@dataclass(frozen=True)
class DataResult:
    """What `write_data` wrote; paths are the ones written into obj.data (absolute, space-free)."""

    data_path: Path
    names_path: Path
    train_path: Path
    valid_path: Path
    n_train: int
    n_valid: int
    backup: Path
    names: list[str] = field(default_factory=list)
    links: list[Path] = field(default_factory=list)


def read_names(text: str) -> list[str]:
    """Class names from a .names file's text: one per non-empty line (darknet keeps line order)."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def find_images(folder: Path) -> list[Path]:
    """Image files (jpg/jpeg/png/bmp, any case) under `folder`, recursively, sorted."""
    found: list[Path] = []
    for root, dirs, files in os.walk(folder, followlinks=True):
        dirs.sort()
        for name in files:
            if name.lower().endswith(IMAGE_EXTENSIONS):
                found.append(Path(root) / name)
    found.sort()
    return found


def _has_space(path: Union[str, Path]) -> bool:
    return any(ch.isspace() for ch in str(path))


def space_free(path: Path, link_dir: Path, links: list[Path]) -> Path:
    """`path` itself when it has no whitespace, else the same path through a symlink in a space-free `link_dir`.

    The link replaces the deepest folder whose name has whitespace, so what lies below keeps its layout (labels
    in a sibling ``labels/`` folder still resolve). Its name is the cleaned folder name plus a short hash of the
    full path (two folders named alike never share a link), and never contains ``images``: pjreddie's darknet
    swaps the first ``images`` in an image path for ``labels`` to find the label file.
    """
    path = Path(os.path.abspath(path))
    if not _has_space(path):
        return path
    parts = path.parts
    last = max(i for i, part in enumerate(parts) if _has_space(part))
    target = Path(*parts[: last + 1])
    rest = parts[last + 1:]
    if _has_space(link_dir) or str(link_dir.absolute()).startswith(str(target) + os.sep):
        link_dir = Path(tempfile.gettempdir()) / "darknet_magics_links"
    link_dir.mkdir(parents=True, exist_ok=True)
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", target.name).strip("_") or "link"
    clean = clean.replace("images", "imgs").replace("JPEGImages", "JPEGImgs")
    digest = hashlib.sha1(str(target).encode()).hexdigest()[:8]
    link = link_dir / f"{clean}-{digest}"
    if not (os.path.islink(link) and os.readlink(link) == str(target)):
        tmp = link_dir / f".{clean}-{digest}.tmp{os.getpid()}"
        _unlink(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, link)
    if link not in links:
        links.append(link)
    return link.joinpath(*rest)


def _names_from(names: str, out: Path) -> tuple[list[str], Optional[Path]]:
    """(class names, existing .names file or None when they came as 'a,b,c')."""
    candidate = Path(names).expanduser()
    if candidate.is_file():
        return read_names(candidate.read_text(encoding="utf-8", errors="replace")), candidate
    if "/" in names or names.endswith((".names", ".txt")):
        raise DarknetMagicsError(f"names file {names} not found",
                                 fix="give the path of your .names file, or the class names as names=cat,dog")
    parts = [p.strip() for p in names.split(",")]
    if not parts or any(not p for p in parts):
        raise DarknetMagicsError(f"names={names!r} has an empty class name", fix="write names=cat,dog (no empty entries)")
    return parts, None


def write_data(out: Path, *, classes: int, names: str, train: Optional[Path] = None, valid: Optional[Path] = None,
               images: Optional[Path] = None, split: float = 0.1, seed: int = 0,
               backup: Path) -> DataResult:
    """Write obj.data (and OUT.names from 'a,b,c'; train.txt/valid.txt from `images`) for darknet.

    With ``images=DIR`` the images found there are shuffled with `seed` and ``round(n*split)`` of them (at least
    one when split > 0 and there are two or more) go to valid.txt; ``split=0`` validates on the training list.
    Paths in obj.data are absolute and space-free (see the module docstring); `backup` is created.

    Raises:
        DarknetMagicsError: classes not matching the names, no train list, no images, a missing list file.
    """
    out = Path(os.path.abspath(Path(out).expanduser()))
    out.parent.mkdir(parents=True, exist_ok=True)
    link_dir = out.parent / "links"
    links: list[Path] = []
    try:
        classes = int(classes)
    except (TypeError, ValueError):
        raise DarknetMagicsError(f"classes={classes} is not a number", fix="write classes=N") from None
    class_names, names_file = _names_from(str(names), out)
    if classes < 1 or classes != len(class_names):
        raise DarknetMagicsError(f"classes={classes} but {len(class_names)} names given ({', '.join(class_names[:8])})",
                                 fix=f"use classes={len(class_names)} or list {classes} names")
    if names_file is None:
        names_path = out.with_suffix(".names")
        atomic_write_text(names_path, "".join(n + "\n" for n in class_names))
    else:
        names_path = Path(os.path.abspath(names_file))
    if images is not None:
        if train is not None:
            raise DarknetMagicsError("give either images=DIR or train=FILE, not both",
                                     fix="images=DIR writes train.txt/valid.txt for you; train= uses your list")
        if not 0 <= split < 1:
            raise DarknetMagicsError(f"split={split} must be a fraction in [0, 1)", fix="e.g. split=0.1 for 10 % validation")
        folder = Path(images).expanduser()
        if not folder.is_dir():
            raise DarknetMagicsError(f"image folder {folder} not found", fix="give the folder that holds the images and labels")
        # Link the folder, then list through the link, so the list's paths have no spaces either.
        listed_root = space_free(folder, link_dir, links)
        found = find_images(listed_root)
        if not found:
            raise DarknetMagicsError(f"no images (jpg, jpeg, png, bmp) under {folder}", fix="point images= at the dataset folder")
        order = [str(p) for p in found]
        random.Random(seed).shuffle(order)
        n_valid = round(len(order) * split)
        if split > 0 and len(order) >= 2:
            n_valid = min(max(1, n_valid), len(order) - 1)
        valid_list, train_list = sorted(order[:n_valid]), sorted(order[n_valid:])
        train_path = out.parent / "train.txt"
        atomic_write_text(train_path, "".join(p + "\n" for p in train_list))
        if valid_list:
            valid_path = out.parent / "valid.txt"
            atomic_write_text(valid_path, "".join(p + "\n" for p in valid_list))
        else:
            valid_path, valid_list = train_path, train_list
        n_train, n_valid = len(train_list), len(valid_list)
    else:
        if train is None:
            raise DarknetMagicsError("no training images given", fix="add images=DIR (a folder of images and labels) or train=FILE (a list)")
        train_path = Path(train).expanduser()
        valid_path = Path(valid).expanduser() if valid is not None else train_path
        for p in (train_path, valid_path):
            if not p.is_file():
                raise DarknetMagicsError(f"image list {p} not found", fix="give an existing list file, or images=DIR")
        n_train = _count_lines(train_path)
        n_valid = _count_lines(valid_path)
    backup_dir = Path(os.path.abspath(Path(backup).expanduser()))
    backup_dir.mkdir(parents=True, exist_ok=True)
    train_w = space_free(train_path, link_dir, links)
    valid_w = space_free(valid_path, link_dir, links)
    names_w = space_free(names_path, link_dir, links)
    backup_w = space_free(backup_dir, link_dir, links)
    text = (f"classes = {classes}\ntrain = {train_w}\nvalid = {valid_w}\nnames = {names_w}\nbackup = {backup_w}\n")
    atomic_write_text(out, text)
    return DataResult(out, names_w, train_w, valid_w, n_train, n_valid, backup_w, class_names, links)


def _count_lines(path: Path) -> int:
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


# ----------------------------------------------------------------------------------------------------------------
# Pretrained weights


@dataclass(frozen=True)
class KnownWeights:
    """A well-known weights file: where it lives, its size in bytes (None when we are not sure) and what it is."""

    name: str
    url: Optional[str]
    size: Optional[int]
    about: str
    # How to produce files that are not hosted: (base weights name, stock cfg name, layers to keep).
    partial_of: Optional[tuple[str, str, int]] = None


_AB = "https://github.com/AlexeyAB/darknet/releases/download"
_PJ = "https://pjreddie.com/media/files"

# Sizes: the .conv.N and tiny sizes are also what `cfg.layer_weights` computes from the stock cfgs (a test checks
# those it can: yolov3, yolov3-tiny, darknet53.conv.74, yolov3-tiny.conv.15).
KNOWN_WEIGHTS: dict[str, KnownWeights] = {k.name: k for k in [
    KnownWeights("yolov4-tiny.conv.29", f"{_AB}/darknet_yolo_v4_pre/yolov4-tiny.conv.29", 19789716,
                 "yolov4-tiny backbone (first 29 layers), for training yolov4-tiny(-custom).cfg"),
    KnownWeights("yolov4.conv.137", f"{_AB}/darknet_yolo_v3_optimal/yolov4.conv.137", 170038676,
                 "yolov4 backbone (first 137 layers), for training yolov4(-custom).cfg"),
    KnownWeights("darknet53.conv.74", f"{_PJ}/darknet53.conv.74", 162482580,
                 "Darknet-53 backbone, for training yolov3.cfg"),
    KnownWeights("yolov3-tiny.conv.15", None, 30973396,
                 "yolov3-tiny backbone (first 15 layers), for training yolov3-tiny.cfg; not hosted: made from "
                 "yolov3-tiny.weights like `darknet partial cfg/yolov3-tiny.cfg yolov3-tiny.weights "
                 "yolov3-tiny.conv.15 15`", partial_of=("yolov3-tiny.weights", "yolov3-tiny", 15)),
    KnownWeights("yolov4-tiny.weights", f"{_AB}/darknet_yolo_v4_pre/yolov4-tiny.weights", 24251276,
                 "yolov4-tiny trained on COCO (80 classes)"),
    KnownWeights("yolov4.weights", f"{_AB}/darknet_yolo_v3_optimal/yolov4.weights", 257717640,
                 "yolov4 trained on COCO (80 classes)"),
    KnownWeights("yolov3.weights", f"{_PJ}/yolov3.weights", 248007048, "yolov3 trained on COCO (80 classes)"),
    KnownWeights("yolov3-tiny.weights", f"{_PJ}/yolov3-tiny.weights", 35434956,
                 "yolov3-tiny trained on COCO (80 classes)"),
]}


@dataclass(frozen=True)
class WeightsResult:
    """What `fetch_weights` did: 'downloaded', 'resumed' (a .part was continued), 'cached' or 'made'."""

    path: Path
    action: Literal["downloaded", "resumed", "cached", "made"]
    bytes: int
    url: Optional[str] = None


def _file_name_from_url(url: str) -> str:
    name = os.path.basename(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    if not name:
        raise DarknetMagicsError(f"cannot tell a file name from {url}", fix="give a URL that ends in the file name")
    return name


def fetch_weights(name_or_url: str, into: Path, reporter: Optional[Reporter] = None, *,
                  expected_size: Optional[int] = None, timeout: float = 60.0, retries: int = 3,
                  search_dirs: Optional[Sequence[Path]] = None) -> WeightsResult:
    """Download a known weights file (see `KNOWN_WEIGHTS`) or a URL into `into`, once.

    An existing complete file is reused ('cached'). A ``.part`` left by a broken download is continued with an
    HTTP Range request ('resumed'), or started over when the server ignores Range. The size is checked against
    `expected_size`, the table, and the server's Content-Length before the atomic rename to the final name.
    ``yolov3-tiny.conv.15`` (not hosted) is cut from yolov3-tiny.weights as ``darknet partial`` would.

    Raises:
        DarknetMagicsError: unknown name, HTTP/network failure after `retries`, or a size that does not match.
    """
    reporter = reporter or Reporter()
    into = Path(into).expanduser()
    into.mkdir(parents=True, exist_ok=True)
    known = KNOWN_WEIGHTS.get(name_or_url) or KNOWN_WEIGHTS.get(os.path.basename(name_or_url))
    if re.match(r"^[a-z][a-z0-9+.-]*://", name_or_url):
        url: Optional[str] = name_or_url
        file_name = _file_name_from_url(name_or_url)
        known = KNOWN_WEIGHTS.get(file_name) if expected_size is None else None
        if known and known.size is not None:
            expected_size = known.size
    elif known is not None:
        url, file_name = known.url, known.name
        if expected_size is None:
            expected_size = known.size
    else:
        raise DarknetMagicsError(f"unknown weights {name_or_url!r}",
                                 fix="use one of " + ", ".join(KNOWN_WEIGHTS) + ", or a URL")
    dest = into / file_name
    if dest.is_file():
        size = dest.stat().st_size
        if expected_size is None or size == expected_size:
            return WeightsResult(dest, "cached", size, url)
        reporter.warn(f"{dest} is {size:,} bytes, expected {expected_size:,}: downloading it again")
    if url is None:
        assert known is not None and known.partial_of is not None
        base_name, cfg_name, layers = known.partial_of
        base = fetch_weights(base_name, into, reporter, timeout=timeout, retries=retries)
        cfg_text = resolve_template(cfg_name, search_dirs).read_text()
        make_partial(cfg_text, base.path, dest, layers)
        size = dest.stat().st_size
        if expected_size is not None and size != expected_size:
            raise DarknetMagicsError(f"made {dest.name} with {size:,} bytes, expected {expected_size:,}",
                                     fix=f"delete {base.path} and fetch again")
        return WeightsResult(dest, "made", size, None)
    return _download(url, dest, reporter, expected_size, timeout, retries)


def _download(url: str, dest: Path, reporter: Reporter, expected: Optional[int], timeout: float,
              retries: int) -> WeightsResult:
    part = dest.with_name(dest.name + ".part")
    resumed = False
    last_error: Optional[BaseException] = None
    for attempt in range(retries + 1):
        have = part.stat().st_size if part.exists() else 0
        if expected is not None and have > expected:
            _unlink(part)
            have = 0
        request = urllib.request.Request(url, headers={"User-Agent": "darknet_magics"})
        if have:
            request.add_header("Range", f"bytes={have}-")
        try:
            try:
                response = urllib.request.urlopen(request, timeout=timeout)
            except urllib.error.HTTPError as err:
                if err.code == 416 and have and (expected is None or have == expected):
                    # The .part is already complete (a crash between the last byte and the rename).
                    total = have
                    break
                if err.code == 416:
                    _unlink(part)
                    continue
                raise
            with response:
                status = response.status
                length = response.headers.get("Content-Length")
                if status == 206 and have:
                    m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
                    if not m or int(m.group(1)) != have:
                        raise DarknetMagicsError(f"{url}: server answered a range we did not ask for",
                                                 fix="delete " + str(part) + " and fetch again")
                    total = int(m.group(3)) if m.group(3) != "*" else None
                    mode = "ab"
                    resumed = True
                else:
                    # 200: the server ignored Range (or there was nothing to resume): start over.
                    have = 0
                    total = int(length) if length is not None else None
                    mode = "wb"
                if expected is not None and total is not None and total != expected:
                    raise DarknetMagicsError(
                        f"{url} is {total:,} bytes on the server, expected {expected:,}",
                        fix="the file changed or the URL is wrong; give expected_size= or check the URL")
                goal = total if total is not None else expected
                progress = _Progress(reporter, f"downloading {dest.name}", 0, goal or 0)
                progress.bytes = have
                with open(part, mode) as f:
                    while True:
                        chunk = response.read(_CHUNK)
                        if not chunk:
                            break
                        f.write(chunk)
                        progress.add(0, len(chunk))
                    f.flush()
                    os.fsync(f.fileno())
                progress.done()
            total = part.stat().st_size
            if goal is not None and total < goal:
                last_error = DarknetMagicsError(f"download of {url} stopped at {total:,} of {goal:,} bytes")
                continue  # resume on the next attempt
            break
        except DarknetMagicsError:
            raise
        except (urllib.error.URLError, OSError, ConnectionError) as err:
            last_error = err
            reporter.warn(f"download of {dest.name} failed ({err}); retrying ({attempt + 1}/{retries})")
            time.sleep(min(2 ** attempt, 10) * 0.1)
    else:
        raise DarknetMagicsError(f"could not download {url}: {last_error}",
                                 fix="check the URL and the network, then run the same line again (it resumes)")
    size = part.stat().st_size
    if expected is not None and size != expected:
        raise DarknetMagicsError(f"{dest.name}: got {size:,} bytes, expected {expected:,}",
                                 fix=f"run the same line again (it resumes), or delete {part}")
    os.replace(part, dest)
    return WeightsResult(dest, "resumed" if resumed else "downloaded", size, url)


def make_partial(cfg_text: str, weights: Path, out: Path, layers: int) -> Path:
    """Keep the first `layers` layers of `weights` (for `cfg_text`), as ``darknet partial CFG W OUT N`` does.

    darknet's partial loads the net with its images-seen count cleared and saves the header as version 0.2.0, so
    the result starts training from iteration 0.
    """
    sizes = layer_weights(cfg_text)
    with open(weights, "rb") as f:
        header = read_weights_header(f.read(20))
        if header is None:
            raise DarknetMagicsError(f"{weights} is too short to be a weights file", fix="download it again")
        f.seek(header.size)
        want = sum(layer.nbytes for layer in sizes[:layers])
        body = f.read(want)
    if len(body) != want:
        raise DarknetMagicsError(f"{weights} ends before layer {layers}", fix="download it again")

    data = struct.pack("<3iq", 0, 2, 0, 0) + body
    atomic_write_bytes(out, data)
    return out
