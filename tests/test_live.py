"""view/: downsampling (series.py), the figure (chart.py), its HTML (media.py, renderer.py), the progress line and
the throttled live view (live.py), the finished chart saved without a wait (saved.py)."""
from __future__ import annotations

import base64
import json
import queue
import re
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darknet_magics.view import live
from darknet_magics.setup.gpu import GpuPoller
from darknet_magics.view.chart import build_figure
from darknet_magics.view.compare import compare_runs
from darknet_magics.view.live import LIVE_KEY, LiveView
from darknet_magics.view.media import PLOTLY_MIME, figure_html
from darknet_magics.view.progress import progress_line
from darknet_magics.view.renderer import TraceFeed, feed_html
from darknet_magics.view.series import Downsampler, downsample, downsample_indices
from darknet_magics.report import RecordingReporter


def frames(n: int, maps_every: int = 0, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    its = pd.DataFrame({"iteration": np.arange(1, n + 1), "loss": rng.random(n) * 10 + np.linspace(20, 0, n),
                        "avg_loss": np.linspace(25, 1, n)})
    if maps_every:
        at = np.arange(maps_every, n + 1, maps_every)
        maps = pd.DataFrame({"iteration": at, "map50": np.linspace(0.01, 0.9, len(at))})
    else:
        maps = pd.DataFrame({"iteration": pd.Series(dtype="int64"), "map50": pd.Series(dtype="float64")})
    return its, maps


def decode(arr):
    """A trace array from a Figure or from our JSON (typed-array spec or list)."""
    if isinstance(arr, dict) and "bdata" in arr:
        dtype = {"i1": "i1", "u1": "u1", "i2": "<i2", "u2": "<u2", "i4": "<i4", "u4": "<u4", "f4": "<f4",
                 "f8": "<f8"}[arr["dtype"]]
        return np.frombuffer(base64.b64decode(arr["bdata"]), dtype=dtype)
    return np.asarray(arr)


def spec_from_html(html: str) -> dict:
    m = re.search(r"var s=(\{.*?\});var el=", html, re.S)
    assert m, html[:300]
    return json.loads(m.group(1))


def test_downsample_keeps_first_last_and_extremes() -> None:
    y = np.sin(np.linspace(0, 50, 100_000)) + np.linspace(0, 1, 100_000)
    y[12_345] = 99.0
    y[54_321] = -99.0
    idx = downsample_indices(y, 1000)
    assert idx[0] == 0 and idx[-1] == len(y) - 1
    assert 12_345 in idx and 54_321 in idx
    assert len(idx) <= 1002
    assert np.all(np.diff(idx) > 0)


def test_downsample_small_input_is_untouched_and_nans_never_win() -> None:
    assert list(downsample_indices(np.arange(5.0), 10)) == [0, 1, 2, 3, 4]
    y = np.ones(10_000)
    y[5000:6000] = np.nan
    y[7000] = 5.0
    idx = downsample_indices(y, 100)
    assert 7000 in idx
    assert not np.isnan(y[idx[(idx != 0) & (idx != 9999)]]).all()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=False, width=32), min_size=1, max_size=3000),
       st.integers(min_value=4, max_value=500))
def test_downsample_property(values: list[float], max_points: int) -> None:
    y = np.array(values, dtype=np.float64)
    idx = downsample_indices(y, max_points)
    assert len(idx) <= max(len(y), max_points + 2)
    assert idx[0] == 0 and idx[-1] == len(y) - 1
    assert len(set(idx.tolist())) == len(idx)
    finite = y[~np.isnan(y)]
    if len(finite):
        assert np.nanmax(y[idx]) == finite.max() and np.nanmin(y[idx]) == finite.min()


def test_figure_has_loss_avg_loss_and_map_on_a_second_axis() -> None:
    its, maps = frames(500_000, maps_every=1000)
    fig = build_figure(its, maps, max_points=2000, title="run1")
    names = [t.name for t in fig.data]
    assert names == ["loss", "avg loss", "mAP@0.50"]
    assert fig.data[2].yaxis == "y2" and fig.layout.yaxis2.overlaying == "y"
    for trace in fig.data[:2]:
        x = decode(trace.x)
        assert len(x) <= 2002 and x[0] == 1 and x[-1] == 500_000
    assert decode(fig.data[2].y).max() == pytest.approx(90.0)  # percent on the mAP axis
    assert fig.layout.title.text == "run1"
    html = figure_html(fig, include_plotlyjs=False)
    assert len(html.encode()) < 300_000
    spec = spec_from_html(html)
    assert [t["name"] for t in spec["data"]] == names


def test_figure_without_maps_has_no_second_axis_and_sorts_stitched_history() -> None:
    its, maps = frames(100)
    shuffled = pd.concat([its.iloc[50:], its.iloc[:50]])
    fig = build_figure(shuffled, maps)
    assert [t.name for t in fig.data] == ["loss", "avg loss"]
    assert "yaxis2" not in fig.to_plotly_json()["layout"]
    assert list(decode(fig.data[1].x)) == list(range(1, 101))
    empty = build_figure(its.iloc[:0], None)
    assert len(empty.data) == 0


def test_figure_html_embeds_plotlyjs_only_when_asked() -> None:
    its, maps = frames(100, maps_every=50)
    fig = build_figure(its, maps)
    full = figure_html(fig, include_plotlyjs=True, div_id="a")
    light = figure_html(fig, include_plotlyjs=False, div_id="a")
    assert len(full) > 1_000_000
    # no CDN unless plotly.js is missing: then the same version is fetched once, as a fallback
    assert light.count("https://") == 1 and light.index("if(window.Plotly){draw();return;}") < light.index("cdn.plot.ly")
    assert len(light) < 30_000
    assert 'id="a"' in light and "Plotly.react" in light and "window.Plotly" in light
    spec = spec_from_html(light)
    np.testing.assert_allclose(decode(spec["data"][1]["y"]), its["avg_loss"].to_numpy(), rtol=1e-6)


def test_progress_line_rate_and_eta_come_from_wall_time_only() -> None:
    its, maps = frames(50, maps_every=25)
    its["seconds"] = 2.0
    its["hours_left"] = 0.001  # darknet's own estimate: ignored ("ETA 31s" at 100 % came from it)
    h = SimpleNamespace(iterations=its, maps=maps)
    line = progress_line(h, 100, 100.0, start_iteration=0)
    assert line.startswith("iteration 50/100 (50.0%)")
    assert "avg loss 1" in line and "best mAP 90.00%" in line
    assert "0.50 it/s" in line and "ETA 1m 40s" in line  # 50 left at 0.5 it/s
    resumed = progress_line(h, 100, 10.0, start_iteration=40)
    assert "1.00 it/s" in resumed and "ETA 50s" in resumed
    assert "it/s" not in progress_line(h, 100, 100.0) and "ETA" not in progress_line(h, 100, 100.0)
    done = SimpleNamespace(iterations=frames(100)[0], maps=maps)
    assert "ETA" not in progress_line(done, 100, 50.0, start_iteration=0)  # never an ETA at 100 %
    empty = SimpleNamespace(iterations=its.iloc[:0], maps=maps.iloc[:0])
    assert progress_line(empty, 100, 3.0).startswith("waiting for the first iteration")


def test_best_map_counts_darknets_best_column_too() -> None:
    maps = pd.DataFrame({"iteration": [100, 200], "map50": [0.5, 0.4], "best_map50": [0.5, 0.61]})
    h = SimpleNamespace(iterations=frames(200)[0], maps=maps)
    assert "best mAP 61.00%" in progress_line(h, 1000, 1.0)


def test_live_view_rate_is_measured_by_its_own_clock() -> None:
    view = LiveView(RecordingReporter(), max_batches=1000, png=False)
    its, maps = frames(10)
    view.rate(SimpleNamespace(iterations=its, maps=maps), now=view.started + 0.5)  # first sight: iteration 10
    later = SimpleNamespace(iterations=frames(30)[0], maps=maps)
    assert view.rate(later, now=view.started + 10.5) == pytest.approx(2.0)  # 20 iterations in 10 s


def test_html_live_view_is_throttled_and_updates_one_key() -> None:
    rec = RecordingReporter()
    view = LiveView(rec, min_interval=3600, max_batches=1000, title="t", png=False)
    its, maps = frames(10)
    h = SimpleNamespace(iterations=its, maps=maps)
    sent = sum(view.update(h) for _ in range(200))
    assert sent == 1  # the first one; the rest fall within min_interval
    assert view.update(h, force=True)
    assert view.update(h, final=True)
    htmls = [payload for kind, payload in rec.events if kind == "html"]
    assert len(htmls) == 3 and {key for key, _ in htmls} == {LIVE_KEY}
    first, second, final = (html for _, html in htmls)
    assert len(first) > 1_000_000  # plotly.js embedded the first time (a reporter without mime bundles)
    assert len(second) < 50_000  # then reused
    assert len(final) > 1_000_000  # and again at the end, for a saved notebook
    assert "iteration 10/1,000" in second


def test_a_new_map_row_is_shown_at_once_despite_the_throttle() -> None:
    rec = RecordingReporter()
    view = LiveView(rec, min_interval=3600, png=False)
    its, maps = frames(100, maps_every=50)
    assert view.update(SimpleNamespace(iterations=its, maps=maps.iloc[:1]))
    assert not view.update(SimpleNamespace(iterations=its, maps=maps.iloc[:1]))
    assert view.update(SimpleNamespace(iterations=its, maps=maps))
    assert "best mAP 90.00%" in view.last_text


class BundleReporter(RecordingReporter):
    """A reporter with mime bundles, as notebook.py's (records them)."""

    def display(self, key, bundle, text=""):
        self.events.append(("display", (key, bundle)))


def shown(rec, key):
    """The bundles sent to display `key`, in order."""
    return [p[1] for kind, p in rec.events if kind == "display" and p[0] == key]


def test_the_live_chart_is_one_host_then_small_feed_messages_and_a_finished_chart() -> None:
    rec = BundleReporter()
    view = LiveView(rec, min_interval=0, max_batches=600_000, title="big", png=False)
    its, maps = frames(500_000, maps_every=1000)
    its["rate"] = np.where(its["iteration"] < 1000, 0.001 * (its["iteration"] / 1000) ** 4, 0.001)
    its["seconds"], its["images"] = 0.5, its["iteration"] * 64.0
    for n in (400_000, 400_500, 401_000, 500_000):
        view.update(SimpleNamespace(iterations=its.iloc[:n], maps=maps), force=True)
    hosts, feeds = shown(rec, LIVE_KEY), shown(rec, LIVE_KEY + ":feed")
    assert len(hosts) == 1 and len(feeds) == 3  # the host once; then only the feed is replaced
    from plotly.offline import get_plotlyjs

    assert hosts[0]["text/html"].count(get_plotlyjs()) == 1 and "window.__dmHost" in hosts[0]["text/html"]
    for b in feeds:
        assert len(b["text/html"]) < 20_000 and view.div_id in b["text/html"]  # per update, at 500,000 iterations
    assert view.last_update_bytes == len(feeds[-1]["text/html"])
    view.update(SimpleNamespace(iterations=its, maps=maps), final=True)
    final = shown(rec, LIVE_KEY)[-1]
    assert shown(rec, LIVE_KEY + ":feed")[-1] == {"text/plain": ""}  # no script that needs a kernel is saved
    assert {PLOTLY_MIME, "text/html", "text/plain"} <= set(final) and get_plotlyjs() not in final["text/html"]
    spec = final[PLOTLY_MIME]
    assert spec["layout"]["uirevision"] == LIVE_KEY and spec["config"]["responsive"]
    names = [t["name"] for t in spec["data"]]
    assert names[:4] == ["loss", "avg loss", "learning rate", "images/s"] and "mAP@0.50" in names
    ips = next(t for t in spec["data"] if t["name"] == "images/s")
    assert decode(ips["y"]) == pytest.approx(128.0)  # 64 images per iteration at 0.5 s
    layout = spec["layout"]
    assert layout["yaxis2"]["tickvals"] == [0, 20, 40, 60, 80, 100] and layout["yaxis2"]["ticksuffix"] == "%"
    assert layout["legend"]["y"] < 0  # below the plot, where the modebar cannot cover it
    statuses = shown(rec, LIVE_KEY + ":status")
    assert "iteration 500,000/600,000" in statuses[-1]["text/plain"]
    assert "darknet-live-detached" in statuses[0]["text/html"]  # a live status carries its stale mark's timer
    assert "darknet-live-detached" not in statuses[-1]["text/html"]  # a finished one does not


def test_a_feed_message_carries_only_the_points_that_changed() -> None:
    x, y = np.arange(1, 101), np.linspace(10, 1, 100).astype(np.float32)
    trace = {"type": "scatter", "uid": "loss", "name": "loss", "x": x, "y": y, "line": {"width": 1}}
    other = {"type": "scatter", "uid": "map50", "name": "mAP", "x0": 50, "dx": 50, "y": np.array([1.0, 2.0])}
    feed = TraceFeed()
    feed.reset({"data": [trace, other], "layout": {"height": 400}})
    grown = {**trace, "x": np.arange(1, 121), "y": np.concatenate([y[:-1], np.linspace(1.5, 0.5, 21)]).astype(np.float32)}
    msg = feed.message({"data": [grown, other], "layout": {"height": 400}})
    (loss,) = msg["traces"]  # the mAP trace did not change: not sent
    assert loss["uid"] == "loss" and loss["from"] == 99 and len(loss["x"]) == 21  # from the first changed point on
    assert "layout" not in msg and "order" not in msg
    assert feed.message({"data": [grown, other], "layout": {"height": 400}}) is None  # nothing changed
    more = {**other, "y": np.array([1.0, 2.0, 3.0])}
    assert feed.message({"data": [grown, more], "layout": {"height": 400}})["traces"] == [{"uid": "map50", "trace": more}]
    restyled = {**grown, "line": {"width": 2}}
    msg = feed.message({"data": [restyled], "layout": {"height": 500}})
    assert msg["traces"] == [{"uid": "loss", "trace": restyled}] and msg["order"] == ["loss"]
    assert msg["layout"] == {"height": 500}
    html = feed_html("dm-x", msg)
    assert html.startswith("<script") and '"dm-x"' in html and "bdata" in html  # typed arrays, base64


def test_the_loss_axis_is_capped_after_a_huge_start_or_log_scale() -> None:
    its, _ = frames(1000)
    its["avg_loss"] = 800 * np.exp(-np.arange(1000) / 20) + 2.0
    its["loss"] = its["avg_loss"]
    capped = build_figure(its, None).layout.yaxis
    assert capped.range[1] < 100 and capped.range[0] == 0
    assert build_figure(its, None, loss_scale="log").layout.yaxis.type == "log"
    assert build_figure(its, None, loss_scale="linear").layout.yaxis.range is None


def test_permanent_lines_every_n_iterations() -> None:
    rec = RecordingReporter()
    view = LiveView(rec, min_interval=0, max_batches=1000, every=100, png=False)
    its, maps = frames(1000)
    for n in range(10, 1001, 10):
        view.update(SimpleNamespace(iterations=its.iloc[:n], maps=maps), force=True)
    view.update(SimpleNamespace(iterations=its, maps=maps), final=True)
    infos = [p for kind, p in rec.events if kind == "info"]
    assert [int(re.match(r"iteration ([\d,]+)", s).group(1).replace(",", "")) for s in infos] == list(range(100, 1001, 100))


def test_fail_without_data_replaces_the_chart_by_the_message_once() -> None:
    rec = BundleReporter()
    view = LiveView(rec, png=False)
    its, maps = frames(0)
    view.update(SimpleNamespace(iterations=its, maps=maps), force=True)
    view.fail("darknet stopped: cannot open obj.data")
    chart = shown(rec, LIVE_KEY)[-1]
    assert PLOTLY_MIME not in chart and chart["text/plain"] == "darknet stopped: cannot open obj.data"
    status = shown(rec, LIVE_KEY + ":status")[-1]
    assert "waiting" not in status["text/html"] and status["text/html"].count("cannot open obj.data") == 1


def test_interrupted_keeps_the_chart_and_shows_one_line() -> None:
    rec = BundleReporter()
    view = LiveView(rec, png=False)
    its, maps = frames(50)
    h = SimpleNamespace(iterations=its, maps=maps)
    view.update(h, force=True)
    view.interrupted("interrupted at iteration 50: the log and the weights are kept", h)
    chart = shown(rec, LIVE_KEY)[-1]
    assert PLOTLY_MIME in chart and "text/html" in chart
    assert view.last_text == "interrupted at iteration 50: the log and the weights are kept"


def test_compare_runs_draws_each_run_and_tabulates_them() -> None:
    a_its, a_maps = frames(200, maps_every=50)
    b_its, b_maps = frames(100, maps_every=50, seed=1)
    b_maps["map50"] = [0.3, 0.2]
    runs = [SimpleNamespace(name="a", iterations=a_its, maps=a_maps, sessions=[{"seconds": 60}, {"seconds": 30}]),
            SimpleNamespace(name="b", iterations=b_its, maps=b_maps, sessions=[])]
    fig, table = compare_runs(runs)
    assert [t.name for t in fig.data] == ["a avg loss", "a mAP@0.50", "b avg loss", "b mAP@0.50"]
    assert table["run"].tolist() == ["a", "b"]
    assert table["best mAP@0.50 (%)"].tolist() == [90.0, 30.0] and table["best at iteration"].tolist() == [200, 50]
    assert table["iterations"].tolist() == [200, 100] and table["time"].tolist()[0] == "1m 30s"
    assert table["final avg loss"].tolist() == pytest.approx([1.0, 1.0])


def test_gpu_poller_reads_nvidia_smi_output_at_most_every_interval(tmp_path) -> None:
    fake = tmp_path / "smi"  # a real executable printing nvidia-smi's CSV (no GPU on CI machines)
    fake.write_text("#!/bin/sh\necho '87, 4000, 16000'\n")
    fake.chmod(0o755)
    poller = GpuPoller(interval=3600, command=[str(fake)])
    assert poller.poll(10) and not poller.poll(20)
    assert poller.samples == {"iteration": [10], "util": [87.0], "mem": [25.0]}


def test_live_view_updates_after_the_interval_and_shows_only_a_short_clean_tail() -> None:
    rec = RecordingReporter()
    view = LiveView(rec, min_interval=0.01, tail_lines=5, png=False)
    for i in range(1, 101):
        view.add_text(f"\x1b[1;37m{i}: 1.0, 1.0 avg\x1b[0m\r\n")
    view.add_text("progress 10%\rprogress 100%")
    its, maps = frames(3)
    h = SimpleNamespace(iterations=its, maps=maps)
    view.update(h)
    time.sleep(0.02)
    assert view.update(h)
    assert view.tail() == ["97: 1.0, 1.0 avg", "98: 1.0, 1.0 avg", "99: 1.0, 1.0 avg", "100: 1.0, 1.0 avg",
                           "progress 100%"]
    html = rec.events[-1][1][1]
    assert "\x1b" not in html and "96: 1.0" not in html and "100: 1.0, 1.0 avg" in html


# ---------------------------------------------------------------------------------------------- in a real kernel

BACKGROUND_CELL = r'''
import threading, time
import numpy as np, pandas as pd
from types import SimpleNamespace
from darknet_magics.notebook import CellReporter
from darknet_magics.view.live import LiveView
reporter = CellReporter()
view = LiveView(reporter, min_interval=0, max_batches=30, png=False, every=10)
first = threading.Event()
def work():
    for n in range(1, 31):
        its = pd.DataFrame({"iteration": np.arange(1, n + 1), "loss": np.ones(n), "avg_loss": np.ones(n)})
        view.update(SimpleNamespace(iterations=its, maps=None), force=True)
        first.set()
        time.sleep(0.1)
    view.update(SimpleNamespace(iterations=its, maps=None), final=True)
worker = threading.Thread(target=work, daemon=True)
worker.start()
first.wait(30)
'''


@pytest.mark.slow
@pytest.mark.once  # a real kernel: once
@pytest.mark.timeout(180)
def test_background_thread_updates_the_cell_that_started_it_in_a_real_kernel() -> None:
    """ipykernel routes output by parent header: a thread's updates must name the starting cell, not the one
    executing now (jupyter_client reads every IOPub message, as a front end does)."""
    pytest.importorskip("ipykernel")
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        msgs: list[dict] = []

        def run(code: str) -> str:
            msg_id = kc.execute(code)
            while True:
                msg = kc.get_iopub_msg(timeout=60)
                msgs.append(msg)
                if (msg["parent_header"].get("msg_id") == msg_id and msg["msg_type"] == "status"
                        and msg["content"]["execution_state"] == "idle"):
                    return msg_id

        start = run(BACKGROUND_CELL)
        n_during_start = len(msgs)
        other = run("for i in range(3):\n    print('other cell', i)\n    time.sleep(0.5)")
        run("worker.join(60)")
        time.sleep(0.5)
        while True:  # what the thread sent after the last cell went idle
            try:
                msgs.append(kc.get_iopub_msg(timeout=1))
            except queue.Empty:  # nothing more within the second
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    displays = [m for m in msgs if m["msg_type"] in ("display_data", "update_display_data")]
    host = [m for m in displays if "window.__dmHost" in m["content"]["data"].get("text/html", "")
            and PLOTLY_MIME not in m["content"]["data"]]  # the finished chart's HTML form draws through it too
    feeds = [m for m in displays if "__dmFeed(" in m["content"]["data"].get("text/html", "")]
    finals = [m for m in displays if PLOTLY_MIME in m["content"]["data"]]
    assert len(host) == 1 and host[0]["msg_type"] == "display_data" and len(feeds) >= 20 and len(finals) == 1
    charts = host + feeds + finals
    assert {m["parent_header"]["msg_id"] for m in charts} == {start}  # all to the starting cell
    assert {m["content"]["transient"]["display_id"] for m in feeds} != {host[0]["content"]["transient"]["display_id"]}
    assert finals[0]["content"]["transient"]["display_id"] == host[0]["content"]["transient"]["display_id"]
    assert any(m is c for c in charts for m in msgs[n_during_start:])  # and some while another cell ran
    streams = [m for m in msgs if m["msg_type"] == "stream"]
    assert {m["parent_header"]["msg_id"] for m in streams if "other cell" in m["content"]["text"]} == {other}
    permanent = [m["content"]["text"] for m in streams if m["content"]["text"].startswith("iteration ")]
    assert [t.split("/")[0] for t in permanent] == ["iteration 10", "iteration 20", "iteration 30"]
    assert all(m["parent_header"]["msg_id"] == start for m in streams if m["content"]["text"].startswith("iteration "))
    final = finals[0]["content"]["data"][PLOTLY_MIME]
    assert decode(final["data"][1]["y"]).size == 30


@pytest.mark.slow
@pytest.mark.once  # a real kernel: once
@pytest.mark.timeout(300)
def test_bench_live_meets_the_byte_targets_in_a_real_kernel() -> None:
    import subprocess
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_live.py"
    proc = subprocess.run([sys.executable, str(bench)], capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ratio:")]
    # bytes per cell (2), per update, and the time per update at 500,000 iterations
    assert len(lines) == 4 and all(line.endswith(": ok") for line in lines), proc.stdout


@pytest.mark.timeout(120)
def test_save_chart_writes_html_and_png_into_the_run_folder(tmp_path) -> None:
    from darknet_magics.view.live import save_chart

    its, maps = frames(300, maps_every=100)
    saved = save_chart(SimpleNamespace(iterations=its, maps=maps, class_ap=None), tmp_path / "run 1", title="run 1")
    page = saved.html.read_text()
    from plotly.offline import get_plotlyjs

    assert saved.html.name == "chart.html" and "Plotly.react" in page
    assert page.count(get_plotlyjs()) == 1  # opens offline, from the drive
    if saved.png is None:  # no kaleido/Chromium here: said why
        assert saved.reason
    else:  # made in the background: save_chart returned before it
        assert saved.pending is not None
        png = saved.wait(100)
        assert png is not None, live.png_unavailable()
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------------------ incremental downsampling
LOG = Path(__file__).resolve().parent / "fixtures" / "logs" / "alexeyab-train-map.pty.log"


def real_looking(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(iterations, loss, spike positions): the real log's 200 losses tiled to `n` iterations on a slow decay, with
    loss spikes (what people look for in the chart) and a diverged stretch of NaN."""
    from darknet_magics.output.logs import parse_log

    real = parse_log(LOG).iterations["loss"].to_numpy()
    rng = np.random.default_rng(seed)
    loss = np.resize(real[20:], n) * np.linspace(1.5, 0.5, n)
    spikes = np.arange(n // 50, n - n // 50, n // 25) + rng.integers(0, n // 100, size=24)  # far apart
    loss[spikes] += rng.uniform(20, 60, size=len(spikes))
    loss[n // 3: n // 3 + 50] = np.nan
    return np.arange(1, n + 1, dtype=np.float64), loss, spikes


def same_points(a: tuple, b: tuple) -> None:
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])  # NaN == NaN here


def test_downsampler_keeps_spikes_first_last_and_stays_under_max_points() -> None:
    x, y, spikes = real_looking(300_000)
    px, py = downsample(x, y, 400)
    assert len(px) <= 400 and px[0] == 1 and px[-1] == 300_000 and py[-1] == y[-1]
    assert np.all(np.diff(px) >= 0)
    drawn = dict(zip(px.tolist(), py.tolist()))
    for i in spikes:  # every spike is the max of its bucket (24 spikes, 12,000 iterations apart)
        assert drawn.get(x[i]) == y[i], f"spike at iteration {x[i]:.0f} lost"
    assert np.nanmin(py) == np.nanmin(y) and np.nanmax(py) == np.nanmax(y)
    gap = (px >= x[300_000 // 3]) & (px <= x[300_000 // 3 + 49])
    assert np.isnan(py[gap]).all() or not gap.any()  # the NaN stretch never wins a bucket against real values
    small = downsample(x[:300], y[:300], 400)  # fewer points than max_points: all of them, as they are
    same_points(small, (x[:300], y[:300]))


def test_downsampler_fed_in_chunks_equals_from_scratch() -> None:
    x, y, _ = real_looking(120_000, seed=1)
    rng = np.random.default_rng(2)
    ds, i = Downsampler(400), 0
    checked = 0
    while i < len(x):
        k = int(rng.choice([1, 7, 300, 1000, 9_000]))
        ds.extend(x[i:i + k], y[i:i + k])
        i = min(len(x), i + k)
        if rng.random() < 0.3 or i == len(x):
            same_points(ds.points(), downsample(x[:i], y[:i], 400))
            checked += 1
    assert checked > 5 and ds.width > 1  # the buckets doubled on the way


def test_downsampler_keeps_a_gap_for_a_bucket_of_nan_and_refuses_going_back() -> None:
    x = np.arange(10_000, dtype=np.float64)
    y = np.ones(10_000)
    y[4000:6000] = np.nan
    ds = Downsampler(100).extend(x, y)
    px, py = ds.points()
    assert np.isnan(py).any() and ds.finite
    assert not Downsampler(10).extend(x[:50], np.full(50, np.nan)).finite
    with pytest.raises(ValueError):
        ds.extend([5.0], [1.0])


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(allow_nan=True, allow_infinity=True, width=32), min_size=1, max_size=3000),
       st.integers(min_value=4, max_value=300), st.lists(st.integers(min_value=1, max_value=700), min_size=1),
       st.integers(min_value=0, max_value=5))
def test_downsampler_property(values: list[float], max_points: int, chunks: list[int], gaps: int) -> None:
    y = np.array(values, dtype=np.float64)
    x = np.cumsum(np.arange(len(y)) % (gaps + 1) == 0).astype(np.float64)  # repeated x when gaps > 0
    ds, i, c = Downsampler(max_points), 0, 0
    while i < len(x):
        k = chunks[c % len(chunks)]
        ds.extend(x[i:i + k], y[i:i + k])
        i, c = i + k, c + 1
    px, py = ds.points()
    same_points((px, py), downsample(x, y, max_points))
    assert len(px) <= max(max_points, len(x)) and np.all(np.diff(px) >= 0)
    assert px[0] == x[0] and px[-1] == x[-1]
    finite = y[np.isfinite(y)]
    if len(finite):
        assert np.nanmax(py[np.isfinite(py)]) == finite.max() and np.nanmin(py[np.isfinite(py)]) == finite.min()


def test_live_view_fed_chunk_by_chunk_draws_the_chart_built_from_scratch() -> None:
    from darknet_magics.output.events import Iteration, Resumed
    from darknet_magics.output.history import History
    from darknet_magics.view.live import _figure_dict

    x, y, _ = real_looking(60_000, seed=3)
    rows = [Iteration(int(i), float(v), 1.0 + 1 / i, 0.001 if i > 1000 else 0.001 * (i / 1000) ** 4, 0.5,
                      i * 64.0, 0.0) for i, v in zip(x, y)]
    history, rec = History(), BundleReporter()
    view = LiveView(rec, min_interval=0, max_batches=60_000, png=False)
    for start in range(0, 60_000, 3_000):
        history.add(rows[start:start + 3_000])
        view.update(history, force=True)
        scratch = _figure_dict(history.iterations, history.maps, max_points=view.max_points, title=None,
                               uirevision=view.key)
        assert json.loads(live._to_json(view._spec))["data"] == json.loads(live._to_json(scratch))["data"]
    history.add([Resumed(50_000)] + rows[49_999:52_000])  # a resume drops the rows from 50,000 on: read again
    view.update(history, force=True)
    spec = json.loads(live._to_json(view._spec))
    loss = next(t for t in spec["data"] if t["name"] == "loss")
    assert decode(loss["x"])[-1] == 52_000
    scratch = _figure_dict(history.iterations, None, max_points=view.max_points, title=None, uirevision=view.key)
    assert spec["data"] == json.loads(live._to_json(scratch))["data"]


@pytest.mark.timeout(120)
def test_the_png_export_works_wherever_kaleido_and_a_chromium_exist() -> None:
    """Colab's plotly 5.24 refuses kaleido>=1 through `to_image` (it warned and gave no PNG): kaleido's own call."""
    import shutil
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pytest.importorskip("kaleido", reason="needs the png extra: pip install -e '.[png]'")
    if not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")):
        pytest.skip("needs Chromium (apt-get install -y chromium)")
    its, maps = frames(300, maps_every=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no kaleido warning in the user's cell either
        png = live.figure_png(live._figure_dict(its, maps, max_points=400, title="png"), width=live.NOTEBOOK_PNG_WIDTH)
    assert png is not None, live.png_unavailable()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") == live.NOTEBOOK_PNG_WIDTH


@pytest.mark.timeout(150)
def test_the_end_of_a_run_does_not_wait_for_the_png(tmp_path) -> None:
    """Ctrl-C, `%yolo stop`, a finished run, `%yolo log`: the view's last frame and the run folder's chart return
    at once (kaleido starting a Chromium took 8-13 s there); the PNGs follow from the worker."""
    from darknet_magics.view.live import save_chart

    its, maps = frames(2000, maps_every=500)
    h = SimpleNamespace(iterations=its, maps=maps, class_ap=None)
    rec = BundleReporter()
    view = LiveView(rec, min_interval=0, max_batches=4000, png=True)
    view.update(h, force=True)
    start = time.monotonic()
    saved = save_chart(h, tmp_path / "run", title="run")  # what training's end does, then the view's last frame
    view.interrupted("interrupted at iteration 2000: the log and the weights are kept", h)
    took = time.monotonic() - start
    print(f"interrupt to prompt (view and run folder): {took:.3f} s")
    assert took < 1.0
    final = shown(rec, LIVE_KEY)[-1]
    assert PLOTLY_MIME in final and "image/png" not in final
    if view.png_pending is None:  # no PNG export in this process (it failed once)
        assert live.png_unavailable()
        return
    png = view.png_pending.result(120)
    if png is None:  # no kaleido/Chromium here
        assert live.png_unavailable() and saved.wait(120) is None
        return
    assert shown(rec, LIVE_KEY)[-1]["image/png"] == base64.b64encode(png).decode("ascii")  # added where it can be
    assert saved.wait(120).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


from test_training import DARKNET, TEMPLATE, log_iterations, workspace, write_cfg  # noqa: E402,F401 (a fixture)


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.skipif(not DARKNET.exists() or not TEMPLATE.exists(), reason="needs Debian's darknet (/usr/bin/darknet)")
def test_ctrl_c_to_prompt_with_real_darknet_and_a_notebook_reporter(workspace, tmp_path) -> None:
    """A real pjreddie darknet trains with a reporter that shows mime bundles (so the PNG path is taken, as in a
    notebook); a kernel interrupt at iteration 3: the time from it to the KeyboardInterrupt the cell sees."""
    import _thread
    import threading

    from darknet_magics.train import training

    cfg = write_cfg(workspace / "long-ctrl-c.cfg", 500)
    run_dir = tmp_path / "ctrl-c"
    sent: list[float] = []

    def interrupt() -> None:
        end = time.monotonic() + 120
        while time.monotonic() < end:
            log = run_dir / "train.log"
            if log.exists() and any(i >= 3 for i in log_iterations(log)):
                sent.append(time.monotonic())
                _thread.interrupt_main()  # what a kernel interrupt does
                return
            time.sleep(0.05)

    threading.Thread(target=interrupt, daemon=True).start()
    rec = BundleReporter()
    with pytest.raises(KeyboardInterrupt):
        training.train(darknet=DARKNET, data=workspace / "obj.data", cfg=cfg, weights=None, map=False, gpus=None,
                       backup=workspace / "backup-ctrl-c", clear=False, run_dir=run_dir, reporter=rec, cwd=workspace,
                       view=LiveView.maker(rec))
    took = time.monotonic() - sent[0]
    print(f"Ctrl-C to prompt, real darknet, notebook reporter: {took:.2f} s")
    assert took < 1.5, "no wait for the PNG between the interrupt and the prompt"
    charts = [p[1] for kind, p in rec.events if kind == "display" and PLOTLY_MIME in p[1]]
    assert (run_dir / "chart.html").is_file() and charts and "image/png" not in charts[0]
