"""Bytes of the live view in a real kernel: per training cell in the saved notebook, and per update at 500,000
iterations; our renderer (a host drawn once, then feed messages of the points that changed) against the HTML view
(plotly.js embedded in first and final renders) measured in the same run.

A notebook is executed by nbclient + ipykernel. Each measured cell replays a real AlexeyAB training log
(tests/fixtures/logs, 200 iterations, 2 mAP results) through `LiveView` in chunks, as `%yolo train` feeds it,
then a 500,000-iteration history (the real rows tiled, iterations renumbered) for the per-update figure. Bytes
per cell: that cell's outputs as saved in the .ipynb. Bytes per update: the JSON of each display message's data
the kernel sent (recorded inside the kernel). Targets (issue 13): <= 300 KB per cell, <= 20 KB per update.

Time per update at 500,000 iterations (issue 13: <= 100 ms), outside the kernel: a real `History` grows by 1,000
rows per update (the real log's rows tiled, as above, plus its mAP rows every 1,000 iterations).
Ours: `LiveView.update` (the status line and the chart's feed message), which keeps the downsampled series between
updates and reads only the new rows. Baseline, measured alternately in the same run: what each update did
before, a rebuild from scratch (the history's iterations dataframe, every series downsampled again, the spec
serialised).

Run: .venv/bin/python benchmarks/bench_live.py [--quick]  (needs the test extra; a PNG needs kaleido + Chromium)
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # the package of this checkout, not an installed one
from _common import figure_line, ratio, timed  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
LOG = REPO / "tests" / "fixtures" / "logs" / "alexeyab-train-map.pty.log"
PER_CELL_TARGET, PER_UPDATE_TARGET, UPDATE_MS_TARGET = 300_000, 20_000, 100.0

SETUP = r'''
import json, numpy as np, pandas as pd
from types import SimpleNamespace
from darknet_magics.output.history import History
from darknet_magics.output.logparse import LogParser
from darknet_magics.view.live import LiveView
from darknet_magics.notebook import NotebookReporter
RAW = open(LOG_PATH, "rb").read()

class Measured(NotebookReporter):
    """Records the JSON size of each display message's data (what goes over the wire per update)."""
    def __init__(self, bundles):
        super().__init__()
        self.sizes = []
        if not bundles:
            self.display = None  # the HTML path: LiveView falls back to reporter.html
    def html(self, key, html, text="", *, final=True):
        self.sizes.append(len(json.dumps({"text/html": html, "text/plain": text})))
        super().html(key, html, text)
    def display(self, key, bundle, text=""):
        self.sizes.append(len(json.dumps(bundle)))
        super().display(key, bundle, text)

def replay(bundles, out):
    rep = Measured(bundles)
    history, parser = History(), LogParser()
    view = LiveView(rep, min_interval=0, max_batches=200, title="replay")
    view.update(history, force=True)
    for i in range(0, len(RAW), 4096):
        text = RAW[i:i + 4096].decode("utf-8", "replace")
        view.add_text(text)
        history.add(parser.feed(text))
        view.update(history)
    history.add(parser.close())
    view.update(history, final=True)
    json.dump({"sizes": rep.sizes, "iterations": len(history.iterations)}, open(out, "w"))

def big(bundles, out, n=500_000):
    rep = Measured(bundles)
    history, parser = History(), LogParser()
    history.add(parser.feed(RAW.decode("utf-8", "replace")))
    its, maps = history.iterations, history.maps
    k = -(-n // len(its))
    tiled = pd.concat([its] * k, ignore_index=True).iloc[:n].copy()
    tiled["iteration"] = np.arange(1, n + 1)
    tiled["images"] = tiled["iteration"] * 16.0
    at = np.arange(1000, n + 1, 1000)
    m = pd.concat([maps] * (len(at) // len(maps) + 1), ignore_index=True).iloc[:len(at)].copy()
    m["iteration"] = at
    view = LiveView(rep, min_interval=0, max_batches=n, title="500k")
    for k, cut in enumerate((n - 4000, n - 3000, n - 2000, n - 1000)):
        view.update(SimpleNamespace(iterations=tiled.iloc[:cut], maps=m[m.iteration <= cut], class_ap=None), force=True)
        if k == 0:  # the first render sends the chart's host (plotly.js inlined, once per page): not an update
            rep.sizes.clear()
    sizes = list(rep.sizes)  # the updates (status line + feed); the finished chart is sent once
    view.update(SimpleNamespace(iterations=tiled, maps=m, class_ap=None), final=True)
    json.dump({"sizes": sizes, "final": rep.sizes[len(sizes):]}, open(out, "w"))
'''


def _notebook(tmp: Path):
    import nbformat

    cells = [nbformat.v4.new_code_cell(f"LOG_PATH = {str(LOG)!r}\n" + SETUP)]
    for name, bundles in (("new", True), ("html", False)):
        cells.append(nbformat.v4.new_code_cell(f"replay({bundles}, {str(tmp / (name + '-replay.json'))!r})"))
        cells.append(nbformat.v4.new_code_cell(f"big({bundles}, {str(tmp / (name + '-big.json'))!r})"))
    return nbformat.v4.new_notebook(cells=cells)


def update_times(n: int, rounds: int) -> tuple[list[float], list[float], int]:
    """Seconds per update at `n` iterations: (ours, baseline) for `rounds` updates of 1,000 new rows each, and the
    bytes of our last chart bundle."""
    import dataclasses
    import time

    from darknet_magics.output.events import Iteration, MapResult
    from darknet_magics.output.history import History
    from darknet_magics.view.live import LiveView, _figure_dict, _to_json, progress_line
    from darknet_magics.output.logs import parse_log
    from darknet_magics.report import RecordingReporter

    class Bundles(RecordingReporter):
        def display(self, key: str, bundle: dict, text: str = "") -> None:
            if key.endswith(":feed"):  # the update's chart part (the status line is ~1 KB beside it)
                self.last = bundle

    log = parse_log(LOG)
    real = list(log.iterations.itertuples(index=False))
    rows = [Iteration(i, *real[i % len(real)][1:]) for i in range(1, n + 1)]
    maps = [MapResult(**{**{f.name: getattr(m, f.name) for f in dataclasses.fields(MapResult)}, "iteration": at})
            for m, at in zip(_map_events(), range(1000, n + 1, 1000))]
    history = History()
    start = n - rounds * 1000
    history.add(rows[:start])
    history.add([m for m in maps if m.iteration <= start])
    rep = Bundles()
    view = LiveView(rep, min_interval=0, max_batches=n, title="500k", png=False)
    view.update(history, force=True)  # the first render reads every row once
    ours, base = [], []
    for k in range(rounds):
        lo, hi = start + k * 1000, start + (k + 1) * 1000
        history.add(rows[lo:hi] + [m for m in maps if lo < m.iteration <= hi])
        t = time.perf_counter()
        view.update(history, force=True)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()  # the baseline: the same update rebuilt from scratch
        spec = _figure_dict(history.iterations, history.maps, max_points=view.max_points, title="500k",
                            class_ap_df=history.class_ap, uirevision=view.key)
        _to_json(spec)
        progress_line(history, n, 1.0)
        base.append(time.perf_counter() - t)
        history._cache.clear()  # the next chunk's rows clear it in a real run too
    return ours, base, len(json.dumps(rep.last))


def _map_events() -> list:
    """The real log's mAP results, repeated (cycled) for the long history."""
    import itertools

    from darknet_magics.output.events import MapResult
    from darknet_magics.output.logparse import LogParser

    parser = LogParser()
    events = parser.feed(LOG.read_bytes().decode("utf-8", "replace")) + parser.close()
    return list(itertools.islice(itertools.cycle([e for e in events if isinstance(e, MapResult)]), 1000))


def main() -> None:
    import statistics

    quick = "--quick" in sys.argv
    ours, base, upd_bytes = update_times(500_000, 3 if quick else 7)
    our_ms, base_ms = statistics.median(ours) * 1000, statistics.median(base) * 1000
    print(f"update time at 500,000 iterations ({len(ours)} updates of 1,000 new rows, a real History)")
    print(figure_line("LiveView.update (incremental)", our_ms, "ms (median)") + f"  max {max(ours) * 1000:,.1f} ms")
    print(figure_line("rebuild from scratch (the previous update)", base_ms, "ms (median)")
          + f"  ratio baseline/ours {ratio(base_ms, our_ms)}")
    print(figure_line("chart feed message of the last update", upd_bytes / 1000, "KB"))
    _kernel_figures(our_ms)


def _kernel_figures(our_ms: float) -> None:
    import nbformat
    from nbclient import NotebookClient

    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        nb = _notebook(tmp)
        with timed() as t:
            NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(REPO)}}).execute()
        path = tmp / "bench.ipynb"
        nbformat.write(nb, str(path))
        if "--keep" in sys.argv:
            nbformat.write(nb, str(REPO / "bench_live.ipynb"))
        cell_bytes = [len(json.dumps(c.get("outputs", []))) for c in nb.cells]
        got = {name: json.loads((tmp / name).read_text()) for name in
               ("new-replay.json", "new-big.json", "html-replay.json", "html-big.json")}
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        raise SystemExit("a cell failed: " + errors[0]["evalue"])
    # the PNG is made after the prompt (a worker thread): in the saved notebook only where the front end still took
    # the update
    has_png = any("image/png" in o.get("data", {}) for o in nb.cells[1].outputs)
    new_cell, html_cell = cell_bytes[1], cell_bytes[3]
    new_big_cell, html_big_cell = cell_bytes[2], cell_bytes[4]
    new_upd, html_upd = max(got["new-big.json"]["sizes"]), sorted(got["html-big.json"]["sizes"])
    html_upd_mid = html_upd[len(html_upd) // 2]
    print(f"live view in a real kernel (nbclient + ipykernel, {t.seconds:.1f} s); "
          f"replayed log: {got['new-replay.json']['iterations']} iterations, "
          f"{len(got['new-replay.json']['sizes'])} display messages; final PNG in the notebook: {'yes' if has_png else 'no (made after the prompt)'}")
    print(figure_line("saved notebook, training cell (finished chart)", new_cell / 1000, "KB")
          + f"  target <= {PER_CELL_TARGET // 1000} KB: {'ok' if new_cell <= PER_CELL_TARGET else 'MISSED'}")
    print(figure_line("saved notebook, training cell (HTML, plotly.js embedded)", html_cell / 1000, "KB")
          + f"  ratio HTML/new {ratio(html_cell, new_cell)}")
    print(figure_line("saved notebook, 500,000-iteration cell (new)", new_big_cell / 1000, "KB")
          + f"  HTML {html_big_cell / 1000:,.1f} KB, ratio {ratio(html_big_cell, new_big_cell)}")
    print(figure_line("per update at 500,000 iterations (new, largest)", new_upd / 1000, "KB")
          + f"  target <= {PER_UPDATE_TARGET // 1000} KB: {'ok' if new_upd <= PER_UPDATE_TARGET else 'MISSED'}")
    print(figure_line("per update at 500,000 iterations (HTML, median)", html_upd_mid / 1000, "KB")
          + f"  ratio HTML/new {ratio(html_upd_mid, new_upd)}")
    print(figure_line("wire bytes of the whole replay (new)", sum(got["new-replay.json"]["sizes"]) / 1000, "KB")
          + f"  HTML {sum(got['html-replay.json']['sizes']) / 1000:,.1f} KB, ratio "
            f"{ratio(sum(got['html-replay.json']['sizes']), sum(got['new-replay.json']['sizes']))}")
    print(f"ratio: saved training cell = {new_cell / 1000:.1f} KB (target <= {PER_CELL_TARGET // 1000} KB): "
          f"{'ok' if new_cell <= PER_CELL_TARGET else 'MISSED'}")
    print(f"ratio: saved 500,000-iteration cell = {new_big_cell / 1000:.1f} KB (target <= {PER_CELL_TARGET // 1000} KB): "
          f"{'ok' if new_big_cell <= PER_CELL_TARGET else 'MISSED'}")
    print(f"ratio: update at 500,000 iterations = {new_upd / 1000:.1f} KB (target <= {PER_UPDATE_TARGET // 1000} KB): "
          f"{'ok' if new_upd <= PER_UPDATE_TARGET else 'MISSED'}")
    print(f"ratio: time per update at 500,000 iterations = {our_ms:.1f} ms (target <= {UPDATE_MS_TARGET:g} ms): "
          f"{'ok' if our_ms <= UPDATE_MS_TARGET else 'MISSED'}")


if __name__ == "__main__":
    main()
