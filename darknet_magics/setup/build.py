"""Build darknet: plan the build (`plan_build`, the same plan the dry run shows), then execute it with progress
(`execute_build`): up to date, restored from the build cache, or made.

Three darknet flavours are built the same way from the caller's point of view:

* pjreddie/darknet and AlexeyAB/darknet: a Makefile whose top lines (``GPU=0`` ...) and ``ARCH=`` block we
  patch (`makefile.patch_makefile`, text in, text out), then ``make -jN``.
* hank-ai/darknet: a CMake tree (CMakeLists.txt, no Makefile); flags map to ``-D`` options (`CMAKE_OPTIONS`).

The pieces live beside this module: `clone` (the source), `makefile` (pure patching), `arch` (which GPUs),
`gpu_libs` (linking NVIDIA's libraries), `build_tools` (cmake, protobuf, OpenCV), `build_cache` (store, restore,
prove it loads); `output.buildlog` reads a failed build's log.
"""
from __future__ import annotations

import os
import re
import shlex
import subprocess
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from ..errors import DarknetMagicsError, StepError
from ..fileio import atomic_write_text
from ..output.buildlog import COMPILE_LINE, diagnose_build, first_error_lines
from ..output.logparse import strip_escapes
from ..report import Reporter
from ..run import runner
from .arch import choose_arch
from .build_cache import (
    cache_inputs,
    cache_key,
    entry_has,
    sha256_of,
    source_id,
    store_quietly,
    try_restore,
)
from .build_tools import (
    CMAKE_MIN,
    PROTOBUF_PACKAGES,
    BuildTools,
    build_tools_needed,
    cmake_path,
    cmake_version,
    install_apt_packages,
    pip_install_cmake,
    protobuf_present,
)
from .clone import git
from .compiler_cache import (
    CCACHE_BIN_DIR,
    CompilerCache,
    ccache_counts,
    cmake_launcher_args,
    find_ccache,
    hits_between,
    masquerade_dir,
    prepare_cache_dir,
)
from .cuda_libs import CudaBuildPaths, make_link_folder
from .gpu_libs import (
    CUDA_LINK_DIR,
    cuda_root_of,
    find_gpu_libraries,
    gpu_cmake_args,
    gpu_makefile_lines,
    with_gpu_libs,
)
from .makefile import arch_block, makefile_flags, patch_makefile, write_makefile
from .runtime import RuntimeInfo, opencv_headers_present

BUILD_LOG_NAME = "darknet_magics_build.log"



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
    ccache_hits: Optional[tuple[int, int]] = None  # ccache=on: (compiles served from ccache, cacheable compiles)


def build_system(darknet_dir: Path) -> Literal["make", "cmake"]:
    """'make' when there is a Makefile (pjreddie, AlexeyAB), 'cmake' for a CMake-only tree (hank-ai)."""
    if (darknet_dir / "Makefile").is_file():
        return "make"
    if (darknet_dir / "CMakeLists.txt").is_file():
        return "cmake"
    raise DarknetMagicsError(f"{darknet_dir} has neither a Makefile nor a CMakeLists.txt",
                             fix="clone darknet first (the `clone` step), or give its folder")




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
        if COMPILE_LINE.search(text):
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
    return sum(1 for line in p.stdout.splitlines() if COMPILE_LINE.search(line)) if p.returncode == 0 else None


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


def _build_env(runtime: RuntimeInfo, gpu: bool, ccache: Optional[CompilerCache] = None,
               masquerade: Optional[Path] = None) -> dict[str, str]:
    # LC_ALL=C: English compiler messages with plain quotes, so diagnose_build can read them. TERM=dumb: the build
    # runs on a pty (the one process runner), and gcc/cmake colour their output on a terminal unless TERM is dumb.
    env = {**os.environ, "LC_ALL": "C", "TERM": "dumb"}
    if gpu and runtime.nvcc:
        env["PATH"] = str(Path(runtime.nvcc).parent) + os.pathsep + env.get("PATH", "")
    if ccache is not None:
        env.update(ccache.env())
        if masquerade is not None:  # a Makefile's gcc, g++ and nvcc: ccache's links first on PATH
            env["PATH"] = str(masquerade) + os.pathsep + env["PATH"]
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
    ccache: Optional[CompilerCache] = None  # ccache=on: the compilers run through ccache

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
        if self.ccache is not None:
            lines.append(self.ccache.describe())
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
               cache_dir: Optional[Path], runtime: RuntimeInfo, install_opencv: bool = False,
               ccache: bool = False, ccache_dir: Optional[Path] = None) -> BuildPlan:
    """Check the request against the tree and the machine, and work out the edits and commands (nothing runs).

    With `ccache`, the compilers run through ccache with its cache in `ccache_dir` (None: $CCACHE_DIR or ccache's
    default); where ccache is missing it is installed with the other tools (Colab) or asked for.

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
    compiler_cache = _plan_ccache(darknet_dir, ccache_dir, install_opencv) if ccache else None
    if compiler_cache is not None and find_ccache() is None:
        tools = BuildTools(tools.apt + ("ccache",), tools.pip_cmake)
    if gpu and flags.get("CUDNN") and not runtime.cudnn_version:
        raise StepError("CUDNN=1 needs cuDNN, and none was found", fix="install it (`cudnn TARBALL`) or use CUDNN=0")
    cuda = find_gpu_libraries(system, flags, runtime) if gpu else None
    link_dir = darknet_dir.resolve() / CUDA_LINK_DIR
    masquerade = darknet_dir.resolve() / CCACHE_BIN_DIR if compiler_cache and system == "make" else None
    env = _build_env(runtime, gpu, compiler_cache, masquerade)
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
        gpu_args += cmake_launcher_args(gpu) if compiler_cache else []
        commands = _cmake_commands(darknet_dir, _cmake_argv(darknet_dir, flags, caps, runtime)[1:] + gpu_args,
                                   tools=tools, onnx=bool(flags.get("ONNX", 1)), jobs=jobs)
    return BuildPlan(darknet_dir=darknet_dir, system=system, flags=flags, effective=effective, caps=caps,
                     makefile=makefile, commands=commands, env=env, cache_dir=Path(cache_dir) if cache_dir else None,
                     install_opencv="libopencv-dev" in tools.apt, install_allowed=install_opencv,
                     warnings=tuple(warnings), cuda=cuda, tools=tools,
                     cuda_link_dir=link_dir if cuda else None, ccache=compiler_cache)


def _plan_ccache(darknet_dir: Path, ccache_dir: Optional[Path], install_allowed: bool) -> CompilerCache:
    """ccache for this tree; without ccache installed (and no installing it here) an error that says what to run."""
    if find_ccache() is None and not install_allowed:
        raise StepError("ccache=on needs ccache, and this machine has none",
                        fix="run `apt-get install -y ccache`, or build with ccache=off")
    return CompilerCache(directory=Path(ccache_dir) if ccache_dir else None, basedir=darknet_dir.resolve())


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
    return git(["describe", "--tags", "--long"], darknet_dir, check=False).returncode == 0


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
    darknet_dir, system = plan.darknet_dir, plan.system
    env = _prepare_tree(plan, runtime, reporter)
    inputs = cache_inputs(source=source_id(darknet_dir, commit), system=system, flags=plan.effective, arch=plan.caps,
                          runtime=runtime)
    key = cache_key(inputs) if plan.cache_dir else None
    entry = plan.cache_dir / key if plan.cache_dir and key else None
    log_path = Path(log_path) if log_path else darknet_dir / BUILD_LOG_NAME

    def result(action: str, binary: Path, files: list[Path], compiled: int = 0,
               note: Optional[str] = None, hits: Optional[tuple[int, int]] = None) -> BuildResult:
        libso = next((f for f in files if f.name.startswith("libdarknet.so")), None)
        return BuildResult(binary=binary, libso=libso, action=action, seconds=time.monotonic() - start,  # type: ignore[arg-type]
                           cache_key=key, log_path=log_path if log_path.exists() else None, build_system=system,
                           flags=plan.effective, arch=plan.caps, files_compiled=compiled, cache_note=note,
                           ccache_hits=hits)

    # 1. Already built here with these flags.
    binary, files = _products(darknet_dir, system)
    if binary and system == "make" and _make_up_to_date(darknet_dir, env):
        note = store_quietly(entry, key, darknet_dir, files, inputs, 0.0, reporter)
        reporter.info(f"darknet is up to date: {binary}")
        return result("up-to-date", binary, files, note=note)

    # 2. A cache entry from an earlier VM (or this binary is that entry already: nothing to copy).
    note = None
    if binary and entry is not None and entry_has(entry, binary.relative_to(darknet_dir), sha256_of(binary)):
        reporter.info(f"darknet is up to date (same as cache entry {key}): {binary}")
        return result("up-to-date", binary, files)
    if entry is not None and entry.is_dir():
        restored = try_restore(entry, key or "", darknet_dir, reporter, install_allowed=plan.install_allowed)
        if isinstance(restored, list):
            reporter.info(f"restored darknet from the build cache ({key}) in {time.monotonic() - start:.1f} s: "
                          f"{restored[0]}")
            return result("restored", restored[0], restored)
        note = restored
        reporter.warn(f"{note}: building again")

    # 3. Build.
    binary_before = binary.stat().st_mtime_ns if binary else None
    counts = ccache_counts(env) if plan.ccache else None
    compiled = _run_build(plan, env, log_path, reporter)
    hits = hits_between(counts, ccache_counts(env)) if plan.ccache else None
    if hits is not None and hits[1]:
        reporter.info(f"ccache: {hits[0]} of {hits[1]} compiles served from its cache")
    binary, files = _products(darknet_dir, system)
    if binary is None:
        raise StepError("the build finished but no darknet binary was made",
                        details=first_error_lines(_read_log(log_path)))
    seconds = time.monotonic() - start
    action = "up-to-date" if compiled == 0 and binary_before == binary.stat().st_mtime_ns else "built"
    stored = store_quietly(entry, key, darknet_dir, files, inputs, seconds, reporter)
    reporter.info(f"darknet {action} in {seconds:.0f} s: {binary}" + (f" (cached as {key})" if stored else ""))
    return result(action, binary, files, compiled=compiled, note=note, hits=hits)


def _prepare_tree(plan: BuildPlan, runtime: RuntimeInfo, reporter: Reporter) -> dict[str, str]:
    """What the plan does before anything is built or restored: the tools, the CUDA link folder, the patched
    Makefile; returns the build's environment (with an OpenCV pkg-config shim where the Makefile needs one)."""
    env = dict(plan.env)
    _install_tools(plan, runtime, reporter)
    for warning in plan.warnings:
        reporter.warn(warning)
    if plan.cuda is not None and plan.cuda_link_dir is not None:
        make_link_folder(plan.cuda, plan.cuda_link_dir)
    if plan.ccache is not None:
        ccache = find_ccache()
        if ccache is None:
            raise StepError("ccache was installed but is still not found on PATH", fix="build with ccache=off")
        prepare_cache_dir(plan.ccache.directory)
        if plan.system == "make":
            masquerade_dir(plan.darknet_dir.resolve(), ccache)
    if plan.makefile is not None:
        if write_makefile(plan.darknet_dir, plan.makefile):
            reporter.info("Makefile: " + " ".join(f"{k}={v}" for k, v in plan.flags.items())
                          + (f" ARCH={','.join(map(str, plan.caps))}" if plan.caps else "")
                          + " (original kept as Makefile.orig)")
        if plan.effective.get("OPENCV") and "opencv4" not in plan.makefile:
            shim = _opencv_pkgconfig_shim(plan.darknet_dir, runtime)
            if shim:
                env["PKG_CONFIG_PATH"] = str(shim) + os.pathsep + env.get("PKG_CONFIG_PATH", "")
    return env


def _read_log(log_path: Path) -> str:
    return strip_escapes(log_path.read_text(errors="replace").replace("\r\n", "\n"))


def _run_build(plan: BuildPlan, env: dict[str, str], log_path: Path, reporter: Reporter) -> int:
    """Run the plan's commands with progress, every byte in `log_path`; the number of files compiled. A failed
    command raises StepError with the log's diagnosis; an interrupt is written to the log and re-raised."""
    darknet_dir = plan.darknet_dir
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.write_text("")
    total = _count_make_compiles(darknet_dir, env) if plan.system == "make" else None
    if plan.system == "make":
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
    if rc != 0:
        output = _read_log(log_path)
        problems = diagnose_build(output)
        head = problems[0].message if problems else f"the build failed (exit {rc})"
        raise StepError(f"darknet did not build: {head}", fix=problems[0].fix if problems else
                        f"read the first errors below; full output in {log_path}",
                        details=first_error_lines(output), problems=problems[1:])
    reporter.progress(progress.text(), final=True)
    return progress.count


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
