"""setup/ clone, makefile, arch, gpu_libs, build_cache, build and output/buildlog: Makefile patching on the real
pjreddie Makefile and an AlexeyAB-style fixture, ARCH, diagnosis, and for real: clone from a local git repo, make,
cache restore, corrupt entries, Ctrl-C, nvcc, CMake."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from darknet_magics.errors import DarknetMagicsError, StepError
from darknet_magics.output.buildlog import COMPILE_LINE, diagnose_build, first_error_lines
from darknet_magics.output.logparse import strip_escapes
from darknet_magics.report import RecordingReporter
from darknet_magics.setup import build
from darknet_magics.setup.arch import ArchChoice, choose_arch, resolve_arch
from darknet_magics.setup.build_cache import cache_inputs, cache_key, check_entry, sha256_of, source_id, try_restore
from darknet_magics.setup.build_tools import protobuf_present
from darknet_magics.setup.clone import DEFAULT_URL, clone, clone_commands
from darknet_magics.setup.compiler_cache import ccache_counts, hits_between
from darknet_magics.setup.cuda_libs import CudaBuildPaths, CudaLibrary
from darknet_magics.setup.gpu_libs import (CUDA_LINK_DIR, GPU_LIBS_BEGIN, GPU_LIBS_END, gpu_cmake_args,
                                           gpu_makefile_lines, with_gpu_libs)
from darknet_magics.setup.makefile import (ARCH_DISABLED_NOTE, arch_block, makefile_flags, patch_makefile, read_arch,
                                           write_makefile)
from darknet_magics.setup.runtime import (CUDNN_INCLUDE_DIRS, RuntimeInfo, capability_to_int, find_nvcc,
                                          nvidia_gpu_found, nvidia_wheel_dirs, parse_cpu_isa, parse_nvcc_archs,
                                          probe_runtime)

HERE = Path(__file__).parent
FIXTURES = HERE / "fixtures"
ALEXEYAB = (FIXTURES / "alexeyab" / "Makefile").read_text()
SOURCE_TOOL = Path(os.environ.get("DARKNET_SOURCE_TOOL", HERE.parent.parent / "shared" / "tools" / "darknet-source"))
GIT_ENV = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
# cuBLAS/cuRAND headers for the compile-only nvcc test: scripts/test unpacks them from PyPI's nvidia-cublas and
# nvidia-curand wheels into CUDA_HEADERS_DIR (headers only, not 800 MB of libraries); a venv with the wheels works too.
CU13_INCLUDE = Path(os.environ.get("CUDA_HEADERS_DIR") or
                    Path(sysconfig.get_paths()["purelib"]) / "nvidia" / "cu13" / "include")
CPU = RuntimeInfo(cuda_version=None, nvcc=None)


def _sys_path_without_nvidia() -> list[str]:
    """This Python's sys.path less the folders that hold PyPI's NVIDIA wheels (a Python as a CPU machine has it)."""
    import sys

    return [p for p in sys.path if not (Path(p or ".") / "nvidia").is_dir()]


def _git(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True,
                          env={**os.environ, **GIT_ENV}).stdout.strip()


# ---------------------------------------------------------------------------------------------- sources


@pytest.fixture(scope="session")
def pjreddie_makefile(debian_source: Path) -> str:
    return (debian_source / "Makefile").read_text()


# ---------------------------------------------------------------------------------------------- patching


def _changed(old: str, new: str) -> list[tuple[str, str]]:
    a, b = old.splitlines(keepends=True), new.splitlines(keepends=True)
    assert len(a) == len(b)
    return [(x, y) for x, y in zip(a, b) if x != y]


def test_pjreddie_flags_and_arch(pjreddie_makefile: str) -> None:
    assert makefile_flags(pjreddie_makefile) == {"GPU": 0, "CUDNN": 0, "OPENCV": 0, "OPENMP": 0, "DEBUG": 0}
    assert "compute_30" in (read_arch(pjreddie_makefile) or "")


@pytest.mark.parametrize("which", ["pjreddie", "alexeyab"])
def test_every_flag_changes_only_its_line(which: str, pjreddie_makefile: str) -> None:
    text = pjreddie_makefile if which == "pjreddie" else ALEXEYAB
    flags = makefile_flags(text)
    if which == "alexeyab":
        assert list(flags) == ["GPU", "CUDNN", "CUDNN_HALF", "OPENCV", "AVX", "OPENMP", "LIBSO", "ZED_CAMERA",
                               "ZED_CAMERA_v2_8", "USE_CPP", "DEBUG"]
    for name in flags:
        new = patch_makefile(text, {name: 1}, None)
        assert _changed(text, new) == [(f"{name}=0\n", f"{name}=1\n")]
        assert patch_makefile(new, {name: 1}, None) == new
        assert patch_makefile(new, {name: 0}, None) == text


@pytest.mark.parametrize("which", ["pjreddie", "alexeyab"])
def test_arch_block_replaced_rest_byte_for_byte(which: str, pjreddie_makefile: str) -> None:
    text = pjreddie_makefile if which == "pjreddie" else ALEXEYAB
    arch = arch_block([75])
    new = patch_makefile(text, {"GPU": 1, "CUDNN": 1}, arch)
    assert read_arch(new) == "-gencode arch=compute_75,code=[sm_75,compute_75]"
    assert patch_makefile(new, {"GPU": 1, "CUDNN": 1}, arch) == new  # idempotent
    old_lines, new_lines = text.splitlines(keepends=True), new.splitlines(keepends=True)
    start = next(i for i, line in enumerate(old_lines) if line.startswith("ARCH="))
    end = start
    while old_lines[end].rstrip("\n").endswith("\\"):
        end += 1
    # Before and after the ARCH block: identical except the two flag lines; after: identical but ARCH+=.
    expect = old_lines[:start] + [arch + "\n"] + old_lines[end + 1:]
    expect = [("GPU=1\n" if x == "GPU=0\n" else "CUDNN=1\n" if x == "CUDNN=0\n" else x) for x in expect]
    expect = [("#" + x.rstrip("\n") + ARCH_DISABLED_NOTE + "\n" if x.startswith("ARCH+=") else x)
              for x in expect]
    assert new_lines == expect
    # The commented alternatives stay as they were.
    assert [x for x in old_lines if x.startswith("# ARCH=")] == [x for x in new_lines if x.startswith("# ARCH=")]


def test_alexeyab_cudnn_half_arch_addition_is_disabled_only_with_arch() -> None:
    assert patch_makefile(ALEXEYAB, {"CUDNN_HALF": 1}, None).count("\nARCH+=") == 1
    new = patch_makefile(ALEXEYAB, {"CUDNN_HALF": 1}, arch_block([86]))
    assert "\nARCH+=" not in new and "#ARCH+= -gencode arch=compute_70" in new


@pytest.mark.parametrize("cap,num", [("7.5", 75), ("8.0", 80), ("8.6", 86), ("8.9", 89), ("9.0", 90)])
def test_arch_auto_for_each_gpu(cap: str, num: int, pjreddie_makefile: str) -> None:
    runtime = RuntimeInfo(gpu_name="gpu", compute_capability=cap, nvcc="/usr/bin/nvcc", cuda_version="12.8",
                          nvcc_archs=[50, 52, 60, 61, 70, 75, 80, 86, 87, 89, 90, 100, 120])
    caps = resolve_arch("auto", True, runtime)
    assert caps == [num] and resolve_arch(None, True, runtime) == [num]
    line = arch_block(caps)
    assert line == f"ARCH= -gencode arch=compute_{num},code=[sm_{num},compute_{num}]"
    for text in (pjreddie_makefile, ALEXEYAB):
        new = patch_makefile(text, {"GPU": 1}, line)
        assert "compute_30" not in read_arch(new) and f"compute_{num}" in read_arch(new)


def test_arch_errors_before_make() -> None:
    cuda13 = RuntimeInfo(nvcc="/usr/local/bin/nvcc", cuda_version="13.0", nvcc_archs=[75, 80, 86, 89, 90, 100])
    assert resolve_arch("75, 8.6", True, cuda13) == [75, 86]
    assert resolve_arch("sm_90", True, cuda13) == [90]
    assert resolve_arch("auto", False, cuda13) is None
    with pytest.raises(DarknetMagicsError, match="cannot build for compute capability 6.1"):
        resolve_arch("61", True, cuda13)
    with pytest.raises(DarknetMagicsError, match="ARCH=auto needs a GPU"):
        resolve_arch("auto", True, cuda13)
    with pytest.raises(DarknetMagicsError, match="needs nvcc") as err:
        resolve_arch("75", True, RuntimeInfo())
    assert err.value.fix and "GPU=0" in err.value.fix
    with pytest.raises(DarknetMagicsError):
        resolve_arch("turing", True, cuda13)
    # Multi-arch stays one line.
    assert arch_block([86, 75]).count("-gencode") == 2


def test_unknown_flag_names_the_valid_ones(pjreddie_makefile: str) -> None:
    with pytest.raises(DarknetMagicsError) as err:
        patch_makefile(pjreddie_makefile, {"CUDNN_HALF": 1}, None)
    assert "CUDNN_HALF" in str(err.value) and "GPU CUDNN OPENCV OPENMP DEBUG" in (err.value.fix or "")
    with pytest.raises(DarknetMagicsError):
        patch_makefile(ALEXEYAB, {"GPU": 2}, None)


def test_crlf_and_trailing_comment_lines_kept() -> None:
    text = "GPU=0 # set to 1\r\nCUDNN := 0\r\n\r\nARCH= -gencode arch=compute_30,code=sm_30 \\\r\n  -x\r\nall:\r\n"
    new = patch_makefile(text, {"GPU": 1, "CUDNN": 1}, arch_block([75]))
    assert new == ("GPU=1 # set to 1\r\nCUDNN := 1\r\n\r\nARCH= -gencode arch=compute_75,code=[sm_75,compute_75]"
                   "\r\nall:\r\n")


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(list(makefile_flags(ALEXEYAB))), st.integers(0, 1)),
       st.one_of(st.none(), st.lists(st.sampled_from([75, 80, 86, 89, 90]), min_size=1, max_size=3)))
def test_patch_is_idempotent_and_reversible(flags: dict[str, int], caps: list[int] | None) -> None:
    arch = arch_block(caps) if caps else None
    once = patch_makefile(ALEXEYAB, flags, arch)
    assert patch_makefile(once, flags, arch) == once
    assert {k: makefile_flags(once)[k] for k in flags} == flags
    if arch is None:
        assert patch_makefile(once, makefile_flags(ALEXEYAB), None) == ALEXEYAB


def test_write_makefile_is_atomic_and_keeps_the_original(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text(ALEXEYAB)
    assert write_makefile(tmp_path, patch_makefile(ALEXEYAB, {"GPU": 1}, None))
    assert write_makefile(tmp_path, patch_makefile(ALEXEYAB, {"GPU": 0}, None))
    assert (tmp_path / "Makefile.orig").read_text() == ALEXEYAB  # the first original, not the last version
    mtime = (tmp_path / "Makefile").stat().st_mtime_ns
    assert not write_makefile(tmp_path, ALEXEYAB)  # unchanged: not rewritten
    assert (tmp_path / "Makefile").stat().st_mtime_ns == mtime
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Makefile", "Makefile.orig"]


# ---------------------------------------------------------------------------------------------- diagnosis

CUDNN8_ERRORS = """gcc -Iinclude/ -Isrc/ -DGPU -I/usr/local/cuda/include/ -DCUDNN  -Wall -Wfatal-errors -fPIC -Ofast -DGPU -DCUDNN -c ./src/convolutional_layer.c -o obj/convolutional_layer.o
./src/convolutional_layer.c: In function 'cudnn_convolutional_setup':
./src/convolutional_layer.c:148:5: error: implicit declaration of function 'cudnnGetConvolutionForwardAlgorithm'; did you mean 'cudnnGetConvolutionForwardAlgorithm_v7'? [-Werror=implicit-function-declaration]
compilation terminated due to -Wfatal-errors.
make: *** [Makefile:89: obj/convolutional_layer.o] Error 1
"""
OPENCV_ERRORS = """g++ -Iinclude/ -Isrc/ -DOPENCV -c ./src/image_opencv.cpp -o obj/image_opencv.o
Package opencv was not found in the pkg-config search path.
Perhaps you should add the directory containing `opencv.pc'
./src/image_opencv.cpp:5:10: fatal error: opencv2/opencv.hpp: No such file or directory
make: *** [Makefile:86: obj/image_opencv.o] Error 1
"""


def test_diagnose_known_failures() -> None:
    (p,) = diagnose_build(CUDNN8_ERRORS)
    assert p.code == "cudnn-api-mismatch" and "CUDNN=0" in p.fix
    assert first_error_lines(CUDNN8_ERRORS).startswith("./src/convolutional_layer.c: In function")
    codes = [p.code for p in diagnose_build(OPENCV_ERRORS)]
    assert codes == ["opencv-missing"]
    assert "Package opencv was not found" in first_error_lines(OPENCV_ERRORS)
    assert [p.code for p in diagnose_build("/bin/sh: 1: nvcc: not found\n")] == ["nvcc-missing"]
    assert diagnose_build("all good\n") == []


def test_clone_commands(tmp_path: Path) -> None:
    into = tmp_path / "dark net"
    assert clone_commands(None, "v1", into) == [
        ["git", "clone", "--", DEFAULT_URL, str(into)],
        ["git", "-C", str(into), "checkout", "--quiet", "--detach", "v1"]]
    assert clone_commands("/x", None, into) == [["git", "clone", "--", "/x", str(into)]]


# ---------------------------------------------------------------------------------------------- real builds

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (the CUDA compiler) is not installed")


@pytest.fixture(scope="module")
def cold_build(origin_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    """clone (from the path with spaces) + make GPU=0 OPENCV=0 with a cache: the one cold pjreddie build."""
    base = tmp_path_factory.mktemp("work") / "work dir 'a'; b"
    rep = RecordingReporter()
    cloned = clone(str(origin_repo), None, base / "darknet", rep)
    res = build.make(cloned.path, flags={"GPU": 0, "OPENCV": 0}, arch=None, jobs=2, cache_dir=base / "cache",
                     runtime=probe_runtime(), reporter=rep, commit=cloned.commit)
    return cloned, res, rep, base


@pytest.mark.slow
@pytest.mark.once
def test_clone_make_and_run(cold_build) -> None:
    cloned, res, rep, base = cold_build
    assert cloned.action == "cloned" and len(cloned.commit) == 40
    assert res.action == "built" and res.binary == cloned.path / "darknet" and res.libso is not None
    assert res.files_compiled == 63 and res.cache_key and (base / "cache" / res.cache_key / "manifest.json").is_file()
    progress = [p for k, p in rep.events if k == "progress"]
    assert progress[-1].startswith("compiled 63/63 files")
    assert res.log_path and "gcc" in res.log_path.read_text()
    run = subprocess.run([str(res.binary)], capture_output=True, text=True, cwd=res.binary.parent)
    assert "usage" in (run.stdout + run.stderr)


@pytest.mark.slow
@pytest.mark.once
def test_second_make_is_up_to_date(cold_build) -> None:
    cloned, first, _, base = cold_build
    rep = RecordingReporter()
    res = build.make(cloned.path, flags={"GPU": 0, "OPENCV": 0}, arch=None, jobs=2, cache_dir=base / "cache",
                     runtime=probe_runtime(), reporter=rep)
    assert res.action == "up-to-date" and res.cache_key == first.cache_key  # commit read from git here


@pytest.mark.slow
@pytest.mark.once
def test_fresh_folder_restores_from_cache(cold_build, tmp_path: Path) -> None:
    _, first, _, base = cold_build
    rep = RecordingReporter()
    cloned = clone(str(cold_build[0].path), None, tmp_path / "fresh; vm" / "darknet", rep)
    res = build.make(cloned.path, flags={"GPU": 0, "OPENCV": 0}, arch=None, jobs=2, cache_dir=base / "cache",
                     runtime=probe_runtime(), reporter=rep, commit=cloned.commit)
    assert res.action == "restored" and res.cache_key == first.cache_key
    assert os.access(res.binary, os.X_OK) and not (cloned.path / "obj").exists()
    assert "restored darknet from the build cache" in rep.text()
    assert (res.binary.read_bytes() == first.binary.read_bytes())


@pytest.mark.slow
@pytest.mark.once
def test_corrupt_entry_is_rebuilt(cold_build, tmp_path: Path) -> None:
    _, first, _, base = cold_build
    cache = tmp_path / "cache"
    shutil.copytree(base / "cache", cache)
    cached = cache / first.cache_key / "files" / "darknet"
    data = bytearray(cached.read_bytes())
    data[len(data) // 2] ^= 0xFF
    cached.write_bytes(bytes(data))
    rep = RecordingReporter()
    # The built tree without its binary (objects kept, mtimes too): the rebuild is a real make that only links.
    work = tmp_path / "darknet"
    shutil.copytree(cold_build[0].path, work, ignore=shutil.ignore_patterns("darknet"))
    res = build.make(work, flags={"GPU": 0, "OPENCV": 0}, arch=None, jobs=2, cache_dir=cache,
                     runtime=probe_runtime(), reporter=rep)
    assert res.action == "built" and res.cache_note and "checksum mismatch for darknet" in res.cache_note
    assert subprocess.run([str(res.binary)], capture_output=True).returncode in (0, 1)
    assert "corrupt" in rep.text() and "building again" in rep.text()
    assert check_entry(cache / first.cache_key, first.cache_key)[0] is not None  # stored anew, sound


@pytest.mark.slow
@pytest.mark.once
def test_unloadable_entry_is_rebuilt_not_used(cold_build, tmp_path: Path) -> None:
    """A sound checksum but a binary that cannot run here (e.g. built on another OS image)."""
    _, first, _, base = cold_build
    cache = tmp_path / "cache"
    shutil.copytree(base / "cache", cache)
    entry = cache / first.cache_key
    broken = entry / "files" / "darknet"
    broken.write_bytes(b"#!/nonexistent/interpreter\n")
    import json

    manifest = json.loads((entry / "manifest.json").read_text())
    for f in manifest["files"]:
        if f["path"] == "darknet":
            f["sha256"] = sha256_of(broken)
    (entry / "manifest.json").write_text(json.dumps(manifest))
    work = tmp_path / "darknet"
    shutil.copytree(cold_build[0].path, work, ignore=shutil.ignore_patterns("obj", "darknet", "*.a", "*.so"))
    rep = RecordingReporter()
    files, why = check_entry(entry, first.cache_key)
    assert files is not None
    restored = try_restore(entry, first.cache_key, work, rep)
    assert isinstance(restored, str) and "does not run here" in restored
    assert not entry.exists() and not (work / "darknet").exists()


@pytest.mark.slow
@pytest.mark.once
@pytest.mark.timeout(240)  # a hung interrupt must fail, not stall the suite
def test_ctrl_c_stops_make_and_leaves_no_cache_entry(origin_repo: Path, tmp_path: Path) -> None:
    class InterruptingReporter(RecordingReporter):
        def progress(self, text: str, *, final: bool = False) -> None:
            super().progress(text, final=final)
            if text.startswith("compiled 3/"):
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C to this process

    rep = InterruptingReporter()
    cloned = clone(str(origin_repo), None, tmp_path / "dark net" / "darknet", rep)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        build.make(cloned.path, flags={"GPU": 0}, arch=None, jobs=2, cache_dir=cache, runtime=probe_runtime(),
                   reporter=rep)
    # No make or compiler left running in that folder, and nothing in the cache.
    left = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(os.readlink(f"/proc/{pid}/cwd")).resolve() == cloned.path.resolve():
                if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z":
                    left.append(pid)
        except OSError:
            pass
    assert left == []
    assert not cache.exists() or list(cache.iterdir()) == []
    assert not (cloned.path / "darknet").exists()
    assert "interrupted" in (cloned.path / build.BUILD_LOG_NAME).read_text()


def test_clone_update_and_ref(origin_repo: Path, tmp_path: Path) -> None:
    rep = RecordingReporter()
    into = tmp_path / "clone"
    first = clone(f"file://{origin_repo}", "v0", into, rep)
    assert first.action == "cloned"
    assert clone(f"file://{origin_repo}", "v0", into, rep).action == "unchanged"
    # A new commit upstream on a copy of the origin: fetch + checkout moves to it; our patched Makefile is reset.
    upstream = tmp_path / "upstream"
    shutil.copytree(origin_repo, upstream, symlinks=True)
    (upstream / "NEWS").write_text("x\n")
    _git("add", "NEWS", cwd=upstream)
    _git("commit", "-qm", "news", cwd=upstream)
    _git("remote", "set-url", "origin", str(upstream), cwd=into)
    (into / "Makefile").write_text(patch_makefile((into / "Makefile").read_text(), {"GPU": 1}, None))
    (into / "Makefile.orig").write_text("orig")
    moved = clone(None, "master", into, rep)
    assert moved.action == "updated" and moved.commit == _git("rev-parse", "HEAD", cwd=upstream)
    assert (into / "NEWS").exists() and "GPU=0" in (into / "Makefile").read_text()
    with pytest.raises(DarknetMagicsError):
        clone(None, "no-such-ref", into, rep)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "f").write_text("x")
    with pytest.raises(DarknetMagicsError):
        clone(str(origin_repo), None, tmp_path / "junk", rep)


def test_source_id_outside_git(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "src").mkdir(parents=True)
    (tree / "Makefile").write_text(ALEXEYAB)
    (tree / "src" / "a.c").write_text("int a;\n")
    first = source_id(tree)
    assert first.startswith("tree:") and source_id(tree) == first
    (tree / "src" / "a.c").write_text("int b;\n")
    assert source_id(tree) != first
    assert source_id(tree, "abc") == "abc"


def test_cache_key_depends_on_what_changes_the_binary() -> None:
    rt = RuntimeInfo(cuda_version="12.8", cudnn_version="9.2.1", opencv="4.6.0")
    base = dict(source="c1", system="make", flags={"GPU": 1, "CUDNN": 1, "OPENCV": 0}, arch=[75], runtime=rt)
    key = cache_key(cache_inputs(**base))
    for change in ({"source": "c2"}, {"flags": {"GPU": 1, "CUDNN": 0, "OPENCV": 0}}, {"arch": [86]},
                   {"runtime": RuntimeInfo(cuda_version="13.0", cudnn_version="9.2.1")}, {"system": "cmake"}):
        assert cache_key(cache_inputs(**{**base, **change})) != key
    # A CPU build does not depend on the CUDA version.
    cpu = dict(base, flags={"GPU": 0, "CUDNN": 0, "OPENCV": 0}, arch=None)
    assert cache_key(cache_inputs(**cpu)) == cache_key(
        cache_inputs(**dict(cpu, runtime=RuntimeInfo(cuda_version="13.0"))))


def test_an_avx_build_is_restored_only_on_a_cpu_with_the_same_instruction_sets() -> None:
    """hank-ai's CMake compiles with -march=native when AVX is on (its default), AlexeyAB's AVX=1 with -mavx2 &
    co.: on a Colab VM with another CPU such a binary dies of SIGILL, so the key holds the CPU's instruction sets."""
    here = probe_runtime()
    real = Path("/proc/cpuinfo").read_text()
    assert here.cpu_isa == parse_cpu_isa(real)
    if "flags" in real:  # x86: what gcc's -march=native reads, without the CPU's bugs and virtualisation flags
        assert "sse2" in here.cpu_isa.split() and "hypervisor" not in here.cpu_isa.split()
    other = RuntimeInfo(cpu_isa=" ".join(f for f in here.cpu_isa.split() if not f.startswith("avx512")) + " sse4a")
    for system, flags in (("cmake", dict(build.CMAKE_DEFAULTS, OPENCV=1)), ("make", {"GPU": 0, "AVX": 1})):
        inputs = dict(source="c1", system=system, flags=flags, arch=None)
        assert cache_key(cache_inputs(**inputs, runtime=here)) != cache_key(
            cache_inputs(**inputs, runtime=other))
    # without AVX the binary runs on any x86-64 CPU: one entry for every VM, and the same key as before this rule
    plain = dict(source="c1", system="make", flags={"GPU": 0, "AVX": 0}, arch=None)
    assert cache_key(cache_inputs(**plain, runtime=here)) == cache_key(
        cache_inputs(**plain, runtime=other))
    assert "cpu" not in cache_inputs(**plain, runtime=here)
    assert parse_cpu_isa("processor : 0\nFeatures : fp asimd evtstrm aes crc32\n") == \
        "aes asimd crc32 evtstrm fp"
    assert parse_cpu_isa("processor : 0\n") is None


@pytest.mark.slow
@pytest.mark.once
@needs_nvcc
def test_failed_build_raises_a_diagnosis_and_caches_nothing(origin_repo: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """GPU=1 where cuBLAS/cuRAND are nowhere (not in the toolkit, not from apt, no wheel in this Python): the error
    says which and the pip command, before anything is written or compiled."""
    runtime = probe_runtime()
    if (Path("/usr/local/cuda/include") / "curand.h").exists():
        pytest.skip("this machine's CUDA toolkit has cuRAND: the build would get further than we want")
    monkeypatch.setattr(sys, "path", _sys_path_without_nvidia())  # no PyPI wheels of NVIDIA's libraries
    cloned = clone(str(origin_repo), None, tmp_path / "darknet", RecordingReporter())
    with pytest.raises(StepError) as err:
        build.make(cloned.path, flags={"GPU": 1}, arch="75", jobs=2, cache_dir=tmp_path / "cache",
                   runtime=runtime, reporter=RecordingReporter())
    assert "GPU=1 needs cublas, curand" in err.value.message and "pip install nvidia-cublas" in (err.value.fix or "")
    assert not (tmp_path / "cache").exists()
    assert not (cloned.path / "Makefile.orig").exists() and not (cloned.path / "obj").exists()
    # CUDNN=1 without cuDNN stops before make starts.
    if not runtime.cudnn_version:
        with pytest.raises(StepError, match="CUDNN=1 needs cuDNN"):
            build.make(cloned.path, flags={"GPU": 1, "CUDNN": 1}, arch="75", jobs=2, cache_dir=None,
                       runtime=runtime, reporter=RecordingReporter())


def test_opencv_without_headers_says_what_to_run(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text(ALEXEYAB)
    with pytest.raises(StepError) as err:
        build.make(tmp_path, flags={"OPENCV": 1}, arch=None, jobs=1, cache_dir=None,
                   runtime=RuntimeInfo(opencv_headers=False), reporter=RecordingReporter())
    assert "apt-get install -y libopencv-dev" in (err.value.fix or "")
    assert not (tmp_path / "Makefile.orig").exists()  # nothing touched before the check


# ---------------------------------------------------------------------------------------------- nvcc



@pytest.mark.slow
@pytest.mark.once
@needs_nvcc
def test_nvcc_compiles_with_arch_75_and_stock_arch_fails(debian_source: Path, tmp_path: Path) -> None:
    if not (CU13_INCLUDE / "cublas_v2.h").is_file() or not (CU13_INCLUDE / "curand.h").is_file():
        pytest.skip(f"cuBLAS/cuRAND headers not in {CU13_INCLUDE}: pip install nvidia-cublas nvidia-curand")
    runtime = probe_runtime()
    caps = resolve_arch("75", True, runtime)
    assert caps == [75]
    tree = tmp_path / "darknet src"
    shutil.copytree(debian_source, tree)
    (tree / "obj").mkdir()
    stock = (tree / "Makefile").read_text()
    # Compile only, through the real Makefile rule: nvcc $(ARCH) $(COMMON) ... -c src/activation_kernels.cu
    env = {**os.environ, "CPATH": str(CU13_INCLUDE), "LC_ALL": "C"}
    target = ["make", "GPU=1", "obj/activation_kernels.o"]

    (tree / "Makefile").write_text(patch_makefile(stock, {"GPU": 1}, arch_block(caps)))
    ok = subprocess.run(target, cwd=tree, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (tree / "obj" / "activation_kernels.o").stat().st_size > 0
    assert "arch=compute_75,code=[sm_75,compute_75]" in ok.stdout

    (tree / "obj" / "activation_kernels.o").unlink()
    (tree / "Makefile").write_text(patch_makefile(stock, {"GPU": 1}, None))  # stock ARCH block
    bad = subprocess.run(target, cwd=tree, env=env, capture_output=True, text=True)
    assert bad.returncode != 0
    problems = diagnose_build(bad.stdout + bad.stderr)
    assert problems[0].code == "unsupported-gpu-arch" and "compute_30" in (problems[0].evidence or "")
    # And resolve_arch refuses the stock archs before make would start.
    if 30 not in runtime.nvcc_archs and runtime.nvcc_archs:
        with pytest.raises(DarknetMagicsError):
            resolve_arch("30,35,50,52", True, runtime)


# ---------------------------------------------------------------------------------------------- CMake


@pytest.mark.slow
@pytest.mark.once
def test_cmake_tree_builds_caches_and_restores(tmp_path: Path) -> None:
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    rep = RecordingReporter()
    runtime = probe_runtime()
    semi = tmp_path / "hank; darknet"
    shutil.copytree(FIXTURES / "cmake_darknet", semi)
    with pytest.raises(DarknetMagicsError, match="path has a ';'"):
        build.make(semi, flags={"GPU": 0}, arch=None, jobs=2, cache_dir=None, runtime=runtime, reporter=rep)
    src = tmp_path / "hank ai's darknet"
    shutil.copytree(FIXTURES / "cmake_darknet", src)
    assert build.build_system(src) == "cmake"
    res = build.make(src, flags={"GPU": 0, "AVX": 0}, arch=None, jobs=2, cache_dir=tmp_path / "cache",
                     runtime=runtime, reporter=rep)
    assert res.action == "built" and res.build_system == "cmake" and res.files_compiled == 3
    out = subprocess.run([str(res.binary)], capture_output=True, text=True)
    assert "GPU=0 AVX=0 OPENBLAS=1" in out.stdout and out.returncode == 1
    assert res.binary.relative_to(src).parts[:2] == ("build", "src-cli")

    same = build.make(src, flags={"GPU": 0, "AVX": 0}, arch=None, jobs=2, cache_dir=tmp_path / "cache",
                      runtime=runtime, reporter=rep)
    assert same.action == "up-to-date"

    fresh = tmp_path / "fresh"
    shutil.copytree(FIXTURES / "cmake_darknet", fresh)
    again = build.make(fresh, flags={"GPU": 0, "AVX": 0}, arch=None, jobs=2, cache_dir=tmp_path / "cache",
                       runtime=runtime, reporter=rep)
    assert again.action == "restored" and again.binary == fresh / res.binary.relative_to(src)
    with pytest.raises(DarknetMagicsError, match="no flag LIBSO"):
        build.make(fresh, flags={"LIBSO": 1}, arch=None, jobs=2, cache_dir=None, runtime=runtime, reporter=rep)


TINY_MAKEFILE = """GPU=0
CC=gcc
CPP=g++
OBJ=obj/a.o obj/b.o
darknet: $(OBJ)
\t$(CPP) $(OBJ) -o darknet
obj/%.o: src/%.c
\t@mkdir -p obj
\t$(CC) -O2 -c $< -o $@
"""


@pytest.mark.slow
@pytest.mark.once
def test_ccache_on_compiles_a_clone_in_another_folder_from_the_compiler_cache(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    # `make ccache=on` on a new VM after the source changed: the build cache misses, ccache serves the compiles.
    # CMake writes absolute paths into each command (CCACHE_BASEDIR makes them relative); a Makefile's gcc comes
    # from PATH (ccache's links first on it).
    if shutil.which("cmake") is None or shutil.which("ccache") is None:
        pytest.skip("needs cmake and ccache (apt-get install -y ccache)")
    for name in ("CCACHE_DIR", "CCACHE_SLOPPINESS", "CCACHE_NOHASHDIR"):
        monkeypatch.delenv(name, raising=False)
    rep, runtime, store = RecordingReporter(), probe_runtime(), tmp_path / "ccache"
    tiny = tmp_path / "tiny"
    (tiny / "src").mkdir(parents=True)
    (tiny / "Makefile").write_text(TINY_MAKEFILE)
    (tiny / "src" / "a.c").write_text("int b(void);\nint main(void) { return b() - 42; }\n")
    # __TIME__, as in AlexeyAB's CHECK_CUDA: ccache compiles such a file every time unless told otherwise
    (tiny / "src" / "b.c").write_text('const char *built = __DATE__ " " __TIME__;\nint b(void) { return 42; }\n')
    for system, fixture in (("cmake", FIXTURES / "cmake_darknet"), ("make", tiny)):
        counts = []
        for folder in ("first clone", "second clone"):
            tree = tmp_path / system / folder
            shutil.copytree(fixture, tree)
            plan = build.plan_build(tree, flags={"GPU": 0, "AVX": 0} if system == "cmake" else {}, arch=None, jobs=2,
                                    cache_dir=None, runtime=runtime, ccache=True, ccache_dir=store)
            assert f"compile through ccache (cache in {store}" in "\n".join(plan.describe())
            assert plan.env["CCACHE_BASEDIR"] == str(tree.resolve()) and plan.env["CCACHE_SLOPPINESS"] == "time_macros"
            res = build.execute_build(plan, runtime=runtime, reporter=rep)
            assert res.action == "built" and subprocess.run([str(res.binary)]).returncode in (0, 1)
            counts.append(res.ccache_hits)
            time.sleep(1.1)  # the next clone compiles in another second: __TIME__ differs
        compiles = 3 if system == "cmake" else 2
        assert counts == [(0, compiles), (compiles, compiles)], (system, counts)
    assert (store / "ccache.conf").read_text() == "max_size = 2G\n"
    assert ("info", "ccache: 2 of 2 compiles served from its cache") in rep.events
    # ccache missing: installed with the build's other tools where that is allowed (Colab), else asked for
    monkeypatch.setattr(build, "find_ccache", lambda: None)
    with pytest.raises(StepError, match="ccache=on needs ccache") as err:
        build.plan_build(tiny, flags={}, arch=None, jobs=2, cache_dir=None, runtime=runtime, ccache=True)
    assert "apt-get install -y ccache" in (err.value.fix or "")
    colab = build.plan_build(tiny, flags={}, arch=None, jobs=2, cache_dir=None, runtime=runtime, ccache=True,
                             install_opencv=True)
    assert colab.tools.apt == ("ccache",)


@pytest.mark.slow
@pytest.mark.once
@needs_nvcc
def test_cmake_gpu_build_passes_cuda_architectures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    src = tmp_path / "darknet"
    shutil.copytree(FIXTURES / "cmake_darknet", src)
    runtime = probe_runtime()
    # this stand-in links no CUDA library: a wheel-shaped tree of headers and sonames is all it needs found
    site = tmp_path / "site"
    for name, header in (("cublas", "cublas_v2.h"), ("curand", "curand.h")):
        soname = f"lib{name}.so.{runtime.cuda_version.split('.')[0] if name == 'cublas' else 10}"
        for rel in (f"nvidia/{name}/include/{header}", f"nvidia/{name}/lib/{soname}"):
            (site / rel).parent.mkdir(parents=True, exist_ok=True)
            (site / rel).write_text("")
    monkeypatch.syspath_prepend(str(site))
    res = build.make(src, flags={"GPU": 1}, arch="75", jobs=2, cache_dir=None, runtime=runtime,
                     reporter=RecordingReporter())
    out = subprocess.run([str(res.binary)], capture_output=True, text=True)
    assert "GPU=1 ARCH=75" in out.stdout
    assert "-DDARKNET_CUDA_ARCHITECTURES=75" in res.log_path.read_text()
    assert f"-DCUDA_cublas_LIBRARY={site}/nvidia/cublas/lib/libcublas.so." in res.log_path.read_text()


CMAKE_NO_OPENCV = """$ cmake -S /content/darknet -B /content/darknet/build -DCMAKE_BUILD_TYPE=Release
-- Darknet v5.1-104-gf684e1d7
-- Support for AMD/ROCm/HIP not found
-- CUDA not found
CMake Error at CMakeLists.txt:196 (FIND_PACKAGE):
  Could not find a package configuration file provided by "OpenCV" with any
  of the following names:

    OpenCVConfig.cmake
    opencv-config.cmake
-- Configuring incomplete, errors occurred!
"""


def test_cmake_without_opencv_is_diagnosed_from_its_own_message() -> None:
    problems = diagnose_build(CMAKE_NO_OPENCV)
    assert problems and problems[0].code == "opencv-missing"
    first = first_error_lines(CMAKE_NO_OPENCV)
    assert first.startswith("CMake Error") and "ROCm" not in first


def test_dry_run_of_a_cmake_tree_shows_cmake_not_make(ip, tmp_path, capsys) -> None:
    src = tmp_path / "hank"
    shutil.copytree(FIXTURES / "cmake_darknet", src)
    result = ip.run_cell(f"%%darknet --dry-run\nmake dir={src} cache=off jobs=2\n", store_history=False)
    out = capsys.readouterr().out
    if result.error_in_exec is None:
        assert "cmake -S" in out and "--parallel 2" in out and "make -j" not in out
        assert f"{{bin}} = {src}/build/src-cli/darknet" in out
    else:  # a machine without OpenCV's headers: the dry run says so, as the run would
        assert "OpenCV" in str(result.error_in_exec)


def test_a_cmake_build_caches_hank_ais_tools_with_the_cli(tmp_path: Path) -> None:
    # what a restored VM needs: the CLI, libdarknet, and the tools `%yolo video/test/export` run (not CMake's own
    # scratch executables)
    tree = tmp_path / "darknet"
    made = {}
    for rel in ("build/src-cli/darknet", "build/src-lib/libdarknet.so", "build/src-examples/darknet_04_process_videos",
                "build/src-examples/darknet_01_inference_images", "build/src-onnx/darknet_onnx_export",
                "build/CMakeFiles/3.25/CompilerIdC/a.out", "build/src-examples/README.md"):
        path = tree / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"\x7fELF")
        path.chmod(0o644 if rel.endswith((".md", ".so")) else 0o755)
        made[rel] = path
    binary, files = build._products(tree, "cmake")
    assert binary == made["build/src-cli/darknet"]
    assert sorted(str(f.relative_to(tree)) for f in files) == sorted([
        "build/src-cli/darknet", "build/src-lib/libdarknet.so", "build/src-examples/darknet_01_inference_images",
        "build/src-examples/darknet_04_process_videos", "build/src-onnx/darknet_onnx_export"])


# ---------------------------------------------------------------------------------------------- GPU: ARCH

# `nvcc --list-gpu-arch` of the toolkits a Colab VM may have (12.4: before Blackwell; 12.8: Colab's today; 13.0: this
# machine's, which dropped everything before Turing)
NVCC_ARCHS = {"12.4": [50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 89, 90],
              "12.8": [50, 52, 53, 60, 61, 62, 70, 72, 75, 80, 86, 87, 89, 90, 100, 101, 120],
              "13.0": [75, 80, 86, 87, 88, 89, 90, 100, 103, 110, 120, 121]}
COLAB_GPUS = {"Tesla T4": "7.5", "NVIDIA L4": "8.9", "NVIDIA A100-SXM4-40GB": "8.0", "NVIDIA H100 80GB HBM3": "9.0",
              "NVIDIA RTX PRO 6000 Blackwell Server Edition": "12.0"}


def _vm(gpu: str | None, cuda: str = "12.8", archs: list[int] | None = None) -> RuntimeInfo:
    return RuntimeInfo(gpu_name=gpu, compute_capability=COLAB_GPUS.get(gpu or ""), nvcc="/usr/local/cuda/bin/nvcc",
                       cuda_version=cuda, nvcc_archs=NVCC_ARCHS[cuda] if archs is None else archs)


@pytest.mark.parametrize("gpu", list(COLAB_GPUS))
def test_arch_auto_builds_every_colab_gpu_with_colabs_cuda(gpu: str) -> None:
    cap = capability_to_int(COLAB_GPUS[gpu])
    choice = choose_arch("auto", True, _vm(gpu))
    assert choice == ArchChoice([cap]) and arch_block(choice.caps) == \
        f"ARCH= -gencode arch=compute_{cap},code=[sm_{cap},compute_{cap}]"  # the binary and its PTX


def test_arch_checked_against_the_nvcc_at_hand() -> None:
    nvcc = find_nvcc()
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    archs = parse_nvcc_archs(subprocess.run([nvcc, "--list-gpu-arch"], capture_output=True,
                                                        text=True).stdout)
    here = RuntimeInfo(gpu_name="NVIDIA RTX PRO 6000 Blackwell Server Edition", compute_capability="12.0", nvcc=nvcc,
                       cuda_version="13.0", nvcc_archs=archs)
    if 120 in archs:  # CUDA >= 12.8 names Blackwell's sm_120
        assert choose_arch(None, True, here) == ArchChoice([120])
    for cap in [c for c in (75, 80, 89, 90) if c not in archs]:
        with pytest.raises(DarknetMagicsError, match="cannot build for compute capability"):
            choose_arch(str(cap), True, RuntimeInfo(nvcc=nvcc, cuda_version="x", nvcc_archs=archs))


def test_arch_falls_back_to_the_gpu_at_hand_and_says_so() -> None:
    # Colab gave a G4 where an H100 was asked for: the binary must run on the G4
    g4 = _vm("NVIDIA RTX PRO 6000 Blackwell Server Edition")
    choice = choose_arch("90", True, g4)
    assert choice is not None and choice.caps == [120]
    assert choice.note == ("asked for 9.0 (H100), got NVIDIA RTX PRO 6000 Blackwell Server Edition (12.0): building "
                           "for 12.0")
    assert choose_arch("75,120", True, g4) == ArchChoice([75, 120])  # the G4 is among those asked for
    assert choose_arch("90", True, _vm(None)) == ArchChoice([90])  # no GPU here: as asked


def test_a_gpu_newer_than_nvcc_gets_the_newest_arch_as_ptx() -> None:
    old = choose_arch("auto", True, _vm("NVIDIA RTX PRO 6000 Blackwell Server Edition", "12.4"))
    assert old is not None and old.caps == [90] and "cannot build for 12.0: building for 9.0 with its PTX" in old.note
    assert "compute_90]" in arch_block(old.caps)  # the PTX the driver compiles for sm_120
    with pytest.raises(DarknetMagicsError, match="cannot build for compute capability 12.0"):
        choose_arch("120", True, _vm(None, "12.4"))  # asked for by hand, no GPU to fall back for


def test_a_build_restored_on_a_vm_with_another_gpu_is_rebuilt_for_it(tmp_path: Path) -> None:
    # The key holds the arch (and CUDA, cuDNN): a T4's entry is not restored on a G4 VM, and a T4 VM's is.
    keys = {}
    for gpu in ("Tesla T4", "NVIDIA RTX PRO 6000 Blackwell Server Edition"):
        vm = _vm(gpu)
        vm.cudnn_version = "9.8.0"
        caps = resolve_arch("75", True, vm)
        keys[gpu] = cache_key(cache_inputs(source="c0ffee", system="make", flags={"GPU": 1, "CUDNN": 1},
                                                       arch=caps, runtime=vm))
    t4_again = _vm("Tesla T4")
    t4_again.cudnn_version = "9.8.0"
    same = cache_key(cache_inputs(source="c0ffee", system="make", flags={"GPU": 1, "CUDNN": 1},
                                              arch=resolve_arch("auto", True, t4_again), runtime=t4_again))
    assert keys["Tesla T4"] == same != keys["NVIDIA RTX PRO 6000 Blackwell Server Edition"]


# ---------------------------------------------------------------------------------------------- GPU: libraries


def _cuda_paths(tmp_path: Path) -> CudaBuildPaths:
    lib = lambda name, folder, file: CudaLibrary(name, tmp_path / folder / "include",  # noqa: E731
                                                             tmp_path / folder / "lib" / file)
    return CudaBuildPaths((lib("cublas", "nv $x/cu13", "libcublas.so.13"),
                                       lib("curand", "nv $x/cu13", "libcurand.so.10"),
                                       lib("cudnn", "cudnn", "libcudnn.so.9")), None)


def test_gpu_library_block_is_appended_replaced_and_removed(tmp_path: Path) -> None:
    paths = _cuda_paths(tmp_path)
    lines = gpu_makefile_lines(paths, tmp_path / "links", Path("/usr/local/cuda"))
    patched = with_gpu_libs(ALEXEYAB, lines)
    assert patched.startswith(ALEXEYAB) and with_gpu_libs(patched, lines) == patched
    assert with_gpu_libs(patched, None) == ALEXEYAB
    block = patched[len(ALEXEYAB):]
    # a path with a space and a '$' stays one shell word, and make does not expand the '$'
    assert f"-I'{tmp_path}/nv $$x/cu13/include'" in block and f"-L{tmp_path}/links" in block
    assert f"-Wl,-rpath,'{tmp_path}/nv $$x/cu13/lib'" in block and "-Wl,-rpath,/usr/local/cuda/lib64" in block
    crlf = with_gpu_libs("GPU=0\r\nall:\r\n", lines)
    assert crlf.endswith(GPU_LIBS_END + "\r\n") and "\r\n" + GPU_LIBS_BEGIN in crlf
    with pytest.raises(DarknetMagicsError, match="control character"):
        gpu_makefile_lines(paths, tmp_path / "links\nx", Path("/usr/local/cuda"))


def test_gpu_cmake_cache_variables(tmp_path: Path) -> None:
    args = gpu_cmake_args(_cuda_paths(tmp_path), tmp_path / "links", Path("/usr/local/cuda"))
    assert f"-DCUDA_cuda_driver_LIBRARY={tmp_path}/links/libcuda.so" in args
    assert f"-DCUDA_cublas_LIBRARY={tmp_path}/nv $x/cu13/lib/libcublas.so.13" in args
    assert f"-Dcudnn={tmp_path}/cudnn/lib/libcudnn.so.9" in args and f"-Dcudnn_include={tmp_path}/cudnn/include" in args
    assert f"-DCMAKE_CUDA_STANDARD_INCLUDE_DIRECTORIES={tmp_path}/nv $x/cu13/include;{tmp_path}/cudnn/include" in args
    assert args[-1] == f"-DCMAKE_BUILD_RPATH=/usr/local/cuda/lib64;{tmp_path}/nv $x/cu13/lib;{tmp_path}/cudnn/lib"


def test_gpu_build_without_cublas_says_which_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if any(Path(d, "cublas_v2.h").is_file() for d in ("/usr/local/cuda/include", *CUDNN_INCLUDE_DIRS)):
        pytest.skip("this machine's CUDA toolkit or apt has cuBLAS")
    monkeypatch.setattr(sys, "path", _sys_path_without_nvidia())  # a Python without NVIDIA's wheels
    (tmp_path / "Makefile").write_text(ALEXEYAB)
    vm = RuntimeInfo(nvcc=str(tmp_path / "cuda" / "bin" / "nvcc"), cuda_version="12.8", nvcc_archs=NVCC_ARCHS["12.8"])
    with pytest.raises(StepError, match="GPU=1 needs cublas, curand") as err:
        build.plan_build(tmp_path, flags={"GPU": 1}, arch="75", jobs=1, cache_dir=None, runtime=vm)
    assert "pip install nvidia-cublas-cu12 nvidia-curand-cu12" in (err.value.fix or "")


# ---------------------------------------------------------------------------------------------- GPU: no GPU here

NO_DRIVER = FIXTURES / "gpu-no-driver"


def _meta(name: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in (NO_DRIVER / f"{name}.meta").read_text().splitlines())


@pytest.mark.parametrize("name", ["alexeyab-no-libcuda", "alexeyab-driver-insufficient", "hank-ai-no-libcuda",
                                  "hank-ai-driver-insufficient"])
def test_a_gpu_build_without_a_gpu_is_diagnosed_no_gpu_with_colabs_fix(name: str) -> None:
    from darknet_magics.output.judge import diagnose

    text, rc = (NO_DRIVER / f"{name}.log").read_text(), int(_meta(name)["exit"])
    problems = diagnose(text, returncode=rc, gpu_found=lambda: False)
    assert [p.code for p in problems] == ["no-gpu"], problems
    assert problems[0].fix.startswith("in Colab: Runtime > Change runtime type > GPU")
    assert "update the NVIDIA driver" not in " ".join(p.fix or "" for p in problems)
    with_gpu = diagnose(text, returncode=rc, gpu_found=lambda: True)
    # where nvidia-smi lists a GPU, CUDA's words stand: a driver older than the toolkit is then the real cause
    assert with_gpu[0].code == ("no-gpu" if "no-libcuda" in name else "cuda-driver")


# ---------------------------------------------------------------------------------------------- GPU: real builds

# AlexeyAB's and hank-ai's CUDA builds, configured, compiled and linked for real here (no GPU, no driver): nvcc from
# /usr/local/cuda, cuDNN/cuBLAS/cuRAND from PyPI's wheels unpacked into GPU_CACHE/site (scripts/test does it), in a
# fresh workspace (no build-cache restore), with `ccache=on`: the compiles come from GPU_CACHE/ccache. A cold one is
# half an hour of nvcc on two cores (hank-ai), so CI runs them only where that compiler cache is warm (each flavor's
# GPU_CACHE/ccache-warm/FLAVOR.json, written here after a build through it; scripts/test sets
# DARKNET_MAGICS_GPU_BUILDS=1 then). Warm, AlexeyAB takes seconds; hank-ai about two minutes, nearly all of it the
# link (its Release build links with LTO, which compiles the library again: no compiler cache serves that).
GPU_CACHE = Path(os.environ.get("DARKNET_MAGICS_GPU_CACHE") or Path.home() / ".cache" / "darknet_magics" / "gpu-builds")
REPO_TOOL = Path(os.environ.get("DARKNET_REPO_TOOL", HERE.parent.parent / "shared" / "tools" / "darknet-repo"))
gpu_builds = pytest.mark.skipif(os.environ.get("DARKNET_MAGICS_GPU_BUILDS") != "1",
                                reason="real CUDA builds (half an hour cold): set DARKNET_MAGICS_GPU_BUILDS=1 (scripts/"
                                       "test does where its compiler cache, DARKNET_MAGICS_GPU_CACHE/ccache, is warm)")
GPU_MAKE = {"alexeyab": ("make GPU=1 CUDNN=1 CUDNN_HALF=1 ARCH=75 jobs=2", Path("darknet")),
            "hank-ai": ("make GPU=1 CUDNN=1 ARCH=75 jobs=2", Path("build/src-cli/darknet"))}


def _gpu_source(flavor: str) -> Path:
    """The flavor's source as a git repo, made once per machine into the GPU cache (its commit keys the builds)."""
    repo = GPU_CACHE / f"src-{flavor}"
    if not (repo / ".git").is_dir():
        if not REPO_TOOL.exists():
            pytest.skip(f"needs {REPO_TOOL} (../shared beside the checkout) for {flavor}'s sources")
        shutil.rmtree(repo, ignore_errors=True)
        subprocess.run([str(REPO_TOOL), flavor, str(repo)], check=True, capture_output=True, timeout=600)
    return repo


def _restore_on_other_gpus(tree: Path, flavor: str, cache: Path) -> None:
    """The entry just built (ARCH=75) is what a T4 VM restores; a G4 VM asking for ARCH=75 gets a 12.0 build."""
    here = probe_runtime()
    commit = _git("rev-parse", "HEAD", cwd=tree)
    flags = {"make": {"GPU": 1, "CUDNN": 1, "CUDNN_HALF": 1}, "cmake": {"GPU": 1, "CUDNN": 1}}[build.build_system(tree)]
    keys = {}
    for gpu in ("Tesla T4", "NVIDIA RTX PRO 6000 Blackwell Server Edition"):
        vm = RuntimeInfo(gpu_name=gpu, compute_capability=COLAB_GPUS[gpu], nvcc=here.nvcc,
                         cuda_version=here.cuda_version, nvcc_archs=here.nvcc_archs, cudnn_version=here.cudnn_version,
                         opencv=here.opencv, opencv_headers=here.opencv_headers, cpu_isa=here.cpu_isa)
        plan = build.plan_build(tree, flags=flags, arch="75", jobs=2, cache_dir=cache, runtime=vm)
        keys[gpu] = cache_key(cache_inputs(source=commit, system=plan.system, flags=plan.effective,
                                                       arch=plan.caps, runtime=vm))
    assert (cache / keys["Tesla T4"]).is_dir(), f"{flavor}: a T4 VM does not find the ARCH=75 build"
    assert not (cache / keys["NVIDIA RTX PRO 6000 Blackwell Server Edition"]).exists()


@gpu_builds
@pytest.mark.slow
@pytest.mark.once
@pytest.mark.timeout(3600)  # a cold build: nvcc on two cores; with a warm compiler cache, seconds and the link
@pytest.mark.parametrize("flavor", ["alexeyab", "hank-ai"])
def test_gpu_build_links_for_real_and_fails_cleanly_without_a_gpu(flavor: str, ip, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from darknet_magics.output.judge import diagnose

    site = GPU_CACHE / "site"
    if not (site / "nvidia").is_dir() or find_nvcc() is None:
        pytest.skip(f"needs nvcc and NVIDIA's wheels in {site} (scripts/test unpacks them)")
    monkeypatch.syspath_prepend(str(site))  # as on Colab: the wheels are in the kernel's Python
    ccache_env = {**os.environ, "CCACHE_DIR": str(GPU_CACHE / "ccache")}
    monkeypatch.setenv("CCACHE_DIR", ccache_env["CCACHE_DIR"])  # make's ccache=on keeps its cache there
    line, rel = GPU_MAKE[flavor]
    tree = tmp_path / "darknet"
    workspace = tmp_path / "workspace"  # fresh: nothing to restore, so configure, compile and link all run
    before, start = ccache_counts(ccache_env), time.monotonic()
    cell = f"%%darknet\nworkspace {workspace}\nclone {_gpu_source(flavor)} into={tree}\n{line} ccache=on\n"
    result = ip.run_cell(cell, store_history=False)
    assert result.error_in_exec is None, result.error_in_exec
    hits = hits_between(before, ccache_counts(ccache_env))
    log = strip_escapes((tree / "darknet_magics_build.log").read_text(errors="replace"))  # CMake colours its lines
    compiled = sum(1 for text in log.splitlines() if COMPILE_LINE.search(text))
    assert compiled > 20 and hits is not None and hits[1] >= compiled, (compiled, hits)  # every compile via ccache
    binary = tree / rel
    assert binary.stat().st_mtime > time.time() - (time.monotonic() - start) - 1  # linked now, not restored
    warm = GPU_CACHE / "ccache-warm" / f"{flavor}.json"  # what scripts/test counts
    warm.parent.mkdir(parents=True, exist_ok=True)
    warm.write_text(json.dumps({"commit": _git("rev-parse", "HEAD", cwd=tree), "make": line, "ccache_hits": hits[0],
                                "compiles": hits[1], "seconds": round(time.monotonic() - start)}) + "\n")
    _restore_on_other_gpus(tree, flavor, workspace / "cache")
    dynamic = subprocess.run(["readelf", "-d", str(binary)], capture_output=True, text=True).stdout
    for lib in ("libcublas.so.", "libcurand.so.", "libcudnn.so.9", "libcuda.so.1"):
        assert f"Shared library: [{lib}" in dynamic, dynamic
    # the runpath: the wheels' folders on the machine that built it (Colab's site-packages is the same on every VM;
    # an entry restored here may come from another checkout, so the run below names this cache's wheels too)
    assert re.search(r"Library runpath: \[[^\]]*/nvidia/cu13/lib", dynamic), dynamic
    wheel_libs = os.pathsep.join(str(d / "lib") for d in nvidia_wheel_dirs([site]))
    # no driver here: the loader stops it (libcuda.so.1), and with a libcuda that has no driver behind it (Colab's
    # CPU runtime) CUDA says the driver is insufficient; both are "no GPU" with Colab's fix
    stub_dir = tmp_path / "no-driver"
    stub_dir.mkdir()
    shutil.copy(tree / CUDA_LINK_DIR / "libcuda.so", stub_dir / "libcuda.so.1")
    argv = [str(binary), "detector", "train", "cfg/coco.data", "cfg/yolov4-tiny.cfg", "-dont_show"]
    for env in ({"LD_LIBRARY_PATH": wheel_libs}, {"LD_LIBRARY_PATH": f"{stub_dir}{os.pathsep}{wheel_libs}"}):
        ran = subprocess.run(argv, cwd=tree, capture_output=True, text=True, timeout=120, input="\n",
                             env={**os.environ, **env})
        problems = diagnose(ran.stdout + ran.stderr, returncode=ran.returncode,
                            gpu_found=nvidia_gpu_found)
        if nvidia_gpu_found() is False:
            assert [p.code for p in problems] == ["no-gpu"], ran.stdout + ran.stderr
            assert "Runtime > Change runtime type > GPU" in (problems[0].fix or "")


def test_gpu_plan_patches_the_makefile_and_says_the_arch_fallback(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    for rel in ("nvidia/cu13/include/cublas_v2.h", "nvidia/cu13/include/curand.h", "nvidia/cu13/lib/libcublas.so.13",
                "nvidia/cu13/lib/libcurand.so.10", "nvidia/cudnn/include/cudnn.h", "nvidia/cudnn/lib/libcudnn.so.9"):
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text("")
    monkeypatch.setattr(sys, "path", [str(site), *_sys_path_without_nvidia()])
    tree = tmp_path / "darknet"
    tree.mkdir()
    (tree / "Makefile").write_text(ALEXEYAB)
    g4 = _vm("NVIDIA RTX PRO 6000 Blackwell Server Edition", "13.0")
    g4.cudnn_version = "9.28.1"
    plan = build.plan_build(tree, flags={"GPU": 1, "CUDNN": 1, "CUDNN_HALF": 1}, arch="90", jobs=2, cache_dir=None,
                            runtime=g4)
    assert plan.caps == [120] and any("building for 12.0" in w for w in plan.warnings)
    assert plan.makefile is not None and plan.makefile.rstrip().endswith(GPU_LIBS_END)
    assert f"-I{site}/nvidia/cu13/include -I{site}/nvidia/cudnn/include" in plan.makefile
    assert plan.cuda_link_dir == tree.resolve() / CUDA_LINK_DIR
    assert any(line.startswith("NVIDIA libraries: cublas") for line in plan.describe())
    # a CPU build of the same tree: no block (and one written before is taken out)
    cpu = build.plan_build(tree, flags={"GPU": 0}, arch=None, jobs=2, cache_dir=None, runtime=g4)
    assert cpu.makefile is not None and GPU_LIBS_BEGIN not in cpu.makefile and cpu.cuda is None


def test_hank_ai_with_an_old_cmake_says_what_to_run_or_plans_pips(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    old = tmp_path / "bin" / "cmake"
    old.parent.mkdir()
    old.write_text("#!/bin/sh\necho 'cmake version 3.22.1'\n")  # Colab's apt cmake
    old.chmod(0o755)
    monkeypatch.setattr(build, "cmake_path", lambda: str(old))
    tree = tmp_path / "hank"
    shutil.copytree(FIXTURES / "cmake_darknet", tree)
    vm = RuntimeInfo(opencv_headers=True)
    with pytest.raises(StepError, match=r"needs CMake >= 3\.24, and this machine has 3\.22\.1") as err:
        build.plan_build(tree, flags={"GPU": 0}, arch=None, jobs=2, cache_dir=None, runtime=vm)
    assert "pip install 'cmake>=3.24'" in (err.value.fix or "")
    colab = build.plan_build(tree, flags={"GPU": 0}, arch=None, jobs=2, cache_dir=tmp_path / "cache", runtime=vm,
                             install_opencv=True)
    assert colab.tools.pip_cmake and colab.commands[0][0] == str(Path(sysconfig.get_path("scripts")) / "cmake")
    assert any("cmake>=3.24" in line for line in colab.describe())


def test_gpu_found_is_asked_only_when_cuda_failed() -> None:
    from darknet_magics.output.judge import diagnose

    def no_smi() -> bool:
        raise AssertionError("nvidia-smi asked for a run without a CUDA problem")

    clean = (FIXTURES / "darknet-logs" / "alexeyab").glob("*.stdout.log")
    for log in sorted(clean)[:3]:
        for problem in diagnose(log.read_text(errors="replace"), returncode=0, gpu_found=no_smi):
            assert problem.code not in {"no-gpu", "cuda-driver"}


def test_hank_ais_onnx_header_is_generated_before_the_parallel_build(tmp_path: Path) -> None:
    # hank-ai's src-lib/darknet.cpp includes src-onnx's generated onnx.proto3.pb.h without depending on its target:
    # our CUDA build of it compiled darknet.cpp first and failed (the real log); the plan generates the header first
    log = (FIXTURES / "build-logs" / "hank-ai-gpu-onnx-header-race.log").read_text()
    assert first_error_lines(log).startswith(
        "/content/darknet/src-lib/darknet.cpp:4:10: fatal error: onnx.proto3.pb.h: No such file or directory")
    tree = tmp_path / "hank"
    shutil.copytree(FIXTURES / "cmake_darknet", tree)
    (tree / "src-onnx").mkdir()
    (tree / "src-onnx" / "CMakeLists.txt").write_text("ADD_CUSTOM_TARGET (darknet_generated_proto DEPENDS x.pb.h)\n")
    plan = build.plan_build(tree, flags={"GPU": 0}, arch=None, jobs=2, cache_dir=None,
                            runtime=RuntimeInfo(opencv_headers=True), install_opencv=True)
    steps = [argv[1:] for argv in plan.commands]
    if protobuf_present():
        assert steps[1:] == [("--build", str(tree / "build"), "--target", "darknet_generated_proto"),
                             ("--build", str(tree / "build"), "--parallel", "2")]
    no_onnx = build.plan_build(tree, flags={"GPU": 0, "ONNX": 0}, arch=None, jobs=2, cache_dir=None,
                               runtime=RuntimeInfo(opencv_headers=True), install_opencv=True)
    assert all("darknet_generated_proto" not in argv for argv in no_onnx.commands)
