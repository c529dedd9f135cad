"""Training-run benchmarks: streaming capacity, real overhead, display cost. Ratios from one run.

    python benchmarks/bench_training.py            # ~100 MB replay, 3 rounds of a 30-iteration darknet run
    python benchmarks/bench_training.py --quick    # ~20 MB replay, 1 round of 12 iterations

1. Streaming capacity: a replayer writes a real AlexeyAB log (repeated to the size asked, iterations renumbered so
   they keep increasing) at full speed to its pty. Ours: `runner.run` with the tee to disk, the parser, the history
   (and its history.jsonl) and the throttled live view all on (the same `_Watch` that `train` uses, into a
   RecordingReporter). Baseline: a bare pexpect loop that only reads the same pty into a file. MB/s each and the
   ratio (target >= 0.5x).
2. Real overhead: the same tiny /usr/bin/darknet training (yolov3-tiny, 64 px, batch 4) bare (pexpect reading to a
   file) and under `training.train`, iterations per second side by side (target >= 0.98x). Rounds alternate.
3. Display cost: one live update with 500,000 iterations of history: bytes of the HTML without plotly.js (target
   < 300 KB), the time to build the figure from scratch (`build_figure`: a finished run's figure) and the time of
   a LiveView.update with 1,000 new rows (targets < 100 ms).
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

from _common import figure_line, mb, ratio_line  # noqa: E402

LOGS = HERE.parent.parent / "shared" / "darknet-logs"
SOURCE_LOG = LOGS / "alexeyab" / "train-map-noise.pty.log"
DARKNET = Path("/usr/bin/darknet")
TEMPLATE = Path("/usr/share/darknet/cfg/yolov3-tiny.cfg")


# ------------------------------------------------------------------------------------------------ replay
def replay(path: str) -> None:
    """The replayer: the file to stdout as fast as the pty takes it."""
    fd = sys.stdout.fileno()
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            view = memoryview(block)
            while view:
                n = os.write(fd, view)
                view = view[n:]


def build_log(out: Path, size_mb: float) -> tuple[Path, int]:
    """A real log repeated to `size_mb`, iteration numbers renumbered; returns (path, iteration lines)."""
    text = SOURCE_LOG.read_bytes().replace(b"\r\n", b"\n")  # the pty adds the \r back
    rx = re.compile(rb"(?m)^( ?)(\d+)(: [-\d.na]+, [-\d.na]+ avg loss)")
    per_copy = max(int(m.group(2)) for m in rx.finditer(text))
    lines_per_copy = len(rx.findall(text))
    copies = max(1, int(size_mb * 1e6 / len(text)))
    with open(out, "wb") as f:
        for k in range(copies):
            offset = k * per_copy
            f.write(rx.sub(lambda m: m.group(1) + str(int(m.group(2)) + offset).encode() + m.group(3), text))
    return out, copies * lines_per_copy


def bare_pexpect(argv: list[str], log: Path) -> tuple[float, int]:
    import pexpect

    start = time.perf_counter()
    child = pexpect.spawn(argv[0], argv[1:], encoding=None, dimensions=(50, 200), timeout=None)
    n = 0
    with open(log, "wb") as f:
        while True:
            try:
                data = child.read_nonblocking(65536, 0.1)
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                break
            n += len(data)
            f.write(data)
            f.flush()
    child.close()
    return time.perf_counter() - start, n


def ours_stream(argv: list[str], folder: Path) -> tuple[float, int, int, int]:
    from darknet_magics.run import runner
    from darknet_magics.train import keeper, runs, watch
    from darknet_magics.output.history import History
    from darknet_magics.view.live import LiveView
    from darknet_magics.report import RecordingReporter

    run = runs.TrainingRun(run_dir=folder, history=History(), name="bench")
    rec = RecordingReporter()
    live = LiveView(rec, min_interval=1.0, max_batches=10**7, title="bench")
    session = watch.Watch(run, live, stop_on_nan=False, data_paths=(), resumed=False)
    live.update(run.history, force=True)  # as train() does before it starts darknet (imports plotly)
    start = time.perf_counter()
    result = runner.run(argv, cwd=folder, log_path=run.log_path, on_text=session.on_text,
                        watchdog=keeper.training_watchdog(), should_stop=session.should_stop)
    session.close()
    live.update(run.history, force=True)
    seconds = time.perf_counter() - start
    return seconds, result.bytes_read, len(run.iterations), live.renders


def bench_streaming(size_mb: float, rounds: int, tmp: Path) -> None:
    log, expected = build_log(tmp / "replay.log", size_mb)
    size = log.stat().st_size
    argv = [sys.executable, str(Path(__file__).resolve()), "--replay", str(log)]
    print(f"streaming: replaying {mb(size):.1f} MB ({expected:,} iteration lines) of {SOURCE_LOG.name} "
          f"through a pty, {rounds} round(s)")
    bare, ours = [], []
    for r in range(rounds):
        s, n = bare_pexpect(argv, tmp / f"bare{r}.log")
        bare.append(n / s / 1e6)
        folder = tmp / f"ours {r}"
        folder.mkdir()
        s, n, its, renders = ours_stream(argv, folder)
        ours.append(n / s / 1e6)
        print(f"  round {r + 1}: bare {bare[-1]:.1f} MB/s, ours {ours[-1]:.1f} MB/s "
              f"({its:,} iterations parsed, {renders} live renders, {mb(n):.1f} MB read)")
        if its != expected:
            print(f"  WARNING: parsed {its:,} iterations, expected {expected:,}")
    b, o = max(bare), max(ours)
    print(figure_line("bare pexpect read -> file", b, "MB/s"))
    print(figure_line("runner + tee + parse + history + live", o, "MB/s"))
    print(ratio_line("streaming ours/bare", o / b, 0.5))


# ------------------------------------------------------------------------------------------------ overhead
def make_workspace(tmp: Path, iterations: int) -> tuple[Path, Path]:
    from darknet_magics.data.cfg import make_cfg
    from darknet_magics.synth import make_dataset

    ws = tmp / "ws"  # `tmp` has no space: darknet strips spaces from obj.data paths
    ds = make_dataset(ws / "ds", images=24, size=64)
    (ws / "train.txt").write_text("".join(f"{p}\n" for p in ds.images[:20]))
    (ws / "valid.txt").write_text("".join(f"{p}\n" for p in ds.images[20:]))
    (ws / "obj.data").write_text(f"classes = 1\ntrain = {ws / 'train.txt'}\nvalid = {ws / 'valid.txt'}\n"
                                 f"names = {ws / 'ds' / 'obj.names'}\nbackup = {ws / 'backup'}\n")
    (ws / "backup").mkdir()
    cfg = ws / "tiny.cfg"
    cfg.write_text(make_cfg(TEMPLATE.read_text(), 1, width=64, height=64, batch=4, subdivisions=1,
                            max_batches=iterations, random=0))
    return ws / "obj.data", cfg


def count_iterations(log: Path) -> int:
    return len(re.findall(rb"(?m)^\d+: [-\d.na]+, [-\d.na]+ avg", log.read_bytes().replace(b"\r", b"")))


def bench_overhead(iterations: int, rounds: int, tmp: Path, ws_root: Path) -> None:
    from darknet_magics.train import training
    from darknet_magics.report import RecordingReporter

    if not DARKNET.exists():
        print("overhead: skipped (no /usr/bin/darknet)")
        return
    data, cfg = make_workspace(ws_root, iterations)
    argv = [str(DARKNET), "detector", "train", str(data), str(cfg)]
    print(f"overhead: /usr/bin/darknet, yolov3-tiny 64 px batch 4, {iterations} iterations, {rounds} round(s) each")
    bare, ours = [], []
    for r in range(rounds):
        s, _ = bare_pexpect(argv, tmp / f"dk-bare{r}.log")
        n = count_iterations(tmp / f"dk-bare{r}.log")
        bare.append(n / s)
        start = time.perf_counter()
        run = training.train(darknet=DARKNET, data=data, cfg=cfg, weights=None, map=False, gpus=None, backup=None,
                             clear=False, run_dir=tmp / f"dk ours {r}", reporter=RecordingReporter(),
                             cwd=data.parent)
        s = time.perf_counter() - start
        ours.append(len(run.iterations) / s)
        print(f"  round {r + 1}: bare {bare[-1]:.3f} it/s ({n} it), under train() {ours[-1]:.3f} it/s "
              f"({len(run.iterations)} it, {run.status})")
    b, o = statistics.median(bare), statistics.median(ours)
    print(figure_line("bare darknet (pexpect -> file)", b, "it/s"))
    print(figure_line("under training.train", o, "it/s"))
    print(ratio_line("real overhead ours/bare", o / b, 0.98))


# ------------------------------------------------------------------------------------------------ display
def bench_display(n: int) -> None:
    import numpy as np
    import pandas as pd

    from darknet_magics.view import live
    from darknet_magics.report import RecordingReporter

    rng = np.random.default_rng(0)
    its = pd.DataFrame({"iteration": np.arange(1, n + 1), "loss": rng.random(n) * 5 + np.linspace(30, 1, n),
                        "avg_loss": np.linspace(30, 1, n), "seconds": np.full(n, 0.5),
                        "hours_left": np.linspace(n / 7200, 0, n)})
    at = np.arange(1000, n + 1, 1000)
    maps = pd.DataFrame({"iteration": at, "map50": np.linspace(0, 0.9, len(at))})
    history = SimpleNamespace(iterations=its, maps=maps)
    live.build_figure(its, maps)  # warm (imports)
    builds, updates = [], []
    for _ in range(7):
        t = time.perf_counter()
        fig = live.build_figure(its, maps)
        builds.append(time.perf_counter() - t)
    html = live.figure_html(fig, include_plotlyjs=False)
    view = live.LiveView(RecordingReporter(), max_batches=n + 1000)
    history.iterations = its.iloc[: n - 7000]
    view.update(history, force=True)  # the first render embeds plotly.js and reads every row once
    for i in range(7):
        # as in a run: 1,000 new rows per update (the view reads only those; a shrinking history is re-read)
        history.iterations = its.iloc[: n - 6000 + i * 1000]
        t = time.perf_counter()
        view.update(history, force=True)
        updates.append(time.perf_counter() - t)
    size = len(view.last_html.encode())
    build = statistics.median(builds) * 1000
    update = statistics.median(updates) * 1000
    print(f"display: {n:,} iterations of history, {len(maps)} mAP points")
    print(figure_line("figure_html(build_figure(...)) without plotly.js", len(html.encode()) / 1000, "KB"))
    print(figure_line("one LiveView update (progress + chart + tail)", size / 1000, "KB"))
    print(figure_line("build_figure (from scratch: a finished run's figure, once)", build, "ms (median of 7)"))
    print(figure_line("LiveView.update (1,000 new rows)", update, "ms (median of 7)"))
    print(ratio_line("display update size", size / 1000, 300, higher_is_better=False, unit=" KB"))
    print(ratio_line("display build time", build, 100, higher_is_better=False, unit=" ms"))
    # issue 13's target is per update; bench_live.py times updates of a real History against a full rebuild
    print(ratio_line("display update time", update, 100, higher_is_better=False, unit=" ms"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller inputs, one round")
    p.add_argument("--scale", type=float, default=None, help="MB to replay (default 100, quick 20)")
    p.add_argument("--skip-darknet", action="store_true", help="skip the real darknet overhead benchmark")
    p.add_argument("--replay", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.replay:
        replay(a.replay)
        return 0
    size = a.scale or (20.0 if a.quick else 100.0)
    with tempfile.TemporaryDirectory(prefix="bench training ") as tmp_name, \
            tempfile.TemporaryDirectory(prefix="bench_training_ws_") as ws_name:
        tmp = Path(tmp_name)  # a space in the run folders, as on a Drive "My Drive"
        bench_display(500_000)
        bench_streaming(size, 1 if a.quick else 2, tmp)
        if not a.skip_darknet:
            bench_overhead(12 if a.quick else 30, 1 if a.quick else 3, tmp, Path(ws_name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
