"""Google Drive: mounting it in Colab (a plain folder elsewhere), and space-free aliases for paths that darknet's
shell calls would break.
"""
from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import DarknetMagicsError, StepError
from ..report import Reporter
from . import colab

# Characters darknet (spaces: it splits obj.data values on them) or a later shell step might mangle.
_UNSAFE_PATH = re.compile(r"[\s'\";`$&|<>()\\*?!#]")


def path_needs_alias(path: str | Path) -> bool:
    """True when `path` has characters darknet or a shell would mangle (spaces, quotes, ';', ...)."""
    return bool(_UNSAFE_PATH.search(str(path)))


@dataclass(frozen=True)
class DriveInfo:
    """What `{drive}` means: `root` is the path to give darknet (an alias when the real one has spaces)."""

    root: Path
    real_root: Path
    alias: Optional[Path]
    in_colab: bool
    mounted: bool


def default_alias_dir() -> Path:
    """Where `drive` puts its space-free link outside Colab: the same place on every VM of the same setup.

    The link's path is written into obj.data and list files that live on the drive, so a new VM must find the
    link at the same path: `drive` recreates it there on every run (its name is a hash of the real path).
    The place is ``$DARKNET_MAGICS_LINKS`` when set, else ``/content`` on Colab-like machines (what the Colab
    branch uses), else ``$XDG_CACHE_HOME/darknet_magics/links`` (``~/.cache/...``). Only when that folder cannot
    be created (a read-only home) is it ``/tmp/darknet_magics-UID/links``, said in the output; there is no
    other fallback, so two runs on one machine never disagree.
    """
    pinned = _pinned_alias_dir()
    if pinned is not None:
        return pinned
    if Path("/content").is_dir():
        return Path("/content")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")).expanduser()
    return cache / "darknet_magics" / "links"


def _pinned_alias_dir() -> Optional[Path]:
    """``$DARKNET_MAGICS_LINKS``: the user's own place for the links, in Colab and elsewhere alike."""
    env = os.environ.get("DARKNET_MAGICS_LINKS")
    return Path(env).expanduser() if env else None


def _tmp_alias_dir() -> Path:
    return Path(tempfile.gettempdir()) / f"darknet_magics-{os.getuid()}" / "links"


def tmp_links_dir() -> Path:
    """The one space-free link folder in the temp folder: per user (``/tmp/darknet_magics-UID/links``), made 0700.

    For the `drive` alias when the home is read-only, and for `datasets.space_free` when the folder beside obj.data
    cannot hold links. A shared /tmp must not hand us another user's links, so a folder someone else owns is refused.

    Raises:
        DarknetMagicsError: the folder belongs to another user.
    """
    folder = _tmp_alias_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder.stat().st_uid != os.getuid():
        raise DarknetMagicsError(f"{folder} belongs to another user", fix="set DARKNET_MAGICS_LINKS to a folder of yours")
    return folder


def _make_alias(target: Path, alias: Path) -> None:
    """Point symlink `alias` at `target` atomically (replaces an older link of ours, never a real folder)."""
    if path_needs_alias(alias):
        raise DarknetMagicsError(f"the alias folder {str(alias.parent)!r} itself has spaces or quotes",
                                 fix="give an alias folder with a plain path (e.g. /tmp/links)")
    if alias.exists() or alias.is_symlink():
        if not alias.is_symlink():
            raise DarknetMagicsError(f"cannot make the link {alias}: a real file or folder is there",
                                     fix="remove it, or give another alias folder")
        if os.path.realpath(alias) == os.path.realpath(target):
            return
    for parent in [alias.parent, *alias.parent.parents]:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise DarknetMagicsError(f"cannot make the link {alias}: {parent} is a file, not a folder",
                                         fix="remove that file, or give alias= another folder")
            break
    alias.parent.mkdir(parents=True, exist_ok=True)
    tmp = alias.with_name(f".{alias.name}.tmp{os.getpid()}")
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(target, tmp)
    os.replace(tmp, alias)


def _colab_roots(path: Optional[str]) -> tuple[Path, Optional[Path]]:
    """(mountpoint, root inside it) for a `drive` path in Colab; root None means "MyDrive, whichever exists".

    ``drive`` -> /content/drive; ``drive /content/drive/MyDrive/yolo`` mounts /content/drive and uses the
    subfolder.
    """
    if not path:
        return Path("/content/drive"), None
    p = Path(path)
    for i, part in enumerate(p.parts):
        if part in ("MyDrive", "My Drive"):
            return Path(*p.parts[:i]), p
    return p, None


def _colab_drive(path: Optional[str], reporter: Reporter,
                 alias_dir: Optional[Path]) -> tuple[DriveInfo, Path]:
    """Colab: mount Google Drive (unless mounted) and find its root; the drive and its default link."""
    mountpoint, root = _colab_roots(path)
    already = (mountpoint / "MyDrive").is_dir() or (mountpoint / "My Drive").is_dir()
    if not already:
        reporter.info(f"mounting Google Drive at {mountpoint}")
        colab.mount(str(mountpoint))
    if root is None:
        # Colab mounts show MyDrive today; older mounts (and some docs) show "My Drive".
        root = mountpoint / "MyDrive"
        if not root.is_dir() and (mountpoint / "My Drive").is_dir():
            root = mountpoint / "My Drive"
    if not root.is_dir():
        if root.parent.is_dir() and root.parent != mountpoint:
            root.mkdir(parents=True, exist_ok=True)
        else:
            raise StepError(f"Google Drive did not mount at {mountpoint} (no MyDrive inside)",
                            fix="run the cell again and authorize Drive access")
    info = DriveInfo(root=root, real_root=root, alias=None, in_colab=True, mounted=True)
    default_alias = (alias_dir or _pinned_alias_dir() or Path("/content")) / "mydrive"
    return info, default_alias


def _local_drive(path: Optional[str], reporter: Reporter,
                 alias_dir: Optional[Path]) -> tuple[DriveInfo, Path]:
    """Elsewhere: a local folder (made if missing) acts as the drive; the drive and its default link."""
    if not path:
        raise DarknetMagicsError(
            "`drive` needs a folder outside Colab (there is no Google Drive to mount here)",
            fix="write `drive /path/to/folder` (a local folder; it is created if missing)")
    root = Path(path).expanduser()
    if root.exists() and not root.is_dir():
        raise DarknetMagicsError(f"`drive {path}`: {root} is a file, not a folder",
                                 fix="give the folder that should act as the drive")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise DarknetMagicsError(f"`drive {path}`: a part of {root} is a file, not a folder",
                                 fix="give a folder path whose parents are folders") from None
    root = root.resolve()
    reporter.info(f"drive: using the local folder {root}")
    info = DriveInfo(root=root, real_root=root, alias=None, in_colab=False, mounted=False)
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", root.name).strip("_") or "drive"
    default_alias = (alias_dir or default_alias_dir()) / f"{safe}-{digest}"
    return info, default_alias


def mount_drive(path: Optional[str], reporter: Reporter, *, alias_dir: Optional[Path] = None) -> DriveInfo:
    """Make `{drive}` usable: mount Google Drive in Colab, or use a local folder elsewhere.

    Darknet splits obj.data values at spaces, so a root with spaces ('My Drive') gets a space-free symlink
    (``/content/mydrive`` in Colab) and that link is what `root` holds.
    """
    info, default_alias = (_colab_drive if colab.in_colab() else _local_drive)(path, reporter, alias_dir)
    if not path_needs_alias(info.real_root):
        return info
    try:
        _make_alias(info.real_root, default_alias)
    except OSError as err:
        if alias_dir is not None or info.in_colab:
            raise DarknetMagicsError(f"cannot make the link {default_alias}: {err.strerror}",
                                     fix="give alias= a writable folder with a plain path") from None
        # A read-only home: the one fallback, per user (a shared /tmp must not hand us another user's link).
        fallback = _tmp_alias_dir() / default_alias.name
        reporter.warn(f"cannot write {default_alias.parent} ({err.strerror}): using {fallback.parent} instead "
                      "(set DARKNET_MAGICS_LINKS to choose)")
        tmp_links_dir()
        _make_alias(info.real_root, fallback)
        default_alias = fallback
    reporter.info(f"{info.real_root} has spaces or quotes, which darknet cannot read in obj.data paths: "
                  f"using the link {default_alias} -> {info.real_root} as {{drive}}")
    return DriveInfo(root=default_alias, real_root=info.real_root, alias=default_alias, in_colab=info.in_colab,
                     mounted=info.mounted)
