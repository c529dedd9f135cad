"""A build's output, read (pure: text in, problems out): the first error lines worth showing, and the diagnosis of
why make or CMake failed with its fix (`diagnose_build`).
"""
from __future__ import annotations

import re

from ..errors import Problem

# A compiler's command line or CMake's "Building ... object" line: progress counts these, errors never quote them.
COMPILE_LINE = re.compile(r"^\[\s*\d+%\]\s+Building \w+ object|(?:^|\s)-c\s.*\s-o\s+\S+\.o\b|(?:^|\s)-o\s+\S+\.o\s.*\s-c\s")
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
        if _ERROR_LINE.search(line) and not _NOISE.match(line) and not COMPILE_LINE.search(line) \
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
