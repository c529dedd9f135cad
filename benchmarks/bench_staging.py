"""Staging speed: `stage` against `cp -r` (folder) and `tar -x` (archive) on local disk, and the threaded copy's
gain when every file costs a network round trip.

Run: ``python benchmarks/bench_staging.py [--files 20000] [--latency-ms 5] [--quick]``. Each ratio is measured in
this one run, best of `--rounds` (other work on a shared machine slows whichever side happens to run beside it).

How the latency is simulated: Drive's FUSE mount costs a round trip per file open. A FUSE or NFS mount is not
available on this machine, and an LD_PRELOAD shim would be heavier than the thing it measures, so the benchmark
wraps `staging._open_source` (the one function the threaded copy opens source files with) in a
``time.sleep(latency)``: the sleep releases the GIL like a blocking network read does. Threads (8) against one
thread under the same delay is the gain shown.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ratio_line, timed  # noqa: E402

from darknet_magics import staging  # noqa: E402


def make_small_files(folder: Path, n: int) -> int:
    """`n` files of 1-4 KiB (image-like) in folders of 5,000; returns total bytes."""
    total = 0
    payload = os.urandom(4096)
    for i in range(n):
        sub = folder / f"part{i // 5000:02d}"
        if i % 5000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        size = 1024 + (i * 37) % 3072
        (sub / f"f{i:06d}.jpg").write_bytes(payload[:size])
        total += size
    return total


def _drop(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--latency-files", type=int, default=400)
    parser.add_argument("--quick", action="store_true", help="5,000 files, one round")
    args = parser.parse_args()
    if args.quick:
        args.files, args.rounds, args.latency_files = 5000, 1, 200
    with tempfile.TemporaryDirectory(prefix="bench_staging_") as tmp:
        root = Path(tmp)
        src = root / "drive" / "dataset"
        total = make_small_files(src, args.files)
        archive = root / "drive" / "dataset.tar"
        subprocess.run(["tar", "-cf", str(archive), "-C", str(src.parent), "dataset"], check=True)
        print(f"staging {args.files:,} files, {total / 1e6:.1f} MB, local disk to local disk")
        best = {k: float("inf") for k in ("stage_dir", "cp", "stage_tar", "tar")}
        for r in range(args.rounds):
            with timed() as t:
                subprocess.run(["cp", "-r", str(src), str(root / "cp")], check=True)
            best["cp"] = min(best["cp"], t.seconds)
            with timed() as t:
                result = staging.stage(src, root / f"s{r}")
            assert result.action == "copied"
            best["stage_dir"] = min(best["stage_dir"], t.seconds)
            (root / "x").mkdir()
            with timed() as t:
                subprocess.run(["tar", "-xf", str(archive), "-C", str(root / "x")], check=True)
            best["tar"] = min(best["tar"], t.seconds)
            with timed() as t:
                result = staging.stage(archive, root / f"a{r}")
            assert result.action == "unpacked" and result.files == args.files
            best["stage_tar"] = min(best["stage_tar"], t.seconds)
            for d in ("cp", "x", f"s{r}", f"a{r}"):
                _drop(root / d)
        for k, v in best.items():
            print(f"  {k:10s} {v:7.2f} s")
        print(ratio_line("stage folder / cp -r", best["stage_dir"] / best["cp"], 1.2, higher_is_better=False))
        print(ratio_line("stage archive / tar -x", best["stage_tar"] / best["tar"], 1.2, higher_is_better=False))

        # Simulated per-file latency (see the module docstring).
        lat = args.latency_ms / 1000
        few = root / "drive" / "few"
        make_small_files(few, args.latency_files)
        real_open = staging._open_source

        def slow_open(path: str):  # type: ignore[no-untyped-def]
            time.sleep(lat)
            return real_open(path)

        staging._open_source = slow_open
        try:
            with timed() as one:
                staging.stage(few, root / "l1", threads=1)
            with timed() as eight:
                staging.stage(few, root / "l8", threads=8)
        finally:
            staging._open_source = real_open
        print(f"{args.latency_files} files with {args.latency_ms:g} ms per file open: 1 thread {one.seconds:.2f} s, "
              f"8 threads {eight.seconds:.2f} s")
        print(ratio_line("threaded gain under per-file latency (1 thread / 8 threads)", one.seconds / eight.seconds,
                         3.0))


if __name__ == "__main__":
    main()
