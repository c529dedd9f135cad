"""Run every benchmark in this folder, one after the other, and print their ratios.

    python benchmarks/run_all.py            # full sizes (several minutes)
    python benchmarks/run_all.py --quick    # smaller inputs, same ratios printed

Each bench_*.py measures its own baseline in the same run and prints `ratio` lines; this only runs them.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    extra = sys.argv[1:]
    failed = []
    for script in sorted(here.glob("bench_*.py")):
        print(f"\n=== {script.name} {' '.join(extra)}", flush=True)
        start = time.monotonic()
        code = subprocess.call([sys.executable, str(script), *extra], cwd=here.parent)
        print(f"=== {script.name}: exit {code}, {time.monotonic() - start:.1f} s", flush=True)
        if code:
            failed.append(script.name)
    if failed:
        print("failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
