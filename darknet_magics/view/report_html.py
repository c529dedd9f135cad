"""An executed notebook -> one self-contained HTML report (plotly.js embedded once, nothing loaded from a CDN).

nbconvert's HTML templates load require.js and MathJax from a CDN, and plotly figures arrive in three shapes:
our live view's HTML (plotly.js embedded in its final render), a `TrainingRun`'s ``_repr_html_`` (embedded too),
and a plotly `Figure` shown by plotly's renderer, which in a plain Jupyter kernel is only the
``application/vnd.plotly.v1+json`` mimetype that nbconvert cannot show. Here: that mimetype gets an HTML form
that draws with ``window.Plotly``; plotly.js goes once into ``<head>`` (before anything that could define an AMD
loader, so it sets ``window.Plotly``); copies embedded in outputs are removed; CDN scripts are dropped.
The report opens offline, in any browser, from a file.
"""
from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any, Optional

from ..fileio import atomic_write_text

PLOTLY_MIME = "application/vnd.plotly.v1+json"
_CDN_SCRIPT = re.compile(r'<script[^>]*\ssrc="https?://[^"]*"[^>]*>\s*</script>\s*', re.IGNORECASE)
_HEAD = re.compile(r"<head[^>]*>", re.IGNORECASE)


def _plotlyjs() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def plotly_output_html(figure: dict) -> str:
    """HTML that draws a plotly figure dict with the page's ``window.Plotly`` (no plotly.js, no CDN)."""
    import plotly.io as pio

    # the chart's own config (live.PLOTLY_CONFIG: responsive) travels in the mimetype's payload; to_html takes it
    # apart from the figure
    config = figure.get("config") or {"responsive": True, "displaylogo": False}
    figure = {k: v for k, v in figure.items() if k != "config"}
    return pio.to_html(figure, include_plotlyjs=False, include_mathjax=False, full_html=False, config=config,
                       default_width="100%", default_height=450, validate=False)


def prepare(nb: Any) -> Any:
    """A copy of `nb` whose plotly-mimetype outputs get our HTML form (see `plotly_output_html`).

    An HTML form that plotly's own notebook renderer wrote is replaced too: it waits for require.js
    (``require(["plotly"], ...)``), which a page without a CDN never loads.
    """
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data")
            if data and PLOTLY_MIME in data:
                data["text/html"] = plotly_output_html(data[PLOTLY_MIME])
    return nb


def finish_html(html: str, plotlyjs: Optional[str] = None) -> str:
    """Drop CDN scripts, remove plotly.js copies from outputs, and put one copy at the top of ``<head>``."""
    plotlyjs = _plotlyjs() if plotlyjs is None else plotlyjs
    html = _CDN_SCRIPT.sub("", html)
    html = html.replace(plotlyjs, "")
    tag = '<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: "local"};' + plotlyjs + "</script>"
    match = _HEAD.search(html)
    if match is None:
        return tag + html
    return html[:match.end()] + "\n" + tag + "\n" + html[match.end():]


def notebook_to_html(nb: Any, *, title: Optional[str] = None) -> str:
    """The report's HTML for an executed notebook (an `nbformat.NotebookNode`)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="lab")
    nb = prepare(nb)
    if title:
        nb.metadata["title"] = title
    body, _ = exporter.from_notebook_node(nb)
    return finish_html(body)


def write_report(nb: Any, path: Path, *, title: Optional[str] = None) -> Path:
    """Write `nb` as an HTML report to `path` (atomically); returns the path."""
    path = Path(path)
    atomic_write_text(path, notebook_to_html(nb, title=title))
    return path
