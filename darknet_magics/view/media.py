"""How a chart reaches a screen or a file: JSON with typed arrays, plotly.js inlined, our HTML, PNG, mime bundles."""
from __future__ import annotations

import base64
import json
import os
import re
import shutil
import uuid
from typing import Any, Optional

import numpy as np

PLOTLY_MIME = "application/vnd.plotly.v1+json"
# The PNG in a notebook output: plotly's JupyterLab renderer shows it at its own pixel size (no max-width) until the
# pointer enters it, so it must fit a narrow output area (a 1200 px window with the file browser open leaves ~770
# px); chart.png in the run folder is a file, drawn wider. Plotly's default width.
NOTEBOOK_PNG_WIDTH = 700
# plotly.js config of every chart we send: `responsive` redraws it at the output's width when the window or the
# output area changes size (JupyterLab, VS Code, Colab, the report); no plotly logo in the modebar.
PLOTLY_CONFIG = {"responsive": True, "displaylogo": False}


_DTYPES = {"int8": "i1", "uint8": "u1", "int16": "i2", "uint16": "u2", "int32": "i4", "uint32": "u4",
           "float32": "f4", "float64": "f8"}


def _typed(obj: Any) -> Any:
    """Numpy arrays -> plotly.js typed-array specs (``{"dtype", "bdata"}``: base64, a third of JSON's size)."""
    if isinstance(obj, np.ndarray):
        if obj.dtype == np.int64:
            obj = obj.astype(np.int32) if (not len(obj) or abs(obj).max() < 2**31) else obj.astype(np.float64)
        code = _DTYPES.get(obj.dtype.name)
        if code is None:
            return obj.tolist()
        return {"dtype": code, "bdata": base64.b64encode(np.ascontiguousarray(obj).tobytes()).decode("ascii")}
    if isinstance(obj, dict):
        return {k: _typed(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_typed(v) for v in obj]
    return obj


def _to_json(obj: Any) -> str:
    from plotly.io.json import to_json_plotly

    return to_json_plotly(_typed(obj))


def _plotlyjs() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _plotlyjs_version() -> str:
    try:
        from plotly.offline import get_plotlyjs_version

        return get_plotlyjs_version()
    except ImportError:  # pragma: no cover - very old plotly
        return "latest"


def _render(spec_json: str, *, div_id: str, include_plotlyjs: bool, height: int = 420) -> str:
    """Our own small HTML: a div and a script that draws `spec_json` with ``Plotly.react``.

    Without plotly.js embedded, the page's ``window.Plotly`` is used, else plotly.js is loaded from plotly's CDN.
    For pages and files (chart.html, HTML reporters); notebooks get `renderer.figure_bundle`.
    """
    head = ""
    if include_plotlyjs:
        head = '<script type="text/javascript">' + _plotlyjs() + "</script>\n"
    # Without a window.Plotly (a front end that drops the first render's bundle between updates), fetch the same
    # plotly.js version from its CDN once; offline, say how to see the chart instead.
    script = (
        "(function(){var s=" + spec_json + ';var el=document.getElementById("' + div_id + '");'
        "if(!el)return;function draw(){window.Plotly.react(el,s.data,s.layout," + json.dumps(PLOTLY_CONFIG) + ");}"
        "if(window.Plotly){draw();return;}"
        'var fail=function(){el.textContent="(the chart needs plotly.js: run.figure shows it)";};'
        "if(!window.__dmPlotlyLoading){var t=document.createElement('script');"
        f"t.src='https://cdn.plot.ly/plotly-{_plotlyjs_version()}.min.js';"
        "window.__dmPlotlyLoading=t;document.head.appendChild(t);}"
        "window.__dmPlotlyLoading.addEventListener('load',draw);"
        "window.__dmPlotlyLoading.addEventListener('error',fail);})();"
    )
    return (head + f'<div id="{div_id}" style="height:{height}px;width:100%;"></div>\n'
            f'<script type="text/javascript">{script}</script>')


def figure_html(fig: Any, *, include_plotlyjs: bool = True, div_id: Optional[str] = None) -> str:
    """HTML that draws `fig` (a Figure or a ``{"data", "layout"}`` dict) without reaching the internet.

    With ``include_plotlyjs=True`` the plotly.js bundle (~4.5 MB) is embedded; with False the HTML uses a
    ``window.Plotly`` that an earlier output defined (and says so in the div when there is none).
    """
    spec = fig if isinstance(fig, dict) else fig.to_plotly_json()
    return _render(_to_json({"data": spec.get("data", []), "layout": spec.get("layout", {})}),
                   div_id=div_id or ("dm-" + uuid.uuid4().hex[:12]), include_plotlyjs=include_plotlyjs)


_PNG_STATE: dict[str, Any] = {"failed": None}


def figure_png(fig: Any, *, width: int = 1000, height: Optional[int] = None) -> Optional[bytes]:
    """The chart as PNG bytes (plotly's static export: kaleido driving Chrome/Chromium), or None when unavailable.

    kaleido>=1 finds Chrome by itself; a system Chromium (Debian's ``chromium``) is used through ``BROWSER_PATH``.
    The first failure is remembered (`png_unavailable`): a run does not wait for a broken export twice.
    """
    if _PNG_STATE["failed"] is not None:
        return None
    try:
        import plotly.io as pio

        if not os.environ.get("BROWSER_PATH"):
            system = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))
                           if p), None)
            if system:
                os.environ["BROWSER_PATH"] = system
        spec = fig if isinstance(fig, dict) else fig.to_plotly_json()
        import plotly.graph_objects as go

        figure = go.Figure(spec)
        height = height or int(spec.get("layout", {}).get("height", 420))
        if _old_plotly_with_new_kaleido():
            import warnings

            with warnings.catch_warnings():  # kaleido>=1 warns plotly<6.1 (Colab's 5.24) users at import
                warnings.simplefilter("ignore", UserWarning)
                import kaleido
            # plotly<6.1's to_image speaks kaleido 0.2's API only: kaleido's own call works with both
            return kaleido.calc_fig_sync(figure.to_dict(), opts={"format": "png", "width": width, "height": height})
        return pio.to_image(figure, format="png", width=width, height=height)
    except Exception as exc:  # no kaleido, no Chrome, a sandbox: the interactive chart is still there
        _PNG_STATE["failed"] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
        return None


def _old_plotly_with_new_kaleido() -> bool:
    """plotly < 6.1 (Colab ships 5.24) beside kaleido >= 1: plotly's static export refuses to run."""
    from importlib.metadata import PackageNotFoundError, version

    import plotly

    try:
        kaleido_major = int(version("kaleido").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return False
    major, minor = (int(p) for p in re.findall(r"\d+", plotly.__version__)[:2])
    return kaleido_major >= 1 and (major, minor) < (6, 1)


def png_unavailable() -> Optional[str]:
    """Why `figure_png` returned None (once it failed), else None."""
    return _PNG_STATE["failed"]
