"""The build cache: a build is stored under ``{cache_dir}/KEY/`` where KEY hashes everything that changes the
binary (`cache_inputs`); a later VM restores it in seconds and proves it loads before saying so.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Optional

from ..errors import StepError
from ..output.problems import NO_GPU_FIX
from ..report import Reporter
from .build_tools import install_opencv_dev
from .clone import git, is_git_root
from .runtime import RuntimeInfo

# 2: a CMake entry holds hank-ai's tools too (entries of format 1 have the CLI and libdarknet only: not used)
CACHE_FORMAT = 2


def source_id(darknet_dir: Path, commit: Optional[str] = None) -> str:
    """What the cache key calls "the source": the git commit, or a hash of the tree when it is not a clone.

    Outside git we hash the original Makefile (Makefile.orig once we patched it) or CMakeLists.txt, and the
    names and contents of src/, include/ and src-*/ files: small, and it changes whenever the code does.
    """
    if commit:
        return commit
    if is_git_root(darknet_dir):
        return git(["rev-parse", "HEAD"], darknet_dir).stdout.strip()
    h = hashlib.sha256()
    for name in ("Makefile.orig", "Makefile", "CMakeLists.txt"):
        p = darknet_dir / name
        if p.is_file():
            h.update(name.encode() + b"\0" + p.read_bytes())
            break
    roots = [darknet_dir / "src", darknet_dir / "include", *sorted(darknet_dir.glob("src-*"))]
    for root in roots:
        for p in sorted(root.rglob("*")) if root.is_dir() else []:
            if p.is_file():
                h.update(str(p.relative_to(darknet_dir)).encode() + b"\0" + p.read_bytes())
    return "tree:" + h.hexdigest()


def cache_inputs(*, source: str, system: str, flags: dict[str, int], arch: Optional[list[int]],
                 runtime: RuntimeInfo) -> dict[str, object]:
    """Everything the binary depends on. CUDA/cuDNN/OpenCV versions count only when that flag is on.

    With AVX on, the binary is compiled for this CPU: hank-ai's CMake adds -march=native, AlexeyAB's Makefile
    -mavx2 -msse4a and more. Restored on a VM whose CPU lacks one of those instructions (Colab's VMs differ: Intel
    and AMD, with and without AVX-512) it dies of SIGILL mid-training, so the CPU's instruction sets are part of
    the key then, and only then (a build without AVX runs on any x86-64 and stays shared between VMs).
    """
    gpu = bool(flags.get("GPU"))
    inputs: dict[str, object] = {
        "format": CACHE_FORMAT,
        "source": source,
        "build_system": system,
        "flags": dict(sorted(flags.items())),
        "arch": arch,
        "cuda": runtime.cuda_version if gpu else None,
        "cudnn": runtime.cudnn_version if gpu and flags.get("CUDNN") else None,
        "opencv": runtime.opencv if flags.get("OPENCV") else None,
    }
    if flags.get("AVX"):
        inputs["cpu"] = runtime.cpu_isa
    return inputs


def cache_key(inputs: dict[str, object]) -> str:
    """sha256 of the canonical JSON of `cache_inputs` (24 hex digits: a short folder name, no collisions)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:24]


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()




def _store(cache_dir: Path, key: str, darknet_dir: Path, files: list[Path], inputs: dict[str, object],
           seconds: float) -> Path:
    """Copy the build products into cache_dir/KEY atomically (a temp folder renamed into place)."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / key
    tmp = cache_dir / f".tmp-{key}-{os.getpid()}-{time.monotonic_ns()}"
    try:
        tmp.mkdir()
        entries = []
        for f in files:
            rel = f.relative_to(darknet_dir)
            dest = tmp / "files" / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
            entries.append({"path": str(rel), "sha256": sha256_of(dest), "size": dest.stat().st_size})
        manifest = {"key": key, "inputs": inputs, "files": entries, "build_seconds": round(seconds, 2),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        with open(tmp / "manifest.json", "w") as fh:
            json.dump(manifest, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        if final.exists():
            shutil.rmtree(final)
        os.rename(tmp, final)
    finally:
        # Interrupted or failed half way: never leave a half-written entry behind.
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def entry_has(entry: Path, rel: Path, sha256: str) -> bool:
    """True when the entry's manifest lists `rel` with this checksum."""
    try:
        files = json.loads((entry / "manifest.json").read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False
    return any(f.get("path") == str(rel) and f.get("sha256") == sha256 for f in files)


def check_entry(entry: Path, key: str) -> tuple[Optional[list[dict[str, object]]], str]:
    """(files, "") for a sound entry; (None, why) when it is corrupt."""
    try:
        manifest = json.loads((entry / "manifest.json").read_text())
        files = manifest["files"]
        if manifest.get("key") != key or not files:
            return None, "its manifest does not match"
    except (OSError, ValueError, KeyError, TypeError):
        return None, "its manifest is missing or unreadable"
    for f in files:
        p = entry / "files" / str(f["path"])
        if not p.is_file():
            return None, f"{f['path']} is missing"
        if sha256_of(p) != f["sha256"]:
            return None, f"checksum mismatch for {f['path']}"
    return files, ""


def binary_loads(binary: Path, cwd: Path) -> tuple[bool, str]:
    """Run darknet once with no arguments: it prints its usage and exits; a loader error means it cannot run."""
    try:
        p = subprocess.run([str(binary)], cwd=cwd, capture_output=True, text=True, errors="replace", timeout=60,
                           stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, str(exc)
    out = (p.stdout + p.stderr).strip()
    # 126/127: not executable / loader failure; negative: killed by a signal (SIGILL for a missing AVX, ...).
    if p.returncode < 0 or p.returncode in (126, 127) or "error while loading shared libraries" in out:
        return False, f"exit {p.returncode}: {out[-300:]}"
    return True, out.splitlines()[0] if out else ""


def _restore(entry: Path, files: list[dict[str, object]], darknet_dir: Path) -> list[Path]:
    restored = []
    for f in files:
        src, dest = entry / "files" / str(f["path"]), darknet_dir / str(f["path"])
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.tmp{os.getpid()}")
        shutil.copy2(src, tmp)
        tmp.chmod(0o755)
        os.replace(tmp, dest)
        if sha256_of(dest) != f["sha256"]:
            raise OSError(f"copy of {f['path']} does not match its checksum")
        restored.append(dest)
    return restored


def store_quietly(entry: Optional[Path], key: Optional[str], darknet_dir: Path, files: list[Path],
                   inputs: dict[str, object], seconds: float, reporter: Reporter) -> Optional[str]:
    """Store unless the entry exists; a full disk must not fail a build that worked."""
    if entry is None or key is None or entry.is_dir():
        return None
    try:
        _store(entry.parent, key, darknet_dir, files, inputs, seconds)
        return "stored"
    except OSError as exc:
        reporter.warn(f"could not store the build in the cache ({exc})")
        return None


_MISSING_LIB = re.compile(r"error while loading shared libraries: (\S+?):")


def try_restore(entry: Path, key: str, darknet_dir: Path, reporter: Reporter, *,
                 install_allowed: bool = False) -> list[Path] | str:
    """Restored files (binary first), or why the entry was unusable.

    Only a corrupt entry (bad manifest or checksum) is removed. A sound entry whose binary cannot load a shared
    library on this VM (a new Colab VM lacks libopencv's runtime libraries) is kept: the libraries are installed
    (Colab) or named with the command that installs them, because a rebuild would fail on the same missing library.
    """
    files, why = check_entry(entry, key)
    if files is None:
        shutil.rmtree(entry, ignore_errors=True)
        return f"cache entry {key} is corrupt ({why}): removed it"
    try:
        restored = _restore(entry, files, darknet_dir)
    except OSError as exc:
        return f"cache entry {key} could not be restored ({exc})"
    ok, detail = binary_loads(restored[0], darknet_dir)
    missing = _MISSING_LIB.findall(detail) if not ok else []
    if missing and all(m.startswith("libopencv") for m in missing):
        if install_allowed:
            reporter.info(f"the cached darknet needs {', '.join(missing)}: installing libopencv-dev")
            install_opencv_dev(reporter)
            ok, detail = binary_loads(restored[0], darknet_dir)
        if not ok:
            raise StepError(f"the cached darknet ({key}) needs {', '.join(missing)}, which this machine lacks",
                            fix="run `apt-get install -y libopencv-dev` and run the cell again (the cache entry "
                                "is kept)", details=detail)
    if missing and all(m.startswith("libcuda.so") for m in missing):
        # A GPU build on a machine without the NVIDIA driver: restored all the same (a rebuild would make the same
        # binary, and on Colab's CPU runtime it loads and fails only at its first CUDA call), and said plainly.
        reporter.warn(f"the cached darknet ({key}) is a GPU build and this machine has no NVIDIA driver "
                      f"({', '.join(missing)} is missing): it runs only where there is a GPU. {NO_GPU_FIX}")
        return restored
    if not ok:
        # Not a missing library: the binary itself cannot run here (another CPU's instructions, a broken file).
        # A rebuild replaces the entry, so it goes.
        shutil.rmtree(entry, ignore_errors=True)
        for p in restored:
            p.unlink(missing_ok=True)
        return f"cache entry {key} does not run here ({detail}): removed it"
    return restored
