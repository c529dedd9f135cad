"""Staging speed: `stage` against `cp -r` (folder) and `tar -x` (archive) on local disk, and the threaded copy's
gain when every file costs a network round trip.

Run: ``python benchmarks/bench_staging.py [--files 20000] [--latency-ms 5] [--quick]``. Each ratio is measured in
this one run: the median over `--rounds` of a pair timed back to back (ours and the baseline, alternating which
goes first), since a shared machine's disk stalls now and then and a pair mostly shares the stall.

How the latency is simulated: Drive's FUSE mount costs a round trip per file open. A FUSE or NFS mount is not
available on this machine, and an LD_PRELOAD shim would be heavier than the thing it measures, so the benchmark
wraps `staging_folders._open_source` (the one function the threaded copy opens source files with) in a
``time.sleep(latency)``: the sleep releases the GIL like a blocking network read does. Threads (8) against one
thread under the same delay is the gain shown.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ratio_line, timed  # noqa: E402

from darknet_magics.data import staging, staging_folders  # noqa: E402


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
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=5.0)
    parser.add_argument("--latency-files", type=int, default=400)
    parser.add_argument("--quick", action="store_true", help="5,000 files, one round")
    parser.add_argument("--dir", default=None, help="where to work (e.g. /dev/shm: a RAM disk takes the shared "
                        "machine's disk noise out of the ratios; default: the system temp folder)")
    args = parser.parse_args()
    if args.quick:
        args.files, args.rounds, args.latency_files = 5000, 1, 200
    with tempfile.TemporaryDirectory(prefix="bench_staging_", dir=args.dir) as tmp:
        root = Path(tmp)
        src = root / "drive" / "dataset"
        total = make_small_files(src, args.files)
        archive = root / "drive" / "dataset.tar"
        subprocess.run(["tar", "-cf", str(archive), "-C", str(src.parent), "dataset"], check=True)
        print(f"staging {args.files:,} files, {total / 1e6:.1f} MB, local disk to local disk")
        # Each round times a pair (ours and its baseline) back to back, in alternating order, and the ratio is the
        # median of the pairs' ratios: a shared disk stalls for seconds at times, which a pair mostly shares and a
        # best-of over each side alone does not (one lucky round of one side decided it).
        pairs: dict[str, list[tuple[float, float]]] = {"folder": [], "archive": []}

        def stage_step(source: Path, action: str):  # staging.stage(source) into a new folder per round
            def step(r: int) -> float:
                with timed() as t:
                    result = staging.stage(source, root / f"{action}{r}")
                assert result.action == action and result.files == args.files
                return t.seconds
            return step

        def native_step(*argv: str, into: str):  # cp -r or tar -x into root/INTO
            def step(r: int) -> float:
                if argv[0] == "tar":
                    (root / into).mkdir()
                with timed() as t:
                    subprocess.run([*argv, str(root / into)], check=True)
                return t.seconds
            return step

        folder_stage, folder_cp = stage_step(src, "copied"), native_step("cp", "-r", str(src), into="cp")
        archive_stage, archive_tar = stage_step(archive, "unpacked"), native_step("tar", "-xf", str(archive), "-C", into="x")

        # Untimed first: whichever side ran first would pay for reading the fresh files' metadata off the disk.
        folder_cp(-1), archive_tar(-1)
        _drop(root / "cp"), _drop(root / "x")
        for r in range(args.rounds):
            for kind, mine, base in (("folder", folder_stage, folder_cp), ("archive", archive_stage, archive_tar)):
                times = {}
                for which, fn in ((("ours", mine), ("base", base)) if r % 2 == 0 else (("base", base), ("ours", mine))):
                    os.sync()  # before every timed step: nobody pays for the previous step's dirty pages
                    times[which] = fn(r)
                pairs[kind].append((times["ours"], times["base"]))
            for d in ("cp", "x", f"copied{r}", f"unpacked{r}"):
                _drop(root / d)
            os.sync()
        for kind, base in (("folder", "cp -r"), ("archive", "tar -x")):
            ours = sorted(o for o, _ in pairs[kind])
            theirs = sorted(b for _, b in pairs[kind])
            print(f"  {kind:8s} stage: best {ours[0]:.2f} s, median {statistics.median(ours):.2f} s; "
                  f"{base}: best {theirs[0]:.2f} s, median {statistics.median(theirs):.2f} s")
        folder_ratio = statistics.median(o / b for o, b in pairs["folder"])
        archive_ratio = statistics.median(o / b for o, b in pairs["archive"])
        print(ratio_line("stage folder / cp -r (median of pairs)", folder_ratio, 1.2, higher_is_better=False))
        print(ratio_line("stage archive / tar -x (median of pairs)", archive_ratio, 1.2, higher_is_better=False))

        # Simulated per-file latency (see the module docstring).
        lat = args.latency_ms / 1000
        few = root / "drive" / "few"
        make_small_files(few, args.latency_files)
        real_open = staging_folders._open_source

        def slow_open(path: str):  # type: ignore[no-untyped-def]
            time.sleep(lat)
            return real_open(path)

        staging_folders._open_source = slow_open
        try:
            with timed() as one:
                staging.stage(few, root / "l1", threads=1)
            with timed() as eight:
                staging.stage(few, root / "l8", threads=8)
        finally:
            staging_folders._open_source = real_open
        print(f"{args.latency_files} files with {args.latency_ms:g} ms per file open: 1 thread {one.seconds:.2f} s, "
              f"8 threads {eight.seconds:.2f} s")
        print(ratio_line("threaded gain under per-file latency (1 thread / 8 threads)", one.seconds / eight.seconds,
                         3.0))


if __name__ == "__main__":
    main()
