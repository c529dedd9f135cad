"""Export a trained model to ONNX, check it, and run it on the CPU to compare with darknet.

Only hank-ai's darknet exports: its CMake builds ``darknet_onnx_export`` when protobuf is found
(``apt-get install libprotobuf-dev protobuf-compiler`` before CMake). The model takes ``frame`` (1x3xHxW, RGB,
0..1) and gives ``confs`` (1xNxclasses) and ``boxes`` (1xNx1x4: x1, y1, x2, y2 relative to the image).
AlexeyAB and pjreddie have no exporter: their .weights (YOLOv3/v4 cfgs) load in hank-ai's tool unchanged, so the
way is to build hank-ai (our `clone hank-ai` + `make`) and export with it.
`onnx` and `onnxruntime` are the optional `export` extra.

hank-ai 5.1 exports darknet's [maxpool] with padding of its own (yolov3-tiny's stride-1 maxpool then shrinks and
onnxruntime refuses the model): `repair_maxpools` gives each MaxPool node darknet's padding after the export.
"""
from __future__ import annotations

import re
import shutil
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..run import runner
from ..setup.binary import darknet_flavor, last_output, require_file, resolve_darknet
from ..errors import Problem, StepError
from ..report import Reporter
from ..safenames import check_argv_paths

NO_EXPORTER = {
    "alexeyab": "AlexeyAB's darknet has no ONNX exporter. Its .weights and cfg load in hank-ai's "
                "darknet_onnx_export unchanged: build hank-ai (`clone hank-ai`, then `make`, with libprotobuf-dev "
                "and protobuf-compiler installed) and export with bin= pointing at it",
    "pjreddie": "pjreddie's darknet has no ONNX exporter. YOLOv3 .weights and cfgs load in hank-ai's "
                "darknet_onnx_export: build hank-ai (`clone hank-ai`, `make`, with libprotobuf-dev and "
                "protobuf-compiler) and export with it",
}


@dataclass(frozen=True)
class ExportResult:
    """The ONNX file and what the exporter printed."""

    path: Path
    output: str
    repairs: tuple[str, ...] = ()  # what `repair_maxpools` changed in the exported graph


def export_onnx(*, darknet: Path | str, cfg: Path, weights: Path, names: Optional[Path] = None,
                out: Optional[Path] = None, reporter: Optional[Reporter] = None,
                extra_args: tuple[str, ...] = (), repair: bool = True) -> ExportResult:
    """``darknet_onnx_export CFG [NAMES] WEIGHTS``: the ONNX model, moved to `out` (default: beside the cfg).

    With `repair` (the default), the graph's MaxPool nodes get darknet's own padding (`repair_maxpools`): without
    it hank-ai's yolov3-tiny export does not load in onnxruntime.
    """
    from ..model.inputs import check_weights_file, hank_tool

    reporter = reporter or Reporter()
    darknet_path = resolve_darknet(darknet)
    cfg_path, weights_path = require_file(Path(cfg), "cfg"), require_file(Path(weights), "weights")
    check_argv_paths(cfg=cfg_path, weights=weights_path, names=Path(names) if names else None)
    flavor = darknet_flavor(darknet_path)
    if flavor in NO_EXPORTER:
        raise StepError(NO_EXPORTER[flavor], fix="build hank-ai's darknet with protobuf and give its binary",
                        problems=[Problem("unsupported-command", f"no ONNX export in {flavor}'s darknet")])
    tool = hank_tool(darknet_path, "darknet_onnx_export")
    if tool is None:
        raise StepError("this hank-ai build has no darknet_onnx_export (CMake found no protobuf)",
                        fix="apt-get install libprotobuf-dev protobuf-compiler, then run CMake and make again",
                        problems=[Problem("missing-file", "darknet_onnx_export not built")])
    check_weights_file(cfg_path, weights_path)
    target = Path(out).expanduser() if out else cfg_path.with_suffix(".onnx")
    if target.is_dir() or target.suffix.lower() != ".onnx":  # out= a folder (made if new)
        target = target / (cfg_path.stem + ".onnx")
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".onnx-", dir=target.parent))
    try:
        # The tool writes NAME.onnx beside the cfg it is given: give it a copy in the scratch folder.
        cfg_copy = scratch / cfg_path.name
        shutil.copyfile(cfg_path, cfg_copy)
        argv = [str(tool), str(cfg_copy)] + ([str(Path(names))] if names else []) + [str(weights_path)]
        argv += list(extra_args)
        chunks: list[str] = []
        repairs: list[str] = []
        reporter.progress(f"export: {cfg_path.name} + {weights_path.name} -> ONNX")
        result = runner.run(argv, cwd=scratch, log_path=None, on_text=chunks.append,
                            watchdog=runner.Watchdog(silence_s=600.0))
        output = "".join(chunks)
        produced = sorted(scratch.glob("*.onnx"))
        if result.returncode != 0 or not produced:
            raise StepError(f"darknet_onnx_export wrote no model ({result.describe()})", details=last_output(output))
        from ..fileio import atomic_write_bytes

        model = produced[0].read_bytes()
        if repair:
            model, repairs = repair_model(model, cfg_path.read_text(encoding="utf-8", errors="replace"), reporter)
        atomic_write_bytes(target, model)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    reporter.progress(f"export: {target} ({target.stat().st_size / 1e6:.1f} MB)", final=True)
    return ExportResult(path=target, output=output, repairs=tuple(repairs))


# ----------------------------------------------------------------------------------------------------------------
# Repair: darknet's maxpool padding

_LAYER = re.compile(r"_L(\d+)_maxpool$")


def darknet_maxpool_attributes(section) -> Optional[dict]:
    """The ONNX MaxPool attributes that compute what darknet's [maxpool] `section` computes, by darknet's rules
    (src-lib/darknet_cfg.cpp and maxpool_layer.cpp): stride default 1, size default stride, padding default
    size-1; the window starts pad/2 before the first pixel, and out = (w + padding - size) / stride + 1. So the
    padding is split pad//2 before and the rest after, and pixels outside count as -inf (as ONNX MaxPool pads).
    None for the forms ONNX MaxPool does not express (maxpool_depth, antialiasing, avgpool-like)."""
    if section.get_int("maxpool_depth", 0) or section.get_int("antialiasing", 0):
        return None
    stride = section.get_int("stride", 1)
    stride_x, stride_y = section.get_int("stride_x", stride), section.get_int("stride_y", stride)
    size = section.get_int("size", stride)
    pad = section.get_int("padding", size - 1)
    before, after = pad // 2, pad - pad // 2
    return {"kernel_shape": [size, size], "strides": [stride_y, stride_x], "pads": [before, before, after, after]}


def repair_maxpools(model, cfg_text: str) -> list[str]:
    """Set each exported MaxPool's kernel, strides and pads to darknet's own (see `darknet_maxpool_attributes`),
    in place on an ``onnx.ModelProto``; returns what was changed, one line per node.

    Why: hank-ai 5.1's exporter writes ``pads = (size-1)/2`` on every side (0 for size 2) and its own defaults
    (stride 2, size 3), where darknet pads size-1 after the pixels (begin pad/2). For yolov3-tiny's size-2
    stride-1 maxpool, darknet keeps 13x13 (here 26x26 at 832) while the export shrinks it by one, and the later
    route Concat no longer matches: onnx's checker passes, onnxruntime refuses the model (``Inferred=26
    Declared=24``). Stride-2 maxpools of even sizes come out the same either way; odd sizes differ too.
    The layer of a node is in its name (``N17_L11_maxpool``: cfg layer 11, [net] not counted).
    """
    from onnx import helper

    from ..data.cfg import Cfg

    layers = Cfg.parse(cfg_text).layers
    changes = []
    for node in model.graph.node:
        m = _LAYER.search(node.name)
        if node.op_type != "MaxPool" or not m or int(m.group(1)) >= len(layers):
            continue
        section = layers[int(m.group(1))]
        wanted = darknet_maxpool_attributes(section) if section.name == "maxpool" else None
        if wanted is None:
            continue
        have = {a.name: list(helper.get_attribute_value(a)) for a in node.attribute if a.name in wanted}
        if have == wanted:
            continue
        for attr in [a for a in node.attribute if a.name in wanted]:
            node.attribute.remove(attr)
        node.attribute.extend(helper.make_attribute(k, v) for k, v in wanted.items())
        changes.append(f"{node.name}: " + ", ".join(f"{k} {have.get(k)} -> {v}" for k, v in wanted.items()
                                                    if have.get(k) != v))
    return changes


def repair_model(data: bytes, cfg_text: str, reporter: Reporter) -> tuple[bytes, list[str]]:
    """`repair_maxpools` on the exported bytes; without the onnx package the model is kept as written, with a
    warning (a yolov3-tiny export then does not load in onnxruntime)."""
    try:
        import onnx
    except ImportError:
        reporter.warn("the onnx package is not installed: the exported model's maxpool padding is not checked "
                      "against darknet's (pip install 'darknet_magics[export]')")
        return data, []
    model = onnx.load_from_string(data)
    changes = repair_maxpools(model, cfg_text)
    if not changes:
        return data, []
    model.doc_string = (model.doc_string + "\n" if model.doc_string else "") + (
        "darknet_magics: MaxPool padding set to darknet's: " + "; ".join(changes))
    reporter.info(f"export: {len(changes)} MaxPool node(s) given darknet's padding (`repair_maxpools`; "
                  "result.repairs lists them)")
    return model.SerializeToString(), changes


def check_onnx(path: Path) -> None:
    """The `onnx` package's checker on the model (raises StepError with the checker's words)."""
    try:
        import onnx
    except ImportError as exc:
        raise StepError("the onnx package is not installed", fix="pip install 'darknet_magics[export]'") from exc
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise StepError(f"{path} is not a valid ONNX model: {exc}") from exc


def read_png(path: Path):
    """An 8-bit RGB/RGBA/grey PNG (non-interlaced) as an HxWx3 uint8 array, with numpy only."""
    import numpy as np

    data = Path(path).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise StepError(f"{path} is not a PNG", fix="give a PNG image to run the ONNX model on")
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat.append(chunk)
        pos += 12 + length
    width, height, depth, colour, _, _, interlace = header
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise StepError(f"{path}: only 8-bit non-interlaced grey/RGB/RGBA PNGs are read here")
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.int32)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = np.frombuffer(raw, np.uint8, stride, y * (stride + 1) + 1).astype(np.int32)
        cur = np.zeros(stride, np.int32)
        for x in range(stride):
            a = cur[x - channels] if x >= channels else 0
            b = prev[x]
            c = prev[x - channels] if x >= channels else 0
            if f == 0:
                pred = 0
            elif f == 1:
                pred = a
            elif f == 2:
                pred = b
            elif f == 3:
                pred = (a + b) // 2
            else:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (line[x] + pred) & 0xFF
        out[y] = cur
        prev = cur
    img = out.reshape(height, width, channels)
    if channels in (1, 2):
        img = np.repeat(img[:, :, :1], 3, axis=2)
    return img[:, :, :3]


def _resize(img, width: int, height: int):
    """Bilinear resize (darknet's own resize is bilinear) with numpy."""
    import numpy as np

    h, w = img.shape[:2]
    if (h, w) == (height, width):
        return img.astype(np.float32)
    ys = (np.arange(height) + 0.5) * h / height - 0.5
    xs = (np.arange(width) + 0.5) * w / width - 0.5
    y0 = np.clip(np.floor(ys).astype(int), 0, h - 1)
    x0 = np.clip(np.floor(xs).astype(int), 0, w - 1)
    y1, x1 = np.clip(y0 + 1, 0, h - 1), np.clip(x0 + 1, 0, w - 1)
    wy = np.clip(ys - y0, 0, 1)[:, None, None]
    wx = np.clip(xs - x0, 0, 1)[None, :, None]
    f = img.astype(np.float32)
    top = f[y0][:, x0] * (1 - wx) + f[y0][:, x1] * wx
    bottom = f[y1][:, x0] * (1 - wx) + f[y1][:, x1] * wx
    return top * (1 - wy) + bottom * wy


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """IoU of two (left, top, width, height) boxes."""
    ax2, ay2, bx2, by2 = a[0] + a[2], a[1] + a[3], b[0] + b[2], b[1] + b[3]
    iw = max(0.0, min(ax2, bx2) - max(a[0], b[0]))
    ih = max(0.0, min(ay2, by2) - max(a[1], b[1]))
    inter = iw * ih
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def run_onnx(path: Path, image: Path, *, thresh: float = 0.25, nms: float = 0.45, names: tuple[str, ...] = ()):
    """Run the model with onnxruntime on the CPU: a frame like `detect.detect`'s (name, confidence, boxes in
    pixels), after the same thresholding and per-class NMS darknet applies."""
    import numpy as np
    import pandas as pd

    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise StepError("onnxruntime is not installed", fix="pip install 'darknet_magics[export]'") from exc
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's load errors are its own Fail/InvalidGraph classes
        raise StepError(f"onnxruntime cannot load {path}: {str(exc)[-300:]}",
                        fix="a known case: hank-ai exports yolov3-tiny's stride-1 maxpool without darknet's padding "
                            "(Concat: Inferred=26 Declared=24); %yolo export repairs it (export_onnx(repair=True)): "
                            "export the model again with it") from None
    inp = session.get_inputs()[0]
    _, _, net_h, net_w = inp.shape
    img = read_png(image)
    h, w = img.shape[:2]
    frame = (_resize(img, int(net_w), int(net_h)) / 255.0).transpose(2, 0, 1)[None].astype(np.float32)
    outputs = {o.name: v for o, v in zip(session.get_outputs(), session.run(None, {inp.name: frame}))}
    confs = outputs["confs"][0]
    boxes = outputs["boxes"][0].reshape(-1, 4)
    rows = []
    for cls in range(confs.shape[1]):
        keep = [i for i in np.argsort(-confs[:, cls]) if confs[i, cls] > thresh]
        chosen: list[int] = []
        for i in keep:
            box = boxes[i]
            bb = (box[0] * w, box[1] * h, (box[2] - box[0]) * w, (box[3] - box[1]) * h)
            if all(iou(bb, rows_box) <= nms for rows_box in [r["_nms"] for r in rows if r["class_id"] == cls]):
                # NMS on the raw boxes, then clipped to the image, as darknet clips the boxes it prints
                x1, y1 = max(0.0, float(box[0]) * w), max(0.0, float(box[1]) * h)
                x2, y2 = min(float(w), float(box[2]) * w), min(float(h), float(box[3]) * h)
                rows.append({"class_id": cls, "name": names[cls] if cls < len(names) else str(cls),
                             "confidence": float(confs[i, cls]), "_nms": bb, "_box": (x1, y1, x2 - x1, y2 - y1)})
                chosen.append(i)
    df = pd.DataFrame([{**{k: v for k, v in r.items() if k not in ("_box", "_nms")}, "left": r["_box"][0], "top": r["_box"][1],
                        "width": r["_box"][2], "height": r["_box"][3]} for r in rows],
                      columns=["class_id", "name", "confidence", "left", "top", "width", "height"])
    return df


def compare(darknet_rows, onnx_rows) -> list[dict]:
    """Each darknet detection matched with the ONNX detection of the same class that overlaps it most (of equal
    overlaps, as two whole-image boxes are, the closest in confidence): (darknet confidence, ONNX confidence, IoU);
    a missing match has IoU 0."""
    pairs = []
    for d in darknet_rows.itertuples():
        best = None
        for o in onnx_rows.itertuples():
            if o.name != d.name:
                continue
            score = iou((d.left, d.top, d.width, d.height), (o.left, o.top, o.width, o.height))
            if best is None or (score, -abs(o.confidence - d.confidence)) > (best[0], -abs(best[1] - d.confidence)):
                best = (score, o.confidence)
        pairs.append({"name": d.name, "darknet": d.confidence, "onnx": best[1] if best else float("nan"),
                      "iou": best[0] if best else 0.0})
    return pairs
