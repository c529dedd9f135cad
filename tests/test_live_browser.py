"""The live chart in a real browser, as a user sees it: during a run in JupyterLab 4 and Notebook 7 it grows, a zoom
made with the mouse survives the next update, and the saved notebook reopened untrusted shows the finished chart;
Colab's output frame is reproduced by replaying a real kernel's messages into a page that handles them as Colab
does. The saved chart fits the output area's width in JupyterLab (untrusted and trusted) and in the offline HTML
report, with no horizontal scrolling.

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

from browser import CHROMIUM, BrowserError, Chromium, drag, fit_js

REPO = Path(__file__).resolve().parents[1]
LOG = REPO / "tests" / "fixtures" / "logs" / "alexeyab-train-map.pty.log"
WIDTH, HEIGHT = 1200, 1100  # a laptop's browser window with JupyterLab's file browser open
PLOTLY_MIME = "application/vnd.plotly.v1+json"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.once,  # a real kernel (and browser): run once, in the environment conftest's ONCE_IN_SECOND names
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
    settings = _settings(tmp_path_factory.mktemp("lab settings"))
    proc, url = _start_server("lab", folder, settings, tmp_path_factory.mktemp("lab log") / "lab.log")
    yield url
    _stop(proc)


def _settings(folder: Path) -> Path:
    """A user settings folder that turns JupyterLab's news pop-up off."""
    (folder / "@jupyterlab" / "apputils-extension").mkdir(parents=True)
    (folder / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    return folder


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


# ---------------------------------------------------------------------------------------------- during a live run
# A real log replayed at about 15 chunks a second through the notebook reporter: ~13 s of updates, ~40 of them.
LIVE_CELL = f'''import time
from darknet_magics.output.history import History
from darknet_magics.output.logparse import LogParser
from darknet_magics.view.live import LiveView
from darknet_magics.notebook import NotebookReporter
raw = open({str(LOG)!r}, "rb").read().decode("utf-8", "replace")
history, parser, rep = History(), LogParser(), NotebookReporter()
view = LiveView(rep, min_interval=0.3, max_batches=200, title="live replay", every=50, png=False)
sizes = []
for i in range(0, len(raw), 4096):
    view.add_text(raw[i:i + 4096]); history.add(parser.feed(raw[i:i + 4096]))
    if view.update(history) and view.last_update_bytes:
        sizes.append(view.last_update_bytes)
    time.sleep(0.15)
history.add(parser.close())
view.update(history, final=True)
print(f"feed bytes per update: max {{max(sizes)}}, mean {{sum(sizes) // len(sizes)}}, updates {{len(sizes)}}")'''

REOPENED = """(() => {
  const gd = document.querySelector('.jp-RenderedPlotly.js-plotly-plot, .jp-RenderedPlotly .js-plotly-plot');
  return gd && gd.querySelector('svg.main-svg') && !document.querySelector('.dm-chart[data-dm-rev]')
         ? gd.data.length : null; })()"""
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
CHART_STATE = """(() => {
  const gd = document.querySelector('.dm-chart[data-dm-rev]');
  if (!gd) return null;
  const r = gd.layout.xaxis.range;
  return {points: +gd.getAttribute('data-dm-points'), rev: +gd.getAttribute('data-dm-rev'),
          x: r ? [r[0], r[1]] : null, autorange: gd.layout.xaxis.autorange};
})()"""


def _zoom(browser: Chromium) -> dict:
    """A box zoom over the main plot, dragged with the mouse; the chart's state once plotly applied it."""
    left, top, width, height = browser.eval("""(() => {
        const r = document.querySelector('.dm-chart .nsewdrag').getBoundingClientRect();
        return [r.left, r.top, r.width, r.height]; })()""")
    drag(browser, left + 0.15 * width, top + 0.2 * height, left + 0.5 * width, top + 0.8 * height)
    return browser.wait_for(f"(() => {{ const s = {CHART_STATE}; return s && s.autorange === false ? s : null; }})()",
                            10)


def _zoom_mid_run(browser: Chromium, where: str) -> dict:
    """Sample the chart, zoom it with the mouse, wait for the next update: the points grew, the zoom stayed."""
    first = browser.wait_for(CHART_STATE, 150)
    browser.eval("document.querySelector('.dm-chart[data-dm-rev]').scrollIntoView({block: 'center'})")
    time.sleep(0.3)
    zoomed = _zoom(browser)
    later = browser.wait_for(f"(() => {{ const s = {CHART_STATE}; return s && s.rev > {zoomed['rev']} "
                             f"&& s.points > {zoomed['points']} ? s : null; }})()", 60)
    print(where, "mid-run samples", first, zoomed, later)
    assert later["points"] > first["points"], f"{where}: the chart grows during the run"
    assert later["x"] == pytest.approx(zoomed["x"]) and later["autorange"] is False, \
        f"{where}: the zoom survives the next update ({zoomed} -> {later})"
    return {"first": first, "zoomed": zoomed, "later": later}


@pytest.fixture(scope="module")
def live_folder(tmp_path_factory) -> Path:
    nbformat = pytest.importorskip("nbformat", reason="needs the test extra: pip install -e '.[test]'")
    folder = tmp_path_factory.mktemp("live run")
    for app in ("lab", "notebook"):
        nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(LIVE_CELL)])
        nb.metadata["kernelspec"] = KERNELSPEC  # no "select a kernel" dialog
        nbformat.write(nb, str(folder / f"live-{app}.ipynb"))
    return folder


def _start_server(app: str, root: Path, settings: Path, log_path: Path) -> tuple[subprocess.Popen, str]:
    """JupyterLab (``lab``) or Notebook 7 (``notebook``) on `root`, no token, the app exposed as
    ``window.jupyterapp`` (how the test runs a cell and saves), kernels importing this checkout."""
    port = _free_port()
    main = "jupyterlab" if app == "lab" else "notebook"
    pytest.importorskip(main, reason=f"needs {main} (pip install {main})")
    opts = "LabApp" if app == "lab" else "JupyterNotebookApp"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyter", app, "--no-browser", f"--port={port}",
                             "--ServerApp.ip=127.0.0.1", "--allow-root", "--IdentityProvider.token=",
                             "--ServerApp.password=", f"--ServerApp.root_dir={root}", "--expose-app-in-browser",
                             f"--{opts}.user_settings_dir={settings}", f"--{opts}.workspaces_dir={settings / 'ws'}"],
                            stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            urllib.request.urlopen(url + "/api/status", timeout=5)
            return proc, url
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"jupyter {app} did not start: " + Path(log_path).read_text()[-2000:])
            time.sleep(0.5)


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


KERNEL_IDLE = """(() => { const w = window.jupyterapp && [...jupyterapp.shell.widgets('main')].find(w => w.sessionContext);
  const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
  return !!(k && k.status === 'idle' && document.querySelector('.jp-Notebook .jp-Cell')); })()"""


@pytest.mark.timeout(420)
@pytest.mark.parametrize("app", ["lab", "notebook"])
def test_the_chart_moves_during_a_run_keeps_the_zoom_and_is_saved(app, live_folder, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    proc, url = _start_server(app, live_folder, _settings(tmp_path / "settings"), tmp_path / "server.log")
    name = f"live-{app}.ipynb"
    try:
        with Chromium(tmp_path / "profile", width=WIDTH, height=HEIGHT) as browser:
            browser.open(f"{url}/lab/tree/{name}?reset" if app == "lab" else f"{url}/notebooks/{name}")
            browser.wait_for(KERNEL_IDLE, 120)
            browser.eval("(jupyterapp.commands.execute('notebook:run-all-cells'), true)")
            samples = _zoom_mid_run(browser, app)
            browser.screenshot(tmp_path / f"live-{app}-zoomed.png")
            _keep(tmp_path / f"live-{app}-zoomed.png")
            # the end: the host becomes the finished chart (plotly's renderer here), the feed empties
            browser.wait_for("!!document.querySelector('.jp-RenderedPlotly svg.main-svg')", 90)
            text = browser.wait_for("""(() => { const o = [...document.querySelectorAll('.jp-OutputArea-output')]
                .map(e => e.textContent).find(t => t.includes('feed bytes per update')); return o || null; })()""", 30)
            browser.eval("jupyterapp.commands.execute('docmanager:save').then(() => true)")
            time.sleep(1.0)
            nb = nbformat.read(str(live_folder / name), as_version=4)
            outputs = nb.cells[0].outputs
            blob = json.dumps(outputs)
            assert "__dmFeed(" not in blob and "window.define=__dmDefine" not in blob, "no live scripts saved"
            finals = [o for o in outputs if PLOTLY_MIME in o.get("data", {})]
            assert len(finals) == 1 and len(blob) < 400_000, "one finished chart, no plotly.js in the notebook"
            # reopened untrusted (its content changed: the trust signature no longer matches) and offline
            nb.metadata["reopened"] = True
            nbformat.write(nb, str(live_folder / f"reopened-{app}.ipynb"))
            browser.open(f"{url}/lab/tree/reopened-{app}.ipynb?reset" if app == "lab"
                         else f"{url}/notebooks/reopened-{app}.ipynb")
            # plotly's renderer saved a PNG of the graph it drew into the notebook: it shows that first, and the
            # graph when the pointer enters it
            browser.wait_for("!!document.querySelector('.jp-RenderedPlotly img.plot-img[src^=\"data:image/png\"], "
                             ".jp-RenderedPlotly svg.main-svg')", 150)
            browser.eval("""(() => { const img = document.querySelector('.jp-RenderedPlotly img.plot-img');
                if (img) img.dispatchEvent(new MouseEvent('mouseenter')); return true; })()""")
            try:
                traces = browser.wait_for(REOPENED, 60)
            except BrowserError:  # what the page shows instead, for the report
                browser.screenshot(tmp_path / f"live-{app}-reopened-failed.png")
                print(browser.eval("""[location.href, ...[...document.querySelectorAll('.jp-OutputArea-output, .jp-Dialog')]
                    .map(e => e.className + ': ' + e.innerHTML.slice(0, 300))]"""))
                raise
            assert traces >= 4, "the finished chart (loss, avg loss, lr, images/s, mAP...) shows when reopened"
            browser.screenshot(tmp_path / f"live-{app}-reopened.png")
        print(app, text.strip().splitlines()[-1], samples)
    finally:
        _stop(proc)


COLAB_FRAME = """<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><div id="cell"></div><script>
// Colab's output frame, as far as it can be reproduced here: one document per cell; display_data appends an
// output, update_display_data replaces the HTML of the output with that display id; scripts in HTML run.
window.__outputs = {};
window.__show = function (msg) {
  const id = (msg.content.transient || {}).display_id, data = msg.content.data;
  let el = id && window.__outputs[id];
  if (!el) { el = document.createElement('div'); document.getElementById('cell').appendChild(el);
             if (id) window.__outputs[id] = el; }
  if (msg.msg_type === 'stream') { el.textContent += msg.content.text; return true; }
  el.innerHTML = data['text/html'] || ('<pre>' + (data['text/plain'] || '') + '</pre>');
  for (const old of el.querySelectorAll('script')) {
    const s = document.createElement('script'); s.text = old.text; old.replaceWith(s);
  }
  return true;
};
</script></body></html>"""


@pytest.mark.timeout(300)
def test_colabs_output_path_moves_and_keeps_the_zoom(tmp_path):
    """A real kernel runs the live cell; its IOPub messages are replayed, at the pace they came, into a page that
    handles them as Colab's output frame does (no plotly renderer: the HTML forms)."""
    pytest.importorskip("ipykernel")
    from jupyter_client.manager import start_new_kernel

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    km, kc = start_new_kernel(kernel_name="python3", env=env)
    msgs: list[tuple[float, dict]] = []
    try:
        msg_id = kc.execute(LIVE_CELL)
        t0 = time.monotonic()
        while True:
            msg = kc.get_iopub_msg(timeout=120)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] in ("display_data", "update_display_data", "stream"):
                msgs.append((time.monotonic() - t0, {k: msg[k] for k in ("msg_type", "content")}))
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    page = tmp_path / "colab-frame.html"
    page.write_text(COLAB_FRAME)
    with Chromium(tmp_path / "profile", width=WIDTH, height=HEIGHT) as browser:
        browser.open(page.as_uri())
        browser.wait_for("typeof window.__show === 'function'", 30)
        start = time.monotonic()
        zoom_at = len(msgs) // 3
        samples = None
        for i, (at, msg) in enumerate(msgs):
            time.sleep(max(0.0, at - (time.monotonic() - start)))
            browser.call("Runtime.evaluate", {"expression": f"window.__show({json.dumps(msg)})"}, timeout=120)
            if i == zoom_at:
                samples = _zoom_mid_run_replaying(browser, msgs, i)
                break
        assert samples is not None
    print("colab frame", samples)


def _zoom_mid_run_replaying(browser: Chromium, msgs: list, done: int) -> dict:
    """`_zoom_mid_run` where the updates come from the replay: zoom, then replay messages until the next one."""
    first = browser.wait_for(CHART_STATE, 60)
    zoomed = _zoom(browser)
    for _, msg in msgs[done + 1:]:
        browser.call("Runtime.evaluate", {"expression": f"window.__show({json.dumps(msg)})"}, timeout=60)
        state = browser.eval(CHART_STATE)
        if state and state["rev"] > zoomed["rev"] and state["points"] > zoomed["points"]:
            break
    later = browser.wait_for(CHART_STATE, 10)
    assert later["rev"] > zoomed["rev"] and later["points"] > first["points"], (first, zoomed, later)
    assert later["x"] == pytest.approx(zoomed["x"]) and later["autorange"] is False, (zoomed, later)
    return {"first": first, "zoomed": zoomed, "later": later}
