"""What `%yolo status` costs when it re-attaches to a long background run, against `%yolo log` on the same log.

A run folder is assembled as a kernel restart leaves it once darknet has ended unwatched: a long pjreddie log
(a real pty capture repeated to about --lines lines, iteration numbers continued, as bench_parser builds it),
a run.json that still says ``running``, and a keeper.json that records the end. Timed, each the best of --repeat:

* ``background.reattach``: the re-attach path (earlier sessions, then the whole log through the foreground's
  sinks: recorder, parser, history, live view throttled to 1 s), the verdict, run.json, history.jsonl and
  chart.html written;
* baseline: what any reader of that log must do, `runs.load_log` (what `%yolo log` does: parse into the
  dataframes) plus writing the run's history.jsonl (`History.save`), as the re-attach does.

The ratio says what the live-run machinery adds to that; the absolute figure says how long a user waits for the
chart of a run that long after a restart.

Run: ``python benchmarks/bench_reattach.py [--quick] [--lines 1000000] [--repeat 3]``.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import figure_line, mb, ratio_line, timed  # noqa: E402
from bench_parser import build_log  # noqa: E402

from darknet_magics.train import background, keeper, runs  # noqa: E402
from darknet_magics.report import Reporter  # noqa: E402


def make_run(folder: Path, log_text: str) -> Path:
    """A run folder left by a gone kernel whose darknet then ended (exit status 0)."""
    folder.mkdir(parents=True)
    (folder / "train.log").write_text(log_text, encoding="utf-8")
    argv = ["/usr/bin/darknet", "detector", "train", str(folder / "obj.data"), str(folder / "tiny.cfg")]
    run = {"version": 1, "name": "bench", "status": "running", "argv": argv, "max_batches": None,
           "args": {"cfg": str(folder / "tiny.cfg"), "data": str(folder / "obj.data"), "flavor": "pjreddie",
                    "backup_dir": str(folder / "backup")},
           "log": str(folder / "train.log"), "sessions": [{"argv": argv, "log_offset": 0, "keeper": {"keeper_pid": None}}], "message": ""}
    (folder / "run.json").write_text(json.dumps(run))
    result = {"returncode": 0, "signal": None, "interrupted": False, "killed_by_watchdog": None, "seconds": 1.0,
              "pid": 1, "answered": [], "stopped_by_caller": None, "bytes_read": len(log_text),
              "log_error": None, "notices": []}
    (folder / keeper.STATE_NAME).write_text(json.dumps({"state": "ended", "result": result, "keeper_pid": None}))
    return folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="200,000 lines, one round")
    opts = ap.parse_args()
    if opts.quick:
        opts.lines, opts.repeat = min(opts.lines, 200_000), 1
    text = build_log("pjreddie", opts.lines)
    print(f"log: {text.count(chr(10)):,} lines, {mb(len(text.encode())):.1f} MB (pjreddie pty capture, repeated)")
    best_re, best_log = float("inf"), float("inf")
    with tempfile.TemporaryDirectory(prefix="bench_reattach ") as tmp:
        for k in range(opts.repeat):  # interleaved: a busy machine slows both alike
            folder = make_run(Path(tmp) / f"run-{k}", text)
            with timed() as t:
                live = background.live_run(folder)
                run, line = background.reattach(live, Reporter())
            best_re = min(best_re, t.seconds)
            assert "ended while no kernel watched" in line and len(run.iterations), line
            with timed() as t:
                logged, _ = runs.load_log(folder / "train.log")
                logged.history.save(Path(tmp) / "baseline-history.jsonl")
            best_log = min(best_log, t.seconds)
            assert len(logged.iterations) == len(run.iterations)
            shutil.rmtree(folder)
    print(figure_line("re-attach (parse, judge, write run.json, history.jsonl, chart.html)", best_re, "s"))
    print(figure_line("baseline: parse (%yolo log) and write history.jsonl", best_log, "s"))
    print(figure_line("re-attach rate", len(text.encode()) / best_re / 1e6, "MB/s"))
    print(ratio_line("re-attach / (parse + history.jsonl)", best_re / best_log, 1.5, higher_is_better=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
