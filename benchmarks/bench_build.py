"""Cold build vs warm cache restore of Debian's darknet source (pjreddie's, GPU=0 OPENCV=0), from one run.

    python benchmarks/bench_build.py [--quick] [--jobs N]

Steps: unpack the source (../shared/tools/darknet-source), make it a local git repo, clone it into folder A and
`build.make(...)` there with a cache (cold build), then clone into a fresh folder B and `build.make(...)` again:
that restores from the cache (copy, checksum, run the binary once). Prints both times and their ratio;
the target is restore >= 20x faster than the build. --quick takes the restore once instead of 5 times.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ratio, timed  # noqa: E402

from darknet_magics.report import Reporter  # noqa: E402
from darknet_magics.setup import build  # noqa: E402
from darknet_magics.setup.clone import clone  # noqa: E402
from darknet_magics.setup.runtime import probe_runtime  # noqa: E402

TOOL = Path(__file__).resolve().parents[2] / "shared" / "tools" / "darknet-source"
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "bench@example.com"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    opts = ap.parse_args()
    tool = Path(os.environ.get("DARKNET_SOURCE_TOOL", TOOL))
    with tempfile.TemporaryDirectory(prefix="bench_build ") as tmp:
        base = Path(tmp)
        origin = base / "origin" / "darknet"
        subprocess.run([str(tool), str(origin)], check=True, capture_output=True)
        env = {**os.environ, **GIT_ENV}
        for argv in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "debian source"]):
            subprocess.run(argv, cwd=origin, check=True, env=env)
        runtime, quiet, cache = probe_runtime(), Reporter(), base / "cache"
        flags = {"GPU": 0, "OPENCV": 0}

        a = clone(str(origin), None, base / "vm a" / "darknet", quiet)
        with timed() as cold:
            first = build.make(a.path, flags=flags, arch=None, jobs=opts.jobs, cache_dir=cache, runtime=runtime,
                               reporter=quiet, commit=a.commit)
        assert first.action == "built", first.action

        restores = []
        for i in range(1 if opts.quick else 5):
            b = clone(str(origin), None, base / f"vm b{i}" / "darknet", quiet)
            with timed() as warm:
                again = build.make(b.path, flags=flags, arch=None, jobs=opts.jobs, cache_dir=cache,
                                   runtime=runtime, reporter=quiet, commit=b.commit)
            assert again.action == "restored", again.action
            restores.append(warm.seconds)

    warm_s = statistics.median(restores)
    print(f"cold build (make -j{opts.jobs}, {first.files_compiled} files): {cold.seconds:.2f} s")
    print(f"warm cache restore (median of {len(restores)}): {warm_s:.3f} s")
    print(f"ratio: restore is {ratio(cold.seconds, warm_s)} faster than the build (target >= 20x)")
    return 0 if cold.seconds >= 20 * warm_s else 1


if __name__ == "__main__":
    sys.exit(main())
