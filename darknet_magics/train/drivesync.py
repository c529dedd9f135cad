"""Local first, then verified on the drive: a run folder on fast local disk, mirrored onto its folder on the drive.

Google Drive in Colab uploads lazily from a cache on the VM: a file kept open and appended to (darknet's log, our
history) may not reach Drive before the VM dies (colabtools#2607, #287, #521). So darknet and our sinks write on
local disk, and a `Mirror` brings the run's files to the drive as *closed* files: each one is copied to a hidden
temporary file beside its place, fsynced, closed, renamed into place and read back (size and SHA-256). The drive
folder's ``sync.json`` (written the same way, last) lists what was verified, so a new VM trusts only those files.

A drive that fails (disconnected, full, read-only) never stops darknet: the mirror records the failure, keeps the
local files and tries again at the next cadence; the caller shows it as a warning with the fix.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Optional

from ..errors import DarknetMagicsError
from ..fileio import atomic_write_text, remove_if_exists
from ..output.problems import drive_copy_unverified
from ..jsonread import Fields, RecordError, load_json

__all__ = ["SYNC_NAME", "FileSig", "Manifest", "Mirror", "SyncReport", "copy_verified", "read_fields", "read_manifest",
           "restore", "working_folder", "ago"]

SYNC_NAME = "sync.json"
# What a run folder holds that means nothing on another VM (its processes and their requests), and temp files.
_SKIP = {"stop-request", "follower.json", "sync-state.json", SYNC_NAME}
_STABLE_S = 1.0   # a weights file untouched this long is not being written by darknet now
_CHUNK = 1 << 20
_APPEND_ONLY = {"train.log"}  # a prefix of an append-only file is stable while darknet goes on writing


@dataclass(frozen=True)
class FileSig:
    """One verified copy: the bytes copied (`size`, `sha256`) and the local file's state when it was read."""

    size: int
    sha256: str
    mtime_ns: int = 0


@dataclass
class Manifest:
    """``sync.json`` on the drive: the local twin's path, when it was last synced, and every verified file."""

    local: Path
    synced_at: Optional[str] = None
    files: dict[str, FileSig] = field(default_factory=dict)

    def to_json(self) -> str:
        files = {k: {"size": v.size, "sha256": v.sha256, "mtime_ns": v.mtime_ns} for k, v in sorted(self.files.items())}
        return json.dumps({"version": 1, "local": str(self.local), "synced_at": self.synced_at, "files": files},
                          indent=1) + "\n"


def read_fields(path: Path, known: set[str]) -> Optional[Fields]:
    """A small JSON file of a run folder (sync.json, guard.json) as Fields with only `known` keys; None when it is
    not there; RecordError (file, line) when it cannot be read or is not ours."""
    try:
        value, text = load_json(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise RecordError(path, None, f"cannot be read ({exc.strerror or exc})") from None
    f = Fields(value, path, path.name, text)
    f.unknown(known)
    return f


def read_manifest(drive_dir: Path) -> Optional[Manifest]:
    """The drive folder's ``sync.json``, or None when there is none. A damaged one is a RecordError (file, line):
    its names must stay inside the folder, its sizes be whole numbers, its hashes be hex."""
    f = read_fields(Path(drive_dir) / SYNC_NAME, {"version", "local", "synced_at", "files"})
    if f is None:
        return None
    local = f.str_("local")
    if not local or not Path(local).is_absolute():
        raise f.fail("local", f"an absolute folder expected, got {local!r:.80}")
    files = {}
    table = f.obj_("files")
    for name in (table.obj if table else {}):
        _check_name(name, f)
        entry = table.obj_(name)  # type: ignore[union-attr]
        entry.unknown({"size", "sha256", "mtime_ns"})
        digest = entry.str_("sha256") or ""
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise entry.fail("sha256", f"64 hex digits expected, got {digest[:80]!r}")
        files[name] = FileSig(entry.int_("size") or 0, digest, entry.int_("mtime_ns") or 0)
    return Manifest(Path(local), f.str_("synced_at"), files)


def _check_name(name: str, f: Fields) -> None:
    parts = Path(name).parts
    if not parts or Path(name).is_absolute() or ".." in parts or name.startswith("."):
        raise f.fail(name, "a file name that leaves the run folder (a run folder's files stay inside it)")


@dataclass(frozen=True)
class SyncReport:
    """One round of `Mirror.sync`: the files copied and verified, and the first failure (None: all reached it)."""

    copied: tuple[str, ...] = ()
    error: Optional[str] = None
    at: float = 0.0


def _digest_copy(source: Path, dest: Path, size: int) -> str:
    """Copy the first `size` bytes of `source` into `dest` (created, fsynced, closed); their SHA-256."""
    digest = hashlib.sha256()
    left = size
    with open(source, "rb") as src, open(dest, "wb") as out:
        while left > 0:
            data = src.read(min(_CHUNK, left))
            if not data:
                raise OSError(f"{source} became shorter while it was copied")
            digest.update(data)
            out.write(data)
            left -= len(data)
        out.flush()
        os.fsync(out.fileno())
    return digest.hexdigest()


def _hash(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        for data in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(data)
            size += len(data)
    return size, digest.hexdigest()


def copy_verified(source: Path, dest: Path, *, size: Optional[int] = None) -> FileSig:
    """Copy `source` (its first `size` bytes) to `dest` as a closed file: written beside `dest` under a hidden
    name, renamed into place, read back and compared (size and SHA-256). OSError when any step fails or the copy
    reads back different (the old `dest`, if any, is then still there)."""
    stat = os.stat(source)
    size = stat.st_size if size is None else size
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.parent / f".{dest.name}.{os.getpid()}.sync.tmp"
    try:
        digest = _digest_copy(source, tmp, size)
        os.replace(tmp, dest)
    finally:
        remove_if_exists(tmp)
    back = _hash(dest)
    if back != (size, digest):
        raise OSError(f"{dest} reads back {back[0]:,} bytes that differ from the {size:,} written")
    return FileSig(size, digest, stat.st_mtime_ns)


def ago(seconds: float) -> str:
    """``14 s``, ``3 min``, ``2 h 5 min``: how long since the drive last got everything."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60} min"


class Mirror:
    """Mirrors `local` (the run folder darknet writes) onto `drive` (its folder on the drive), file by file.

    `sync()` copies what changed since its last verified copy; `due()` says whether the cadence asks for a round
    (every `every` seconds, and as soon as a weights file was saved and is stable). Never raises for the drive:
    failures are kept in `failing` (the message) and `failed_since`.
    """

    def __init__(self, local: Path, drive: Path, *, every: float = 60.0, clock: Callable[[], float] = time.time
                 ) -> None:
        self.local, self.drive, self.every, self.clock = Path(local), Path(drive), float(every), clock
        self.last_ok: Optional[float] = None
        self.last_try: float = 0.0
        self.failing: Optional[str] = None
        self.failed_since: Optional[float] = None
        try:
            old = read_manifest(self.drive)
        except DarknetMagicsError:
            old = None  # a damaged manifest is rewritten from what is verified now
        self.manifest = Manifest(self.local, files=dict(old.files) if old and old.local == self.local else {})

    def _files(self) -> Iterator[tuple[str, os.stat_result]]:
        for path in sorted(self.local.rglob("*")):
            name = path.relative_to(self.local).as_posix()
            if name in _SKIP or path.name.startswith(".") or path.name.endswith(".tmp") or path.is_symlink():
                continue
            try:
                stat = path.stat()
            except OSError:
                continue
            if path.is_file():
                yield name, stat

    def pending(self, now: Optional[float] = None, *, force: bool = False,
                whole: frozenset[str] | set[str] = frozenset()) -> list[tuple[str, int]]:
        """(name, bytes to copy) for each file that changed since its verified copy and is stable now: untouched for
        a second, or in `whole` (darknet has gone on past its save), or `force` (darknet has ended)."""
        now = self.clock() if now is None else now
        out = []
        for name, stat in self._files():
            known = self.manifest.files.get(name)
            if known is not None and known.mtime_ns == stat.st_mtime_ns and known.size == stat.st_size:
                continue
            if not force and name not in _APPEND_ONLY and name not in whole and now - stat.st_mtime < _STABLE_S:
                continue  # darknet may be writing it (weights are written in place): next round
            out.append((name, stat.st_size))
        return out

    def weights_waiting(self) -> bool:
        """A weights file was saved (changed, stable) and is not on the drive yet: sync now, not at the cadence."""
        return any(name.endswith((".weights", ".backup")) for name, _ in self.pending())

    def due(self) -> bool:
        now = self.clock()
        if now - self.last_try >= self.every:
            return True
        return now - self.last_try >= 1.0 and self.weights_waiting()

    def sync(self, *, force: bool = False, whole: frozenset[str] | set[str] = frozenset()) -> SyncReport:
        """Copy every changed, stable file and then ``sync.json``; the report says what reached the drive."""
        now = self.clock()
        self.last_try = now
        copied = []
        try:
            for name, size in self.pending(now, force=force, whole=whole):
                source = self.local / name
                before = source.stat()
                sig = copy_verified(source, self.drive / name, size=None if name not in _APPEND_ONLY else size)
                after = source.stat()
                if name not in _APPEND_ONLY and (after.st_mtime_ns, after.st_size) != (before.st_mtime_ns,
                                                                                       before.st_size):
                    continue  # rewritten while copied: the drive has a whole older state; the next round copies it
                if name in _APPEND_ONLY and after.st_size != size:
                    sig = FileSig(sig.size, sig.sha256, 0)  # a prefix: the rest goes next round
                self.manifest.files[name] = sig
                copied.append(name)
            self.manifest.synced_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
            atomic_write_text(self.drive / SYNC_NAME, self.manifest.to_json())
        except OSError as exc:
            message = exc.strerror or str(exc)
            if self.failing is None:
                self.failed_since = now
            self.failing = message
            return SyncReport(tuple(copied), message, now)
        self.last_ok, self.failing, self.failed_since = now, None, None
        return SyncReport(tuple(copied), None, now)

    def forget(self, name: str) -> None:
        """`name` was pruned locally (keep=): remove it from the drive and the manifest too."""
        if self.manifest.files.pop(name, None) is not None:
            try:
                remove_if_exists(self.drive / name)
            except OSError:
                pass  # a drive that fails now: the next manifest no longer lists it, so it is never restored


def _verified_prefix(source: Path, dest: Path, sig: FileSig) -> bool:
    """An append-only file (train.log) whose newer copy reached the drive after the last sync.json did (the VM died
    between the two): its first `sig.size` bytes are the verified copy, copied to `dest`; False (and no `dest`)
    when they are not."""
    try:
        if copy_verified(source, dest, size=sig.size).sha256 == sig.sha256:
            return True
    except OSError:
        pass  # shorter than the verified copy: not it
    remove_if_exists(dest)
    return False


def restore(drive_dir: Path, manifest: Manifest, *, into: Optional[Path] = None) -> tuple[list[str], list[str]]:
    """Bring a run folder back onto local disk from the drive (a new VM): each file `manifest` verified is checked
    again on the drive (size, SHA-256) and copied; ([restored], [skipped: what was wrong]). A file that reads back
    different (a lazy upload that never finished) is skipped, never used."""
    into = Path(into or manifest.local)
    restored, skipped = [], []
    for name, sig in sorted(manifest.files.items()):
        source = Path(drive_dir) / name
        try:
            if _hash(source) == (sig.size, sig.sha256):
                copy_verified(source, into / name)
            elif not (name in _APPEND_ONLY and _verified_prefix(source, into / name, sig)):
                skipped.append(drive_copy_unverified(name, "its size or SHA-256 differ: an unfinished upload")
                               .describe())
                continue
            if sig.mtime_ns:  # as it was on the old VM: the mirror knows it is on the drive already
                os.utime(into / name, ns=(sig.mtime_ns, sig.mtime_ns))
            restored.append(name)
        except OSError as exc:
            skipped.append(drive_copy_unverified(name, exc.strerror or str(exc)).describe())
    return restored, skipped


def working_folder(folder: Path, *, restore_missing: bool = False) -> tuple[Path, list[str]]:
    """The folder a run is worked on in, and lines to show: `folder` itself, or, for a drive folder with a
    ``sync.json``, its local twin (restored from the drive first with `restore_missing` when this VM has none)."""
    manifest = read_manifest(folder)
    if manifest is None or manifest.local == Path(folder):
        return Path(folder), []
    if (manifest.local / "run.json").is_file():
        return manifest.local, []
    if not restore_missing:
        return Path(folder), []
    staging = manifest.local.parent / f".{manifest.local.name}.restore"
    shutil.rmtree(staging, ignore_errors=True)
    restored, skipped = restore(folder, manifest, into=staging)
    if "run.json" not in restored:
        shutil.rmtree(staging, ignore_errors=True)
        raise DarknetMagicsError(f"{folder}: the drive holds no verified run.json to continue from "
                                 f"({'; '.join(skipped) or 'nothing was synced'})",
                                 fix="start again with %yolo train (the drive's log is still readable: "
                                     "%yolo log DIR/train.log)")
    if manifest.local.exists():  # a folder without run.json: kept aside, never deleted
        os.replace(manifest.local, manifest.local.parent / f".{manifest.local.name}.{int(time.time())}.old")
    os.replace(staging, manifest.local)
    lines = [f"restored {len(restored)} file(s) of {Path(folder).name} from the drive ({folder}) into "
             f"{manifest.local} (synced {manifest.synced_at})"]
    return manifest.local, lines + skipped
