"""The quickstart for real: `python -m darknet_magics demo` executes examples/quickstart.ipynb in a Jupyter kernel
(nbclient + ipykernel) that trains Debian's darknet on a generated dataset; the executed notebook's outputs are
checked against the training log it wrote, and its HTML report is opened in a headless Chromium.

One demo run (module fixture) serves every test here. Counts taken from the log use our own regex, not the
package's parser.
"""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# the quickstart notebook run in a real kernel (the demo): once, in the environment conftest's ONCE_IN_SECOND names
pytestmark = pytest.mark.once

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "examples" / "quickstart.ipynb"
ITERATIONS = 24
PLOTLY_MIME = "application/vnd.plotly.v1+json"
# pjreddie: "12: 5.1, 7.2 avg, 0.001 rate, ..."; AlexeyAB: "12: 5.1, 7.2 avg loss, ..."
ITERATION_LINE = re.compile(r"^\s*(\d+): [-+\w.]+, [-+\w.]+ avg(?: loss)?,", re.MULTILINE)
CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install -y chromium); "
                                                             "CI installs it")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def iteration_lines(log: Path) -> list[int]:
    """The iteration numbers of the log's iteration lines (pty carriage returns and colours removed)."""
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", log.read_text(errors="replace")).replace("\r", "\n")
    return [int(m.group(1)) for m in ITERATION_LINE.finditer(text)]


def code_cell(nb, startswith: str):
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.source.lstrip().startswith(startswith):
            return cell
    raise AssertionError(f"no code cell starting with {startswith!r}")


def stream_text(cell, name: str = "stdout") -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream" and o.name == name)


def decode_array(value) -> list[float]:
    """A plotly JSON array: a plain list, or a typed array ``{"dtype": "i4", "bdata": base64}``."""
    if isinstance(value, dict) and "bdata" in value:
        import numpy as np

        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"])).tolist()
    return list(value)


class Demo:
    def __init__(self, out: Path, proc: subprocess.CompletedProcess) -> None:
        import nbformat

        self.out, self.proc = out, proc
        self.report = out / "report.html"
        self.nb = nbformat.read(str(out / "quickstart.ipynb"), as_version=4)
        logs = sorted(out.rglob("runs/*/train.log"))
        assert len(logs) == 1, f"expected one training log under {out}: {logs}"
        self.log = logs[0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Demo:
    pytest.importorskip("nbclient", reason="needs the test extra: pip install -e '.[test]'")
    pytest.importorskip("ipykernel", reason="needs the test extra: pip install -e '.[test]'")
    if shutil.which("darknet") is None and not os.environ.get("DARKNET_SOURCE"):
        pytest.skip("needs darknet on PATH (apt-get install -y darknet) or DARKNET_SOURCE")
    out = tmp_path_factory.mktemp("demo") / "out"
    # A hang guard only (a kernel that never returns); no assertion is made on time.
    proc = subprocess.run([sys.executable, "-m", "darknet_magics", "demo", "--out", str(out),
                           "--iterations", str(ITERATIONS)], cwd=tmp_path_factory.getbasetemp(), env=_env(),
                          capture_output=True, text=True, timeout=3600)
    print(proc.stdout, proc.stderr, sep="\n")
    assert proc.returncode == 0, f"demo failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr[-4000:]}"
    return Demo(out, proc)


# Every test that uses the `demo` fixture trains real darknet: marked slow (CI still runs them).
slow = pytest.mark.slow


# ---------------------------------------------------------------------------------------------- the notebook file


@pytest.mark.parametrize("marker", ["%load_ext darknet_magics", "%%darknet", "drive {DRIVE}", "clone {DARKNET_SOURCE}",
                                    "make ", "stage {drive}", "%yolo data", "%yolo cfg", "%yolo check",
                                    "%yolo train", "map", "yolo_run.iterations", "yolo_run.figure", "%yolo eval", "yolo_eval.per_class",
                                    "%yolo test"])
def test_quickstart_has_every_step(marker):
    import nbformat

    nb = nbformat.read(str(NOTEBOOK), as_version=4)
    nbformat.validate(nb)
    assert any(marker in c.source for c in nb.cells if c.cell_type == "code")
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "ship the notebook without outputs"
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "IN_COLAB" in tagged[0].source


# ---------------------------------------------------------------------------------------------- executed by a kernel


@slow
def test_demo_prints_where_the_report_is(demo):
    assert f"report: {demo.report}" in demo.proc.stdout
    assert demo.report.is_file() and (demo.out / "quickstart.ipynb").is_file()
    assert re.search(rf"trained {ITERATIONS} iterations \(final avg loss [\d.]+\)", demo.proc.stdout)


@slow
def test_every_cell_ran_without_an_error(demo):
    code = [c for c in demo.nb.cells if c.cell_type == "code"]
    assert code and all(c.execution_count for c in code)
    errors = [(c.source[:40], o.get("ename"), o.get("evalue")) for c in code for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    injected = [c for c in demo.nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and f"ITERATIONS = {ITERATIONS}" in injected[0].source


@slow
def test_log_has_one_line_per_iteration(demo):
    assert iteration_lines(demo.log) == list(range(1, ITERATIONS + 1))


@slow
def test_iterations_dataframe_matches_the_log(demo):
    cell = code_cell(demo.nb, "its = yolo_run.iterations")
    m = re.search(r"(\d+) iterations parsed from (\S+)", stream_text(cell))
    assert m, stream_text(cell)
    assert Path(m.group(2)) == demo.log
    assert int(m.group(1)) == len(iteration_lines(demo.log)) == ITERATIONS
    frame = [o for o in cell.outputs if o.output_type == "execute_result"]
    assert frame, "the tail() dataframe is the cell's result"
    html = frame[0].data["text/html"]
    assert "<table" in html and "avg_loss" in html and "iteration" in html
    last_row = re.findall(r"<tr>\s*<th>\d+</th>\s*<td>(\d+)</td>", html)
    assert last_row and int(last_row[-1]) == ITERATIONS


@slow
def test_live_chart_is_one_light_finished_chart_with_the_loss_trace(demo):
    cell = code_cell(demo.nb, "%yolo train")
    charts = [o for o in cell.outputs if o.output_type in ("display_data", "update_display_data")
              and PLOTLY_MIME in o.get("data", {})]
    assert len(charts) == 1, "the live chart is one display handle updated in place"
    spec = charts[0].data[PLOTLY_MIME]
    traces = {t["name"]: t for t in spec["data"]}
    assert {"loss", "avg loss"} <= set(traces)
    assert decode_array(traces["avg loss"]["x"]) == list(range(1, ITERATIONS + 1))
    assert spec["layout"].get("uirevision"), "zoom and hidden traces survive updates"
    # the saved form: plotly's mimetype and our HTML (Colab); the live host (plotly.js) and feed scripts are gone
    assert "window.__dmHost" in charts[0].data["text/html"]
    assert "__dmFeed(" not in json.dumps(cell.outputs)
    warnings = stream_text(cell, "stderr")
    assert len(json.dumps(cell.outputs)) < 300_000, "at most 300 KB per training cell"
    statuses = [o for o in cell.outputs if "darknet-live-status" in o.get("data", {}).get("text/html", "")]
    assert statuses and f"iteration {ITERATIONS}/{ITERATIONS}" in statuses[-1].data["text/plain"]
    assert "Traceback" not in warnings


@slow
def test_figure_output_has_the_loss_trace(demo):
    cell = code_cell(demo.nb, "yolo_run.figure")
    figures = [o.data[PLOTLY_MIME] for o in cell.outputs
               if o.output_type in ("execute_result", "display_data") and PLOTLY_MIME in o.get("data", {})]
    if not figures:  # a plotly renderer that writes HTML only (the browser test checks that it draws)
        assert any("plotly" in o.get("data", {}).get("text/html", "").lower() for o in cell.outputs)
        return
    traces = {t.get("name"): t for t in figures[0]["data"]}
    assert decode_array(traces["avg loss"]["x"]) == list(range(1, ITERATIONS + 1))
    assert len(decode_array(traces["loss"]["y"])) == ITERATIONS


@slow
def test_detection_shows_the_predictions_image(demo):
    cell = code_cell(demo.nb, "%yolo test")
    images = [o for o in cell.outputs if o.output_type == "display_data"
              and ({"image/jpeg", "image/png"} & set(o.get("data", {})))]
    assert len(images) == 1
    assert "detection(s)" in stream_text(cell)


@slow
def test_eval_shows_the_metrics_and_its_three_views(demo):
    cell = code_cell(demo.nb, "%yolo eval")
    assert re.search(r"mAP@0\.50 [\d.]+%, mAP@0\.50:0\.95 [\d.]+% on \d+ validation image", stream_text(cell))
    views = [o for o in cell.outputs if o.output_type == "display_data" and "application/vnd.plotly.v1+json" in o.data]
    assert [o.data["text/plain"].split(":")[0] for o in views] == ["confusion", "curves", "mosaic"]


# ---------------------------------------------------------------------------------------------- the HTML report


@slow
def test_report_is_self_contained(demo):
    html = demo.report.read_text(encoding="utf-8")
    assert not re.search(r'<script[^>]*\ssrc="https?://', html), "no script may come from a CDN (no internet)"
    from plotly.offline import get_plotlyjs

    assert html.count(get_plotlyjs()) == 1, "plotly.js is embedded exactly once"
    assert html.index(get_plotlyjs()) < html.index("<body")


def _chromium(args: list[str], url: str, profile: Path) -> subprocess.CompletedProcess:
    profile.mkdir(parents=True)
    cmd = [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, url]
    # timeout: a hang guard only
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


@slow
@needs_chromium
def test_report_renders_the_charts_in_chromium(demo, tmp_path):
    proc = _chromium(["--virtual-time-budget=10000", "--dump-dom"], demo.report.as_uri(), tmp_path / "profile")
    assert proc.returncode == 0, proc.stderr[-2000:]
    dom = proc.stdout
    (tmp_path / "dom.html").write_text(dom)
    # plotly draws into SVG only when its JavaScript ran: one scatterlayer per chart, one <g> per trace
    layers = dom.count('class="scatterlayer mlayer"')
    traces = re.findall(r'<g class="trace scatter [^"]*"', dom)
    assert layers >= 2, "two charts: the live view and yolo_run.figure"
    assert len(traces) >= 4, "at least loss and avg loss in each chart"
    assert dom.count('class="js-line"') >= 4, "each trace drew its line path"
    assert ">(the chart needs plotly.js" not in dom  # the fallback text our live view shows without plotly.js


@slow
@needs_chromium
def test_report_screenshot(demo, tmp_path):
    shot = tmp_path / "report.png"
    proc = _chromium(["--virtual-time-budget=10000", "--window-size=1280,6000", f"--screenshot={shot}"],
                     demo.report.as_uri(), tmp_path / "profile")
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1280, 6000)
    print(f"screenshot: {shot}")


@slow
@needs_chromium
@pytest.mark.parametrize("width", [1280, 760])
def test_report_charts_fit_the_page_without_scrolling_sideways(demo, tmp_path, width):
    # laid out sizes need JavaScript in the page: Chromium over the DevTools protocol (tests/browser.py)
    from browser import Chromium, fit_js

    with Chromium(tmp_path / "profile", width=width, height=1000) as browser:
        browser.open(demo.report.as_uri())
        # two plots drawn (plotly gives each plot two svg.main-svg: counting those passed with one plot drawn)
        browser.wait_for("Array.from(document.querySelectorAll('.js-plotly-plot'))"
                         ".filter(p => p.querySelector('svg.main-svg')).length >= 2", 60)
        measures = browser.eval(fit_js(".js-plotly-plot", ".jp-OutputArea-output"))
    assert len(measures) >= 2, "the live view and yolo_run.figure"
    for m in measures:
        assert m["width"] > 300 and m["right"] <= m["area_right"] + 1, m
        assert m["labels_right"] <= m["area_right"] + 1, f"the right axes' labels stick out: {m}"
        assert not m["scrolls"] and not m["doc_scroll"], m
