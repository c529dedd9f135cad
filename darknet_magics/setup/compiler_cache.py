"""Compiling through ccache (`make ccache=on`): the build's compilers wrapped so that a rebuild of the same sources
on a new VM (after a `git pull` changed a few files, or a flag) compiles only what changed.

How each build system picks its compilers decides how ccache is put in front of them:

* a Makefile (pjreddie, AlexeyAB) runs ``gcc``, ``g++`` and ``nvcc`` from PATH: a folder of links named like them
  that point at ccache (ccache's "masquerade") goes first on the build's PATH; ccache runs the next one on PATH.
* CMake (hank-ai) runs the compilers by their full paths: ``CMAKE_<LANG>_COMPILER_LAUNCHER=ccache``.

``CCACHE_BASEDIR`` is the darknet tree, so the absolute paths CMake writes into every command are hashed relative
to it and a clone in another folder still hits. Two of ccache's defaults would make darknet miss every time (both
measured on AlexeyAB's CUDA build, see `CCACHE_DEFAULTS`). The cache's counters before and after the build say how
many compiles it served (`ccache_counts`, `hits_between`).
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

CCACHE_BIN_DIR = Path(".darknet_magics") / "ccache-bin"  # in the darknet tree: gcc, g++, cc, c++, nvcc -> ccache
MASQUERADE = ("gcc", "g++", "cc", "c++", "nvcc")
CCACHE_MAX_SIZE = "2G"  # written into a new cache folder's ccache.conf (ccache's default is 5 GB)
CMAKE_LANGUAGES = ("C", "CXX", "CUDA")
# Set unless the environment sets them. time_macros: AlexeyAB's CHECK_CUDA expands __DATE__ and __TIME__ in every
# .cu file (hank-ai's utils.cpp prints them in its banner); by default ccache compiles such a file every time, so
# every CUDA kernel missed. With it, a hit keeps the time of the first compile in those messages. hash_dir off:
# ccache 4.7 reads nvcc's `-gencode` as a `-g` and then hashes the working folder, so a clone in another folder
# missed every kernel; the cost is that a DEBUG=1 build's debug information may name the folder of the first compile.
CCACHE_DEFAULTS = {"CCACHE_SLOPPINESS": "time_macros", "CCACHE_NOHASHDIR": "1"}


@dataclass(frozen=True)
class CompilerCache:
    """ccache for one build: its folder (None: ccache's own default, or $CCACHE_DIR) and the tree it is based in."""

    directory: Optional[Path]
    basedir: Path

    def env(self) -> dict[str, str]:
        """What the build's environment gets: the cache folder and the base folder."""
        env = {k: v for k, v in CCACHE_DEFAULTS.items() if k not in os.environ}
        env["CCACHE_BASEDIR"] = str(self.basedir)
        if self.directory is not None:
            env["CCACHE_DIR"] = str(self.directory)
        return env

    def describe(self) -> str:
        """One line for the dry run."""
        where = self.directory or os.environ.get("CCACHE_DIR") or "ccache's default folder"
        return f"compile through ccache (cache in {where}, paths relative to {self.basedir})"


def cmake_launcher_args(gpu: bool) -> list[str]:
    """CMake's launchers: ccache before every compiler of the build (and nvcc's with GPU=1)."""
    return [f"-DCMAKE_{lang}_COMPILER_LAUNCHER=ccache" for lang in CMAKE_LANGUAGES if lang != "CUDA" or gpu]


def masquerade_dir(darknet_dir: Path, ccache: str) -> Path:
    """The folder of compiler-named links to `ccache` (made or refreshed), for the front of a Makefile build's PATH."""
    folder = darknet_dir / CCACHE_BIN_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for name in MASQUERADE:
        link = folder / name
        if link.is_symlink() and os.readlink(link) == ccache:
            continue
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(ccache)
    return folder


def prepare_cache_dir(directory: Optional[Path]) -> None:
    """Make the cache folder; a new one gets ``max_size`` in its ccache.conf (one already configured is kept)."""
    if directory is None:
        return
    directory.mkdir(parents=True, exist_ok=True)
    conf = directory / "ccache.conf"
    if not conf.exists():
        conf.write_text(f"max_size = {CCACHE_MAX_SIZE}\n")


def find_ccache() -> Optional[str]:
    """ccache's path (not one of our masquerade links)."""
    return shutil.which("ccache")


def ccache_counts(env: dict[str, str]) -> Optional[dict[str, int]]:
    """ccache's counters for the cache `env` names (``ccache --print-stats``), None when ccache cannot say."""
    ccache = find_ccache()
    if ccache is None:
        return None
    try:
        p = subprocess.run([ccache, "--print-stats"], env=env, capture_output=True, text=True, errors="replace",
                           timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if p.returncode != 0:
        return None
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\t(\d+)$", p.stdout, re.M)}


def hits_between(before: Optional[dict[str, int]], after: Optional[dict[str, int]]) -> Optional[tuple[int, int]]:
    """(compiles served from the cache, cacheable compiles) between two `ccache_counts` (pure)."""
    if before is None or after is None:
        return None

    def grew(name: str) -> int:
        return after.get(name, 0) - before.get(name, 0)

    hits = grew("direct_cache_hit") + grew("preprocessed_cache_hit")
    return hits, hits + grew("cache_miss")
