"""live.py: downsampling, the figure, its HTML, the progress line and the throttled live view."""
from __future__ import annotations

import base64
import json
import re
import time
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darknet_magics.live import (LIVE_KEY, LiveView, build_figure, downsample_indices, figure_html,
                                 progress_line)
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


def test_progress_line() -> None:
    its, maps = frames(50, maps_every=25)
    its["seconds"] = 2.0
    h = SimpleNamespace(iterations=its, maps=maps)
    line = progress_line(h, 100, 100.0)
    assert line.startswith("iteration 50/100 (50.0%)")
    assert "avg loss 1" in line and "best mAP 90.00%" in line
    assert "0.50 it/s" in line and "ETA 1m 40s" in line  # 50 left at 2 s each
    resumed = progress_line(h, 100, 10.0, start_iteration=40)
    assert "1.00 it/s" in resumed and "ETA 50s" in resumed
    its["hours_left"] = 1.5
    assert "ETA 1h 30m" in progress_line(h, 100, 10.0)
    empty = SimpleNamespace(iterations=its.iloc[:0], maps=maps.iloc[:0])
    assert progress_line(empty, 100, 3.0).startswith("waiting for the first iteration")


def test_live_view_is_throttled_and_updates_one_key() -> None:
    rec = RecordingReporter()
    view = LiveView(rec, min_interval=3600, max_batches=1000, title="t")
    its, maps = frames(10)
    h = SimpleNamespace(iterations=its, maps=maps)
    sent = sum(view.update(h) for _ in range(200))
    assert sent == 1  # the first one; the rest fall within min_interval
    assert view.update(h, force=True)
    assert view.update(h, final=True)
    htmls = [payload for kind, payload in rec.events if kind == "html"]
    assert len(htmls) == 3 and {key for key, _ in htmls} == {LIVE_KEY}
    first, second, final = (html for _, html in htmls)
    assert len(first) > 1_000_000  # plotly.js embedded the first time
    assert len(second) < 50_000  # then reused
    assert len(final) > 1_000_000  # and again at the end, for a saved notebook
    assert "iteration 10/1,000" in second


def test_live_view_updates_after_the_interval_and_shows_only_a_short_clean_tail() -> None:
    rec = RecordingReporter()
    view = LiveView(rec, min_interval=0.01, tail_lines=5)
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
