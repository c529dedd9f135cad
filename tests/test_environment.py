"""setup/ runtime, cuda_libs, drive, cudnn, build_tools and colab: probes' parsers on real-shaped output, the probe
itself, NVIDIA's libraries, Drive, cuDNN install, build tools."""
from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from darknet_magics.errors import DarknetMagicsError
from darknet_magics.report import RecordingReporter
from darknet_magics.setup import colab
from darknet_magics.setup.build_tools import BuildTools, apt_install_argv, build_tools_needed, parse_cmake_version
from darknet_magics.setup.cuda_libs import find_cuda_build_paths, link_folder_entries, make_link_folder
from darknet_magics.setup.cudnn import install_cudnn
from darknet_magics.setup.drive import mount_drive, path_needs_alias
from darknet_magics.setup.runtime import (capability_to_int, detect_platform, find_cudnn_header, find_cudnn_library,
                                          gpu_from_name, nvidia_gpu_found, nvidia_wheel_dirs, opencv_headers_present,
                                          parse_cudnn_header, parse_nvcc_archs, parse_nvcc_version, parse_nvidia_smi,
                                          probe_runtime)

STUB = Path(__file__).parent / "colab_stub"
TRICKY = ["My Drive", "it's \"quoted\"", "semi;colon dir", "plain"]

# ---------------------------------------------------------------------------------------------- parsers

NVIDIA_SMI_T4 = "Tesla T4, 550.54.15, 15360 MiB, 7.5\n"
NVIDIA_SMI_TWO = "NVIDIA A100-SXM4-40GB, 535.104.05, 40960 MiB, 8.0\nNVIDIA A100-SXM4-40GB, 535.104.05, 40960 MiB, 8.0\n"
NVIDIA_SMI_OLD = "Tesla K80, 470.82.01, 11441 MiB\n"  # a driver that cannot report compute_cap
NVCC_12_8 = """nvcc: NVIDIA (R) Cuda compiler driver
Copyright (c) 2005-2025 NVIDIA Corporation
Built on Fri_Feb_21_20:23:50_PST_2025
Cuda compilation tools, release 12.8, V12.8.93
Build cuda_12.8.r12.8/compiler.35583870_0
"""
NVCC_ARCHS_13 = "compute_75\ncompute_80\ncompute_86\ncompute_87\ncompute_88\ncompute_89\ncompute_90\ncompute_100\n"
CUDNN_VERSION_H_9 = """/* cudnn_version.h */
#ifndef CUDNN_VERSION_H_
#define CUDNN_VERSION_H_

#define CUDNN_MAJOR 9
#define CUDNN_MINOR 2
#define CUDNN_PATCHLEVEL 1

#define CUDNN_VERSION (CUDNN_MAJOR * 10000 + CUDNN_MINOR * 100 + CUDNN_PATCHLEVEL)
#endif
"""
CUDNN_H_7 = """#if !defined(CUDNN_H_)
#define CUDNN_H_

#define CUDNN_MAJOR 7
#define CUDNN_MINOR 6
#define CUDNN_PATCHLEVEL 5
"""


def test_parse_nvidia_smi_shapes() -> None:
    (t4,) = parse_nvidia_smi(NVIDIA_SMI_T4)
    assert (t4.name, t4.driver, t4.memory_mib, t4.compute_capability) == ("Tesla T4", "550.54.15", 15360, "7.5")
    assert len(parse_nvidia_smi(NVIDIA_SMI_TWO)) == 2
    (k80,) = parse_nvidia_smi(NVIDIA_SMI_OLD)
    assert k80.compute_capability == "3.7"  # from the name table
    assert parse_nvidia_smi("") == []


def test_parse_nvcc_and_archs() -> None:
    assert parse_nvcc_version(NVCC_12_8) == "12.8"
    assert parse_nvcc_version("garbage") is None
    assert parse_nvcc_archs(NVCC_ARCHS_13) == [75, 80, 86, 87, 88, 89, 90, 100]
    assert capability_to_int("7.5") == 75 and capability_to_int("12.0") == 120


def test_parse_cudnn_headers(tmp_path: Path) -> None:
    assert parse_cudnn_header(CUDNN_VERSION_H_9) == "9.2.1"
    assert parse_cudnn_header(CUDNN_H_7) == "7.6.5"
    assert parse_cudnn_header("#include <cudnn_version.h>\n") is None
    # cuDNN 8+: cudnn.h only includes cudnn_version.h, which holds the numbers.
    (tmp_path / "cudnn.h").write_text("#include \"cudnn_version.h\"\n")
    (tmp_path / "cudnn_version.h").write_text(CUDNN_VERSION_H_9)
    assert find_cudnn_header([tmp_path]) == ("9.2.1", tmp_path / "cudnn_version.h")


def test_cudnn_version_from_library_names(tmp_path: Path) -> None:
    for name in ("libcudnn.so", "libcudnn.so.8", "libcudnn.so.9", "libcudnn.so.9.1.0", "libcudnn_ops.so.9"):
        (tmp_path / name).write_bytes(b"")
    assert find_cudnn_library([tmp_path, tmp_path / "missing"]) == "9.1.0"


def test_probe_runtime_here_reports_no_gpu_as_a_warning() -> None:
    info = probe_runtime()
    rows = dict(info.rows())
    assert set(rows) >= {"GPU", "CUDA (nvcc)", "cuDNN", "OpenCV", "platform"}
    if info.gpu_name is None:
        assert any("no GPU" in w for w in info.warnings)
        assert rows["GPU"] == "none (CPU only)"
    if info.nvcc:
        assert info.cuda_version and info.nvcc_archs
        assert rows["CUDA (nvcc)"].startswith(info.cuda_version)


# ---------------------------------------------------------------------------------------------- platform


@pytest.fixture()
def colab_stub(monkeypatch: pytest.MonkeyPatch):
    """Our google.colab stand-in on sys.path and Colab's env variable set, as in a Colab kernel."""
    monkeypatch.syspath_prepend(str(STUB))
    monkeypatch.setenv("COLAB_RELEASE_TAG", "test")
    for name in [m for m in sys.modules if m == "google.colab" or m.startswith("google.colab.")]:
        monkeypatch.delitem(sys.modules, name)
    yield
    for name in [m for m in sys.modules if m == "google.colab" or m.startswith("google.colab.")]:
        del sys.modules[name]


def test_platform_outside_colab(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("COLAB_RELEASE_TAG", "COLAB_BACKEND_VERSION", "COLAB_JUPYTER_IP"):
        monkeypatch.delenv(var, raising=False)
    assert colab.in_colab() is False
    assert detect_platform() == "terminal"


def test_stub_importable_is_not_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(STUB))
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    assert colab._colab_importable() and not colab.in_colab()


def test_platform_in_colab(colab_stub: None) -> None:
    assert colab.in_colab() is True
    assert detect_platform() == "colab"


# ---------------------------------------------------------------------------------------------- drive


def test_drive_in_colab_mounts_and_uses_mydrive(colab_stub: None, tmp_path: Path) -> None:
    rep = RecordingReporter()
    info = mount_drive(str(tmp_path / "drive"), rep, alias_dir=tmp_path / "links")
    from google.colab import drive  # the stub

    assert drive.mounted == [str(tmp_path / "drive")]
    assert info.in_colab and info.mounted and info.alias is None
    assert info.root == tmp_path / "drive" / "MyDrive" and info.root.is_dir()
    # Mounted already: the second call does not mount again.
    mount_drive(str(tmp_path / "drive"), rep, alias_dir=tmp_path / "links")
    assert drive.mounted == [str(tmp_path / "drive")]


def test_drive_in_colab_old_my_drive_gets_space_free_link(colab_stub: None, tmp_path: Path) -> None:
    (tmp_path / "drive" / "My Drive").mkdir(parents=True)
    rep = RecordingReporter()
    info = mount_drive(str(tmp_path / "drive"), rep, alias_dir=tmp_path / "links")
    assert info.real_root == tmp_path / "drive" / "My Drive"
    assert info.root == tmp_path / "links" / "mydrive" and info.alias == info.root
    assert info.root.resolve() == info.real_root.resolve()
    assert " " not in str(info.root)
    assert "darknet cannot read" in rep.text() and str(info.root) in rep.text()


def test_drive_in_colab_puts_its_link_where_darknet_magics_links_says(colab_stub: None, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/directives/drive.md's order: alias=, then $DARKNET_MAGICS_LINKS, then /content, in Colab as elsewhere."""
    (tmp_path / "drive" / "My Drive").mkdir(parents=True)
    monkeypatch.setenv("DARKNET_MAGICS_LINKS", str(tmp_path / "pinned"))
    info = mount_drive(str(tmp_path / "drive"), RecordingReporter())
    assert info.root == tmp_path / "pinned" / "mydrive" and info.root.resolve() == info.real_root.resolve()
    chosen = mount_drive(str(tmp_path / "drive"), RecordingReporter(), alias_dir=tmp_path / "links")
    assert chosen.root == tmp_path / "links" / "mydrive"


def test_drive_in_colab_subfolder_of_mydrive(colab_stub: None, tmp_path: Path) -> None:
    sub = tmp_path / "drive" / "MyDrive" / "yolo data; v2"
    info = mount_drive(str(sub), RecordingReporter(), alias_dir=tmp_path / "links")
    assert info.real_root == sub and sub.is_dir()
    (info.root / "obj.data").write_text("classes=1\n")  # written through the link
    assert (sub / "obj.data").read_text() == "classes=1\n"


@pytest.mark.parametrize("name", TRICKY)
def test_drive_local_folder(tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    rep = RecordingReporter()
    target = tmp_path / "data" / name
    info = mount_drive(str(target), rep, alias_dir=tmp_path / "links")
    assert target.is_dir() and not info.in_colab and info.real_root == target.resolve()
    if name == "plain":
        assert info.alias is None and info.root == info.real_root
        return
    assert info.alias is not None and info.root == info.alias
    assert not path_needs_alias(info.root)
    assert info.root.is_symlink() and info.root.resolve() == target.resolve()
    assert "darknet cannot read" in rep.text()
    # Idempotent: the same link again, no error.
    assert mount_drive(str(target), RecordingReporter(), alias_dir=tmp_path / "links").root == info.root


def test_drive_local_requires_a_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    with pytest.raises(DarknetMagicsError) as err:
        mount_drive(None, RecordingReporter())
    assert err.value.fix and "drive /path" in err.value.fix


def test_drive_alias_never_replaces_a_real_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLAB_RELEASE_TAG", raising=False)
    first = mount_drive(str(tmp_path / "a b"), RecordingReporter(), alias_dir=tmp_path / "links")
    assert first.alias is not None
    first.alias.unlink()
    first.alias.mkdir()  # someone's real folder now sits where the link was
    with pytest.raises(DarknetMagicsError):
        mount_drive(str(tmp_path / "a b"), RecordingReporter(), alias_dir=tmp_path / "links")


# ---------------------------------------------------------------------------------------------- cuDNN


def _add(tf: tarfile.TarFile, name: str, data: bytes = b"", mode: int = 0o644, link: str | None = None) -> None:
    info = tarfile.TarInfo(name)
    if link is not None:
        info.type, info.linkname = tarfile.SYMTYPE, link
    else:
        info.size, info.mode = len(data), mode
    tf.addfile(info, io.BytesIO(data) if link is None else None)


def make_cudnn_tarball(path: Path, version: str, *, top: str, lib: str, compression: str) -> Path:
    """A tarball in NVIDIA's layout: TOP/include/cudnn*.h (mode 0600, as NVIDIA ships some) and TOP/LIB/libcudnn*."""
    major, minor, patch = version.split(".")
    header = f"#define CUDNN_MAJOR {major}\n#define CUDNN_MINOR {minor}\n#define CUDNN_PATCHLEVEL {patch}\n"
    with tarfile.open(path, f"w:{compression}") as tf:
        _add(tf, f"{top}/include/cudnn_version.h", header.encode(), mode=0o600)
        _add(tf, f"{top}/include/cudnn.h", b'#include "cudnn_version.h"\n', mode=0o600)
        _add(tf, f"{top}/{lib}/libcudnn.so.{version}", b"\x7fELF fake", mode=0o755)
        _add(tf, f"{top}/{lib}/libcudnn.so.{major}", link=f"libcudnn.so.{version}")
        _add(tf, f"{top}/{lib}/libcudnn.so", link=f"libcudnn.so.{major}")
        _add(tf, f"{top}/LICENSE", b"license")
    return path


def test_install_cudnn_then_skip_then_upgrade(tmp_path: Path) -> None:
    cuda = tmp_path / "cuda root"
    v9 = make_cudnn_tarball(tmp_path / "cudnn-linux-x86_64-9.1.0.70_cuda12-archive.tar.xz", "9.1.0",
                            top="cudnn-linux-x86_64-9.1.0.70_cuda12-archive", lib="lib", compression="xz")
    rep = RecordingReporter()
    res = install_cudnn(v9, cuda, rep)
    assert (res.action, res.version) == ("installed", "9.1.0")
    header = cuda / "include" / "cudnn_version.h"
    assert header.stat().st_mode & 0o444 == 0o444  # readable by all though the archive said 0600
    lib = cuda / "lib64"
    assert os.readlink(lib / "libcudnn.so") == "libcudnn.so.9" and (lib / "libcudnn.so").resolve().is_file()
    assert not (cuda / "LICENSE").exists()

    again = install_cudnn(v9, cuda, rep)
    assert again.action == "skipped" and again.version == "9.1.0"
    assert "already installed" in rep.text()

    # An older 8.x tarball (top folder `cuda/`, lib64/, .tgz) replaces it: the version found after is reported.
    v8 = make_cudnn_tarball(tmp_path / "cudnn-11.8-linux-x64-v8.9.7.tgz", "8.9.7", top="cuda", lib="lib64",
                            compression="gz")
    res8 = install_cudnn(v8, cuda, rep)
    assert (res8.action, res8.version) == ("installed", "8.9.7")
    assert find_cudnn_header([cuda / "include"])[0] == "8.9.7"


def test_install_cudnn_rejects_bad_archives(tmp_path: Path) -> None:
    plain = tmp_path / "notcudnn.tar"
    with tarfile.open(plain, "w") as tf:
        _add(tf, "x/readme.txt", b"hi")
    with pytest.raises(DarknetMagicsError):
        install_cudnn(plain, tmp_path / "cuda", RecordingReporter())
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tf:
        _add(tf, "c/include/cudnn_version.h", CUDNN_VERSION_H_9.encode())
        _add(tf, "c/lib/../../../escaped.txt", b"x")
    with pytest.raises(DarknetMagicsError):
        install_cudnn(evil, tmp_path / "cuda", RecordingReporter())
    assert not (tmp_path / "escaped.txt").exists()
    with pytest.raises(DarknetMagicsError):
        install_cudnn(tmp_path / "missing.tar.xz", tmp_path / "cuda", RecordingReporter())


def test_opencv_headers_detection(tmp_path: Path) -> None:
    assert opencv_headers_present(f"-I{tmp_path}") in (True, False)
    (tmp_path / "opencv2").mkdir()
    (tmp_path / "opencv2" / "core.hpp").write_text("")
    assert opencv_headers_present(f"-I{tmp_path}")


# ---------------------------------------------------------------------------------------------- NVIDIA libraries

# Where PyPI's wheels put NVIDIA's libraries: CUDA 12 wheels (torch's, on Colab) one folder per library, CUDA 13
# wheels one nvidia/cu13 folder; only the versioned names (libcublas.so.12), as in the wheels' RECORD files.
CU12_WHEELS = {"cublas": ("cublas_v2.h", "libcublas.so.12"), "curand": ("curand.h", "libcurand.so.10"),
               "cudnn": ("cudnn.h", "libcudnn.so.9")}


def _wheel_tree(site: Path, layout: dict[str, tuple[str, str]]) -> None:
    for folder, (header, lib) in layout.items():
        (site / "nvidia" / folder / "include").mkdir(parents=True, exist_ok=True)
        (site / "nvidia" / folder / "include" / header).write_text("/* header */\n")
        (site / "nvidia" / folder / "lib").mkdir(parents=True, exist_ok=True)
        (site / "nvidia" / folder / "lib" / lib).write_bytes(b"\x7fELF")


def test_cuda_libraries_found_in_the_wheels_of_both_layouts(tmp_path: Path) -> None:
    cu12, cu13, toolkit = tmp_path / "site12", tmp_path / "site13", tmp_path / "cuda"
    _wheel_tree(cu12, CU12_WHEELS)
    _wheel_tree(cu13, {"cu13": ("cublas_v2.h", "libcublas.so.13"), "cudnn": ("cudnn.h", "libcudnn.so.9")})
    (cu13 / "nvidia" / "cu13" / "include" / "curand.h").write_text("")
    (cu13 / "nvidia" / "cu13" / "lib" / "libcurand.so.10").write_bytes(b"\x7fELF")
    toolkit.mkdir()
    names = ["cublas", "curand", "cudnn"]

    dirs12 = nvidia_wheel_dirs([str(cu12), "", str(tmp_path / "nowhere")])
    assert [d.name for d in dirs12] == ["cublas", "cudnn", "curand"]
    found = find_cuda_build_paths(names, cuda_root=toolkit, wheel_dirs=dirs12, cuda_major=12)
    assert found.missing == () and found.driver_stub is None
    assert {lib.name: lib.library.name for lib in found.libraries} == {
        "cublas": "libcublas.so.12", "curand": "libcurand.so.10", "cudnn": "libcudnn.so.9"}
    assert link_folder_entries(found) == {f"lib{n}.so": lib.library for n, lib in
                                              zip(names, found.libraries)}
    assert len(found.include_dirs) == 3 and all(d.name == "include" for d in found.include_dirs)

    # CUDA 13's nvcc with CUDA 12's cuBLAS does not link: that cuBLAS is not taken; the cu13 wheels are
    assert find_cuda_build_paths(names, cuda_root=toolkit, wheel_dirs=dirs12, cuda_major=13).missing == ("cublas",)
    both = find_cuda_build_paths(names, cuda_root=toolkit, wheel_dirs=dirs12 + nvidia_wheel_dirs([cu13]),
                                     cuda_major=13)
    assert both.missing == () and both.libraries[0].library.parent == cu13 / "nvidia" / "cu13" / "lib"
    assert both.libraries[1].library.parent == cu12 / "nvidia" / "curand" / "lib"  # the first tree that has it


def test_the_toolkits_own_libraries_and_stub_come_first(tmp_path: Path) -> None:
    toolkit = tmp_path / "cuda"
    for rel in ("include/cublas_v2.h", "include/curand.h"):
        (toolkit / rel).parent.mkdir(parents=True, exist_ok=True)
        (toolkit / rel).write_text("")
    for rel in ("lib64/libcublas.so", "lib64/libcurand.so", "lib64/stubs/libcuda.so"):
        (toolkit / rel).parent.mkdir(parents=True, exist_ok=True)
        (toolkit / rel).write_bytes(b"\x7fELF")
    site = tmp_path / "site"
    _wheel_tree(site, CU12_WHEELS)
    found = find_cuda_build_paths(["cublas", "curand"], cuda_root=toolkit, wheel_dirs=nvidia_wheel_dirs([site]),
                                      cuda_major=12)
    assert [lib.library for lib in found.libraries] == [toolkit / "lib64/libcublas.so", toolkit / "lib64/libcurand.so"]
    assert not any(lib.needs_link for lib in found.libraries) and link_folder_entries(found) == {}
    assert found.driver_stub == toolkit / "lib64/stubs/libcuda.so"


@pytest.mark.skipif(not shutil.which("cc"), reason="no C compiler")
def test_link_folder_has_links_and_a_driver_stub_named_like_nvidias(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _wheel_tree(site, CU12_WHEELS)
    found = find_cuda_build_paths(["cublas", "curand"], cuda_root=tmp_path / "none",
                                      wheel_dirs=nvidia_wheel_dirs([site]), cuda_major=12)
    folder = make_link_folder(found, tmp_path / "links")
    assert os.readlink(folder / "libcublas.so") == str(site / "nvidia/cublas/lib/libcublas.so.12")
    stub = folder / "libcuda.so"
    assert stub.is_file() and not stub.is_symlink()
    dynamic = subprocess.run(["readelf", "-d", "--dyn-syms", str(stub)], capture_output=True, text=True).stdout
    # the same soname as NVIDIA's stub: a binary linked with it loads the driver's libcuda.so.1, never the stub
    assert "Library soname: [libcuda.so.1]" in dynamic and "cuCtxGetCurrent" in dynamic
    again = make_link_folder(found, tmp_path / "links")  # a second build: the same folder, links replaced
    assert sorted(p.name for p in again.iterdir() if not p.name.endswith(".c")) == [
        "libcublas.so", "libcuda.so", "libcurand.so"]


def test_nvidia_gpu_found_here() -> None:
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi")
    nvidia_gpu_found.cache_clear()
    assert nvidia_gpu_found() is False  # no driver: what Colab's CPU runtime looks like


def test_g4_and_b200_capabilities_from_their_names() -> None:
    assert gpu_from_name("NVIDIA RTX PRO 6000 Blackwell Server Edition") == "12.0"
    assert gpu_from_name("NVIDIA B200") == "10.0" and gpu_from_name("NVIDIA H100 80GB HBM3") == "9.0"


# ---------------------------------------------------------------------------------------------- build tools


@pytest.mark.parametrize("system,flags,opencv,protobuf,cmake,apt,pip_cmake", [
    ("make", {"GPU": 1}, False, False, None, (), False),                       # AlexeyAB without OpenCV: nothing
    ("make", {"OPENCV": 1}, False, False, None, ("libopencv-dev",), False),
    ("cmake", {}, False, False, (3, 22, 1), ("libopencv-dev", "libprotobuf-dev", "protobuf-compiler"), True),  # Colab
    ("cmake", {"ONNX": 0}, True, False, (3, 22, 1), (), True),
    ("cmake", {}, True, True, (3, 25, 1), (), False),                          # this machine
    ("cmake", {}, True, True, None, (), True),                                 # no cmake at all
])
def test_build_tools_needed(system, flags, opencv, protobuf, cmake, apt, pip_cmake) -> None:
    tools = build_tools_needed(system, flags, opencv_headers=opencv, protobuf=protobuf, cmake_version=cmake)
    assert tools == BuildTools(apt, pip_cmake)
    assert any("cmake>=3.24" in line for line in tools.describe()) == pip_cmake


def test_parse_cmake_version_and_apt_argv(tmp_path: Path) -> None:
    assert parse_cmake_version("cmake version 3.22.1\n\nCMake suite maintained") == (3, 22, 1)
    assert parse_cmake_version("cmake3 version 3.24") == (3, 24) and parse_cmake_version("") is None
    argv = apt_install_argv(["libprotobuf-dev", "protobuf-compiler"], tmp_path)
    assert f"Dir::Cache::Archives={tmp_path}" in argv and argv[-3:] == ["--", "libprotobuf-dev", "protobuf-compiler"]
    with pytest.raises(DarknetMagicsError, match="not a Debian package name"):
        apt_install_argv(["-o=APT::x", "libx;rm -rf /"], tmp_path)


@pytest.mark.slow
@pytest.mark.once
@pytest.mark.timeout(240)
def test_debs_are_kept_in_the_workspace_cache_and_reused(tmp_path: Path) -> None:
    # The same argv as an install, download-only and --reinstall so this machine's packages stay as they are: the
    # first run fetches the .deb into the cache folder, the second finds it there and downloads nothing.
    if not shutil.which("apt-get") or os.geteuid() != 0:
        pytest.skip("needs apt-get as root")
    cache = tmp_path / "cache" / "debs"
    (cache / "partial").mkdir(parents=True)
    argv = apt_install_argv(["protobuf-compiler"], cache, download_only=True, reinstall=True)
    first = subprocess.run(argv, capture_output=True, text=True, timeout=200)
    if first.returncode != 0:
        pytest.skip(f"apt cannot download here: {first.stdout[-300:]}{first.stderr[-300:]}")
    debs = sorted(p.name for p in cache.glob("*.deb"))
    assert debs and debs[0].startswith("protobuf-compiler_"), first.stdout
    second = subprocess.run(argv, capture_output=True, text=True, timeout=200)
    assert second.returncode == 0 and "Get:" not in second.stdout, second.stdout
    assert sorted(p.name for p in cache.glob("*.deb")) == debs
    # what is kept is the real package apt would install (dpkg-deb reads it), and with it in the cache an install
    # of it has nothing left to download (apt prints the URIs it would fetch: none; a folder without it: one)
    fields = subprocess.run(["dpkg-deb", "--field", str(cache / debs[0]), "Package", "Version"], capture_output=True,
                            text=True, check=True).stdout
    candidate = subprocess.run(["apt-cache", "policy", "protobuf-compiler"], capture_output=True, text=True).stdout
    assert "Package: protobuf-compiler" in fields and fields.split("Version: ")[1].split()[0] in candidate, fields
    uris = [*apt_install_argv(["protobuf-compiler"], cache, reinstall=True)[:-2], "--print-uris", "--",
            "protobuf-compiler"]
    assert ".deb'" not in subprocess.run(uris, capture_output=True, text=True, timeout=60).stdout
    empty = tmp_path / "empty"
    (empty / "partial").mkdir(parents=True)
    uris[uris.index(f"Dir::Cache::Archives={cache}")] = f"Dir::Cache::Archives={empty}"
    assert "protobuf-compiler_" in subprocess.run(uris, capture_output=True, text=True, timeout=60).stdout


@pytest.mark.slow
@pytest.mark.once
@pytest.mark.timeout(300)
def test_pips_cmake_installs_into_a_new_python_and_the_next_from_the_kept_wheel(tmp_path: Path) -> None:
    # Colab's apt cmake is 3.22 and hank-ai needs 3.24: pip's cmake goes into the kernel's Python (a fresh venv
    # here), its wheel kept in the workspace; the next VM (another fresh venv, pip's index unreachable) installs it
    # from there, and our code finds that cmake before apt's.
    wheels = tmp_path / "cache" / "wheels"
    script = ("import sys; from pathlib import Path\n"
              "from darknet_magics.report import RecordingReporter\n"
              "from darknet_magics.setup.build_tools import cmake_path, cmake_version, pip_install_cmake\n"
              "path = pip_install_cmake(RecordingReporter(), Path(sys.argv[1]))\n"
              "print(path, cmake_path(), '.'.join(map(str, cmake_version(cmake_path()))), sep='\\n')\n")
    repo = Path(__file__).resolve().parent.parent
    offline = {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": "http://127.0.0.1:9/simple", "PIP_RETRIES": "0",
               "PIP_TIMEOUT": "2"}
    for vm, env in (("first VM", {}), ("next VM", offline)):
        venv = tmp_path / vm
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
        ran = subprocess.run([str(venv / "bin" / "python"), "-c", script, str(wheels)], capture_output=True,
                             text=True, timeout=240, env={**os.environ, "PYTHONPATH": str(repo), **env})
        if vm == "first VM" and ran.returncode != 0 and "could not install" in ran.stderr and not list(
                wheels.glob("cmake-*.whl")):
            pytest.skip(f"pip cannot download cmake here: {ran.stderr[-300:]}")
        assert ran.returncode == 0, ran.stderr[-2000:]
        path, found, version = ran.stdout.splitlines()
        assert path == found == str(venv / "bin" / "cmake"), ran.stdout
        assert tuple(map(int, version.split(".")[:2])) >= (3, 24)
        assert len(list(wheels.glob("cmake-*.whl"))) == 1
