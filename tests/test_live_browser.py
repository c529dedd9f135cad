"""The live chart in a real browser: it fits the output area's width in JupyterLab (untrusted and trusted, the
static PNG first and the interactive graph on hover) and in the offline HTML report, with no horizontal scrolling.

A notebook replays a real AlexeyAB log (tests/fixtures/logs, 200 iterations, mAP at 100 and 200) through
`LiveView` and a `NotebookReporter` in a real kernel (nbclient + ipykernel) and is saved; a JupyterLab server opens
it and a headless Chromium measures the laid out page over the DevTools protocol (tests/browser.py).
Screenshots go to the test's folder, and to ``$DM_SCREENSHOTS`` when set (how docs/images/live-*.png are made:
``DM_SCREENSHOTS=docs/images pytest tests/test_live_browser.py``).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from browser import CHROMIUM, Chromium, fit_js

REPO = Path(__file__).resolve().parents[1]
LOG = REPO / "tests" / "fixtures" / "logs" / "alexeyab-train-map.pty.log"
WIDTH, HEIGHT = 1200, 1100  # a laptop's browser window with JupyterLab's file browser open

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install -y chromium); CI installs it"),
]

CELL = f'''from darknet_magics.output.history import History
from darknet_magics.output.logparse import LogParser
from darknet_magics.view.live import LiveView
from darknet_magics.notebook import NotebookReporter
raw = open({str(LOG)!r}, "rb").read().decode("utf-8", "replace")
history, parser, rep = History(), LogParser(), NotebookReporter()
view = LiveView(rep, min_interval=0.2, max_batches=200, title="alexeyab 200 iterations (replayed log)", every=50)
for i in range(0, len(raw), 4096):
    view.add_text(raw[i:i + 4096]); history.add(parser.feed(raw[i:i + 4096])); view.update(history)
history.add(parser.close())
view.update(history, final=True)'''


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """untrusted.ipynb (as executed and saved), trusted.ipynb (`jupyter trust`) and report.html."""
    nbformat = pytest.importorskip("nbformat", reason="needs the test extra: pip install -e '.[test]'")
    nbclient = pytest.importorskip("nbclient", reason="needs the test extra: pip install -e '.[test]'")
    from darknet_magics.view.report_html import write_report

    folder = tmp_path_factory.mktemp("live browser")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    nbclient.NotebookClient(nb, timeout=240, kernel_name="python3").execute()
    errors = [o for o in nb.cells[0].outputs if o.get("output_type") == "error"]
    assert not errors, errors
    nbformat.write(nb, str(folder / "untrusted.ipynb"))
    nbformat.write(nb, str(folder / "trusted.ipynb"))
    subprocess.run([sys.executable, "-m", "jupyter", "trust", str(folder / "trusted.ipynb")], check=True,
                   capture_output=True, timeout=60)
    write_report(nb, folder / "report.html", title="live chart")
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(folder, tmp_path_factory):
    """A JupyterLab server on `folder` (no token, no news pop-up); its base URL."""
    pytest.importorskip("jupyterlab", reason="needs JupyterLab (pip install jupyterlab)")
    settings = tmp_path_factory.mktemp("lab settings")
    (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    port = _free_port()
    log = open(tmp_path_factory.mktemp("lab log") / "lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}",
                             "--ServerApp.ip=127.0.0.1", "--allow-root", "--IdentityProvider.token=", "--ServerApp.password=",
                             f"--ServerApp.root_dir={folder}", f"--LabApp.user_settings_dir={settings}",
                             f"--LabApp.workspaces_dir={settings / 'workspaces'}"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(url + "/api/status", timeout=5)
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("JupyterLab did not start: " + Path(log.name).read_text()[-2000:])
            time.sleep(0.5)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
    log.close()


def _keep(shot: Path) -> None:
    """Copy a screenshot to $DM_SCREENSHOTS (docs/images) when asked."""
    target = os.environ.get("DM_SCREENSHOTS")
    if target:
        shutil.copy(shot, Path(target) / shot.name)


def _assert_fits(measures: list[dict], where: str) -> None:
    assert measures, f"{where}: no chart on the page"
    for m in measures:
        assert m["width"] > 300, f"{where}: the chart is drawn ({m})"
        assert m["right"] <= m["area_right"] + 1 and m["left"] >= m["area_left"] - 1, f"{where}: wider than its area {m}"
        assert m["labels_right"] <= m["area_right"] + 1, f"{where}: the right axes' labels stick out {m}"
        assert not m["scrolls"] and not m["doc_scroll"], f"{where}: scrolls sideways {m}"


@pytest.mark.timeout(600)
@pytest.mark.parametrize("name", ["untrusted", "trusted"])
def test_the_chart_fits_the_output_area_in_jupyterlab(lab, folder, tmp_path, name):
    with Chromium(tmp_path / "profile", width=WIDTH, height=HEIGHT) as browser:
        browser.open(f"{lab}/lab/workspaces/{name}/tree/{name}.ipynb?reset")  # its own workspace: one tab
        # the final output carries a PNG: plotly's JupyterLab renderer shows it until the pointer enters it (and
        # draws the graph at once when there is no PNG: no kaleido); a JupyterLab without that renderer shows the
        # PNG itself
        plot, what = browser.wait_for("""(() => {
            for (const [sel, what] of [['.jp-RenderedPlotly', 'img'], ['.jp-RenderedPlotly', 'svg.main-svg'],
                                       ['.jp-RenderedImage', 'img']]) {
              const el = document.querySelector(sel + ' ' + what);
              if (el && el.getBoundingClientRect().width > 0) return [sel, what];
            }
            return null; })()""", 120)
        time.sleep(1.0)  # the layout settles (the file browser, the cell toolbar)
        first = browser.eval(fit_js(plot, ".jp-Cell-outputWrapper"))
        browser.screenshot(tmp_path / f"live-jupyterlab-{name}.png")
        _keep(tmp_path / f"live-jupyterlab-{name}.png")
        _assert_fits(first, f"JupyterLab {name}, {plot} {what}")
        assert first[0]["kind"] == ("IMG" if what == "img" else "svg")
        print(name, plot, what, first)
        if (plot, what) != (".jp-RenderedPlotly", "img"):
            return
        browser.eval(f"document.querySelector('{plot} img.plot-img').dispatchEvent(new MouseEvent('mouseenter'))")
        browser.wait_for(f"document.querySelector('{plot} svg.main-svg') && "
                         f"document.querySelector('{plot} svg.main-svg').getBoundingClientRect().width > 0", 60)
        time.sleep(1.0)
        interactive = browser.eval(fit_js(plot, ".jp-Cell-outputWrapper"))
        browser.screenshot(tmp_path / f"live-jupyterlab-{name}-interactive.png")
        if name == "untrusted":  # the trusted one looks the same
            _keep(tmp_path / f"live-jupyterlab-{name}-interactive.png")
        _assert_fits(interactive, f"JupyterLab {name}, the interactive graph")
        assert interactive[0]["kind"] == "svg"
        print(name, first, interactive)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("width", [1280, 800])
def test_the_chart_fits_the_report_page(folder, tmp_path, width):
    with Chromium(tmp_path / "profile", width=width, height=1100) as browser:
        browser.open((folder / "report.html").as_uri())
        browser.wait_for("document.querySelector('.js-plotly-plot svg.main-svg')", 60)
        time.sleep(1.0)
        measures = browser.eval(fit_js(".js-plotly-plot", ".jp-OutputArea-output"))
        if width == 1280:
            browser.screenshot(tmp_path / "live-report.png")
            _keep(tmp_path / "live-report.png")
        _assert_fits(measures, f"the report at {width} px")
        print(width, measures)


@pytest.mark.timeout(300)
def test_the_run_folders_chart_html_fits_narrow_and_wide_windows(tmp_path):
    """chart.html is our own `_render` (the form Colab gets, there with plotly.js from its CDN)."""
    from darknet_magics.output.history import History
    from darknet_magics.view.live import save_chart
    from darknet_magics.output.logparse import LogParser

    parser, history = LogParser(), History()
    history.add(parser.feed(LOG.read_bytes().decode("utf-8", "replace")) + parser.close())
    saved = save_chart(history, tmp_path / "run 1", title="run 1", png=False)
    for width in (1280, 700):
        with Chromium(tmp_path / f"profile-{width}", width=width, height=900) as browser:
            browser.open(saved.html.as_uri())
            browser.wait_for("document.querySelector('#chart svg.main-svg')", 60)
            time.sleep(0.5)
            measures = browser.eval(fit_js("#chart", "body"))
        _assert_fits(measures, f"chart.html at {width} px")
        assert measures[0]["width"] >= width - 40, f"the chart spans the window: {measures}"
