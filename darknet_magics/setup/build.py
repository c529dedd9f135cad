"""Get darknet and build it: clone, Makefile patching (pure), GPU ARCH, make/CMake with progress, binary cache.

Three darknet flavours are built the same way from the caller's point of view:

* pjreddie/darknet and AlexeyAB/darknet: a Makefile whose top lines (``GPU=0`` ...) and ``ARCH=`` block we
  patch (`patch_makefile`, text in, text out), then ``make -jN``.
* hank-ai/darknet: a CMake tree (CMakeLists.txt, no Makefile); flags map to ``-D`` options (`CMAKE_OPTIONS`).

A build is cached under ``{cache_dir}/KEY/`` where KEY hashes everything that changes the binary
(`cache_inputs`): a later VM restores it in seconds and proves it loads before saying so.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from ..run import runner
from .environment import (CMAKE_MIN, PROTOBUF_PACKAGES, BuildTools, CudaBuildPaths, RuntimeInfo, build_tools_needed,
                          cmake_path, cmake_version, cuda_major_of, find_cuda_build_paths, install_apt_packages,
                          install_opencv_dev, make_link_folder, nvidia_wheel_dirs, opencv_headers_present,
                          pip_install_cmake, protobuf_present)
from ..errors import DarknetMagicsError, Problem, StepError
from ..fileio import atomic_write_text
from ..output.problems import NO_GPU_FIX
from ..output.logparse import strip_escapes
from ..report import Reporter

DEFAULT_URL = "https://github.com/AlexeyAB/darknet"
# 2: a CMake entry holds hank-ai's tools too (entries of format 1 have the CLI and libdarknet only: not used)
CACHE_FORMAT = 2
BUILD_LOG_NAME = "darknet_magics_build.log"

# ============================================================================================== clone


@dataclass(frozen=True)
class CloneResult:
    """Where darknet is and at which commit; `action` says whether anything changed."""

    path: Path
    commit: str
    action: Literal["cloned", "updated", "unchanged"]
    url: str = DEFAULT_URL
    ref: Optional[str] = None


def _git(args: list[str], cwd: Optional[Path] = None, *, check: bool = True) -> subprocess.CompletedProcess[str]:
    # GIT_TERMINAL_PROMPT=0: a private or mistyped URL must fail, not wait for a password nobody can type.
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}
    p = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, errors="replace", env=env,
                       stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise StepError(f"git {args[0]} failed", details=(p.stderr or p.stdout).strip()[-2000:])
    return p


def _is_git_root(path: Path) -> bool:
    """True when `path` is the top of a git work tree (not merely inside another repository)."""
    if not (path / ".git").exists():
        return False
    p = _git(["rev-parse", "--show-toplevel"], path, check=False)
    return p.returncode == 0 and Path(p.stdout.strip()).resolve() == path.resolve()


def _checkout_argv(into: Path, ref: str) -> list[str]:
    return ["git", "-C", str(into), "checkout", "--quiet", "--detach", ref]


def _check_clone_args(url: str, ref: Optional[str], into: Path) -> None:
    """Refuse values git would read as options (``--upload-pack=...``), and a FILE where the clone folder goes."""
    if url.startswith("-"):
        raise DarknetMagicsError(f"the clone URL {url!r} starts with '-', which git would read as an option",
                                 fix="give a URL (https://...) or a path (./-name for a folder named like that)")
    if ref is not None and (ref.startswith("-") or not ref.strip()):
        raise DarknetMagicsError(f"ref={ref!r} is not a branch, tag or commit (it starts with '-' or is empty)",
                                 fix="give a branch, tag or commit, e.g. ref=master")
    for parent in [into, *into.parents]:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise DarknetMagicsError(f"cannot clone into {into}: {parent} is a file, not a folder",
                                         fix=f"give into= another folder, or remove the file {parent}")
            break


def clone_commands(url: Optional[str], ref: Optional[str], into: Path) -> list[list[str]]:
    """The git commands `clone` would run (for a dry run); argv lists, nothing is run."""
    url = url or DEFAULT_URL
    into = Path(into)
    _check_clone_args(url, ref, into)
    if _is_git_root(into):
        cmds = [["git", "-C", str(into), "fetch", "--tags", "origin"]]
        if ref:
            cmds.append(_checkout_argv(into, ref))
        else:
            cmds.append(["git", "-C", str(into), "merge", "--ff-only", "@{upstream}"])
        return cmds
    cmds = [["git", "clone", "--", url, str(into)]]
    if ref:
        cmds.append(_checkout_argv(into, ref))
    return cmds


def _resolve_ref(into: Path, ref: str) -> str:
    """Commit for `ref`: a remote branch first (so a fetched branch moves), then a tag or sha."""
    for cand in (f"origin/{ref}", ref):
        p = _git(["rev-parse", "--verify", "--quiet", f"{cand}^{{commit}}"], into, check=False)
        if p.returncode == 0:
            return p.stdout.strip()
    raise DarknetMagicsError(f"ref {ref!r} not found in {into}", fix="give a branch, tag or commit of that repository")


def _reset_our_makefile(into: Path) -> None:
    # Our patched Makefile would block a checkout; the original is in git and make re-applies the flags.
    if (into / "Makefile.orig").exists():
        _git(["checkout", "--quiet", "--", "Makefile"], into, check=False)


def clone(url: Optional[str], ref: Optional[str], into: Path, reporter: Reporter) -> CloneResult:
    """Clone `url` into `into` at `ref`, or fetch and check out `ref` when `into` is already a clone.

    `url` may be a local path or a file:// URL. Returns the commit now checked out.
    """
    url = url or DEFAULT_URL
    into = Path(into)
    _check_clone_args(url, ref, into)
    if into.exists() and not _is_git_root(into):
        if any(into.iterdir()):
            raise DarknetMagicsError(f"{into} exists and is not a git clone",
                                     fix="give another folder, or remove this one")
    if _is_git_root(into):
        before = _git(["rev-parse", "HEAD"], into).stdout.strip()
        reporter.info(f"updating {into} (git fetch)")
        _git(["fetch", "--quiet", "--tags", "origin"], into)
        if ref:
            target = _resolve_ref(into, ref)
        else:
            up = _git(["rev-parse", "--verify", "--quiet", "@{upstream}"], into, check=False)
            target = up.stdout.strip() if up.returncode == 0 else before
        if target != before:
            _reset_our_makefile(into)
            _git(["checkout", "--quiet", "--detach", target] if ref else ["merge", "--quiet", "--ff-only", target],
                 into)
        commit = _git(["rev-parse", "HEAD"], into).stdout.strip()
        action: Literal["cloned", "updated", "unchanged"] = "updated" if commit != before else "unchanged"
    else:
        reporter.info(f"cloning {url} into {into}")
        into.parent.mkdir(parents=True, exist_ok=True)
        _git(["clone", "--quiet", "--", url, str(into)])  # `--`: nothing after it is an option
        if ref:
            _git(["checkout", "--quiet", "--detach", _resolve_ref(into, ref)], into)
        commit = _git(["rev-parse", "HEAD"], into).stdout.strip()
        action = "cloned"
    reporter.info(f"darknet at {commit[:12]} ({action})")
    return CloneResult(path=into, commit=commit, action=action, url=url, ref=ref)


# ============================================================================================== Makefile

_FLAG_RE = re.compile(r"^(?P<name>[A-Za-z][A-Za-z0-9_]*)(?P<op>[ \t]*:?=[ \t]*)(?P<value>[01])(?P<rest>[ \t]*(?:#.*)?)$")
_ARCH_RE = re.compile(r"^ARCH[ \t]*:?=")
_ARCH_ADD_RE = re.compile(r"^ARCH[ \t]*\+=")
_COND_OPEN = re.compile(r"^\s*(ifeq|ifneq|ifdef|ifndef)\b")
_COND_CLOSE = re.compile(r"^\s*endif\b")
ARCH_DISABLED_NOTE = "  # darknet_magics: off, ARCH is set above"


def _split(text: str) -> list[tuple[str, str]]:
    """Lines as (body, line ending) so every untouched line is written back byte for byte."""
    out = []
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        out.append((body, line[len(body):]))
    return out


def _scan(text: str) -> list[tuple[int, str, str, bool]]:
    """(index, body, ending, top_level) per line; continuation lines are not top level."""
    rows = []
    depth, cont = 0, False
    for i, (body, end) in enumerate(_split(text)):
        top = not cont and depth == 0 and not body.startswith("\t")
        if not cont and not body.startswith("\t"):
            if _COND_OPEN.match(body):
                depth += 1
            elif _COND_CLOSE.match(body):
                depth = max(0, depth - 1)
        rows.append((i, body, end, top))
        cont = body.endswith("\\")
    return rows


def makefile_flags(text: str) -> dict[str, int]:
    """The 0/1 switches a Makefile declares at top level, in order: {'GPU': 0, 'CUDNN': 0, ...}."""
    flags: dict[str, int] = {}
    for _, body, _, top in _scan(text):
        m = _FLAG_RE.match(body) if top else None
        if m and m.group("name") not in flags:
            flags[m.group("name")] = int(m.group("value"))
    return flags


def read_arch(text: str) -> Optional[str]:
    """The value of the top-level ``ARCH=`` block, continuation lines joined (None when there is none)."""
    rows = _scan(text)
    for k, (_, body, _, top) in enumerate(rows):
        if top and _ARCH_RE.match(body):
            parts = [body.split("=", 1)[1]]
            j = k
            while rows[j][1].endswith("\\") and j + 1 < len(rows):
                parts[-1] = parts[-1][:-1]
                j += 1
                parts.append(rows[j][1])
            return " ".join(" ".join(parts).split())
    return None


def arch_block(capabilities: list[int]) -> str:
    """``ARCH= -gencode arch=compute_75,code=[sm_75,compute_75]`` (one -gencode per capability, one line).

    `code=[sm_XX,compute_XX]` puts both the binary for that GPU and PTX in the build, so a newer GPU can still
    JIT-compile the kernels.
    """
    if not capabilities:
        raise ValueError("arch_block needs at least one compute capability")
    gencodes = " ".join(f"-gencode arch=compute_{c},code=[sm_{c},compute_{c}]" for c in sorted(set(capabilities)))
    return f"ARCH= {gencodes}"


def patch_makefile(text: str, flags: dict[str, int], arch: Optional[str]) -> str:
    """Set `flags` on the Makefile's switch lines and replace its ARCH block by `arch` (an ``ARCH=`` line).

    Pure and idempotent; every other line is kept byte for byte. With `arch` set, ``ARCH+=`` lines (AlexeyAB adds
    compute_70 under CUDNN_HALF, which CUDA 13 rejects) are commented out, so the ARCH you asked for is all that
    nvcc gets. Raises DarknetMagicsError for a flag this Makefile does not have, or a value other than 0/1.
    """
    known = makefile_flags(text)
    unknown = [k for k in flags if k not in known]
    if unknown:
        raise DarknetMagicsError(f"this Makefile has no flag {', '.join(unknown)}",
                                 fix=f"valid flags here: {' '.join(known)}")
    for k, v in flags.items():
        if v not in (0, 1):
            raise DarknetMagicsError(f"{k}={v}: flags are 0 or 1", fix=f"write {k}=0 or {k}=1")
    if arch is not None and not arch.startswith("ARCH"):
        raise ValueError("arch must be a full `ARCH= ...` line, see arch_block()")

    out: list[str] = []
    rows = _scan(text)
    done: set[str] = set()
    skip_cont = False
    arch_done = False
    for _, body, end, top in rows:
        if skip_cont:
            # Continuation lines of the ARCH block we replaced.
            skip_cont = body.endswith("\\")
            continue
        m = _FLAG_RE.match(body) if top else None
        if m and m.group("name") in flags and m.group("name") not in done:
            done.add(m.group("name"))
            out.append(f"{m.group('name')}{m.group('op')}{int(flags[m.group('name')])}{m.group('rest')}{end}")
            continue
        if arch is not None and top and not arch_done and _ARCH_RE.match(body):
            arch_done = True
            out.append(arch + (end or "\n"))
            skip_cont = body.endswith("\\")
            continue
        if arch is not None and not body.startswith("\t") and _ARCH_ADD_RE.match(body.lstrip()):
            out.append("#" + body + ARCH_DISABLED_NOTE + end)
            continue
        out.append(body + end)
    if arch is not None and not arch_done:
        # No ARCH block at all (a trimmed Makefile): put ours after the switches.
        out.insert(_after_flags(rows), arch + "\n")
    return "".join(out)


def _after_flags(rows: list[tuple[int, str, str, bool]]) -> int:
    last = 0
    for i, body, _, top in rows:
        if top and _FLAG_RE.match(body):
            last = i + 1
    return last


def write_makefile(darknet_dir: Path, text: str) -> bool:
    """Write the Makefile atomically, keeping the first original as Makefile.orig; False when unchanged.

    An unchanged Makefile is not rewritten: its mtime is a dependency of every object file.
    """
    path = darknet_dir / "Makefile"
    old = path.read_text()
    if old == text:
        return False
    orig = darknet_dir / "Makefile.orig"
    if not orig.exists():
        atomic_write_text(orig, old)
    atomic_write_text(path, text)
    return True


# ---------------------------------------------------------------------------------------------- GPU libraries

GPU_LIBS_BEGIN = "# >>> darknet_magics: NVIDIA's libraries where this machine keeps them (PyPI wheels, a driver stub)"
GPU_LIBS_END = "# <<< darknet_magics"
CUDA_LINK_DIR = Path(".darknet_magics") / "cuda-libs"  # in the darknet tree: unversioned links and libcuda.so


def cuda_root_of(runtime: RuntimeInfo) -> Path:
    """The CUDA toolkit of `runtime.nvcc` (/usr/local/cuda for /usr/local/cuda/bin/nvcc): the folder above its bin/
    that has include/cuda_runtime.h, else /usr/local/cuda (an nvcc on PATH may be a wrapper script)."""
    if runtime.nvcc:
        nvcc = Path(runtime.nvcc)
        for root in (nvcc.parents[1], nvcc.resolve().parents[1]):
            if (root / "include" / "cuda_runtime.h").is_file():
                return root
    return Path("/usr/local/cuda")


def _make_word(value: str) -> str:
    """`value` as one shell word inside a Makefile recipe ('$' doubled for make)."""
    if any(ord(c) < 32 for c in value):
        raise DarknetMagicsError(f"cannot build in {value!r}: the path has a control character",
                                 fix="clone darknet into a folder with a plain path")
    return shlex.quote(value).replace("$", "$$")


def gpu_makefile_lines(paths: CudaBuildPaths, link_dir: Path, cuda_root: Path) -> list[str]:
    """The Makefile lines that point a GPU build at NVIDIA's headers and libraries where they are (pure).

    The Makefiles name only /usr/local/cuda (and /usr/local/cudnn); Colab's cuDNN and pip's wheels live elsewhere.
    `-rpath` holds the libraries' real folders, so the binary finds them at run time without LD_LIBRARY_PATH.
    """
    runtime_dirs = list(dict.fromkeys([cuda_root / "lib64", *paths.lib_dirs]))
    lines = [GPU_LIBS_BEGIN]
    if paths.include_dirs:
        lines.append("COMMON+= " + " ".join("-I" + _make_word(str(d)) for d in paths.include_dirs))
    lines.append("LDFLAGS+= " + " ".join("-L" + _make_word(str(d)) for d in [link_dir, *runtime_dirs])
                 + " " + " ".join("-Wl,-rpath," + _make_word(str(d)) for d in runtime_dirs))
    return lines + [GPU_LIBS_END]


def with_gpu_libs(text: str, lines: Optional[list[str]]) -> str:
    """The Makefile with our GPU library block (at the end: make expands these variables only in recipes) replaced
    by `lines`, or removed when `lines` is None. Pure and idempotent."""
    begin = text.find(GPU_LIBS_BEGIN)
    if begin >= 0:
        end = text.find(GPU_LIBS_END, begin)
        end = len(text) if end < 0 else text.find("\n", end) + 1 or len(text)
        text = text[:begin] + text[end:]
    if not lines:
        return text
    eol = "\r\n" if "\r\n" in text else "\n"
    if text and not text.endswith(("\n", "\r")):
        text += eol
    return text + eol.join(lines) + eol


def gpu_cmake_args(paths: CudaBuildPaths, link_dir: Path, cuda_root: Path) -> list[str]:
    """CMake cache variables that give hank-ai's FindCUDAToolkit and cuDNN search what they cannot find (pure)."""
    libs = {lib.name: lib for lib in paths.libraries}
    args = [f"-DCUDA_cuda_driver_LIBRARY={link_dir / 'libcuda.so'}"]
    args += [f"-DCUDA_{name}_LIBRARY={libs[name].library}" for name in ("cublas", "curand") if name in libs]
    if "cudnn" in libs:
        args += [f"-Dcudnn={libs['cudnn'].library}", f"-Dcudnn_include={libs['cudnn'].include_dir}"]
    if paths.include_dirs:
        includes = ";".join(map(str, paths.include_dirs))
        args += [f"-DCMAKE_{lang}_STANDARD_INCLUDE_DIRECTORIES={includes}" for lang in ("C", "CXX", "CUDA")]
    args.append("-DCMAKE_BUILD_RPATH=" + ";".join(map(str, dict.fromkeys([cuda_root / "lib64", *paths.lib_dirs]))))
    return args


def find_gpu_libraries(system: str, flags: dict[str, int], runtime: RuntimeInfo) -> CudaBuildPaths:
    """cuBLAS, cuRAND (and cuDNN) for a GPU build, wherever apt or pip put them (this Python's sys.path).

    Raises:
        StepError: one the build needs is missing (cuDNN only with CUDNN=1: hank-ai builds without it).
    """
    names = ["cublas", "curand", "cudnn"] if flags.get("CUDNN") or system == "cmake" else ["cublas", "curand"]
    paths = find_cuda_build_paths(names, cuda_root=cuda_root_of(runtime), wheel_dirs=nvidia_wheel_dirs(sys.path),
                                  cuda_major=cuda_major_of(runtime.cuda_version))
    needed = [n for n in paths.missing if n != "cudnn" or flags.get("CUDNN")]
    if needed:
        major = cuda_major_of(runtime.cuda_version) or 12
        wheels = " ".join(f"nvidia-{n}-cu{major}" if n != "cudnn" else f"nvidia-cudnn-cu{major}" for n in needed)
        raise StepError(f"GPU=1 needs {', '.join(needed)} (headers and library) for CUDA {runtime.cuda_version}, "
                        "and this machine has none where apt or pip put them",
                        fix=f"pip install {wheels} (or apt-get install the CUDA toolkit's libraries), or use GPU=0")
    return paths


# ============================================================================================== ARCH


def parse_arch(arch: str) -> list[int]:
    """'75,86' / '7.5 8.6' / 'sm_75' / 'compute_75' -> [75, 86]."""
    caps = []
    for tok in re.split(r"[,;\s]+", arch.strip()):
        if not tok:
            continue
        m = re.fullmatch(r"(?:sm_|compute_)?(\d+)(?:\.(\d))?", tok)
        if not m:
            raise DarknetMagicsError(f"ARCH={arch}: {tok!r} is not a compute capability",
                                     fix="write ARCH=auto, or numbers such as ARCH=75 (T4) or ARCH=75,86")
        caps.append(int(m.group(1)) * 10 + int(m.group(2)) if m.group(2) is not None else int(m.group(1)))
    if not caps:
        raise DarknetMagicsError("ARCH= is empty", fix="write ARCH=auto or ARCH=75")
    return sorted(set(caps))


@dataclass(frozen=True)
class ArchChoice:
    """The compute capabilities a GPU build targets, and why, when that is not what was asked for."""

    caps: list[int]
    note: Optional[str] = None  # said to the user: a fallback (another GPU than asked, a toolkit too old)


# The GPU a capability stands for in messages (Colab's, and a few others).
GPU_NAMES = {75: "T4", 80: "A100", 86: "A10", 89: "L4", 90: "H100", 100: "B200", 120: "G4 (RTX PRO 6000)"}


def _gpu_label(cap: int) -> str:
    return f"{_cap_str(cap)} ({GPU_NAMES[cap]})" if cap in GPU_NAMES else _cap_str(cap)


def choose_arch(arch: Optional[str], gpu: bool, runtime: RuntimeInfo) -> Optional[ArchChoice]:
    """The compute capabilities to build for, checked against what this nvcc can build (pure).

    GPU=0: None (the ARCH block is left alone: nothing reads it). GPU=1 with no ARCH or ``auto``: the GPU's own
    capability, because the stock compute_30/35 lines fail with every CUDA from 11 on. An ARCH that leaves out the
    GPU this VM has (Colab often gives a G4 when an H100 is asked for) builds for the GPU that is here, and says so.
    A GPU newer than this nvcc can name (12.0 with CUDA 12.6) gets the newest architecture nvcc has, with its PTX,
    which the driver compiles for the GPU at the first run. Every `-gencode` carries PTX (`arch_block`).
    """
    if not gpu:
        return None
    if not runtime.nvcc:
        raise DarknetMagicsError(
            "GPU=1 needs nvcc (the CUDA compiler) and none was found",
            fix="in Colab pick a GPU runtime (Runtime > Change runtime type); elsewhere install the CUDA toolkit "
                "(nvcc in /usr/local/cuda/bin), or build with GPU=0")
    here = runtime.capability_int
    auto = arch is None or arch.strip().lower() == "auto"
    if auto and here is None:
        raise DarknetMagicsError(
            "ARCH=auto needs a GPU to read its compute capability, and none was found",
            fix="give it explicitly, e.g. ARCH=75 (T4), ARCH=80 (A100), ARCH=89 (L4), ARCH=90 (H100), ARCH=120 (G4)")
    caps = [here] if auto else parse_arch(arch or "")
    note = None
    if here is not None and here not in caps:
        note = (f"asked for {' '.join(_gpu_label(c) for c in caps)}, got {runtime.gpu_name or 'a GPU'} "
                f"({_cap_str(here)}): building for {_cap_str(here)}")
        caps = [here]
    known = runtime.nvcc_archs
    if known:
        bad = [c for c in caps if c not in known]
        if bad and caps == [here] and any(k < here for k in known):
            # The GPU is newer than this toolkit: its newest architecture, as PTX the driver JIT-compiles.
            best = max(k for k in known if k < here)
            note = ((note + "; ") if note else "") + (
                f"nvcc {runtime.cuda_version or ''} cannot build for {_cap_str(here)}: building for "
                f"{_cap_str(best)} with its PTX, which the driver compiles for this GPU at the first run "
                f"(minutes; CUDA >= 12.8 builds 12.0 directly)")
            caps = [best]
        elif bad:
            raise DarknetMagicsError(
                f"nvcc {runtime.cuda_version or ''} cannot build for compute capability "
                f"{', '.join(_cap_str(c) for c in bad)} (it builds: {','.join(map(str, known))})",
                fix="use an ARCH from that list, or a CUDA version that still supports this GPU")
    return ArchChoice(caps, note)


def resolve_arch(arch: Optional[str], gpu: bool, runtime: RuntimeInfo) -> Optional[list[int]]:
    """`choose_arch`'s capabilities (None for GPU=0)."""
    choice = choose_arch(arch, gpu, runtime)
    return choice.caps if choice else None


def _cap_str(c: int) -> str:
    return f"{c // 10}.{c % 10}"


# ============================================================================================== diagnosis

_ERROR_LINE = re.compile(
    r"(\berror\b|\bfatal\b|undefined reference|No such file or directory|not found|cannot find -l|"
    r"\*\*\*|Unsupported gpu architecture|was not declared|CMake Error)", re.I)
# gcc's notes and context lines, and CMake's "-- ..." status lines ("-- Support for AMD/ROCm/HIP not found" is a
# finding about an optional part, not the error)
_NOISE = re.compile(r"^\s*(warning:|note:|In file included|\s+\||\d+ \|)|^-- ")


def _cmake_warning_lines(lines: list[str]) -> set[int]:
    """Indices of the lines of CMake's warning blocks ("CMake Warning at ...:" and its indented text, which says
    "not found" of optional parts such as ROCm): findings, not the error."""
    inside, found = False, set()
    for i, line in enumerate(lines):
        if line.startswith("CMake Warning"):
            inside = True
        elif inside and line.strip() and not line.startswith((" ", "\t")):
            inside = False
        if inside:
            found.add(i)
    return found


def first_error_lines(text: str, limit: int = 12) -> str:
    """The first lines that look like real errors (compiler, linker, nvcc, make, cmake), with a little context."""
    lines = text.splitlines()
    warnings = _cmake_warning_lines(lines)
    for i, line in enumerate(lines):
        # Compiler command lines echoed by make are not errors, even when a flag says "-Wfatal-errors".
        if _ERROR_LINE.search(line) and not _NOISE.match(line) and not _COMPILE_LINE.search(line) \
                and i not in warnings:
            # gcc names the function on the line before the error: keep it, it is the useful context.
            start = i - 1 if i > 0 and re.search(r": In (member )?function ", lines[i - 1]) else i
            return "\n".join(lines[start:start + limit])
    return "\n".join(lines[-limit:])


def diagnose_build(text: str) -> list[Problem]:
    """Known build failures in make/cmake output -> Problems with their fixes (pure)."""
    problems: list[Problem] = []

    def add(code: str, message: str, fix: str, pattern: re.Pattern[str]) -> None:
        m = pattern.search(text)
        if m and all(p.code != code for p in problems):
            problems.append(Problem(code, message, fix, evidence=m.group(0)))

    add("unsupported-gpu-arch", "nvcc cannot build for a GPU architecture in the Makefile's ARCH",
        "use ARCH=auto (the GPU's own capability) or a value from `nvcc --list-gpu-arch`",
        re.compile(r"Unsupported gpu architecture '?compute_\d+'?|unsupported gpu architecture[^\n]*", re.I))
    add("cudnn-api-mismatch",
        "this darknet calls a cuDNN 7 function that cuDNN 8 and newer removed (pjreddie's darknet does)",
        "build with CUDNN=0, or use AlexeyAB's or hank-ai's darknet, which support cuDNN 8/9",
        re.compile(r"[^\n]*(cudnnGetConvolution(Forward|BackwardData|BackwardFilter)Algorithm\b(?!_v7)|"
                   r"CUDNN_CONVOLUTION_(FWD|BWD_DATA|BWD_FILTER)_SPECIFY_WORKSPACE_LIMIT)[^\n]*"))
    add("opencv-missing", "OpenCV's C++ headers or pkg-config file are missing",
        "run `apt-get install -y libopencv-dev` (Colab has OpenCV for Python only), or build with OPENCV=0",
        re.compile(r"[^\n]*(opencv2?/[\w/]+\.h(pp)?: No such file|Package opencv4? was not found|"
                   r"No package 'opencv4?' found|Could not find a package configuration file provided by\s+"
                   r"\"OpenCV\"|Could NOT find OpenCV)[^\n]*"))
    add("opencv-api-mismatch", "this darknet's OpenCV code needs OpenCV 2/3 (the C API that OpenCV 4 removed)",
        "build with OPENCV=0, or use AlexeyAB's or hank-ai's darknet with OpenCV 4",
        re.compile(r"[^\n]*'(IplImage|CvCapture|cvCreateImage|CV_CAP_PROP_\w+)' (was not declared|does not name)"))
    add("nvcc-missing", "nvcc (the CUDA compiler) was not found", "install the CUDA toolkit, or build with GPU=0",
        re.compile(r"[^\n]*nvcc: (Command not found|not found|No such file or directory)[^\n]*"))
    add("cuda-headers-missing", "CUDA headers (cuda_runtime.h, cublas_v2.h, curand.h) were not found",
        "install the CUDA toolkit's development files (cuda-libraries-dev), or build with GPU=0",
        re.compile(r"[^\n]*(cuda_runtime\.h|cublas_v2\.h|curand\.h): No such file[^\n]*"))
    add("cudnn-missing", "cuDNN's header (cudnn.h) was not found", "install cuDNN (the `cudnn TARBALL` step) or use CUDNN=0",
        re.compile(r"[^\n]*cudnn\.h: No such file[^\n]*"))
    add("cuda-libs-missing", "the linker cannot find a CUDA library (libcuda comes with the GPU driver)",
        "build on a machine with the NVIDIA driver (a GPU runtime in Colab), or build with GPU=0",
        re.compile(r"[^\n]*cannot find -l(cuda|cudart|cublas|curand|cudnn)\b[^\n]*"))
    add("compiler-missing", "a compiler or build tool is missing", "run `apt-get install -y build-essential cmake`",
        re.compile(r"[^\n]*(?<![\w.+-])(gcc|g\+\+|cc|c\+\+|cmake|make): (Command not found|not found)[^\n]*"))
    return problems


# ============================================================================================== build

CMAKE_OPTIONS: dict[str, Optional[str]] = {
    # our flag -> hank-ai's CMake option (None: handled otherwise, see _cmake_argv)
    "GPU": "DARKNET_TRY_CUDA",
    "AVX": "ENABLE_SSE_AND_AVX",
    "OPENBLAS": "DARKNET_TRY_OPENBLAS",
    "ONNX": "DARKNET_TRY_ONNX",
    "ROCM": "DARKNET_TRY_ROCM",
    "DEBUG": None,   # CMAKE_BUILD_TYPE=Debug|Release
    "CUDNN": None,   # found with CUDA by hank-ai's CMakeLists
    "OPENCV": None,  # hank-ai requires OpenCV: always on
}
CMAKE_DEFAULTS = {"GPU": 0, "AVX": 1, "OPENBLAS": 1, "DEBUG": 0}
_COMPILE_LINE = re.compile(r"^\[\s*\d+%\]\s+Building \w+ object|(?:^|\s)-c\s.*\s-o\s+\S+\.o\b|(?:^|\s)-o\s+\S+\.o\s.*\s-c\s")
_PERCENT = re.compile(r"^\[\s*(\d+)%\]")


@dataclass(frozen=True)
class BuildResult:
    """The built (or restored) binary and what happened."""

    binary: Path
    libso: Optional[Path]
    action: Literal["built", "restored", "up-to-date"]
    seconds: float
    cache_key: Optional[str]
    log_path: Optional[Path]
    build_system: Literal["make", "cmake"] = "make"
    flags: dict[str, int] = field(default_factory=dict)
    arch: Optional[list[int]] = None
    files_compiled: int = 0
    cache_note: Optional[str] = None


def build_system(darknet_dir: Path) -> Literal["make", "cmake"]:
    """'make' when there is a Makefile (pjreddie, AlexeyAB), 'cmake' for a CMake-only tree (hank-ai)."""
    if (darknet_dir / "Makefile").is_file():
        return "make"
    if (darknet_dir / "CMakeLists.txt").is_file():
        return "cmake"
    raise DarknetMagicsError(f"{darknet_dir} has neither a Makefile nor a CMakeLists.txt",
                             fix="clone darknet first (the `clone` step), or give its folder")


def source_id(darknet_dir: Path, commit: Optional[str] = None) -> str:
    """What the cache key calls "the source": the git commit, or a hash of the tree when it is not a clone.

    Outside git we hash the original Makefile (Makefile.orig once we patched it) or CMakeLists.txt, and the
    names and contents of src/, include/ and src-*/ files: small, and it changes whenever the code does.
    """
    if commit:
        return commit
    if _is_git_root(darknet_dir):
        return _git(["rev-parse", "HEAD"], darknet_dir).stdout.strip()
    h = hashlib.sha256()
    for name in ("Makefile.orig", "Makefile", "CMakeLists.txt"):
        p = darknet_dir / name
        if p.is_file():
            h.update(name.encode() + b"\0" + p.read_bytes())
            break
    roots = [darknet_dir / "src", darknet_dir / "include", *sorted(darknet_dir.glob("src-*"))]
    for root in roots:
        for p in sorted(root.rglob("*")) if root.is_dir() else []:
            if p.is_file():
                h.update(str(p.relative_to(darknet_dir)).encode() + b"\0" + p.read_bytes())
    return "tree:" + h.hexdigest()


def cache_inputs(*, source: str, system: str, flags: dict[str, int], arch: Optional[list[int]],
                 runtime: RuntimeInfo) -> dict[str, object]:
    """Everything the binary depends on. CUDA/cuDNN/OpenCV versions count only when that flag is on.

    With AVX on, the binary is compiled for this CPU: hank-ai's CMake adds -march=native, AlexeyAB's Makefile
    -mavx2 -msse4a and more. Restored on a VM whose CPU lacks one of those instructions (Colab's VMs differ: Intel
    and AMD, with and without AVX-512) it dies of SIGILL mid-training, so the CPU's instruction sets are part of
    the key then, and only then (a build without AVX runs on any x86-64 and stays shared between VMs).
    """
    gpu = bool(flags.get("GPU"))
    inputs: dict[str, object] = {
        "format": CACHE_FORMAT,
        "source": source,
        "build_system": system,
        "flags": dict(sorted(flags.items())),
        "arch": arch,
        "cuda": runtime.cuda_version if gpu else None,
        "cudnn": runtime.cudnn_version if gpu and flags.get("CUDNN") else None,
        "opencv": runtime.opencv if flags.get("OPENCV") else None,
    }
    if flags.get("AVX"):
        inputs["cpu"] = runtime.cpu_isa
    return inputs


def cache_key(inputs: dict[str, object]) -> str:
    """sha256 of the canonical JSON of `cache_inputs` (24 hex digits: a short folder name, no collisions)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:24]


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------- cache


def _store(cache_dir: Path, key: str, darknet_dir: Path, files: list[Path], inputs: dict[str, object],
           seconds: float) -> Path:
    """Copy the build products into cache_dir/KEY atomically (a temp folder renamed into place)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / key
    tmp = cache_dir / f".tmp-{key}-{os.getpid()}-{time.monotonic_ns()}"
    try:
        tmp.mkdir()
        entries = []
        for f in files:
            rel = f.relative_to(darknet_dir)
            dest = tmp / "files" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
            entries.append({"path": str(rel), "sha256": _sha256(dest), "size": dest.stat().st_size})
        manifest = {"key": key, "inputs": inputs, "files": entries, "build_seconds": round(seconds, 2),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with open(tmp / "manifest.json", "w") as fh:
            json.dump(manifest, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        # Interrupted or failed half way: never leave a half-written entry behind.
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def _entry_has(entry: Path, rel: Path, sha256: str) -> bool:
    """True when the entry's manifest lists `rel` with this checksum."""
    try:
        files = json.loads((entry / "manifest.json").read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return any(f.get("path") == str(rel) and f.get("sha256") == sha256 for f in files)


def _check_entry(entry: Path, key: str) -> tuple[Optional[list[dict[str, object]]], str]:
    """(files, "") for a sound entry; (None, why) when it is corrupt."""
    try:
        manifest = json.loads((entry / "manifest.json").read_text())
        files = manifest["files"]
        if manifest.get("key") != key or not files:
            return None, "its manifest does not match"
    except (OSError, ValueError, KeyError, TypeError):
        return None, "its manifest is missing or unreadable"
    for f in files:
        p = entry / "files" / str(f["path"])
        if not p.is_file():
            return None, f"{f['path']} is missing"
        if _sha256(p) != f["sha256"]:
            return None, f"checksum mismatch for {f['path']}"
    return files, ""


def binary_loads(binary: Path, cwd: Path) -> tuple[bool, str]:
    """Run darknet once with no arguments: it prints its usage and exits; a loader error means it cannot run."""
    try:
        p = subprocess.run([str(binary)], cwd=cwd, capture_output=True, text=True, errors="replace", timeout=60,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    out = (p.stdout + p.stderr).strip()
    # 126/127: not executable / loader failure; negative: killed by a signal (SIGILL for a missing AVX, ...).
    if p.returncode < 0 or p.returncode in (126, 127) or "error while loading shared libraries" in out:
        return False, f"exit {p.returncode}: {out[-300:]}"
    return True, out.splitlines()[0] if out else ""


def _restore(entry: Path, files: list[dict[str, object]], darknet_dir: Path) -> list[Path]:
    restored = []
    for f in files:
        src, dest = entry / "files" / str(f["path"]), darknet_dir / str(f["path"])
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
        shutil.copy2(src, tmp)
        tmp.chmod(0o755)
        os.replace(tmp, dest)
        if _sha256(dest) != f["sha256"]:
            raise OSError(f"copy of {f['path']} does not match its checksum")
        restored.append(dest)
    return restored


# ---------------------------------------------------------------------------------------------- progress


class _Progress:
    """Counts compile commands in make/cmake output and reports "compiled 37/61 files, 12 s".

    It is fed the output in chunks as the runner reads them; lines are reassembled here.
    """

    def __init__(self, reporter: Reporter, total: Optional[int]) -> None:
        self.reporter, self.total, self.count = reporter, total, 0
        self.percent: Optional[int] = None
        self.start = time.monotonic()
        self._partial = ""

    def feed(self, text: str) -> None:
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self.line(strip_escapes(line).rstrip("\r"))

    def line(self, text: str) -> None:
        m = _PERCENT.match(text)
        if m:
            self.percent = int(m.group(1))
        if _COMPILE_LINE.search(text):
            self.count += 1
            self.reporter.progress(self.text())

    def text(self) -> str:
        elapsed = time.monotonic() - self.start
        if self.total:
            what = f"compiled {min(self.count, self.total)}/{self.total} files"
        else:
            what = f"compiled {self.count} files" + (f" ({self.percent}%)" if self.percent is not None else "")
        return f"{what}, {elapsed:.0f} s"


def _count_make_compiles(darknet_dir: Path, env: dict[str, str]) -> Optional[int]:
    """How many objects make would compile now, from `make -n` (conditionals and OBJ+= lines included)."""
    try:
        p = subprocess.run(["make", "-n"], cwd=darknet_dir, env=env, capture_output=True, text=True,
                           errors="replace", timeout=60, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return sum(1 for line in p.stdout.splitlines() if _COMPILE_LINE.search(line)) if p.returncode == 0 else None


def _make_up_to_date(darknet_dir: Path, env: dict[str, str]) -> bool:
    try:
        return subprocess.run(["make", "-q"], cwd=darknet_dir, env=env, capture_output=True, timeout=60,
                              stdin=subprocess.DEVNULL).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _uses_cudnn7_api(darknet_dir: Path) -> bool:
    """pjreddie's darknet calls cudnnGetConvolutionForwardAlgorithm (gone in cuDNN 8)."""
    try:
        src = (darknet_dir / "src" / "convolutional_layer.c").read_text(errors="replace")
    except OSError:
        return False
    # AlexeyAB calls the old function only under `#if CUDNN_MAJOR < 8` and the _v7 one otherwise: not cuDNN 7 only.
    return re.search(r"cudnnGetConvolutionForwardAlgorithm\s*\(", src) is not None and \
        "cudnnGetConvolutionForwardAlgorithm_v7" not in src


def _opencv_pkgconfig_shim(darknet_dir: Path, runtime: RuntimeInfo) -> Optional[Path]:
    """A private `opencv.pc` that points at `opencv4`, for Makefiles that only ask pkg-config for `opencv`."""
    if runtime.opencv_pkg != "opencv4":
        return None
    shim = darknet_dir / ".darknet_magics" / "pkgconfig"
    shim.mkdir(parents=True, exist_ok=True)
    atomic_write_text(shim / "opencv.pc", "Name: opencv\nDescription: opencv4 under its old name (darknet_magics)\n"
                                      f"Version: {runtime.opencv}\nRequires: opencv4\n")
    return shim


def _products(darknet_dir: Path, system: str) -> tuple[Optional[Path], list[Path]]:
    """(darknet binary, every file to cache) after a build."""
    if system == "make":
        binary = darknet_dir / "darknet"
        extra = [darknet_dir / n for n in ("libdarknet.so", "uselib") if (darknet_dir / n).is_file()]
        return (binary if binary.is_file() else None), ([binary] if binary.is_file() else []) + extra
    build = darknet_dir / "build"
    found = sorted(p for p in build.rglob("darknet") if p.is_file() and os.access(p, os.X_OK)) if build.is_dir() else []
    binary = found[0] if found else None
    libs = sorted(p for p in build.rglob("libdarknet.so*") if p.is_file() and not p.is_symlink()) if binary else []
    # hank-ai's tools beside the CLI (darknet_04_process_videos for `%yolo video`, darknet_01_inference_images for
    # `%yolo test`, darknet_onnx_export for `%yolo export`): a VM that restores the build needs them as much.
    tools = sorted(p for p in build.glob("src-*/darknet_*") if p.is_file() and os.access(p, os.X_OK)) if binary else []
    return binary, ([binary] if binary else []) + libs + tools


def _cmake_argv(darknet_dir: Path, flags: dict[str, int], caps: Optional[list[int]],
                runtime: RuntimeInfo) -> list[str]:
    argv = ["cmake", "-S", str(darknet_dir), "-B", str(darknet_dir / "build"),
            f"-DCMAKE_BUILD_TYPE={'Debug' if flags.get('DEBUG') else 'Release'}"]
    for flag, option in CMAKE_OPTIONS.items():
        if option and flag in flags:
            argv.append(f"-D{option}={'ON' if flags[flag] else 'OFF'}")
    if not flags.get("GPU"):
        # Without this, hank-ai's CMake picks up an nvcc on PATH and fails to generate (CUDA::cuda_driver missing).
        argv.append("-DDARKNET_TRY_CUDA=OFF")
    if flags.get("GPU") and caps:
        argv.append(f"-DDARKNET_CUDA_ARCHITECTURES={';'.join(map(str, caps))}")
        if runtime.nvcc:
            argv.append(f"-DCMAKE_CUDA_COMPILER={runtime.nvcc}")
    return list(dict.fromkeys(argv))  # GPU=0 gives DARKNET_TRY_CUDA=OFF twice otherwise


def _build_env(runtime: RuntimeInfo, gpu: bool) -> dict[str, str]:
    # LC_ALL=C: English compiler messages with plain quotes, so diagnose_build can read them. TERM=dumb: the build
    # runs on a pty (the one process runner), and gcc/cmake colour their output on a terminal unless TERM is dumb.
    env = {**os.environ, "LC_ALL": "C", "TERM": "dumb"}
    if gpu and runtime.nvcc:
        env["PATH"] = str(Path(runtime.nvcc).parent) + os.pathsep + env.get("PATH", "")
    return env


@dataclass(frozen=True)
class BuildPlan:
    """What `make` will do, worked out before anything runs: the dry run prints it, `make` executes it.

    `makefile` is the patched Makefile text (None for a CMake tree); `commands` are the build's argv lists in
    order; `install_opencv` says that libopencv-dev is installed first (Colab).
    """

    darknet_dir: Path
    system: Literal["make", "cmake"]
    flags: dict[str, int]
    effective: dict[str, int]
    caps: Optional[list[int]]
    makefile: Optional[str]
    commands: tuple[tuple[str, ...], ...]
    env: dict[str, str]
    cache_dir: Optional[Path]
    install_opencv: bool = False
    install_allowed: bool = False  # Colab: missing system libraries are installed, not asked for
    warnings: tuple[str, ...] = ()
    cuda: Optional[CudaBuildPaths] = None  # GPU=1: NVIDIA's libraries found for the build
    tools: BuildTools = BuildTools()  # apt packages and pip's cmake installed before the build
    cuda_link_dir: Optional[Path] = None  # their unversioned links and libcuda.so, made before the build

    def describe(self) -> list[str]:
        """The plan as lines: each edit and command, as a dry run shows it."""
        lines = []
        lines += self.tools.describe()
        if self.system == "make":
            asked = ", ".join(f"{k}={v}" for k, v in self.flags.items())
            lines.append(f"patch {self.darknet_dir}/Makefile: {asked or 'no flag changes'}"
                         + (f", ARCH={','.join(map(str, self.caps))}" if self.caps else "")
                         + " (original kept as Makefile.orig)")
        else:
            lines.append(f"CMake tree (hank-ai): flags {', '.join(f'{k}={v}' for k, v in self.effective.items())}")
        if self.cuda is not None and self.cuda_link_dir is not None:
            lines.append(f"NVIDIA libraries: {', '.join(f'{lib.name} {lib.library}' for lib in self.cuda.libraries)}"
                         f"; links and libcuda.so in {self.cuda_link_dir}")
        if self.cache_dir:
            lines.append(f"restore from the build cache in {self.cache_dir} when this build was made before")
        lines += [" ".join(shlex.quote(a) for a in argv) for argv in self.commands]
        lines += [f"warning: {w}" for w in self.warnings]
        return lines

    @property
    def binary_guess(self) -> Path:
        """Where the binary will be (a CMake build puts it under build/, hank-ai: build/src-cli/darknet)."""
        if self.system == "make":
            return self.darknet_dir / "darknet"
        return self.darknet_dir / "build" / "src-cli" / "darknet"


def plan_build(darknet_dir: Path, *, flags: dict[str, int], arch: Optional[str], jobs: Optional[int],
               cache_dir: Optional[Path], runtime: RuntimeInfo, install_opencv: bool = False) -> BuildPlan:
    """Check the request against the tree and the machine, and work out the edits and commands (nothing runs).

    Raises:
        DarknetMagicsError / StepError: a flag the tree lacks, GPU=1 without nvcc, an ARCH nvcc cannot build,
            OpenCV headers missing (where they are not installed for you), CUDNN=1 without cuDNN, a ';' in a
            CMake path.
    """
    darknet_dir = Path(darknet_dir)
    system = build_system(darknet_dir)
    flags = {k.upper(): int(v) for k, v in flags.items()}
    gpu = bool(flags.get("GPU"))
    choice = choose_arch(arch, gpu, runtime)
    caps = choice.caps if choice else None
    tools, warnings = _plan_tools(system, flags, runtime, install_opencv)
    if gpu and flags.get("CUDNN") and not runtime.cudnn_version:
        raise StepError("CUDNN=1 needs cuDNN, and none was found", fix="install it (`cudnn TARBALL`) or use CUDNN=0")
    cuda = find_gpu_libraries(system, flags, runtime) if gpu else None
    link_dir = darknet_dir.resolve() / CUDA_LINK_DIR
    env = _build_env(runtime, gpu)
    jobs = jobs or os.cpu_count() or 1
    warnings += [choice.note] if choice and choice.note else []
    if system == "make":
        text = (darknet_dir / "Makefile").read_text()
        makefile: Optional[str] = with_gpu_libs(
            patch_makefile(text, flags, arch_block(caps) if caps else None),
            gpu_makefile_lines(cuda, link_dir, cuda_root_of(runtime)) if cuda else None)
        effective = makefile_flags(makefile)
        if gpu and flags.get("CUDNN") and runtime.cudnn_version and int(runtime.cudnn_version.split(".")[0]) >= 8 \
                and _uses_cudnn7_api(darknet_dir):
            warnings.append(f"this darknet uses the cuDNN 7 API and cuDNN {runtime.cudnn_version} is installed: "
                            "expect the build to fail (use CUDNN=0 or AlexeyAB/hank-ai darknet)")
        commands: tuple[tuple[str, ...], ...] = (("make", f"-j{jobs}"),)
    else:
        if ";" in str(darknet_dir.resolve()):
            # CMake splits paths at ';' (its list separator): its own compiler checks fail in such a folder.
            raise DarknetMagicsError(f"CMake cannot build in {darknet_dir}: the path has a ';'",
                                     fix="clone darknet into a folder whose path has no ';'")
        unknown = [k for k in flags if k not in CMAKE_OPTIONS]
        if unknown:
            raise DarknetMagicsError(f"hank-ai's CMake build has no flag {', '.join(unknown)}",
                                     fix=f"valid flags here: {' '.join(CMAKE_OPTIONS)}")
        if flags.get("OPENCV") == 0:
            warnings.append("hank-ai's darknet always builds with OpenCV: OPENCV=0 is ignored")
        if not _git_describes(darknet_dir):
            raise StepError(f"{darknet_dir} has no git tag: hank-ai's CMake runs `git describe --tags` for its "
                            "version and fails without one",
                            fix="clone with its tags (`clone` fetches them; a shallow or tag-less copy needs "
                                "`git fetch --tags`), or tag the checkout: git -C DIR tag v0")
        makefile = None
        effective = {**CMAKE_DEFAULTS, **{k: v for k, v in flags.items() if CMAKE_OPTIONS[k] or k == "DEBUG"}}
        gpu_args = gpu_cmake_args(cuda, link_dir, cuda_root_of(runtime)) if cuda else []
        commands = _cmake_commands(darknet_dir, _cmake_argv(darknet_dir, flags, caps, runtime)[1:] + gpu_args,
                                   tools=tools, onnx=bool(flags.get("ONNX", 1)), jobs=jobs)
    return BuildPlan(darknet_dir=darknet_dir, system=system, flags=flags, effective=effective, caps=caps,
                     makefile=makefile, commands=commands, env=env, cache_dir=Path(cache_dir) if cache_dir else None,
                     install_opencv="libopencv-dev" in tools.apt, install_allowed=install_opencv,
                     warnings=tuple(warnings), cuda=cuda, tools=tools,
                     cuda_link_dir=link_dir if cuda else None)


ONNX_PROTO_TARGET = "darknet_generated_proto"  # hank-ai's src-onnx/CMakeLists.txt: protoc's onnx.proto3.pb.h/.cc


def _cmake_commands(darknet_dir: Path, configure: list[str], *, tools: BuildTools, onnx: bool,
                    jobs: int) -> tuple[tuple[str, ...], ...]:
    """Configure, generate hank-ai's ONNX header where it is built, then build: argv lists with the cmake to run
    (pip's, where the plan installs it)."""
    cmake = str(Path(sysconfig.get_path("scripts")) / "cmake") if tools.pip_cmake else (cmake_path() or "cmake")
    build_dir = str(darknet_dir / "build")
    commands: tuple[tuple[str, ...], ...] = ((cmake, *configure),)
    if onnx and _generates_onnx_header(darknet_dir) and (
            protobuf_present() or any(p in tools.apt for p in PROTOBUF_PACKAGES)):
        # hank-ai's src-lib/darknet.cpp includes the header src-onnx generates, with no dependency on it: a parallel
        # build may compile it first and fail (onnx.proto3.pb.h: No such file). Generate it first.
        commands += ((cmake, "--build", build_dir, "--target", ONNX_PROTO_TARGET),)
    return commands + ((cmake, "--build", build_dir, "--parallel", str(jobs)),)


def _generates_onnx_header(darknet_dir: Path) -> bool:
    """True when the tree's src-onnx/CMakeLists.txt defines the target that generates onnx.proto3.pb.h."""
    try:
        return ONNX_PROTO_TARGET in (darknet_dir / "src-onnx" / "CMakeLists.txt").read_text(errors="replace")
    except OSError:
        return False


def _plan_tools(system: str, flags: dict[str, int], runtime: RuntimeInfo,
                install_allowed: bool) -> tuple[BuildTools, list[str]]:
    """What to install before the build (Colab: `install_allowed`), and the warnings; elsewhere a missing OpenCV or
    an old CMake is an error that says what to run, and a missing protobuf a warning (hank-ai builds without ONNX).
    """
    cmake = cmake_path() if system == "cmake" else None
    tools = build_tools_needed(system, flags, opencv_headers=runtime.opencv_headers,
                               protobuf=system != "cmake" or protobuf_present(), cmake_version=cmake_version(cmake))
    if install_allowed:
        return tools, []
    if "libopencv-dev" in tools.apt:
        who = "hank-ai's darknet" if system == "cmake" else "OPENCV=1"
        raise StepError(f"{who} needs OpenCV's C++ headers, and this machine has none "
                        "(Colab ships OpenCV for Python only)",
                        fix="run `apt-get install -y libopencv-dev` (or ask for it to be installed)"
                            + (", or build with OPENCV=0" if system == "make" else ""))
    if tools.pip_cmake:
        raise StepError(f"hank-ai's darknet needs CMake >= {'.'.join(map(str, CMAKE_MIN))}, and this machine has "
                        + (f"{'.'.join(map(str, cmake_version(cmake) or ()))}" if cmake else "none"),
                        fix=f"run `pip install 'cmake>={'.'.join(map(str, CMAKE_MIN))}'` (pip's cmake is found first)")
    warnings = [f"hank-ai's ONNX exporter is not built: it needs {' '.join(PROTOBUF_PACKAGES)} (apt-get install "
                "-y them, or say ONNX=0)"] if any(p in tools.apt for p in PROTOBUF_PACKAGES) else []
    return BuildTools(), warnings


def _git_describes(darknet_dir: Path) -> bool:
    """True when `git describe --tags` works in the tree (or it is no git checkout: CMake then skips it)."""
    if not (darknet_dir / ".git").exists():
        return True
    return _git(["describe", "--tags", "--long"], darknet_dir, check=False).returncode == 0


def make(darknet_dir: Path, *, flags: dict[str, int], arch: Optional[str], jobs: Optional[int],
         cache_dir: Optional[Path], runtime: RuntimeInfo, reporter: Reporter, commit: Optional[str] = None,
         log_path: Optional[Path] = None, install_opencv: bool = False) -> BuildResult:
    """`plan_build` then `execute_build`: build darknet in `darknet_dir`, or restore the same build from the cache."""
    plan = plan_build(darknet_dir, flags=flags, arch=arch, jobs=jobs, cache_dir=cache_dir, runtime=runtime,
                      install_opencv=install_opencv)
    return execute_build(plan, runtime=runtime, reporter=reporter, commit=commit, log_path=log_path)


def execute_build(plan: BuildPlan, *, runtime: RuntimeInfo, reporter: Reporter, commit: Optional[str] = None,
                  log_path: Optional[Path] = None) -> BuildResult:
    """Execute `plan` (see `plan_build`): already built and up to date -> 'up-to-date'; a sound cache entry ->
    'restored'; else build -> 'built' and store it in the cache. Raises StepError (with diagnosis) when the build
    fails; an interrupt stops the build's process group and re-raises."""
    start = time.monotonic()
    darknet_dir, system, env = plan.darknet_dir, plan.system, dict(plan.env)
    _install_tools(plan, runtime, reporter)
    for warning in plan.warnings:
        reporter.warn(warning)
    if plan.cuda is not None and plan.cuda_link_dir is not None:
        make_link_folder(plan.cuda, plan.cuda_link_dir)
    if plan.makefile is not None:
        if write_makefile(darknet_dir, plan.makefile):
            reporter.info("Makefile: " + " ".join(f"{k}={v}" for k, v in plan.flags.items())
                          + (f" ARCH={','.join(map(str, plan.caps))}" if plan.caps else "")
                          + " (original kept as Makefile.orig)")
        if plan.effective.get("OPENCV") and "opencv4" not in plan.makefile:
            shim = _opencv_pkgconfig_shim(darknet_dir, runtime)
            if shim:
                env["PKG_CONFIG_PATH"] = str(shim) + os.pathsep + env.get("PKG_CONFIG_PATH", "")

    inputs = cache_inputs(source=source_id(darknet_dir, commit), system=system, flags=plan.effective, arch=plan.caps,
                          runtime=runtime)
    key = cache_key(inputs) if plan.cache_dir else None
    entry = plan.cache_dir / key if plan.cache_dir and key else None
    log_path = Path(log_path) if log_path else darknet_dir / BUILD_LOG_NAME

    def result(action: str, binary: Path, files: list[Path], compiled: int = 0,
               note: Optional[str] = None) -> BuildResult:
        libso = next((f for f in files if f.name.startswith("libdarknet.so")), None)
        return BuildResult(binary=binary, libso=libso, action=action, seconds=time.monotonic() - start,  # type: ignore[arg-type]
                           cache_key=key, log_path=log_path if log_path.exists() else None, build_system=system,
                           flags=plan.effective, arch=plan.caps, files_compiled=compiled, cache_note=note)

    # 1. Already built here with these flags.
    binary, files = _products(darknet_dir, system)
    if binary and system == "make" and _make_up_to_date(darknet_dir, env):
        note = _store_quietly(entry, key, darknet_dir, files, inputs, 0.0, reporter)
        reporter.info(f"darknet is up to date: {binary}")
        return result("up-to-date", binary, files, note=note)

    # 2. A cache entry from an earlier VM (or this binary is that entry already: nothing to copy).
    note = None
    if binary and entry is not None and _entry_has(entry, binary.relative_to(darknet_dir), _sha256(binary)):
        reporter.info(f"darknet is up to date (same as cache entry {key}): {binary}")
        return result("up-to-date", binary, files)
    if entry is not None and entry.is_dir():
        restored = _try_restore(entry, key or "", darknet_dir, reporter, install_allowed=plan.install_allowed)
        if isinstance(restored, list):
            reporter.info(f"restored darknet from the build cache ({key}) in {time.monotonic() - start:.1f} s: "
                          f"{restored[0]}")
            return result("restored", restored[0], restored)
        note = restored
        reporter.warn(f"{note}: building again")

    # 3. Build.
    binary_before = binary.stat().st_mtime_ns if binary else None
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    total = _count_make_compiles(darknet_dir, env) if system == "make" else None
    if system == "make":
        reporter.info(f"building darknet: make -j{plan.commands[0][1][2:]} "
                      f"({total if total is not None else '?'} files to compile, full output in {log_path})")
    else:
        reporter.info(f"building darknet with CMake (full output in {log_path})")
    progress = _Progress(reporter, total)
    rc = 0
    for argv in plan.commands:
        with open(log_path, "a", encoding="utf-8") as log:
            log.write("$ " + " ".join(shlex.quote(a) for a in argv) + "\n")
        try:
            ran = runner.run(list(argv), cwd=darknet_dir, log_path=log_path, on_text=progress.feed, env=env,
                             prompts=())
        except runner.RunInterrupted:
            with open(log_path, "a", encoding="utf-8") as log:
                log.write("\n[darknet_magics] interrupted: build stopped\n")
            raise
        rc = ran.returncode if ran.returncode is not None else 128 + (ran.signal or 0)
        if rc != 0:
            break
    output = strip_escapes(log_path.read_text(errors="replace").replace("\r\n", "\n"))
    if rc != 0:
        problems = diagnose_build(output)
        head = problems[0].message if problems else f"the build failed (exit {rc})"
        raise StepError(f"darknet did not build: {head}", fix=problems[0].fix if problems else
                        f"read the first errors below; full output in {log_path}",
                        details=first_error_lines(output), problems=problems[1:])
    binary, files = _products(darknet_dir, system)
    if binary is None:
        raise StepError("the build finished but no darknet binary was made", details=first_error_lines(output))
    reporter.progress(progress.text(), final=True)
    seconds = time.monotonic() - start
    action = "up-to-date" if progress.count == 0 and binary_before == binary.stat().st_mtime_ns else "built"
    stored = _store_quietly(entry, key, darknet_dir, files, inputs, seconds, reporter)
    reporter.info(f"darknet {action} in {seconds:.0f} s: {binary}" + (f" (cached as {key})" if stored else ""))
    return result(action, binary, files, compiled=progress.count, note=note)


def _install_tools(plan: BuildPlan, runtime: RuntimeInfo, reporter: Reporter) -> None:
    """The plan's apt packages (their .debs kept in the workspace's cache/debs for the next VM) and pip's cmake
    (its wheel in cache/wheels)."""
    keep = plan.cache_dir
    if plan.tools.apt:
        install_apt_packages(plan.tools.apt, reporter, keep / "debs" if keep else None)
        runtime.opencv_headers = opencv_headers_present()
        if plan.install_opencv and not runtime.opencv_headers:
            raise StepError("libopencv-dev was installed but OpenCV's headers are still not found",
                            fix="check `pkg-config --cflags opencv4`")
    if plan.tools.pip_cmake:
        pip_install_cmake(reporter, keep / "wheels" if keep else None)


def _store_quietly(entry: Optional[Path], key: Optional[str], darknet_dir: Path, files: list[Path],
                   inputs: dict[str, object], seconds: float, reporter: Reporter) -> Optional[str]:
    """Store unless the entry exists; a full disk must not fail a build that worked."""
    if entry is None or key is None or entry.is_dir():
        return None
    try:
        _store(entry.parent, key, darknet_dir, files, inputs, seconds)
        return "stored"
    except OSError as exc:
        reporter.warn(f"could not store the build in the cache ({exc})")
        return None


_MISSING_LIB = re.compile(r"error while loading shared libraries: (\S+?):")


def _try_restore(entry: Path, key: str, darknet_dir: Path, reporter: Reporter, *,
                 install_allowed: bool = False) -> list[Path] | str:
    """Restored files (binary first), or why the entry was unusable.

    Only a corrupt entry (bad manifest or checksum) is removed. A sound entry whose binary cannot load a shared
    library on this VM (a new Colab VM lacks libopencv's runtime libraries) is kept: the libraries are installed
    (Colab) or named with the command that installs them, because a rebuild would fail on the same missing library.
    """
    files, why = _check_entry(entry, key)
    if files is None:
        shutil.rmtree(entry, ignore_errors=True)
        return f"cache entry {key} is corrupt ({why}): removed it"
    try:
        restored = _restore(entry, files, darknet_dir)
    except OSError as exc:
        return f"cache entry {key} could not be restored ({exc})"
    ok, detail = binary_loads(restored[0], darknet_dir)
    missing = _MISSING_LIB.findall(detail) if not ok else []
    if missing and all(m.startswith("libopencv") for m in missing):
        if install_allowed:
            reporter.info(f"the cached darknet needs {', '.join(missing)}: installing libopencv-dev")
            install_opencv_dev(reporter)
            ok, detail = binary_loads(restored[0], darknet_dir)
        if not ok:
            raise StepError(f"the cached darknet ({key}) needs {', '.join(missing)}, which this machine lacks",
                            fix="run `apt-get install -y libopencv-dev` and run the cell again (the cache entry "
                                "is kept)", details=detail)
    if missing and all(m.startswith("libcuda.so") for m in missing):
        # A GPU build on a machine without the NVIDIA driver: restored all the same (a rebuild would make the same
        # binary, and on Colab's CPU runtime it loads and fails only at its first CUDA call), and said plainly.
        reporter.warn(f"the cached darknet ({key}) is a GPU build and this machine has no NVIDIA driver "
                      f"({', '.join(missing)} is missing): it runs only where there is a GPU. {NO_GPU_FIX}")
        return restored
    if not ok:
        # Not a missing library: the binary itself cannot run here (another CPU's instructions, a broken file).
        # A rebuild replaces the entry, so it goes.
        shutil.rmtree(entry, ignore_errors=True)
        for p in restored:
            p.unlink(missing_ok=True)
        return f"cache entry {key} does not run here ({detail}): removed it"
    return restored
