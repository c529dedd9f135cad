"""Where we run, what the machine has (GPU, CUDA, cuDNN, OpenCV), Google Drive, and installing cuDNN.

Each probe runs one tool with an argv list and parses its output with a pure function (``parse_*``) that the
tests feed real-shaped text. A missing tool is a ``None`` field plus a warning, never an exception: the
runtime table must print on a CPU-only laptop as well as on Colab.
"""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional, Sequence

from . import colab
from ..errors import DarknetMagicsError, StepError
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

    info.cudnn_version, header = find_cudnn_header()
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


def install_opencv_dev(reporter: Reporter) -> None:
    """``apt-get install -y libopencv-dev`` (Colab ships OpenCV for Python only, no C++ headers)."""
    reporter.info("installing libopencv-dev with apt-get (a minute or two)")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "libopencv-dev"]):
        p = subprocess.run(argv, capture_output=True, text=True, errors="replace",
                           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"}, stdin=subprocess.DEVNULL)
        if p.returncode != 0:
            raise StepError("could not install libopencv-dev", fix="run `apt-get install -y libopencv-dev` yourself",
                            details="\n".join((p.stdout + p.stderr).strip().splitlines()[-10:]))
