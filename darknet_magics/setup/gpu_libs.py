"""The flags that link NVIDIA's libraries where this machine keeps them (PyPI wheels, a driver stub): a block
appended to the Makefile (`gpu_makefile_lines`, `with_gpu_libs`: pure, idempotent) or CMake cache variables
(`gpu_cmake_args`).
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

from ..errors import DarknetMagicsError, StepError
from .cuda_libs import CudaBuildPaths, cuda_major_of, find_cuda_build_paths
from .runtime import RuntimeInfo, nvidia_wheel_dirs

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
