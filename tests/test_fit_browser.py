"""Every chart fits the output width it is shown in (issue 20): a 1024 px window with JupyterLab's file browser
open leaves about 600 px to an output, narrower than a PNG made for a wider one.

A notebook is executed by nbclient in a real kernel: `%yolo log` of a real AlexeyAB log (its chart),
``yolo_run.figure`` and the live chart replaying the same log (`LiveView`, which adds a PNG made by kaleido), then
saved; a JupyterLab server opens it in a headless Chromium (tests/browser.py) and every chart is measured against
its output area: first as the saved notebook shows it (plotly's JupyterLab renderer shows a saved PNG until the
pointer enters it), then as the interactive graph, then after the window was narrowed from 1400 to 1024 px (the
graph must follow the output's width, not keep the width it was first drawn at).
``DM_SCREENSHOTS=docs/images pytest tests/test_fit_browser.py`` makes docs/images/fit-jupyterlab-1024.png.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from browser import CHROMIUM, Chromium, fit_js
from test_live_browser import CELL, KERNEL_IDLE, KERNELSPEC, LOG, _assert_fits, _keep
from test_live_browser import lab  # noqa: F401  (its JupyterLab server, on this module's `folder`)

NARROW, WIDE, HEIGHT = 1024, 1400, 900

pytestmark = [
    pytest.mark.slow,
    pytest.mark.once,  # a real kernel (and browser): run once, in the environment conftest's ONCE_IN_SECOND names
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install -y chromium); CI installs it"),
]

# the live chart's PNG (made by kaleido after the final render) is waited for in the cell, so that the saved
# notebook holds it, as a front end that took the update saves it
CELLS = ["%load_ext darknet_magics", f"%yolo log {LOG} as yolo_run", "yolo_run.figure",
         CELL + "\nassert view.png_pending is not None and view.png_pending.result(120) is not None"]
PLOTS = ".jp-RenderedPlotly, .dm-chart"
SHOWN = """(() => { const n = [...document.querySelectorAll('.jp-RenderedPlotly')].filter(p =>
  [...p.querySelectorAll('img.plot-img, svg.main-svg')].some(e => e.getBoundingClientRect().width > 0)).length;
  return n >= COUNT ? n : null; })()"""
HOVER = """(() => { let n = 0; for (const img of document.querySelectorAll('.jp-RenderedPlotly img.plot-img')) {
  if (img.getBoundingClientRect().width > 0) { img.dispatchEvent(new MouseEvent('mouseenter')); n++; } }
  return n; })()"""
DRAWN = """(() => { const all = [...document.querySelectorAll('.jp-RenderedPlotly')];
  return all.length >= COUNT && all.every(p => { const s = p.querySelector('svg.main-svg');
    return s && s.getBoundingClientRect().width > 0; }); })()"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """charts.ipynb, executed and saved as a user's run leaves it."""
    nbformat = pytest.importorskip("nbformat", reason="needs the test extra: pip install -e '.[test]'")
    nbclient = pytest.importorskip("nbclient", reason="needs the test extra: pip install -e '.[test]'")
    folder = tmp_path_factory.mktemp("fit browser")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata["kernelspec"] = KERNELSPEC
    nbclient.NotebookClient(nb, timeout=240, kernel_name="python3").execute()
    errors = [o for c in nb.cells for o in c.outputs if o.get("output_type") == "error"]
    assert not errors, errors
    assert any("image/png" in o.get("data", {}) for o in nb.cells[3].outputs), "the live chart's PNG is saved"
    nbformat.write(nb, str(folder / "charts.ipynb"))
    return folder


def _measure(browser: Chromium, where: str) -> list[dict]:
    measures = browser.eval(fit_js(PLOTS, ".jp-Cell-outputWrapper"))
    print(where, measures)
    _assert_fits(measures, where)
    return measures


def _open(browser: Chromium, url: str, workspace: str, notebook: str = "charts.ipynb") -> int:
    """Open `notebook` in its own workspace (one tab); how many charts it shows, once shown."""
    browser.open(f"{url}/lab/workspaces/{workspace}/tree/{notebook}?reset")
    return browser.wait_for(SHOWN.replace("COUNT", "3"), 120)


def _draw(browser: Chromium, count: int) -> None:
    """The pointer enters each saved PNG: plotly's renderer draws the graph in its place."""
    browser.eval(HOVER)
    browser.wait_for(DRAWN.replace("COUNT", str(count)), 60)
    time.sleep(1.0)


@pytest.mark.timeout(420)
def test_every_chart_fits_a_1024_px_window_with_the_file_browser_open(lab, tmp_path):
    with Chromium(tmp_path / "profile", width=NARROW, height=HEIGHT) as browser:
        count = _open(browser, lab, "fit")
        assert browser.eval("document.querySelector('.jp-FileBrowser').getBoundingClientRect().width") > 150
        time.sleep(1.0)  # the layout settles (the file browser, the cell toolbar)
        saved = _measure(browser, f"{NARROW} px, as saved")
        _keep(browser.screenshot(tmp_path / "fit-jupyterlab-1024.png"))
        assert any(m["kind"] == "IMG" for m in saved), f"the saved PNG is shown until hovered: {saved}"
        _draw(browser, count)
        browser.screenshot(tmp_path / "interactive.png")
        interactive = _measure(browser, f"{NARROW} px, interactive")
        assert all(m["kind"] == "svg" for m in interactive), interactive
        assert saved[0]["area_width"] < 720, f"the file browser leaves a narrow output: {saved}"


@pytest.mark.timeout(420)
def test_a_graph_drawn_wide_follows_the_window_when_it_narrows(lab, tmp_path):
    with Chromium(tmp_path / "profile", width=WIDE, height=HEIGHT) as browser:
        _draw(browser, _open(browser, lab, "wide"))
        wide = _measure(browser, f"{WIDE} px")
        browser.call("Emulation.setDeviceMetricsOverride",
                     {"width": NARROW, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False})
        time.sleep(2.0)  # plotly's resize is debounced
        browser.screenshot(tmp_path / "narrowed.png")
        narrowed = _measure(browser, f"narrowed from {WIDE} to {NARROW} px")
        assert narrowed[0]["width"] < wide[0]["width"], (wide, narrowed)


@pytest.mark.timeout(420)
@pytest.mark.xfail(strict=True, reason="plotly's JupyterLab renderer (5.24 and 7.1) saves a PNG of the graph at "
                   "the width it was drawn at and shows it unscaled, clipped, when the notebook is reopened (until "
                   "hovered): its own code, which an output cannot style")
def test_a_notebook_saved_wide_and_reopened_narrow_shows_its_charts_whole(lab, folder, tmp_path):
    shutil.copy(folder / "charts.ipynb", folder / "wide.ipynb")  # the other tests keep the notebook as executed
    with Chromium(tmp_path / "wide", width=WIDE, height=HEIGHT) as browser:
        _draw(browser, _open(browser, lab, "save", "wide.ipynb"))
        browser.wait_for(KERNEL_IDLE, 120)
        deadline = time.monotonic() + 15
        while True:  # the renderer makes its PNG after drawing (plotly.js's toImage): save until the file has them
            browser.eval("[...jupyterapp.shell.widgets('main')].find(w => w.context).context.save().then(() => true)")
            saved = json.loads((folder / "wide.ipynb").read_text())
            pngs = sum("image/png" in o.get("data", {}) for c in saved["cells"] for o in c.get("outputs", []))
            if pngs >= 3 or time.monotonic() > deadline:
                break
            time.sleep(1.0)
    with Chromium(tmp_path / "narrow", width=NARROW, height=HEIGHT) as browser:
        _open(browser, lab, "reopen", "wide.ipynb")
        time.sleep(1.0)
        browser.screenshot(tmp_path / "reopened.png")
        _measure(browser, f"saved at {WIDE} px, reopened at {NARROW} px")


@pytest.mark.timeout(120)
def test_the_live_host_follows_its_output_when_only_the_output_narrows(tmp_path):
    """The host of a live chart (our renderer's HTML, drawn while a run goes on) in a page whose output narrows with
    no window resize (JupyterLab's file browser opened mid-run): plotly's `responsive` listens to the window only."""
    from darknet_magics.output.history import History
    from darknet_magics.output.logparse import LogParser
    from darknet_magics.view.chart import _figure_dict
    from darknet_magics.view.media import _to_json
    from darknet_magics.view.renderer import host_html

    parser, history = LogParser(), History()
    history.add(parser.feed(LOG.read_bytes().decode("utf-8", "replace")) + parser.close())
    spec = _figure_dict(history.iterations, history.maps, max_points=2000, title="host")
    page = tmp_path / "host.html"
    page.write_text('<!DOCTYPE html><html><body style="margin:0"><div id="area" style="width:1000px">'
                    + host_html("dm-host", _to_json(spec), height=560) + "</div></body></html>")
    with Chromium(tmp_path / "profile", width=1200, height=800) as browser:
        browser.open(page.as_uri())
        browser.wait_for("document.querySelector('#dm-host[data-dm-rev] svg.main-svg')", 60)
        wide = browser.eval(fit_js("#dm-host", "#area"))
        browser.eval("document.getElementById('area').style.width = '560px'")
        narrowed = browser.wait_for("(() => { const s = document.querySelector('#dm-host svg.main-svg');"
                                    " return s.getBoundingClientRect().width <= 560 ? 1 : null; })()", 10) \
            and browser.eval(fit_js("#dm-host", "#area"))
    print(wide, narrowed)
    assert wide[0]["width"] == pytest.approx(1000, abs=2), wide
    _assert_fits(narrowed, "the live host after its output narrowed to 560 px")
