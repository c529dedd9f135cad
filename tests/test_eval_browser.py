"""`%yolo eval`'s views in JupyterLab, as a user sees them: a real kernel (nbclient + ipykernel) runs the cell on a
model trained by Debian's darknet (conftest's `trained_model`), the notebook is saved untrusted, and a headless
Chromium (tests/browser.py) checks that the confusion matrix, the PR/F1 curves and the mosaic of the worst images
are drawn: three plotly graphs (or their PNG), then, with the pointer on each, the heatmap, the curves' lines and
the mosaic's pictures."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from browser import CHROMIUM, Chromium
from test_live_browser import KERNELSPEC, _settings, _start_server, _stop

pytestmark = [
    pytest.mark.slow,
    pytest.mark.once,  # a real kernel (and browser): run once, in the environment conftest's ONCE_IN_SECOND names
    pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (apt-get install -y chromium); CI installs it"),
]

# what each view draws once plotly.js has it: a heatmap, the curves' lines, the mosaic's pictures (layout images)
DRAWN = {"confusion": "g.hm image, .heatmaplayer image", "curves": ".scatterlayer .trace path.js-line",
         "mosaic": "g.layer-below image, .imagelayer image"}

GRAPHS = """(() => [...document.querySelectorAll('.jp-RenderedPlotly')].map(el => {
    const shown = el.querySelector('img.plot-img, svg.main-svg');
    return shown && shown.getBoundingClientRect().width > 0 ? shown.tagName : null; }))()"""


@pytest.mark.timeout(240)
def test_the_eval_views_are_drawn_in_jupyterlab_untrusted(trained_model, tmp_path: Path) -> None:
    nbformat = pytest.importorskip("nbformat", reason="needs the test extra: pip install -e '.[test]'")
    nbclient = pytest.importorskip("nbclient", reason="needs the test extra: pip install -e '.[test]'")
    root, data, cfg, weights = trained_model
    started = time.monotonic()
    cell = f"%load_ext darknet_magics\n%yolo eval {data} {cfg} {weights} bin=/usr/bin/darknet out={tmp_path}/evals"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    nb.metadata["kernelspec"] = KERNELSPEC
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
                            ).execute()
    outputs = nb.cells[0].outputs
    assert not [o for o in outputs if o.get("output_type") == "error"], outputs
    plotly = [o for o in outputs if "application/vnd.plotly.v1+json" in o.get("data", {})]
    assert len(plotly) == 3  # confusion, curves, mosaic
    nbformat.write(nb, str(tmp_path / "eval.ipynb"))  # never trusted: what a notebook from someone else is
    proc, url = _start_server("lab", tmp_path, _settings(tmp_path / "settings"), tmp_path / "server.log")
    try:
        with Chromium(tmp_path / "profile", width=1200, height=1100) as browser:
            browser.open(f"{url}/lab/workspaces/eval/tree/eval.ipynb?reset")
            shown = browser.wait_for(f"(() => {{ const g = {GRAPHS}; "
                                     "return g.length === 3 && g.every(Boolean) ? g : null; })()", 90)
            assert set(shown) <= {"IMG", "svg"}
            for index, (name, selector) in enumerate(DRAWN.items()):
                graph = f"document.querySelectorAll('.jp-RenderedPlotly')[{index}]"
                # plotly's renderer shows the PNG until the pointer enters it, then draws the graph itself
                browser.eval(f"(() => {{ const img = {graph}.querySelector('img.plot-img'); "
                             "if (img) img.dispatchEvent(new MouseEvent('mouseenter')); })()")
                count = browser.wait_for(f"(() => {{ const n = {graph}.querySelectorAll({selector!r}).length; "
                                         "return n > 0 ? n : null; })()", 60)
                print(name, count)
                if name == "mosaic":
                    assert count >= 2  # each worst image twice: ground truth | prediction
                    hrefs = browser.eval(f"[...{graph}.querySelectorAll({selector!r})].map(i => "
                                         "(i.getAttribute('href') || i.getAttribute('xlink:href') || '').slice(0, 11))")
                    assert all(h == "data:image/" for h in hrefs), hrefs
            browser.screenshot(tmp_path / "eval-jupyterlab.png")
    finally:
        _stop(proc)
    print(f"{time.monotonic() - started:.1f} s")
