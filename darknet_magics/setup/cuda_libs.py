"""Finding what a CUDA build needs beyond nvcc where apt or pip put it (the toolkit, the distribution, PyPI's
``nvidia/*`` wheels), and the link folder with unversioned names and the driver stub (`libcuda.so`).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from ..errors import StepError
from ..fileio import atomic_write_text
from .runtime import CUDNN_INCLUDE_DIRS, CUDNN_LIB_DIRS, run_tool

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
    rc, text = run_tool(["cc", "-shared", "-fPIC", "-Wl,-soname,libcuda.so.1", "-o", str(tmp), str(source)],
                        timeout=120)
    if rc != 0:
        raise StepError("cannot link a GPU build: NVIDIA's libcuda.so stub is not installed and the C compiler "
                        "could not make a stand-in", fix="install the CUDA toolkit's driver stub "
                        "(/usr/local/cuda/lib64/stubs/libcuda.so, package cuda-driver-dev)", details=text[-1000:])
    os.replace(tmp, out)
    return out
