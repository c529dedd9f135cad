"""Where we run, what the machine has (GPU, CUDA, cuDNN, OpenCV), Google Drive, and installing cuDNN.

Each probe runs one tool with an argv list and parses its output with a pure function (``parse_*``) that the
tests feed real-shaped text. A missing tool is a ``None`` field plus a warning, never an exception: the
runtime table must print on a CPU-only laptop as well as on Colab.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Sequence

from . import colab
from ..errors import DarknetMagicsError, StepError
from ..fileio import atomic_write_text
from ..report import Reporter

# ---------------------------------------------------------------------------------------------- platform


def detect_platform() -> Literal["colab", "jupyter", "terminal"]:
    """'colab' in Colab's kernel, 'jupyter' in any other IPython kernel, else 'terminal'."""
    if colab.in_colab():
        return "colab"
    # Do not import IPython here: only look at a kernel that is already running.
    if "ipykernel" in sys.modules:
        ipython = sys.modules.get("IPython")
        get = getattr(ipython, "get_ipython", None)
        shell = get() if callable(get) else None
        if shell is not None and type(shell).__name__ == "ZMQInteractiveShell":
            return "jupyter"
    return "terminal"


# ---------------------------------------------------------------------------------------------- probes

# Compute capabilities for GPUs whose nvidia-smi is too old to know `compute_cap` (before driver 510).
_KNOWN_CAPABILITIES = {
    "K80": "3.7", "P4": "6.1", "P100": "6.0", "P40": "6.1", "V100": "7.0", "T4": "7.5",
    "A100": "8.0", "A10G": "8.6", "A10": "8.6", "L4": "8.9", "L40": "8.9", "H100": "9.0", "H200": "9.0",
    "B200": "10.0", "RTX PRO 6000": "12.0",  # Colab's G4 is an RTX PRO 6000 Blackwell (sm_120, CUDA >= 12.8)
}

# Where headers and libraries usually are: distro, /usr/local/cuda, NVIDIA's tarball layout, conda.
CUDNN_INCLUDE_DIRS = (
    "/usr/local/cuda/include", "/usr/include", "/usr/include/x86_64-linux-gnu", "/usr/local/cudnn/include",
    "/usr/include/aarch64-linux-gnu",
)
CUDNN_LIB_DIRS = (
    "/usr/local/cuda/lib64", "/usr/lib/x86_64-linux-gnu", "/usr/local/cudnn/lib64", "/usr/lib64",
    "/usr/lib/aarch64-linux-gnu",
)
OPENCV_INCLUDE_DIRS = ("/usr/include/opencv4", "/usr/local/include/opencv4", "/usr/include", "/usr/local/include")


@dataclass
class GpuInfo:
    """One line of nvidia-smi's CSV answer."""

    name: str
    driver: Optional[str]
    memory_mib: Optional[int]
    compute_capability: Optional[str]


@dataclass
class RuntimeInfo:
    """What `probe_runtime` found; kept by the session for ARCH=auto and the build cache key."""

    gpu_name: Optional[str] = None
    driver: Optional[str] = None
    memory_mib: Optional[int] = None
    compute_capability: Optional[str] = None
    cuda_version: Optional[str] = None
    nvcc: Optional[str] = None
    nvcc_archs: list[int] = field(default_factory=list)
    cudnn_version: Optional[str] = None
    cudnn_header: Optional[str] = None
    opencv: Optional[str] = None
    opencv_pkg: Optional[Literal["opencv4", "opencv"]] = None
    opencv_headers: bool = False
    platform: str = "terminal"
    gpu_count: int = 0
    cpu_isa: Optional[str] = None  # the CPU's instruction-set extensions (`parse_cpu_isa`): part of an AVX build's key
    warnings: list[str] = field(default_factory=list)

    @property
    def capability_int(self) -> Optional[int]:
        """'7.5' -> 75 (the number nvcc's -gencode wants)."""
        if not self.compute_capability:
            return None
        return capability_to_int(self.compute_capability)

    def rows(self) -> list[tuple[str, str]]:
        """Key/value rows for the runtime table."""
        def show(v: object, missing: str = "not found") -> str:
            return missing if v in (None, "", []) else str(v)

        gpu = self.gpu_name or "none (CPU only)"
        if self.gpu_count > 1:
            gpu += f" (x{self.gpu_count})"
        rows = [
            ("platform", self.platform),
            ("GPU", gpu),
            ("driver", show(self.driver)),
            ("GPU memory", f"{self.memory_mib} MiB" if self.memory_mib else "-"),
            ("compute capability", show(self.compute_capability, "-")),
            ("CUDA (nvcc)", show(self.cuda_version) + (f" at {self.nvcc}" if self.nvcc else "")),
            ("nvcc archs", ",".join(map(str, self.nvcc_archs)) if self.nvcc_archs else "-"),
            ("cuDNN", show(self.cudnn_version)),
            ("OpenCV", (f"{self.opencv} (pkg-config {self.opencv_pkg})" if self.opencv else "not found")
             + ("" if self.opencv_headers else ", no headers")),
        ]
        return rows


def capability_to_int(cap: str) -> int:
    """'7.5' -> 75, '9.0' -> 90, '12.0' -> 120, '86' -> 86."""
    cap = cap.strip()
    if "." in cap:
        major, minor = cap.split(".", 1)
        return int(major) * 10 + int(minor[:1] or 0)
    return int(cap)


def gpu_from_name(name: str) -> Optional[str]:
    """Compute capability for a known GPU name (old drivers cannot report it)."""
    for key in sorted(_KNOWN_CAPABILITIES, key=len, reverse=True):
        if re.search(rf"\b{re.escape(key)}\b", name):
            return _KNOWN_CAPABILITIES[key]
    return None


def parse_nvidia_smi(text: str) -> list[GpuInfo]:
    """Parse ``nvidia-smi --query-gpu=name,driver_version,memory.total[,compute_cap] --format=csv,noheader``.

    Example line: ``Tesla T4, 550.54.15, 15360 MiB, 7.5``.
    """
    gpus = []
    for line in text.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 3 or not parts[0]:
            continue
        mem = re.match(r"(\d+)", parts[2])
        cap = parts[3] if len(parts) > 3 and re.fullmatch(r"\d+\.\d+", parts[3]) else None
        gpus.append(GpuInfo(name=parts[0], driver=parts[1] or None, memory_mib=int(mem.group(1)) if mem else None,
                            compute_capability=cap or gpu_from_name(parts[0])))
    return gpus


def parse_nvcc_version(text: str) -> Optional[str]:
    """'Cuda compilation tools, release 12.8, V12.8.93' -> '12.8'."""
    m = re.search(r"release (\d+\.\d+)", text)
    return m.group(1) if m else None


def parse_nvcc_archs(text: str) -> list[int]:
    """Output of ``nvcc --list-gpu-arch`` (``compute_75`` per line) -> [75, ...], sorted."""
    return sorted({int(n) for n in re.findall(r"\bcompute_(\d+)[a-z]?\b", text)})


def parse_cudnn_header(text: str) -> Optional[str]:
    """The version in cudnn_version.h (cuDNN 8+) or cudnn.h (cuDNN 7 and older): '9.1.0'."""
    parts = []
    for name in ("CUDNN_MAJOR", "CUDNN_MINOR", "CUDNN_PATCHLEVEL"):
        m = re.search(rf"^\s*#\s*define\s+{name}\s+(\d+)", text, re.M)
        if not m:
            break
        parts.append(m.group(1))
    return ".".join(parts) if parts else None


def find_cudnn_header(dirs: Sequence[str | Path] = CUDNN_INCLUDE_DIRS) -> tuple[Optional[str], Optional[Path]]:
    """(version, header path) from the first cudnn_version.h or versioned cudnn.h in `dirs`."""
    for d in dirs:
        for name in ("cudnn_version.h", "cudnn.h"):
            path = Path(d) / name
            try:
                version = parse_cudnn_header(path.read_text(errors="replace"))
            except OSError:
                continue
            if version:
                return version, path
    return None, None


def find_cudnn_library(dirs: Sequence[str | Path] = CUDNN_LIB_DIRS) -> Optional[str]:
    """The version a ``libcudnn.so.N[.M.P]`` file names, for a cuDNN installed without headers."""
    best: Optional[tuple[int, ...]] = None
    for d in dirs:
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for name in names:
            m = re.fullmatch(r"libcudnn\.so\.(\d+(?:\.\d+)*)", name)
            if m:
                v = tuple(int(x) for x in m.group(1).split("."))
                best = v if best is None or v > best else best
    return ".".join(map(str, best)) if best else None


def _run(argv: list[str], timeout: float = 20) -> tuple[Optional[int], str]:
    """Run a probe; (None, reason) when it cannot start or hangs."""
    try:
        p = subprocess.run(argv, capture_output=True, text=True, errors="replace", timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        return None, f"{argv[0]} not found"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"{argv[0]}: {exc}"
    return p.returncode, p.stdout + p.stderr


def find_nvcc() -> Optional[str]:
    """nvcc on PATH, else the usual CUDA install (Colab's PATH has it; a plain shell may not)."""
    found = shutil.which("nvcc")
    if found:
        return found
    for cand in ("/usr/local/cuda/bin/nvcc",):
        if os.access(cand, os.X_OK):
            return cand
    return None


def opencv_headers_present(cflags: str = "") -> bool:
    """True when ``opencv2/core.hpp`` (OpenCV 4/3) or ``opencv2/core/core.hpp`` is in an include dir."""
    dirs = [f[2:] for f in cflags.split() if f.startswith("-I")] + list(OPENCV_INCLUDE_DIRS)
    return any((Path(d) / "opencv2" / rel).is_file() for d in dirs for rel in ("core.hpp", "core/core.hpp"))


@functools.lru_cache(maxsize=1)
def nvidia_gpu_found() -> Optional[bool]:
    """Whether nvidia-smi lists a GPU: False where it lists none or is not installed (no NVIDIA driver: Colab's CPU
    runtime), None where it hangs or fails otherwise. Asked once per process: a VM's GPU does not come and go."""
    rc, out = _run(["nvidia-smi", "-L"])
    if rc is None:
        return False if out.endswith("not found") else None
    return rc == 0 and re.search(r"^GPU \d+:", out, re.M) is not None


NVIDIA_SMI_QUERY = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"]
#: What `probe_runtime` runs (nvcc from PATH or /usr/local/cuda/bin); the dry run of `runtime` lists these.
PROBE_COMMANDS: tuple[list[str], ...] = (
    NVIDIA_SMI_QUERY, ["nvcc", "--version"], ["nvcc", "--list-gpu-arch"], ["pkg-config", "--modversion", "opencv4"],
)


# x86 instruction-set extensions a compiler may use with -march=native or -mavx2 & co. (not the CPU's bugs,
# power states or virtualisation flags, which differ between machines that run the same binary).
_X86_ISA = re.compile(r"(mmx|sse\w*|ssse3|avx\w*|fma\w*|f16c|bmi\w*|aes|v?pclmulqdq|sha_ni|popcnt|abm|lzcnt|movbe|adx|"
                      r"rdrand|rdseed|gfni|vaes|amx\w*|xop|tbm|3dnow\w*|cx16|xsave\w*|fsgsbase|clflushopt|clwb|prfchw|"
                      r"rdpid|movdir\w*|serialize|cldemote|waitpkg|ptwrite|wbnoinvd|pku|sgx|rtm|hle|lwp|mwaitx|clzero|"
                      r"enqcmd|uintr|hreset|kl|widekl|pconfig|avx512\w*)")


def parse_cpu_isa(cpuinfo: str) -> Optional[str]:
    """The instruction-set extensions of the first CPU in /proc/cpuinfo's text, sorted and space-separated ("avx
    avx2 ..."), or None when it lists none. x86 lists them as `flags` (filtered to instruction sets), ARM as
    `Features` (all of them are)."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "flags":
            return " ".join(sorted(f for f in value.split() if _X86_ISA.fullmatch(f))) or None
        if key == "Features":
            return " ".join(sorted(value.split())) or None
    return None


def probe_runtime() -> RuntimeInfo:
    """Probe nvidia-smi, nvcc, cuDNN and OpenCV, and the CPU's instruction sets; every missing piece becomes a
    warning."""
    info = RuntimeInfo(platform=detect_platform())
    try:
        info.cpu_isa = parse_cpu_isa(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        info.cpu_isa = None

    rc, out = _run(NVIDIA_SMI_QUERY)
    if rc not in (None, 0) and "compute_cap" in out:
        # Drivers before 510 do not know the compute_cap field: ask without it, map the name.
        rc, out = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
    gpus = parse_nvidia_smi(out) if rc == 0 else []
    if gpus:
        g = gpus[0]
        info.gpu_name, info.driver, info.memory_mib = g.name, g.driver, g.memory_mib
        info.compute_capability, info.gpu_count = g.compute_capability, len(gpus)
        if not g.compute_capability:
            info.warnings.append(f"unknown compute capability for {g.name}: give ARCH= explicitly")
    else:
        why = out.strip().splitlines()[0] if out.strip() else "no GPU listed"
        info.warnings.append(f"no GPU found ({why}): darknet will train on the CPU, very slowly. "
                             "In Colab: Runtime > Change runtime type > GPU.")

    info.nvcc = find_nvcc()
    if info.nvcc:
        rc, out = _run([info.nvcc, "--version"])
        info.cuda_version = parse_nvcc_version(out) if rc == 0 else None
        rc, out = _run([info.nvcc, "--list-gpu-arch"])
        info.nvcc_archs = parse_nvcc_archs(out) if rc == 0 else []
        if not info.nvcc_archs:
            info.warnings.append("nvcc cannot list its GPU architectures (CUDA older than 11?): ARCH is not checked")
    else:
        info.warnings.append("nvcc not found: GPU=1 builds need the CUDA toolkit (/usr/local/cuda/bin/nvcc)")

    # apt's or NVIDIA's tarball's cuDNN first, then PyPI's wheel in this Python (Colab's torch brings one)
    info.cudnn_version, header = find_cudnn_header(
        [*CUDNN_INCLUDE_DIRS, *(d / "include" for d in nvidia_wheel_dirs(sys.path))])
    info.cudnn_header = str(header) if header else None
    if not info.cudnn_version:
        lib = find_cudnn_library()
        if lib:
            info.cudnn_version = lib
            info.warnings.append(f"cuDNN {lib} library found but no headers: CUDNN=1 builds need cudnn.h "
                                 "(use the `cudnn TARBALL` step)")
        else:
            info.warnings.append("cuDNN not found: CUDNN=1 builds need it (use the `cudnn TARBALL` step)")

    cflags = ""
    for pkg in ("opencv4", "opencv"):
        rc, out = _run(["pkg-config", "--modversion", pkg])
        if rc == 0 and out.strip():
            info.opencv, info.opencv_pkg = out.strip().splitlines()[0], pkg  # type: ignore[assignment]
            cflags = _run(["pkg-config", "--cflags", pkg])[1]
            break
    info.opencv_headers = opencv_headers_present(cflags)
    if not info.opencv_headers:
        info.warnings.append("OpenCV headers not found: OPENCV=1 builds need `apt-get install -y libopencv-dev`")
    return info


# ---------------------------------------------------------------------------------------------- NVIDIA libraries

# What a GPU build links besides the toolkit's cudart: the header that proves each library, and its name.
CUDA_BUILD_LIBS: dict[str, str] = {"cublas": "cublas_v2.h", "curand": "curand.h", "cudnn": "cudnn.h"}
# cuBLAS's soname follows the CUDA major version (libcublas.so.12 for CUDA 12): one of another major does not link.
_MAJOR_TIED = ("cublas",)
# The only CUDA driver function darknet calls (AlexeyAB's and hank-ai's dark_cuda: cuCtxGetCurrent) and the usual
# first ones, for the link-time stand-in of libcuda.so where NVIDIA's stub is not installed (see `write_driver_stub`).
DRIVER_STUB_SYMBOLS = ("cuCtxGetCurrent", "cuInit", "cuDriverGetVersion", "cuDeviceGet", "cuDeviceGetCount",
                       "cuCtxGetDevice", "cuGetProcAddress")


@dataclass(frozen=True)
class CudaLibrary:
    """One NVIDIA library a GPU build links: its header folder and the file to link (maybe only versioned)."""

    name: str
    include_dir: Path
    library: Path  # libNAME.so, or libNAME.so.N where only the versioned file exists (PyPI's wheels)

    @property
    def needs_link(self) -> bool:
        """True when the linker's unversioned name (libNAME.so) must be made: wheels ship only libNAME.so.N."""
        return self.library.name != f"lib{self.name}.so"


@dataclass(frozen=True)
class CudaBuildPaths:
    """Where this machine keeps what a GPU build needs beyond nvcc: `find_cuda_build_paths`' answer."""

    libraries: tuple[CudaLibrary, ...]
    driver_stub: Optional[Path]  # NVIDIA's libcuda.so stub (links without a driver); None: we write one
    missing: tuple[str, ...] = ()

    @property
    def include_dirs(self) -> tuple[Path, ...]:
        """The libraries' header folders, each once, in the order found."""
        return tuple(dict.fromkeys(lib.include_dir for lib in self.libraries))

    @property
    def lib_dirs(self) -> tuple[Path, ...]:
        """The libraries' real folders: the binary's rpath, so it finds them at run time without LD_LIBRARY_PATH."""
        return tuple(dict.fromkeys(lib.library.parent for lib in self.libraries))


def nvidia_wheel_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """The ``nvidia/*`` folders of PyPI's NVIDIA wheels on `paths` (sys.path): ``nvidia/cublas`` (CUDA 12 wheels,
    torch's on Colab), ``nvidia/cu13`` (CUDA 13 wheels), ``nvidia/cudnn``."""
    found = []
    for p in paths:
        root = Path(p) / "nvidia" if p else None
        if root is not None and root.is_dir():
            found += sorted(d for d in root.iterdir() if d.is_dir() and (d / "include").is_dir())
    return list(dict.fromkeys(found))


def _library_file(folder: Path, name: str, major: Optional[int]) -> Optional[Path]:
    """libNAME.so in `folder`, else its highest libNAME.so.N (of `major` when given)."""
    plain = folder / f"lib{name}.so"
    if plain.is_file():
        return plain
    best: Optional[tuple[tuple[int, ...], Path]] = None
    for path in folder.glob(f"lib{name}.so.*"):
        m = re.fullmatch(rf"lib{re.escape(name)}\.so\.(\d+(?:\.\d+)*)", path.name)
        if not m or not path.is_file():
            continue
        version = tuple(int(x) for x in m.group(1).split("."))
        if major is not None and version[0] != major:
            continue
        if best is None or version > best[0]:
            best = (version, path)
    return best[1] if best else None


def _candidates(cuda_root: Path, wheel_dirs: Sequence[Path]) -> list[tuple[Path, list[Path]]]:
    """(include folder, library folders) in search order: the toolkit, the distribution (apt), then the wheels."""
    system = [(cuda_root / "include", [cuda_root / "lib64", cuda_root / "lib"])]
    system += [(Path(inc), [Path(d) for d in CUDNN_LIB_DIRS]) for inc in CUDNN_INCLUDE_DIRS]
    return system + [(d / "include", [d / "lib", d / "lib64"]) for d in wheel_dirs]


def find_cuda_build_paths(names: Sequence[str], *, cuda_root: Path, wheel_dirs: Sequence[Path],
                          cuda_major: Optional[int]) -> CudaBuildPaths:
    """Find each library of `names` (keys of `CUDA_BUILD_LIBS`) where apt or pip put it, and NVIDIA's libcuda stub.

    A library counts where its header and its shared library sit side by side (include/ and lib/ of one tree), so a
    header of one release is never linked with a library of another.
    """
    found, missing = [], []
    for name in names:
        lib = None
        for include, lib_dirs in _candidates(cuda_root, wheel_dirs):
            if not (include / CUDA_BUILD_LIBS[name]).is_file():
                continue
            files = [_library_file(d, name, cuda_major if name in _MAJOR_TIED else None) for d in lib_dirs]
            path = next((f for f in files if f is not None), None)
            if path is not None:
                lib = CudaLibrary(name, include, path)
                break
        if lib is None:
            missing.append(name)
        else:
            found.append(lib)
    stubs = [cuda_root / "lib64" / "stubs" / "libcuda.so", *sorted(cuda_root.glob("targets/*/lib/stubs/libcuda.so"))]
    stub = next((s for s in stubs if s.is_file()), None)
    return CudaBuildPaths(tuple(found), stub, tuple(missing))


def cuda_major_of(version: Optional[str]) -> Optional[int]:
    """'12.8' -> 12 (None stays None)."""
    return int(version.split(".")[0]) if version and version.split(".")[0].isdigit() else None


def link_folder_entries(paths: CudaBuildPaths) -> dict[str, Path]:
    """The links a GPU build's link folder holds: ``libcublas.so -> .../libcublas.so.13`` for each library that
    has only a versioned file (the linker's ``-lcublas`` looks for the unversioned name)."""
    return {f"lib{lib.name}.so": lib.library for lib in paths.libraries if lib.needs_link}


def driver_stub_source(symbols: Sequence[str] = DRIVER_STUB_SYMBOLS) -> str:
    """C source of a stand-in for NVIDIA's libcuda.so stub: each driver function returns CUDA_ERROR_NO_DEVICE.

    It is only linked against, never loaded: its soname is libcuda.so.1, as NVIDIA's stub's, so the binary loads the
    driver's real libcuda.so.1 where there is one.
    """
    return ("/* made by darknet_magics: links a GPU build where NVIDIA's libcuda.so stub is not installed */\n"
            + "".join(f"int {s}(void) {{ return 100; }}\n" for s in symbols))


def make_link_folder(paths: CudaBuildPaths, folder: Path) -> Path:
    """Fill `folder` with `link_folder_entries` and a libcuda.so (NVIDIA's stub, else one compiled from
    `driver_stub_source`); returns the folder. Existing links are replaced atomically.

    Raises:
        StepError: no stub and the C compiler cannot make one.
    """
    folder.mkdir(parents=True, exist_ok=True)
    entries = link_folder_entries(paths)
    entries["libcuda.so"] = paths.driver_stub or _compile_driver_stub(folder)
    for name, target in entries.items():
        if target == folder / name:
            continue
        tmp = folder / f".{name}.tmp{os.getpid()}"
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(target, tmp)
        os.replace(tmp, folder / name)
    return folder


def _compile_driver_stub(folder: Path) -> Path:
    """Compile `driver_stub_source` into folder/libcuda.so (soname libcuda.so.1) with the C compiler."""
    source, out = folder / "libcuda_stub.c", folder / "libcuda.so"
    atomic_write_text(source, driver_stub_source())
    tmp = folder / f".libcuda.so.tmp{os.getpid()}"
    rc, text = _run(["cc", "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", str(tmp), str(source)], timeout=120)
    if rc != 0:
        raise StepError("cannot link a GPU build: NVIDIA's libcuda.so stub is not installed and the C compiler "
                        "could not make a stand-in", fix="install the CUDA toolkit's driver stub "
                        "(/usr/local/cuda/lib64/stubs/libcuda.so, package cuda-driver-dev)", details=text[-1000:])
    os.replace(tmp, out)
    return out


# ---------------------------------------------------------------------------------------------- drive

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
    env = os.environ.get("DARKNET_MAGICS_LINKS")
    if env:
        return Path(env).expanduser()
    if Path("/content").is_dir():
        return Path("/content")
    cache = Path(os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")).expanduser()
    return cache / "darknet_magics" / "links"


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


def mount_drive(path: Optional[str], reporter: Reporter, *, alias_dir: Optional[Path] = None) -> DriveInfo:
    """Make `{drive}` usable: mount Google Drive in Colab, or use a local folder elsewhere.

    Darknet splits obj.data values at spaces, so a root with spaces ('My Drive') gets a space-free symlink
    (``/content/mydrive`` in Colab) and that link is what `root` holds.
    """
    if colab.in_colab():
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
        default_alias = (alias_dir or Path("/content")) / "mydrive"
    else:
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


# ---------------------------------------------------------------------------------------------- cuDNN


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


# ---------------------------------------------------------------------------------------------- build tools

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
    rc, out = _run([cmake, "--version"])
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
    if wheel_cache is not None:
        wheel_cache.mkdir(parents=True, exist_ok=True)
        if not list(wheel_cache.glob("cmake-*.whl")):
            reporter.info(f"downloading {spec} into {wheel_cache}")
            _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(wheel_cache), spec], 600)
        pip += ["--find-links", str(wheel_cache)]
    reporter.info(f"installing {spec} with pip (apt's cmake is older than hank-ai needs)")
    rc, out = _run(pip + [spec], timeout=600)
    path = cmake_path()
    version = cmake_version(path)
    if rc != 0 or version is None or version[:2] < CMAKE_MIN:
        raise StepError(f"could not install {spec}", fix=f"run `pip install '{spec}'` yourself",
                        details=out.strip()[-1000:])
    return path or "cmake"
