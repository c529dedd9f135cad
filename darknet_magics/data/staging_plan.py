"""What `stage` will do, said before it does anything: the source's kind, the archive type, the target folder;
and the errors that name a plan's source (a full disk, a file where a folder is meant).
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Optional, Union

from ..errors import DarknetMagicsError
from ..fileio import file_in_the_way
from ..run import mounts
from .archives import ArchiveType, _Member, _check_layout, _list_members, _suffix_matches, sniff_archive


ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar", ".zip")


SourceKind = Literal["folder", "archive", "url", "missing", "other"]


@dataclass(frozen=True)
class StagePlan:
    """What `stage` will do, decided without writing anything.

    Attributes:
        source: the SRC as given (a path or a URL).
        kind: 'folder', 'archive', 'url', 'missing' (nothing there) or 'other' (a file that is no archive).
        src: the local path read (for a URL: where the download is kept).
        into: the folder the dataset lands in.
        target: the dataset folder, ``into/NAME`` ({dataset}).
        archive_type: the archive's type read from its first bytes (None for folders, or a URL not yet fetched).
        high_latency: the source lies on a network mount: copy with threads instead of `cp`/`tar`.
        pack: a folder will first be packed into ``SRC.tar`` beside it.
        note: a sentence for the preview (a mislabelled archive, what a missing source means...).
    """

    source: str
    kind: SourceKind
    src: Path
    into: Path
    target: Path
    archive_type: Optional[ArchiveType] = None
    high_latency: bool = False
    pack: bool = False
    url: Optional[str] = None
    note: str = ""
    top: Optional[str] = None  # an archive's one top folder, whose content is the dataset
    members: tuple["_Member", ...] = field(default=(), repr=False, compare=False)

    def describe(self) -> list[str]:
        """Lines for a dry run."""
        how = {"folder": f"copy the folder {self.src} ({'threads: network mount' if self.high_latency else 'cp -r'})",
               "archive": f"unpack {self.src} ({self.archive_type}, read from its content)",
               "url": f"download {self.url} into {self.src} (resumable), then unpack it",
               "missing": f"nothing at {self.src} yet",
               "other": f"{self.src} is neither a folder nor an archive"}[self.kind]
        lines = [how + (" after packing it into one .tar beside it" if self.pack else ""),
                 f"{{dataset}} = {self.target} (skipped when the local copy is complete and equal to the source)"]
        if self.note:
            lines.append(self.note)
        return lines


@dataclass(frozen=True)
class StageResult:
    """What `stage` did: `action` is 'copied' (a first copy or an update), 'unpacked' or 'skipped'."""

    path: Path
    action: Literal["copied", "unpacked", "skipped"]
    files: int
    bytes: int
    seconds: float
    source: Path
    packed: bool = False
    removed: int = 0  # local files removed because they were deleted at the source
    downloaded: bool = False


def _archive_stem(name: str) -> str:
    for suffix in ARCHIVE_SUFFIXES:
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    stem = Path(name).stem
    return stem or name


def _is_url(text: str) -> bool:
    return bool(re.match(r"^https?://", text, re.I))


def gdrive_file_id(url: str) -> Optional[str]:
    """The file id of a Google Drive share link (``/file/d/ID/...``, ``open?id=ID``, ``uc?id=ID``), else None."""
    if not re.match(r"^https?://(drive|docs)\.google\.com/", url, re.I):
        return None
    m = re.search(r"/file/d/([A-Za-z0-9_-]{10,})", url) or re.search(r"[?&]id=([A-Za-z0-9_-]{10,})", url)
    return m.group(1) if m else None


def _url_file_name(url: str) -> str:
    import urllib.parse

    fid = gdrive_file_id(url)
    if fid:
        return f"gdrive-{fid}"
    name = os.path.basename(urllib.parse.unquote(urllib.parse.urlparse(url).path))
    if not name or name in (".", ".."):
        raise DarknetMagicsError(f"cannot tell a file name from {url}",
                                 fix="give a URL that ends in the archive's file name")
    return name


def is_high_latency(path: Path) -> bool:
    """True when `path` lies on a network/FUSE mount (Google Drive in Colab is FUSE): the mount table's answer
    (`run.mounts`)."""
    return mounts.is_high_latency(path)


def plan_stage(src: Union[str, Path], into: Union[str, Path], *, pack: bool = False,
               downloads: Optional[Path] = None) -> StagePlan:
    """What `stage(src, into, ...)` will do; reads an archive's listing (to vet it and find its one top folder),
    writes nothing.

    Args:
        src: a folder, an archive (type read from its content), or an http(s) URL (also a Google Drive link).
        into: the folder the dataset lands in; the dataset is ``into/NAME``.
        pack: pack a folder into ``SRC.tar`` beside it first (later VMs copy one file).
        downloads: where a URL's download is kept (default: `into`); give the drive so the next VM finds it.
    """
    plan = _plan_source(src, into, pack=pack, downloads=downloads)
    if plan.kind == "archive":
        return _archive_plan(plan)
    if plan.kind == "url" and plan.archive_type is not None:
        try:
            return _archive_plan(plan)
        except DarknetMagicsError:  # a broken earlier download: the run says what is wrong with it
            return replace(plan, archive_type=None, note=_url_note(plan.source))
    return plan


def _url_note(url: str) -> str:
    return ("the dataset folder is decided once the archive is downloaded (its one top folder, else the file's "
            "name)" + (" (a Google Drive link: needs the gdown package)" if gdrive_file_id(url) else ""))


def _plan_source(src: Union[str, Path], into: Union[str, Path], *, pack: bool,
                 downloads: Optional[Path]) -> StagePlan:
    """`plan_stage` short of an archive's members: the source's kind and the archive's type, from its first
    bytes. `stage` starts from this and vets the members while tar unpacks (`_unpack`)."""
    source = str(src)
    into = Path(into).expanduser()
    if _is_url(source):
        keep = Path(downloads).expanduser() if downloads else into
        path = keep / _url_file_name(source)
        kind: Optional[ArchiveType] = None
        if path.is_file():
            try:
                kind = sniff_archive(path)
            except DarknetMagicsError:
                kind = None
        note = f"already downloaded: {path}" if kind is not None else _url_note(source)
        return StagePlan(source, "url", path, into, into / _archive_stem(path.name), kind, False, False, source,
                         note)
    path = Path(source).expanduser()
    if not path.exists():
        return StagePlan(source, "missing", path, into, into / _archive_stem(path.name.rstrip("/")),
                         note="on Colab, mount the drive first (`drive`): it is under /content/drive/MyDrive")
    high = is_high_latency(path)
    if path.is_dir():
        name = path.resolve().name if path.name in ("", ".", "..") else path.name
        if pack:
            return StagePlan(source, "folder", path, into, into / name, "tar", high, True)
        return StagePlan(source, "folder", path, into, into / name, None, high)
    try:
        kind = sniff_archive(path)
    except DarknetMagicsError as err:
        return StagePlan(source, "other", path, into, into / _archive_stem(path.name), note=err.message)
    except OSError as err:
        return StagePlan(source, "other", path, into, into / _archive_stem(path.name), note=f"cannot read it: {err}")
    if kind is None:
        return StagePlan(source, "other", path, into, into / _archive_stem(path.name),
                         note="its content is no tar, gzip/bz2/xz tar or zip")
    note = ""
    labelled = next((s for s in ARCHIVE_SUFFIXES if path.name.lower().endswith(s)), None)
    if labelled and not _suffix_matches(labelled, kind):
        note = f"{path.name} is named {labelled} but its content is a {kind}: unpacking it as a {kind}"
    return StagePlan(source, "archive", path, into, into / _archive_stem(path.name), kind, high, note=note)


def _archive_plan(plan: StagePlan) -> StagePlan:
    """Fill in an archive plan's members and target: the one-top-folder rule, and no sharing between archives.

    When every member lies under one top folder TOP, the dataset is ``into/TOP`` (its content), else
    ``into/STEM``. If ``into/TOP`` already holds the dataset of ANOTHER source (its manifest says so), this
    archive goes to ``into/STEM`` instead: two archives with the same top folder never write into each other.
    Raises the `DarknetMagicsError` of the first bad member (outside the folder, a device, a damaged header).
    """
    assert plan.archive_type is not None
    members = tuple(_list_members(plan.src, plan.archive_type))
    _check_layout(members, plan.src)
    if not any(not m.is_dir for m in members):
        raise DarknetMagicsError(f"{plan.src.name} holds no files", fix="check that the right archive was given")
    names = [m.name for m in members]
    tops = {n.split("/", 1)[0] for n in names}
    top = next(iter(tops)) if len(tops) == 1 and any("/" in n for n in names) else None
    target = plan.target
    note = plan.note
    if top is not None:
        claimed = _read_manifest(plan.into / f".{top}.stage.json")
        if claimed and claimed.get("source") not in (None, str(plan.src.resolve())) and top != target.name:
            note = (note + "; " if note else "") + (f"{plan.into / top} holds the dataset of {claimed.get('source')}: "
                                                    f"unpacking into {target} instead")
        else:
            target = plan.into / top
    return replace(plan, target=target, top=top, members=members, note=note)


def _ensure_folder(path: Path, what: str) -> None:
    """mkdir -p with clean errors: a FILE where a folder is meant, a read-only disk, no permission."""
    blocker = file_in_the_way(path)
    if blocker is not None:
        raise DarknetMagicsError(f"{what} {path} cannot be made: {blocker} is a file, not a folder",
                                 fix=f"give another folder, or remove the file {blocker}")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DarknetMagicsError(f"cannot make {what} {path}: {err.strerror}",
                                 fix="give a folder on a writable disk (e.g. into=/content/data)") from None


def _os_error(err: OSError, plan: StagePlan) -> DarknetMagicsError:
    if err.errno == errno.ENOSPC or err.errno == errno.EDQUOT:
        return _full_disk(plan)
    if err.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return DarknetMagicsError(f"cannot write into {plan.into}: {err.strerror} ({err.filename or ''})",
                                  fix="stage into a writable folder (into=...), or fix the folder's permissions")
    return DarknetMagicsError(f"staging {plan.src} failed: {err}",
                              fix="check the source and the local disk (df -h), then run the same line again")


def _full_disk(plan: StagePlan, needed: Optional[int] = None) -> DarknetMagicsError:
    try:
        free = shutil.disk_usage(plan.into).free
    except OSError:
        free = 0
    need = f", needs {needed / 1e6:,.1f} MB" if needed else ""
    return DarknetMagicsError(
        f"no space left in {plan.into} while staging {plan.src.name} ({free / 1e6:,.1f} MB free{need}); "
        f"nothing half-copied was left as {plan.target}",
        fix="free space (df -h; delete old runs or datasets there), or stage into= a bigger disk")


def _check_space(plan: StagePlan, nbytes: int, written: int = 0) -> None:
    """Room for `nbytes` in `plan.into`, of which `written` are already there (tar is unpacking)."""
    try:
        free = shutil.disk_usage(plan.into).free
    except OSError:
        return
    if nbytes - written > free:
        raise _full_disk(plan, nbytes)


def _manifest_path(plan: StagePlan) -> Path:
    # Beside the staged copy, not inside it: the dataset folder stays exactly the user's files.
    return plan.into / f".{plan.target.name}.stage.json"


def _read_manifest(path: Path) -> Optional[dict]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else None
    except (OSError, ValueError):
        return None


def _write_manifest(path: Path, data: dict) -> None:
    """Write the manifest by rename (never half-written) but without fsync.

    An fsync here would wait for the whole copy's dirty pages (tens of MB, thousands of inodes) to reach the disk,
    which `cp -r` and `tar -x` never do: that alone made staging several times slower than them. The local copy
    is scratch space that a VM reset wipes anyway, and the size check on the next run catches a lost file.
    """
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)
