"""Installing cuDNN from NVIDIA's tarball into the CUDA toolkit, each member vetted as it is extracted (no absolute
path, no '..', no device file).
"""
from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from ..errors import DarknetMagicsError
from ..report import Reporter
from .runtime import find_cudnn_header, parse_cudnn_header


@dataclass(frozen=True)
class CudnnResult:
    """What `install_cudnn` did and which version is installed now."""

    version: Optional[str]
    action: Literal["installed", "skipped"]
    include_dir: Path
    lib_dir: Path
    files: int = 0


def _tar_filter(member: tarfile.TarInfo, dest: str) -> Optional[tarfile.TarInfo]:
    # Python's 'data' filter refuses absolute paths, '..', device files and links leaving the folder.
    if hasattr(tarfile, "data_filter"):
        return tarfile.data_filter(member, dest)
    if member.name.startswith("/") or ".." in Path(member.name).parts or not (
            member.isfile() or member.isdir() or member.issym()):
        raise tarfile.TarError(f"unsafe member in cuDNN archive: {member.name}")
    return member


def _cudnn_top(members: list[tarfile.TarInfo]) -> str:
    """The folder in the archive that holds include/cudnn*.h ('' when include/ is at the top)."""
    for m in members:
        parts = Path(m.name).parts
        if len(parts) >= 2 and parts[-2] == "include" and parts[-1] in ("cudnn_version.h", "cudnn.h"):
            return str(Path(*parts[:-2])) if len(parts) > 2 else ""
    raise DarknetMagicsError("this archive has no include/cudnn.h: is it NVIDIA's cuDNN tarball for Linux?",
                             fix="download 'Local Installer for Linux x86_64 (Tar)' from developer.nvidia.com/cudnn")


def install_cudnn(tarball: Path, cuda_root: Optional[Path] = Path("/usr/local/cuda"),
                  reporter: Optional[Reporter] = None) -> CudnnResult:
    """Unpack NVIDIA's cuDNN tarball into `cuda_root` (include/ and lib64/); skip when that version is there.

    Accepts .tar.xz/.tgz/.tar.gz/.tar with a top folder holding include/ and lib/ or lib64/. Library symlinks
    are kept as links; headers are made world-readable (NVIDIA's are sometimes 0600).
    """
    reporter = reporter or Reporter()
    tarball = Path(tarball)
    cuda_root = Path(cuda_root) if cuda_root else Path("/usr/local/cuda")
    if not tarball.is_file():
        raise DarknetMagicsError(f"cuDNN archive not found: {tarball}", fix="give the path of the .tar.xz file")
    include_dir, lib_dir = cuda_root / "include", cuda_root / "lib64"
    try:
        tf = tarfile.open(tarball, "r:*")
    except tarfile.TarError as exc:
        raise DarknetMagicsError(f"{tarball} is not a tar archive ({exc})",
                                 fix="give NVIDIA's cuDNN .tar.xz as downloaded") from exc
    with tf:
        members = tf.getmembers()
        top = _cudnn_top(members)
        prefix = f"{top}/" if top else ""
        new_version = None
        for name in ("cudnn_version.h", "cudnn.h"):
            try:
                fobj = tf.extractfile(f"{prefix}include/{name}")
            except KeyError:
                continue
            if fobj is not None:
                new_version = parse_cudnn_header(fobj.read().decode("utf-8", "replace"))
            if new_version:
                break
        have, _ = find_cudnn_header([include_dir])
        if new_version and have == new_version:
            reporter.info(f"cuDNN {have} is already installed in {cuda_root}: skipped")
            return CudnnResult(have, "skipped", include_dir, lib_dir)
        reporter.info(f"installing cuDNN {new_version or '(unknown version)'} into {cuda_root}"
                      + (f" (replacing {have})" if have else ""))
        with tempfile.TemporaryDirectory(prefix="cudnn-") as tmp:
            try:
                if hasattr(tarfile, "data_filter"):
                    tf.extractall(tmp, filter=_tar_filter)
                else:  # Python before 3.10.12/3.11.4: check each member ourselves
                    tf.extractall(tmp, members=[m for m in members if _tar_filter(m, tmp)])
            except tarfile.TarError as exc:
                raise DarknetMagicsError(f"refusing to unpack {tarball.name}: {exc}",
                                         fix="use the tarball as downloaded from NVIDIA") from exc
            src = Path(tmp) / top if top else Path(tmp)
            count = _copy_tree(src / "include", include_dir, readable=True)
            # NVIDIA's 9.x tarballs say lib/, the 8.x ones (top folder `cuda/`) lib64/.
            lib_src = src / "lib64" if (src / "lib64").is_dir() else src / "lib"
            count += _copy_tree(lib_src, lib_dir, readable=False)
    version, _ = find_cudnn_header([include_dir])
    reporter.info(f"cuDNN {version} installed: {count} files in {include_dir} and {lib_dir}")
    return CudnnResult(version, "installed", include_dir, lib_dir, files=count)


def _copy_tree(src: Path, dest: Path, *, readable: bool) -> int:
    """Copy files and symlinks from `src` into `dest` (links stay links); returns how many."""
    if not src.is_dir():
        return 0
    count = 0
    for root, dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        (dest / rel).mkdir(parents=True, exist_ok=True)
        for name in files + [d for d in dirs if (Path(root) / d).is_symlink()]:
            s, d = Path(root) / name, dest / rel / name
            tmp = d.with_name(f".{name}.tmp{os.getpid()}")
            if s.is_symlink():
                if tmp.is_symlink() or tmp.exists():
                    tmp.unlink()
                os.symlink(os.readlink(s), tmp)
            else:
                shutil.copy2(s, tmp)
                if readable:
                    tmp.chmod(tmp.stat().st_mode | 0o444)
            os.replace(tmp, d)
            count += 1
    return count
