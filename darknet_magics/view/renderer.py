"""Our own plotly renderer for notebooks: one chart that updates in place in JupyterLab, Notebook 7, VS Code and Colab.

Why not plotly's mimetype while a run goes on: plotly's JupyterLab renderer draws a graph once and ignores every
later ``update_display_data`` (plotly/plotly.py#3053), and JupyterLab reuses it, so the chart never moved. Why not
a widget (anywidget, plotly 6's FigureWidget): Colab needs its custom widget manager switched on, and a widget's
state is not in the saved notebook unless the user saves it, so a reopened notebook shows nothing.

So a live chart is two outputs of the same cell:

* the *host* (`host_html`): a div, plotly.js inlined (run only where the page has no ``window.Plotly`` yet: one
  copy per page or Colab cell frame, offline), the small runtime below, and the first spec. It is sent once and
  never updated while the run goes on, so nothing redraws it and the user's zoom stays.
* the *feed* (`feed_html`): a script that hands a small message to the host (`TraceFeed.message`: for each trace
  the points from the first one that changed on, a whole trace only when its style changed, the layout only when
  it changed). It is what ``update_display_data`` replaces, about once a second.

The runtime keeps the axes the user zoomed or panned (a ``plotly_relayout`` from the user marks them) and hidden
traces (their trace objects are kept) across updates, and counts the points drawn (``data-dm-points``) and the
updates applied (``data-dm-rev``) on the graph's div, which is what the browser tests read. A ResizeObserver on
the div redraws the graph at its output's new width (`Plotly.Plots.resize`): plotly's `responsive` follows the
window only, and JupyterLab's file browser or a side panel opened mid-run narrows the output with no window
resize. At the end of a run the host becomes a plain chart (`media.figure_bundle`: plotly's mimetype, the same
HTML, a PNG where one is ready) and the feed is emptied, so the saved notebook holds one finished chart and no
scripts that need a kernel.
"""
from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

from .media import PLOTLY_CONFIG, PLOTLY_MIME, _plotlyjs, _plotlyjs_version, _to_json, _typed

# The runtime: defines window.__dmHost (draw a chart's first spec, then apply what waited) and window.__dmFeed
# (apply a message, or keep it until the host has drawn). Plain ES5: Colab and VS Code run it as it is.
RUNTIME_JS = r"""
(function(){
var W=window;if(W.__dmFeed)return;var R=W.__dmCharts=W.__dmCharts||{};
var T={f4:Float32Array,f8:Float64Array,i1:Int8Array,u1:Uint8Array,i2:Int16Array,u2:Uint16Array,i4:Int32Array,
u4:Uint32Array};
function dec(v){if(v===null||typeof v!=='object')return v;
 if(typeof v.bdata==='string'&&T[v.dtype]){var s=atob(v.bdata),b=new Uint8Array(s.length);
  for(var i=0;i<s.length;i++)b[i]=s.charCodeAt(i);return Array.prototype.slice.call(new T[v.dtype](b.buffer));}
 if(Array.isArray(v))return v.map(dec);var o={};for(var k in v)o[k]=dec(v[k]);return o;}
function chart(id){return R[id]||(R[id]={queue:[],gd:null,user:{},rev:0});}
function count(gd){var n=0;for(var i=0;i<gd.data.length;i++){var t=gd.data[i];n+=t.y?t.y.length:0;}return n;}
function mark(c){c.gd.setAttribute('data-dm-points',count(c.gd));c.gd.setAttribute('data-dm-rev',c.rev);}
function keepUser(c,layout){for(var a in c.user){if(!c.user[a]||!c.gd.layout[a]||!c.gd.layout[a].range)continue;
 layout[a]=layout[a]||{};layout[a].range=c.gd.layout[a].range.slice();layout[a].autorange=false;}}
function apply(c,msg){var gd=c.gd,cur={},i;
 for(i=0;i<gd.data.length;i++)cur[gd.data[i].uid]=gd.data[i];
 (msg.traces||[]).forEach(function(t){if(t.trace){cur[t.uid]=dec(t.trace);return;}var o=cur[t.uid];if(!o)return;
  o.x=Array.prototype.slice.call(o.x,0,t.from).concat(dec(t.x));
  o.y=Array.prototype.slice.call(o.y,0,t.from).concat(dec(t.y));});
 var order=msg.order||gd.data.map(function(t){return t.uid;});
 var data=order.map(function(u){return cur[u];}).filter(Boolean);
 var layout=msg.layout?dec(msg.layout):gd.layout;keepUser(c,layout);
 c.rev+=1;layout.datarevision=c.rev;c.busy=true;
 return W.Plotly.react(gd,data,layout,c.config).then(function(){c.busy=false;mark(c);});}
function drain(c){var p=Promise.resolve();c.queue.splice(0).forEach(function(m){p=p.then(function(){return apply(c,m);});});
 return p;}
function listen(c){c.gd.on('plotly_relayout',function(e){if(c.busy||!e)return;for(var k in e){
 var m=/^([xy]axis\d*)\.(range|autorange)/.exec(k);if(m)c.user[m[1]]=(m[2]==='range');}});}
function follow(c){if(!W.ResizeObserver)return;var w=c.gd.offsetWidth,t=null;
 new W.ResizeObserver(function(){var n=c.gd.offsetWidth;if(t||!n||n===w)return;
  t=W.requestAnimationFrame(function(){t=null;w=c.gd.offsetWidth;W.Plotly.Plots.resize(c.gd);});}).observe(c.gd);}
W.__dmHost=function(id,spec,config){var el=document.getElementById(id);if(!el||!W.Plotly)return;var c=chart(id);
 c.config=config;c.busy=true;el.innerHTML='';
 W.Plotly.newPlot(el,dec(spec.data),dec(spec.layout),config).then(function(){c.gd=el;c.busy=false;mark(c);
  listen(c);follow(c);return drain(c);});};
W.__dmFeed=function(id,msg){var c=chart(id);c.queue.push(msg);if(c.gd&&!c.busy)drain(c);};
})();
"""


def _guarded_plotlyjs() -> str:
    """plotly.js, run only where the page has none (a second copy would orphan the graphs of the first); AMD's
    ``define`` is hidden meanwhile, or plotly.js registers itself as a module and never sets ``window.Plotly``."""
    return ('<script type="text/javascript">if(!window.Plotly){var __dmDefine=window.define;window.define=undefined;'
            + _plotlyjs() + "\nwindow.define=__dmDefine;}</script>")


def _cdn_loader() -> str:
    """Where no plotly.js was inlined and the page has none (a reopened Colab notebook): the same version from
    plotly's CDN, once per page."""
    return ("if(!window.Plotly&&!window.__dmPlotlyLoading){var t=document.createElement('script');"
            f"t.src='https://cdn.plot.ly/plotly-{_plotlyjs_version()}.min.js';window.__dmPlotlyLoading=t;"
            "document.head.appendChild(t);}")


def host_html(chart_id: str, spec_json: str, *, height: int, inline_plotlyjs: bool = True,
              config: Optional[dict] = None, fallback: str = "") -> str:
    """The host of a chart: its div, plotly.js (inlined, or from the page or its CDN), the runtime, the first spec.

    `fallback` is HTML shown in the div until the graph replaces it (a PNG, a line of text): what a reader without
    JavaScript sees.
    """
    cfg = json.dumps(config or PLOTLY_CONFIG)
    draw = f'window.__dmHost("{chart_id}",{spec_json},{cfg});'
    if inline_plotlyjs:
        start = draw
    else:  # wait for plotly.js from the page or its CDN
        start = (_cdn_loader() + "(function go(){if(window.Plotly){" + draw + "}else{setTimeout(go,100);}})();")
    return (f'<div class="dm-chart" id="{chart_id}" style="width:100%;min-height:{height}px">{fallback}</div>\n'
            + (_guarded_plotlyjs() if inline_plotlyjs else "")
            + f'<script type="text/javascript">{RUNTIME_JS}{start}</script>')


def feed_html(chart_id: str, message: dict) -> str:
    """The feed output: one message for the chart `chart_id` (nothing visible)."""
    return (f'<script type="text/javascript">window.__dmFeed&&window.__dmFeed("{chart_id}",'
            f"{_to_json(message)});</script>")


@dataclass
class _Sent:
    """One trace as the browser holds it: its style (the trace without x and y, as JSON; the whole trace when it
    has no x and y arrays) and its points."""

    style: str
    x: Optional[np.ndarray]
    y: Optional[np.ndarray]


def _key(obj: Any) -> str:
    """A comparable text of a spec part (plain json: plotly's encoder costs milliseconds a call, and this is
    called for every trace on every update)."""
    return json.dumps(_typed(obj), default=repr)


def _style(trace: dict) -> str:
    return _key({k: v for k, v in trace.items() if k not in ("x", "y")})


def _same_prefix(old: np.ndarray, new: np.ndarray) -> int:
    """How many leading values two arrays share (NaN equals NaN: a gap stays a gap)."""
    n = min(len(old), len(new))
    a, b = old[:n], new[:n]
    differ = a != b
    if a.dtype.kind == "f" and b.dtype.kind == "f":
        differ &= ~(np.isnan(a) & np.isnan(b))
    hits = np.flatnonzero(differ)
    return int(hits[0]) if len(hits) else n


class TraceFeed:
    """What the browser holds of one chart, and the smallest message that brings it to a new spec.

    Downsampled series change only at their end (`Downsampler` merges buckets a few times in a run), so a message
    carries, per trace, the points from the first one that changed; a trace whose style changed, or that has no
    x array (``x0``/``dx``), goes whole. Traces are matched by ``uid``.
    """

    def __init__(self) -> None:
        self._sent: dict[str, _Sent] = {}
        self._order: list[str] = []
        self._layout = ""

    def reset(self, spec: dict) -> None:
        """The browser now holds `spec` (the host drew it)."""
        self._sent = {}
        for trace in spec["data"]:
            self._trace_message(trace)
        self._order = [t["uid"] for t in spec["data"]]
        self._layout = _key(spec["layout"])

    def message(self, spec: dict) -> Optional[dict]:
        """The message that turns what the browser holds into `spec` (None when nothing changed); then it holds
        `spec`."""
        traces = []
        for trace in spec["data"]:
            item = self._trace_message(trace)
            if item is not None:
                traces.append(item)
        msg: dict[str, Any] = {}
        if traces:
            msg["traces"] = traces
        order = [t["uid"] for t in spec["data"]]
        if order != self._order:
            msg["order"] = order
            self._order = order
            for gone in set(self._sent) - set(order):
                del self._sent[gone]
        layout = _key(spec["layout"])
        if layout != self._layout:
            msg["layout"] = spec["layout"]
            self._layout = layout
        return msg or None

    def _trace_message(self, trace: dict) -> Optional[dict]:
        uid, x, y = trace["uid"], _points(trace, "x"), _points(trace, "y")
        # a trace without x and y arrays (x0/dx: mAP every N iterations) is compared whole: it has a few points
        style = _style(trace) if x is not None and y is not None else _key(trace)
        old = self._sent.get(uid)
        self._sent[uid] = _Sent(style, x, y)
        if old is not None and old.style == style and (x is None or y is None):
            return None
        if old is None or old.style != style or x is None or y is None or old.x is None or old.y is None:
            return {"uid": uid, "trace": trace}
        start = min(_same_prefix(old.x, x), _same_prefix(old.y, y))
        if start == len(x) == len(old.x):
            return None
        return {"uid": uid, "from": start, "x": x[start:], "y": y[start:]}


def _points(trace: dict, axis: str) -> Optional[np.ndarray]:
    value = trace.get(axis)
    return value if isinstance(value, np.ndarray) else None


def figure_bundle(fig: Any, *, png: Optional[bytes] = None, text: str = "<chart>") -> dict:
    """A finished chart's mime bundle, the same for every chart we show (training, dataset, compare, checkpoints).

    * plotly's mimetype: JupyterLab, Notebook 7 and VS Code draw it with the plotly.js their plotly extension
      ships (offline; plotly's renderer is safe, so an untrusted notebook draws it too);
    * ``text/html``: our host (`host_html`) drawing with the page's plotly.js or its CDN, for Colab, classic
      Notebook and nbviewer, with the PNG as what a reader without JavaScript sees;
    * ``image/png`` when `png` is given (GitHub and other static renderers).

    `fig` is a plotly Figure or a ``{"data", "layout"}`` dict.
    """
    spec = fig if isinstance(fig, dict) else fig.to_plotly_json()
    spec = {"data": spec.get("data", []), "layout": spec.get("layout", {})}
    spec_json = _to_json(spec)
    fallback = ""
    if png is not None:
        b64 = base64.b64encode(png).decode("ascii")
        fallback = f'<img src="data:image/png;base64,{b64}" style="max-width:100%" alt="chart">'
    bundle: dict = {
        "text/plain": text,
        PLOTLY_MIME: {**json.loads(spec_json), "config": PLOTLY_CONFIG},
        "text/html": host_html("dm-" + uuid.uuid4().hex[:12], spec_json, height=int(spec["layout"].get("height", 420)),
                               inline_plotlyjs=False, fallback=fallback),
    }
    if png is not None:
        bundle["image/png"] = b64
    return bundle
