"""build.py: Makefile patching on the real pjreddie Makefile and an AlexeyAB-style fixture, ARCH, diagnosis,
and for real: clone from a local git repo, make, cache restore, corrupt entries, Ctrl-C, nvcc, CMake."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sysconfig
import time
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from darknet_magics.setup import build, environment
from darknet_magics.setup.environment import RuntimeInfo, probe_runtime
from darknet_magics.errors import DarknetMagicsError, StepError
from darknet_magics.report import RecordingReporter

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
    assert build.makefile_flags(pjreddie_makefile) == {"GPU": 0, "CUDNN": 0, "OPENCV": 0, "OPENMP": 0, "DEBUG": 0}
    assert "compute_30" in (build.read_arch(pjreddie_makefile) or "")


@pytest.mark.parametrize("which", ["pjreddie", "alexeyab"])
def test_every_flag_changes_only_its_line(which: str, pjreddie_makefile: str) -> None:
    text = pjreddie_makefile if which == "pjreddie" else ALEXEYAB
    flags = build.makefile_flags(text)
    if which == "alexeyab":
        assert list(flags) == ["GPU", "CUDNN", "CUDNN_HALF", "OPENCV", "AVX", "OPENMP", "LIBSO", "ZED_CAMERA",
                               "ZED_CAMERA_v2_8", "USE_CPP", "DEBUG"]
    for name in flags:
        new = build.patch_makefile(text, {name: 1}, None)
        assert _changed(text, new) == [(f"{name}=0\n", f"{name}=1\n")]
        assert build.patch_makefile(new, {name: 1}, None) == new
        assert build.patch_makefile(new, {name: 0}, None) == text


@pytest.mark.parametrize("which", ["pjreddie", "alexeyab"])
def test_arch_block_replaced_rest_byte_for_byte(which: str, pjreddie_makefile: str) -> None:
    text = pjreddie_makefile if which == "pjreddie" else ALEXEYAB
    arch = build.arch_block([75])
    new = build.patch_makefile(text, {"GPU": 1, "CUDNN": 1}, arch)
    assert build.read_arch(new) == "-gencode arch=compute_75,code=[sm_75,compute_75]"
    assert build.patch_makefile(new, {"GPU": 1, "CUDNN": 1}, arch) == new  # idempotent
    old_lines, new_lines = text.splitlines(keepends=True), new.splitlines(keepends=True)
    start = next(i for i, line in enumerate(old_lines) if line.startswith("ARCH="))
    end = start
    while old_lines[end].rstrip("\n").endswith("\\"):
        end += 1
    # Before and after the ARCH block: identical except the two flag lines; after: identical but ARCH+=.
    expect = old_lines[:start] + [arch + "\n"] + old_lines[end + 1:]
    expect = [("GPU=1\n" if x == "GPU=0\n" else "CUDNN=1\n" if x == "CUDNN=0\n" else x) for x in expect]
    expect = [("#" + x.rstrip("\n") + build.ARCH_DISABLED_NOTE + "\n" if x.startswith("ARCH+=") else x)
              for x in expect]
    assert new_lines == expect
    # The commented alternatives stay as they were.
    assert [x for x in old_lines if x.startswith("# ARCH=")] == [x for x in new_lines if x.startswith("# ARCH=")]


def test_alexeyab_cudnn_half_arch_addition_is_disabled_only_with_arch() -> None:
    assert build.patch_makefile(ALEXEYAB, {"CUDNN_HALF": 1}, None).count("\nARCH+=") == 1
    new = build.patch_makefile(ALEXEYAB, {"CUDNN_HALF": 1}, build.arch_block([86]))
    assert "\nARCH+=" not in new and "#ARCH+= -gencode arch=compute_70" in new


@pytest.mark.parametrize("cap,num", [("7.5", 75), ("8.0", 80), ("8.6", 86), ("8.9", 89), ("9.0", 90)])
def test_arch_auto_for_each_gpu(cap: str, num: int, pjreddie_makefile: str) -> None:
    runtime = RuntimeInfo(gpu_name="gpu", compute_capability=cap, nvcc="/usr/bin/nvcc", cuda_version="12.8",
                          nvcc_archs=[50, 52, 60, 61, 70, 75, 80, 86, 87, 89, 90, 100, 120])
    caps = build.resolve_arch("auto", True, runtime)
    assert caps == [num] and build.resolve_arch(None, True, runtime) == [num]
    line = build.arch_block(caps)
    assert line == f"ARCH= -gencode arch=compute_{num},code=[sm_{num},compute_{num}]"
    for text in (pjreddie_makefile, ALEXEYAB):
        new = build.patch_makefile(text, {"GPU": 1}, line)
        assert "compute_30" not in build.read_arch(new) and f"compute_{num}" in build.read_arch(new)


def test_arch_errors_before_make() -> None:
    cuda13 = RuntimeInfo(nvcc="/usr/local/bin/nvcc", cuda_version="13.0", nvcc_archs=[75, 80, 86, 89, 90, 100])
    assert build.resolve_arch("75, 8.6", True, cuda13) == [75, 86]
    assert build.resolve_arch("sm_90", True, cuda13) == [90]
    assert build.resolve_arch("auto", False, cuda13) is None
    with pytest.raises(DarknetMagicsError, match="cannot build for compute capability 6.1"):
        build.resolve_arch("61", True, cuda13)
    with pytest.raises(DarknetMagicsError, match="ARCH=auto needs a GPU"):
        build.resolve_arch("auto", True, cuda13)
    with pytest.raises(DarknetMagicsError, match="needs nvcc") as err:
        build.resolve_arch("75", True, RuntimeInfo())
    assert err.value.fix and "GPU=0" in err.value.fix
    with pytest.raises(DarknetMagicsError):
        build.resolve_arch("turing", True, cuda13)
    # Multi-arch stays one line.
    assert build.arch_block([86, 75]).count("-gencode") == 2


def test_unknown_flag_names_the_valid_ones(pjreddie_makefile: str) -> None:
    with pytest.raises(DarknetMagicsError) as err:
        build.patch_makefile(pjreddie_makefile, {"CUDNN_HALF": 1}, None)
    assert "CUDNN_HALF" in str(err.value) and "GPU CUDNN OPENCV OPENMP DEBUG" in (err.value.fix or "")
    with pytest.raises(DarknetMagicsError):
        build.patch_makefile(ALEXEYAB, {"GPU": 2}, None)


def test_crlf_and_trailing_comment_lines_kept() -> None:
    text = "GPU=0 # set to 1\r\nCUDNN := 0\r\n\r\nARCH= -gencode arch=compute_30,code=sm_30 \\\r\n  -x\r\nall:\r\n"
    new = build.patch_makefile(text, {"GPU": 1, "CUDNN": 1}, build.arch_block([75]))
    assert new == ("GPU=1 # set to 1\r\nCUDNN := 1\r\n\r\nARCH= -gencode arch=compute_75,code=[sm_75,compute_75]"
                   "\r\nall:\r\n")


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(st.sampled_from(list(build.makefile_flags(ALEXEYAB))), st.integers(0, 1)),
       st.one_of(st.none(), st.lists(st.sampled_from([75, 80, 86, 89, 90]), min_size=1, max_size=3)))
def test_patch_is_idempotent_and_reversible(flags: dict[str, int], caps: list[int] | None) -> None:
    arch = build.arch_block(caps) if caps else None
    once = build.patch_makefile(ALEXEYAB, flags, arch)
    assert build.patch_makefile(once, flags, arch) == once
    assert {k: build.makefile_flags(once)[k] for k in flags} == flags
    if arch is None:
        assert build.patch_makefile(once, build.makefile_flags(ALEXEYAB), None) == ALEXEYAB


def test_write_makefile_is_atomic_and_keeps_the_original(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text(ALEXEYAB)
    assert build.write_makefile(tmp_path, build.patch_makefile(ALEXEYAB, {"GPU": 1}, None))
    assert build.write_makefile(tmp_path, build.patch_makefile(ALEXEYAB, {"GPU": 0}, None))
    assert (tmp_path / "Makefile.orig").read_text() == ALEXEYAB  # the first original, not the last version
    mtime = (tmp_path / "Makefile").stat().st_mtime_ns
    assert not build.write_makefile(tmp_path, ALEXEYAB)  # unchanged: not rewritten
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
    (p,) = build.diagnose_build(CUDNN8_ERRORS)
    assert p.code == "cudnn-api-mismatch" and "CUDNN=0" in p.fix
    assert build.first_error_lines(CUDNN8_ERRORS).startswith("./src/convolutional_layer.c: In function")
    codes = [p.code for p in build.diagnose_build(OPENCV_ERRORS)]
    assert codes == ["opencv-missing"]
    assert "Package opencv was not found" in build.first_error_lines(OPENCV_ERRORS)
    assert [p.code for p in build.diagnose_build("/bin/sh: 1: nvcc: not found\n")] == ["nvcc-missing"]
    assert build.diagnose_build("all good\n") == []


def test_clone_commands(tmp_path: Path) -> None:
    into = tmp_path / "dark net"
    assert build.clone_commands(None, "v1", into) == [
        ["git", "clone", "--", build.DEFAULT_URL, str(into)],
        ["git", "-C", str(into), "checkout", "--quiet", "--detach", "v1"]]
    assert build.clone_commands("/x", None, into) == [["git", "clone", "--", "/x", str(into)]]


# ---------------------------------------------------------------------------------------------- real builds

needs_nvcc = pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (the CUDA compiler) is not installed")


@pytest.fixture(scope="module")
def cold_build(origin_repo: Path, tmp_path_factory: pytest.TempPathFactory):
    """clone (from the path with spaces) + make GPU=0 OPENCV=0 with a cache: the one cold pjreddie build."""
    base = tmp_path_factory.mktemp("work") / "work dir 'a'; b"
    rep = RecordingReporter()
    cloned = build.clone(str(origin_repo), None, base / "darknet", rep)
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
    cloned = build.clone(str(cold_build[0].path), None, tmp_path / "fresh; vm" / "darknet", rep)
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
    assert build._check_entry(cache / first.cache_key, first.cache_key)[0] is not None  # stored anew, sound


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
            f["sha256"] = build._sha256(broken)
    (entry / "manifest.json").write_text(json.dumps(manifest))
    work = tmp_path / "darknet"
    shutil.copytree(cold_build[0].path, work, ignore=shutil.ignore_patterns("obj", "darknet", "*.a", "*.so"))
    rep = RecordingReporter()
    files, why = build._check_entry(entry, first.cache_key)
    assert files is not None
    restored = build._try_restore(entry, first.cache_key, work, rep)
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
    cloned = build.clone(str(origin_repo), None, tmp_path / "dark net" / "darknet", rep)
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
    first = build.clone(f"file://{origin_repo}", "v0", into, rep)
    assert first.action == "cloned"
    assert build.clone(f"file://{origin_repo}", "v0", into, rep).action == "unchanged"
    # A new commit upstream on a copy of the origin: fetch + checkout moves to it; our patched Makefile is reset.
    upstream = tmp_path / "upstream"
    shutil.copytree(origin_repo, upstream, symlinks=True)
    (upstream / "NEWS").write_text("x\n")
    _git("add", "NEWS", cwd=upstream)
    _git("commit", "-qm", "news", cwd=upstream)
    _git("remote", "set-url", "origin", str(upstream), cwd=into)
    (into / "Makefile").write_text(build.patch_makefile((into / "Makefile").read_text(), {"GPU": 1}, None))
    (into / "Makefile.orig").write_text("orig")
    moved = build.clone(None, "master", into, rep)
    assert moved.action == "updated" and moved.commit == _git("rev-parse", "HEAD", cwd=upstream)
    assert (into / "NEWS").exists() and "GPU=0" in (into / "Makefile").read_text()
    with pytest.raises(DarknetMagicsError):
        build.clone(None, "no-such-ref", into, rep)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "f").write_text("x")
    with pytest.raises(DarknetMagicsError):
        build.clone(str(origin_repo), None, tmp_path / "junk", rep)


def test_source_id_outside_git(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "src").mkdir(parents=True)
    (tree / "Makefile").write_text(ALEXEYAB)
    (tree / "src" / "a.c").write_text("int a;\n")
    first = build.source_id(tree)
    assert first.startswith("tree:") and build.source_id(tree) == first
    (tree / "src" / "a.c").write_text("int b;\n")
    assert build.source_id(tree) != first
    assert build.source_id(tree, "abc") == "abc"


def test_cache_key_depends_on_what_changes_the_binary() -> None:
    rt = RuntimeInfo(cuda_version="12.8", cudnn_version="9.2.1", opencv="4.6.0")
    base = dict(source="c1", system="make", flags={"GPU": 1, "CUDNN": 1, "OPENCV": 0}, arch=[75], runtime=rt)
    key = build.cache_key(build.cache_inputs(**base))
    for change in ({"source": "c2"}, {"flags": {"GPU": 1, "CUDNN": 0, "OPENCV": 0}}, {"arch": [86]},
                   {"runtime": RuntimeInfo(cuda_version="13.0", cudnn_version="9.2.1")}, {"system": "cmake"}):
        assert build.cache_key(build.cache_inputs(**{**base, **change})) != key
    # A CPU build does not depend on the CUDA version.
    cpu = dict(base, flags={"GPU": 0, "CUDNN": 0, "OPENCV": 0}, arch=None)
    assert build.cache_key(build.cache_inputs(**cpu)) == build.cache_key(
        build.cache_inputs(**dict(cpu, runtime=RuntimeInfo(cuda_version="13.0"))))


def test_an_avx_build_is_restored_only_on_a_cpu_with_the_same_instruction_sets() -> None:
    """hank-ai's CMake compiles with -march=native when AVX is on (its default), AlexeyAB's AVX=1 with -mavx2 &
    co.: on a Colab VM with another CPU such a binary dies of SIGILL, so the key holds the CPU's instruction sets."""
    here = environment.probe_runtime()
    real = Path("/proc/cpuinfo").read_text()
    assert here.cpu_isa == environment.parse_cpu_isa(real)
    if "flags" in real:  # x86: what gcc's -march=native reads, without the CPU's bugs and virtualisation flags
        assert "sse2" in here.cpu_isa.split() and "hypervisor" not in here.cpu_isa.split()
    other = RuntimeInfo(cpu_isa=" ".join(f for f in here.cpu_isa.split() if not f.startswith("avx512")) + " sse4a")
    for system, flags in (("cmake", dict(build.CMAKE_DEFAULTS, OPENCV=1)), ("make", {"GPU": 0, "AVX": 1})):
        inputs = dict(source="c1", system=system, flags=flags, arch=None)
        assert build.cache_key(build.cache_inputs(**inputs, runtime=here)) != build.cache_key(
            build.cache_inputs(**inputs, runtime=other))
    # without AVX the binary runs on any x86-64 CPU: one entry for every VM, and the same key as before this rule
    plain = dict(source="c1", system="make", flags={"GPU": 0, "AVX": 0}, arch=None)
    assert build.cache_key(build.cache_inputs(**plain, runtime=here)) == build.cache_key(
        build.cache_inputs(**plain, runtime=other))
    assert "cpu" not in build.cache_inputs(**plain, runtime=here)
    assert environment.parse_cpu_isa("processor : 0\nFeatures : fp asimd evtstrm aes crc32\n") == \
        "aes asimd crc32 evtstrm fp"
    assert environment.parse_cpu_isa("processor : 0\n") is None


@pytest.mark.slow
@pytest.mark.once
@needs_nvcc
def test_failed_build_raises_a_diagnosis_and_caches_nothing(origin_repo: Path, tmp_path: Path) -> None:
    """GPU=1 where the cuBLAS/cuRAND headers are missing: make fails fast; the error says why and what to do."""
    runtime = probe_runtime()
    if (Path("/usr/local/cuda/include") / "curand.h").exists() or os.environ.get("CPATH"):
        pytest.skip("this machine has the CUDA library headers: the build would get further than we want")
    cloned = build.clone(str(origin_repo), None, tmp_path / "darknet", RecordingReporter())
    with pytest.raises(StepError) as err:
        build.make(cloned.path, flags={"GPU": 1}, arch="75", jobs=2, cache_dir=tmp_path / "cache",
                   runtime=runtime, reporter=RecordingReporter())
    assert "CUDA headers" in err.value.message and err.value.fix
    assert "No such file or directory" in (err.value.details or "")
    assert not (tmp_path / "cache").exists() or list((tmp_path / "cache").iterdir()) == []
    assert (cloned.path / "Makefile.orig").is_file()
    assert "compute_75" in (build.read_arch((cloned.path / "Makefile").read_text()) or "")
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
    caps = build.resolve_arch("75", True, runtime)
    assert caps == [75]
    tree = tmp_path / "darknet src"
    shutil.copytree(debian_source, tree)
    (tree / "obj").mkdir()
    stock = (tree / "Makefile").read_text()
    # Compile only, through the real Makefile rule: nvcc $(ARCH) $(COMMON) ... -c src/activation_kernels.cu
    env = {**os.environ, "CPATH": str(CU13_INCLUDE), "LC_ALL": "C"}
    target = ["make", "GPU=1", "obj/activation_kernels.o"]

    (tree / "Makefile").write_text(build.patch_makefile(stock, {"GPU": 1}, build.arch_block(caps)))
    ok = subprocess.run(target, cwd=tree, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert (tree / "obj" / "activation_kernels.o").stat().st_size > 0
    assert "arch=compute_75,code=[sm_75,compute_75]" in ok.stdout

    (tree / "obj" / "activation_kernels.o").unlink()
    (tree / "Makefile").write_text(build.patch_makefile(stock, {"GPU": 1}, None))  # stock ARCH block
    bad = subprocess.run(target, cwd=tree, env=env, capture_output=True, text=True)
    assert bad.returncode != 0
    problems = build.diagnose_build(bad.stdout + bad.stderr)
    assert problems[0].code == "unsupported-gpu-arch" and "compute_30" in (problems[0].evidence or "")
    # And resolve_arch refuses the stock archs before make would start.
    if 30 not in runtime.nvcc_archs and runtime.nvcc_archs:
        with pytest.raises(DarknetMagicsError):
            build.resolve_arch("30,35,50,52", True, runtime)


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


@pytest.mark.slow
@pytest.mark.once
@needs_nvcc
def test_cmake_gpu_build_passes_cuda_architectures(tmp_path: Path) -> None:
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    src = tmp_path / "darknet"
    shutil.copytree(FIXTURES / "cmake_darknet", src)
    res = build.make(src, flags={"GPU": 1}, arch="75", jobs=2, cache_dir=None, runtime=probe_runtime(),
                     reporter=RecordingReporter())
    out = subprocess.run([str(res.binary)], capture_output=True, text=True)
    assert "GPU=1 ARCH=75" in out.stdout
    assert "-DDARKNET_CUDA_ARCHITECTURES=75" in res.log_path.read_text()


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
    problems = build.diagnose_build(CMAKE_NO_OPENCV)
    assert problems and problems[0].code == "opencv-missing"
    first = build.first_error_lines(CMAKE_NO_OPENCV)
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
