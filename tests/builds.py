"""The AlexeyAB and hank-ai builds that the model-out tests (test, map, video, export) run.

Where a build comes from, in order:
1. ``DARKNET_ALEXEYAB`` / ``DARKNET_HANKAI`` (a binary), else the machine's shared prebuilt binaries
   (/work/cache/builds, see its README), when they exist;
2. else our own `clone` + `make` (through ``python -m darknet_magics run``) of test_flavors_live's source repository
   (``../shared/tools/darknet-repo``) into ``.cache/live-flavors/model-out-FLAVOR``, with test_flavors_live's
   `make` line and its build cache: each flavor is built once per checkout, by whichever test needs it first, and
   restored for the other (hank-ai's tools and ONNX exporter are in the cache entry, as a user's next VM needs);
3. else the test skips, naming what is missing.

One build of a flavor at a time per checkout (`build_lock`): scripts/test starts ``python tests/builds.py`` in the
background as soon as the first environment is installed, so the builds run while the other environment installs
and the tests that need no build run; a test that needs a build meanwhile waits for it, then restores it.
"""
from __future__ import annotations

import fcntl
import os
import shlex
import shutil
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from conftest import SHARED, paused_test_timer

ROOT = Path(__file__).resolve().parents[1]
TOOL = Path(os.environ.get("DARKNET_REPO_TOOL", SHARED / "tools" / "darknet-repo"))
CACHE = ROOT / ".cache" / "live-flavors"
PREBUILT = {
    "alexeyab": Path(os.environ.get("DARKNET_ALEXEYAB", "/work/cache/builds/alexeyab-src/darknet")),
    "hank-ai": Path(os.environ.get("DARKNET_HANKAI", "/work/cache/builds/hank-ai-src/build/src-cli/darknet")),
}
# `make ccache=on`'s cache for these builds: outside the checkout, as CI's clone is fresh every run and the machine is
# not; warm, hank-ai's minutes of compiles are cache hits (configure and the links still run).
CCACHE_DIR = Path(os.environ.get("DARKNET_MAGICS_TEST_CCACHE") or Path.home() / ".cache" / "darknet_magics" / "ccache")
# the binary inside a source tree built here
BUILT = {"alexeyab": Path("darknet"), "hank-ai": Path("build/src-cli/darknet")}
_BUILDS: dict[str, Path] = {}


@contextmanager
def build_lock(flavor: str):
    """Held while `flavor` is built or restored from the build cache in this checkout (by `_build`, the
    background prebuild, or test_flavors_live's own clone + make): the second comes after the first and restores."""
    CACHE.mkdir(parents=True, exist_ok=True)
    with open(CACHE / f"build-{flavor}.lock", "w") as lock, paused_test_timer():
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _build(flavor: str) -> Path:
    """Our own `clone` + `make` (the CLI runs the same directives as the magics) of test_flavors_live's source repo,
    against its build cache: whichever of the two runs first builds, the other restores (CI builds each flavor
    once, and the second environment restores both)."""
    tree = CACHE / f"model-out-{flavor}"
    binary = tree / BUILT[flavor]
    with build_lock(flavor):  # a binary seen outside it may be one a running build has only begun to write
        return binary if binary.is_file() else _clone_and_make(flavor, tree, binary)


def _clone_and_make(flavor: str, tree: Path, binary: Path) -> Path:
    from test_flavors_live import make_line, source_repo

    if not TOOL.exists():
        pytest.skip(f"no {flavor} build at {PREBUILT[flavor]} and no {TOOL} to build one from (../shared is not "
                    "beside this checkout)")
    if not Path("/usr/include/opencv4").is_dir():
        pytest.skip(f"building {flavor} needs OpenCV's headers: apt-get install -y libopencv-dev")
    if flavor == "hank-ai" and not (shutil.which("cmake") and shutil.which("protoc")):
        pytest.skip("building hank-ai with its ONNX exporter needs cmake and protobuf: "
                    "apt-get install -y cmake libprotobuf-dev protobuf-compiler")
    source = source_repo(flavor)
    shutil.rmtree(tree, ignore_errors=True)
    cell = CACHE / f"model-out-{flavor}.darknet"
    cell.write_text(f"workspace {shlex.quote(str(CACHE))}\nclone {shlex.quote(str(source))} "
                    f"into={shlex.quote(str(tree))}\n{make_line(flavor)}\n")
    log = CACHE / f"model-out-{flavor}.log"
    with open(log, "w") as out:
        done = subprocess.run([sys.executable, "-m", "darknet_magics", "run", str(cell)], cwd=CACHE, stdout=out,
                              stderr=subprocess.STDOUT, timeout=3600, env={**os.environ, "CCACHE_DIR": str(CCACHE_DIR)})
    if done.returncode != 0 or not binary.is_file():
        pytest.fail(f"building {flavor} with our clone + make failed (exit {done.returncode}, no {binary}): "
                    f"{log.read_text(errors='replace')[-2000:]}")
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


if __name__ == "__main__":
    # The background prebuild of scripts/test: both flavors into the checkout's build cache, AlexeyAB first (the
    # first test needing one runs AlexeyAB). A skip reason (no ../shared, no OpenCV headers) is printed, not raised.
    for name in sys.argv[1:] or ["alexeyab", "hank-ai"]:
        try:
            print(f"{name}: {flavor_binary(name)}", flush=True)
        except BaseException as err:  # pytest's skip and fail are BaseExceptions
            print(f"{name}: not built: {err}", flush=True)
