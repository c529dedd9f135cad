"""Where this code runs and what the machine has: the platform, the GPU, CUDA, cuDNN, OpenCV, the CPU.

Each probe runs one tool with an argv list and parses its output with a pure function (``parse_*``) that the
tests feed real-shaped text. A missing tool is a ``None`` field plus a warning, never an exception: the
runtime table must print on a CPU-only laptop as well as on Colab.
"""
from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Sequence

from . import colab


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


def run_tool(argv: list[str], timeout: float = 20) -> tuple[Optional[int], str]:
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
    rc, out = run_tool(["nvidia-smi", "-L"])
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


def nvidia_wheel_dirs(paths: Sequence[str | Path]) -> list[Path]:
    """The ``nvidia/*`` folders of PyPI's NVIDIA wheels on `paths` (sys.path): ``nvidia/cublas`` (CUDA 12 wheels,
    torch's on Colab), ``nvidia/cu13`` (CUDA 13 wheels), ``nvidia/cudnn``."""
    found = []
    for p in paths:
        root = Path(p) / "nvidia" if p else None
        if root is not None and root.is_dir():
            found += sorted(d for d in root.iterdir() if d.is_dir() and (d / "include").is_dir())
    return list(dict.fromkeys(found))



def probe_runtime() -> RuntimeInfo:
    """Probe nvidia-smi, nvcc, cuDNN and OpenCV, and the CPU's instruction sets; every missing piece becomes a
    warning."""
    info = RuntimeInfo(platform=detect_platform())
    try:
        info.cpu_isa = parse_cpu_isa(Path("/proc/cpuinfo").read_text(errors="replace"))
    except OSError:
        info.cpu_isa = None

    _probe_gpu(info)
    _probe_nvcc(info)
    _probe_cudnn(info)
    _probe_opencv(info)
    return info


def _probe_gpu(info: RuntimeInfo) -> None:
    """The first GPU that nvidia-smi lists, and how many there are."""
    rc, out = run_tool(NVIDIA_SMI_QUERY)
    if rc not in (None, 0) and "compute_cap" in out:
        # Drivers before 510 do not know the compute_cap field: ask without it, map the name.
        rc, out = run_tool(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
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


def _probe_nvcc(info: RuntimeInfo) -> None:
    """nvcc, its CUDA version and the architectures it builds for."""
    info.nvcc = find_nvcc()
    if info.nvcc:
        rc, out = run_tool([info.nvcc, "--version"])
        info.cuda_version = parse_nvcc_version(out) if rc == 0 else None
        rc, out = run_tool([info.nvcc, "--list-gpu-arch"])
        info.nvcc_archs = parse_nvcc_archs(out) if rc == 0 else []
        if not info.nvcc_archs:
            info.warnings.append("nvcc cannot list its GPU architectures (CUDA older than 11?): ARCH is not checked")
    else:
        info.warnings.append("nvcc not found: GPU=1 builds need the CUDA toolkit (/usr/local/cuda/bin/nvcc)")


def _probe_cudnn(info: RuntimeInfo) -> None:
    """cuDNN's version from its header, else from its library's name (then a build lacks the header)."""
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


def _probe_opencv(info: RuntimeInfo) -> None:
    """OpenCV's version from pkg-config, and whether its headers are there."""
    cflags = ""
    for pkg in ("opencv4", "opencv"):
        rc, out = run_tool(["pkg-config", "--modversion", pkg])
        if rc == 0 and out.strip():
            info.opencv, info.opencv_pkg = out.strip().splitlines()[0], pkg  # type: ignore[assignment]
            cflags = run_tool(["pkg-config", "--cflags", pkg])[1]
            break
    info.opencv_headers = opencv_headers_present(cflags)
    if not info.opencv_headers:
        info.warnings.append("OpenCV headers not found: OPENCV=1 builds need `apt-get install -y libopencv-dev`")
