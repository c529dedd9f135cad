"""The AlexeyAB and hank-ai builds that the model-out tests (test, map, video, export) run.

Where a build comes from, in order:
1. ``DARKNET_ALEXEYAB`` / ``DARKNET_HANKAI`` (a binary), else the machine's shared prebuilt binaries
   (/work/cache/builds, see its README), when they exist;
2. else built once from ../shared's darknet sources (``../shared/tools/darknet-repo FLAVOR DIR``, or
   ``DARKNET_REPO_TOOL``) into
   ``.cache/live-flavors/model-out-FLAVOR`` of the checkout, beside test_flavors_live's sources, so CI keeps them
   in the same cache: AlexeyAB with ``make OPENCV=1`` (video needs it), hank-ai with CMake and
   ``DARKNET_TRY_ONNX`` (darknet_onnx_export needs protobuf), each as /work/cache/builds/build-all.sh does;
3. else the test skips, naming what is missing.

These builds are not made with our own `make` directive because its build cache keeps the CLI and libdarknet only,
not hank-ai's example tools (darknet_01_inference_images, darknet_04_process_videos) or its ONNX exporter.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
TOOL = Path(os.environ.get("DARKNET_REPO_TOOL", SHARED / "tools" / "darknet-repo"))
CACHE = ROOT / ".cache" / "live-flavors"
PREBUILT = {
    "alexeyab": Path(os.environ.get("DARKNET_ALEXEYAB", "/work/cache/builds/alexeyab-src/darknet")),
    "hank-ai": Path(os.environ.get("DARKNET_HANKAI", "/work/cache/builds/hank-ai-src/build/src-cli/darknet")),
}
# the binary inside a source tree built here
BUILT = {"alexeyab": Path("darknet"), "hank-ai": Path("build/src-cli/darknet")}
_BUILDS: dict[str, Path] = {}


@contextmanager
def _test_timer_paused():
    """A build (minutes on two cores, once per checkout) does not count against the timeout of the test that
    happens to need it first: pytest-timeout's SIGALRM timer is stopped during it and re-armed with what was left.
    The build's commands have their own timeout (an hour)."""
    left, interval = signal.setitimer(signal.ITIMER_REAL, 0)
    try:
        yield
    finally:
        if left:
            signal.setitimer(signal.ITIMER_REAL, left, interval)


def _run(argv: list[str], cwd: Path, log: Path) -> None:
    with open(log, "a") as out:
        done = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, timeout=3600)
    if done.returncode != 0:
        pytest.fail(f"building darknet failed ({' '.join(argv)}, exit {done.returncode}): "
                    f"{log.read_text(errors='replace')[-2000:]}")


def _build(flavor: str) -> Path:
    tree = CACHE / f"model-out-{flavor}"
    binary = tree / BUILT[flavor]
    if binary.is_file():
        return binary
    if not TOOL.exists():
        pytest.skip(f"no {flavor} build at {PREBUILT[flavor]} and no {TOOL} to build one from (../shared is not "
                    "beside this checkout)")
    if not Path("/usr/include/opencv4").is_dir():
        pytest.skip(f"building {flavor} needs OpenCV's headers: apt-get install -y libopencv-dev")
    if flavor == "hank-ai" and not (shutil.which("cmake") and shutil.which("protoc")):
        pytest.skip("building hank-ai with its ONNX exporter needs cmake and protobuf: "
                    "apt-get install -y cmake libprotobuf-dev protobuf-compiler")
    shutil.rmtree(tree, ignore_errors=True)
    tree.parent.mkdir(parents=True, exist_ok=True)
    made = subprocess.run([str(TOOL), flavor, str(tree)], capture_output=True, text=True)
    if made.returncode != 0:
        pytest.skip(f"darknet-repo {flavor} failed: {made.stderr.strip()[-300:]}")
    log = tree / "model-out-build.log"
    jobs = str(os.cpu_count() or 2)
    with _test_timer_paused():
        if flavor == "alexeyab":
            _run(["make", f"-j{jobs}", "GPU=0", "CUDNN=0", "OPENCV=1", "AVX=0", "OPENMP=0"], tree, log)
        else:
            (tree / "build").mkdir()
            _run(["cmake", "-DCMAKE_BUILD_TYPE=Release", "-DDARKNET_TRY_CUDA=OFF", "-DDARKNET_TRY_ROCM=OFF",
                  "-DDARKNET_TRY_ONNX=True", ".."], tree / "build", log)
            # the targets the tests run (darknetcli is the `darknet` CLI), not all of hank-ai's examples: CI time
            _run(["make", f"-j{jobs}", "darknetcli", "darknet_01_inference_images", "darknet_04_process_videos",
                  "darknet_onnx_export"], tree / "build", log)
    if not binary.is_file():
        pytest.fail(f"the {flavor} build made no {binary}: {log.read_text(errors='replace')[-2000:]}")
    return binary


def flavor_binary(flavor: str) -> Path:
    """The darknet binary of `flavor` ('alexeyab' or 'hank-ai'): prebuilt, else built from ../shared (once per
    checkout), else the test skips by name."""
    if flavor not in _BUILDS:
        _BUILDS[flavor] = PREBUILT[flavor] if PREBUILT[flavor].is_file() else _build(flavor)
    return _BUILDS[flavor]


@pytest.fixture(scope="session")
def alexeyab() -> Path:
    """AlexeyAB's darknet built with OpenCV (its folder has cfg/ and data/labels/)."""
    return flavor_binary("alexeyab")


@pytest.fixture(scope="session")
def hankai() -> Path:
    """hank-ai's darknet CLI, its example tools and darknet_onnx_export beside it (build/src-*)."""
    return flavor_binary("hank-ai")
