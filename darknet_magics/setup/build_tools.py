"""The tools a build needs beyond a compiler: which (CMake >= 3.24, protobuf, OpenCV's headers), and installing
them (apt with the .deb files kept in the workspace cache, pip's CMake with its wheel kept).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..errors import DarknetMagicsError, StepError
from ..report import Reporter
from .runtime import run_tool

CMAKE_MIN = (3, 24)  # hank-ai's CMakeLists (CUDA architecture detection); Colab's apt cmake is 3.22
# hank-ai's ONNX exporter (darknet_onnx_export) needs protobuf's headers, library and compiler
PROTOBUF_PACKAGES = ("libprotobuf-dev", "protobuf-compiler")
PROTOBUF_HEADER_DIRS = ("/usr/include", "/usr/local/include")


@dataclass(frozen=True)
class BuildTools:
    """What a build needs installed first (`build_tools_needed`'s answer): apt packages, and pip's cmake."""

    apt: tuple[str, ...] = ()
    pip_cmake: bool = False

    def describe(self) -> list[str]:
        """The installs as a dry run shows them."""
        lines = [f"apt-get install -y {' '.join(self.apt)} (missing for this build)"] if self.apt else []
        if self.pip_cmake:
            lines.append(f"pip install 'cmake>={'.'.join(map(str, CMAKE_MIN))}' (apt's cmake is older)")
        return lines


def parse_cmake_version(text: str) -> Optional[tuple[int, ...]]:
    """'cmake version 3.22.1' -> (3, 22, 1)."""
    m = re.search(r"cmake3? version (\d+)\.(\d+)(?:\.(\d+))?", text)
    return tuple(int(g) for g in m.groups() if g is not None) if m else None


def build_tools_needed(system: str, flags: dict[str, int], *, opencv_headers: bool, protobuf: bool,
                       cmake_version: Optional[tuple[int, ...]]) -> BuildTools:
    """The packages a build needs and this machine lacks (pure): OpenCV's headers for OPENCV=1 and for every hank-ai
    build, protobuf for hank-ai's ONNX exporter (unless ONNX=0), a CMake >= 3.24 for hank-ai."""
    apt: list[str] = []
    if (system == "cmake" or flags.get("OPENCV")) and not opencv_headers:
        apt.append("libopencv-dev")
    if system == "cmake" and flags.get("ONNX", 1) and not protobuf:
        apt += PROTOBUF_PACKAGES
    pip_cmake = system == "cmake" and (cmake_version is None or cmake_version[:2] < CMAKE_MIN)
    return BuildTools(tuple(apt), pip_cmake)


def protobuf_present() -> bool:
    """protoc on PATH and protobuf's C++ headers installed (what hank-ai's CMake looks for to build ONNX export)."""
    return shutil.which("protoc") is not None and any(
        (Path(d) / "google" / "protobuf" / "message.h").is_file() for d in PROTOBUF_HEADER_DIRS)


def cmake_path() -> Optional[str]:
    """The cmake to run: pip's in this Python's scripts folder first (it is the new one where both exist)."""
    pip_cmake = Path(sysconfig.get_path("scripts")) / "cmake"
    return str(pip_cmake) if os.access(pip_cmake, os.X_OK) else shutil.which("cmake")


def cmake_version(cmake: Optional[str]) -> Optional[tuple[int, ...]]:
    """The version `cmake --version` prints (None without a cmake)."""
    if not cmake:
        return None
    rc, out = run_tool([cmake, "--version"])
    return parse_cmake_version(out) if rc == 0 else None


def apt_install_argv(packages: Sequence[str], deb_cache: Optional[Path], *, download_only: bool = False,
                     reinstall: bool = False) -> list[str]:
    """``apt-get install`` for `packages`, keeping the .deb files in `deb_cache` (a workspace folder that outlives
    the VM): apt installs from there without a download when the files are in it."""
    for name in packages:
        if not re.fullmatch(r"[a-z0-9][a-z0-9.+-]*", name):
            raise DarknetMagicsError(f"{name!r} is not a Debian package name", fix="give package names like libprotobuf-dev")
    argv = ["apt-get", "install", "-y", "-q", "--no-install-recommends"]
    if deb_cache is not None:
        # Keep-Downloaded-Packages: some images' apt config deletes the .debs after an install
        argv += ["-o", f"Dir::Cache::Archives={deb_cache}", "-o", "APT::Keep-Downloaded-Packages=true"]
    if download_only:
        argv.append("--download-only")
    if reinstall:
        argv.append("--reinstall")
    return argv + ["--", *packages]


def install_apt_packages(packages: Sequence[str], reporter: Reporter, deb_cache: Optional[Path] = None) -> None:
    """Install `packages` with apt-get, showing its progress; .debs kept in `deb_cache` are used, new ones kept there.

    The package lists are refreshed (``apt-get update``) only when the install fails without: a VM whose .debs are
    all in the cache installs with no download at all.
    """
    if deb_cache is not None:
        (deb_cache / "partial").mkdir(parents=True, exist_ok=True)
    cached = len(list(deb_cache.glob("*.deb"))) if deb_cache is not None else 0
    reporter.info(f"installing {' '.join(packages)} with apt-get" + (f" ({cached} .deb files in {deb_cache})"
                                                                      if deb_cache is not None else ""))
    argv = apt_install_argv(packages, deb_cache)
    rc, out = _apt(argv, reporter)
    if rc != 0:
        _apt(["apt-get", "update", "-q"], reporter)
        rc, out = _apt(argv, reporter)
    if rc != 0:
        raise StepError(f"could not install {' '.join(packages)}",
                        fix=f"run `apt-get install -y {' '.join(packages)}` yourself",
                        details="\n".join(out.strip().splitlines()[-10:]))


def _apt(argv: list[str], reporter: Reporter) -> tuple[int, str]:
    """Run an apt-get command, each line of its output as progress (Get:, Unpacking, Setting up ...)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
    lines: list[str] = []
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                                env=env, stdin=subprocess.DEVNULL)
    except OSError as exc:
        return 127, f"{argv[0]}: {exc}"
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if line.startswith(("Get:", "Unpacking", "Setting up", "Need to get", "Hit:")):
            reporter.progress(line.strip()[:120])
    return proc.wait(), "".join(lines)


def install_opencv_dev(reporter: Reporter, deb_cache: Optional[Path] = None) -> None:
    """``apt-get install -y libopencv-dev`` (Colab ships OpenCV for Python only, no C++ headers)."""
    install_apt_packages(["libopencv-dev"], reporter, deb_cache)


def pip_install_cmake(reporter: Reporter, wheel_cache: Optional[Path] = None) -> str:
    """pip's CMake (>= 3.24) into this Python, its wheel kept in `wheel_cache`; returns the new cmake's path."""
    spec = f"cmake>={'.'.join(map(str, CMAKE_MIN))}"
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    cached = False
    if wheel_cache is not None:
        wheel_cache.mkdir(parents=True, exist_ok=True)
        if not list(wheel_cache.glob("cmake-*.whl")):
            reporter.info(f"downloading {spec} into {wheel_cache}")
            run_tool([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheel_cache), spec], 600)
        pip += ["--find-links", str(wheel_cache)]
        cached = bool(list(wheel_cache.glob("cmake-*.whl")))
    reporter.info(f"installing {spec} with pip (apt's cmake is older than hank-ai needs)"
                  + (f" from {wheel_cache}" if cached else ""))
    # the kept wheel installs without asking the index (no network, and no wait on an index that does not answer);
    # pip's index is asked only when that fails
    rc, out = run_tool(pip + ["--no-index", spec], timeout=600) if cached else (1, "")
    if rc != 0:
        rc, out = run_tool(pip + [spec], timeout=600)
    path = cmake_path()
    version = cmake_version(path)
    if rc != 0 or version is None or version[:2] < CMAKE_MIN:
        raise StepError(f"could not install {spec}", fix=f"run `pip install '{spec}'` yourself",
                        details=out.strip()[-1000:])
    return path or "cmake"
