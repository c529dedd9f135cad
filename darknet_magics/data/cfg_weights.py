"""A weights file against its cfg: the layer shapes a cfg makes (how many floats each layer reads), darknet's
weights header, and whether a file fits the cfg before darknet reads it (darknet reads past a short file in
silence, or stops with a bare assertion).
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..errors import DarknetMagicsError, Problem
from ..fileio import atomic_write_text  # noqa: F401  (re-exported: cfg.atomic_write_text)
from .cfg import Cfg, Section

__all__ = ["LayerWeights", "layer_weights", "WeightsHeader", "read_weights_header", "check_weights"]


@dataclass(frozen=True)
class LayerWeights:
    """One layer's share of a .weights file."""

    index: int          # darknet layer number (0-based, [net] excluded)
    name: str           # section name
    line: int           # the section's line in the cfg
    nbytes: int         # bytes of parameters it reads (0 for layers without weights)
    out_shape: tuple[int, int, int]  # (h, w, c) after the layer


@dataclass(frozen=True)
class WeightsHeader:
    """The header darknet writes first: version and the count of images seen."""

    major: int
    minor: int
    revision: int
    seen: int
    size: int  # header bytes: 20 when `seen` is 64-bit (version >= 0.2), else 16


_NO_WEIGHTS = {"yolo", "Gaussian_yolo", "region", "detection", "cost", "softmax", "dropout", "route", "shortcut",
               "maxpool", "max", "avgpool", "avg", "upsample", "reorg", "reorg3d", "scale_channels", "sam",
               "contrastive", "empty", "silence", "logistic", "l2norm", "normalization", "batchnorm"}


_Shape = tuple[int, int, int]  # (height, width, channels) of a layer's output


def _conv(sec: Section, shape: _Shape, shapes: list[_Shape], i: int) -> tuple[int, _Shape]:
    h, w, c = shape
    n, size = sec.get_int("filters", 1), sec.get_int("size", 1)
    stride = sec.get_int("stride", 1)
    stride_x, stride_y = sec.get_int("stride_x", stride), sec.get_int("stride_y", stride)
    padding = size // 2 if sec.get_int("pad", 0) else sec.get_int("padding", 0)
    groups = max(1, sec.get_int("groups", 1))
    bn = sec.get_int("batch_normalize", 0)
    floats = n + n * (c // groups) * size * size + (3 * n if bn else 0)
    k = sec.get_int("dilation", 1) * (size - 1) + 1
    return 4 * floats, ((h + 2 * padding - k) // stride_y + 1, (w + 2 * padding - k) // stride_x + 1, n)


def _connected(sec: Section, shape: _Shape, shapes: list[_Shape], i: int) -> tuple[int, _Shape]:
    outputs, inputs = sec.get_int("output", 1), shape[0] * shape[1] * shape[2]
    bn = sec.get_int("batch_normalize", 0)
    return 4 * (outputs + outputs * inputs + (3 * outputs if bn else 0)), (1, 1, outputs)


def _maxpool(sec: Section, shape: _Shape, shapes: list[_Shape], i: int) -> tuple[int, _Shape]:
    h, w, c = shape
    if sec.get_int("global", 0):
        return 0, (1, 1, c)
    stride = sec.get_int("stride", 1)
    size = sec.get_int("size", stride)
    padding = sec.get_int("padding", size - 1)
    return 0, ((h + padding - size) // stride + 1, (w + padding - size) // stride + 1, c)


def _upsample(sec: Section, shape: _Shape, shapes: list[_Shape], i: int) -> tuple[int, _Shape]:
    h, w, c = shape
    s = sec.get_int("stride", 2)
    return 0, ((h * s, w * s, c) if s > 0 else (h // -s, w // -s, c))


def _reorg(sec: Section, shape: _Shape, shapes: list[_Shape], i: int) -> tuple[int, _Shape]:
    h, w, c = shape
    s = sec.get_int("stride", 1)
    return 0, (h // s, w // s, c * s * s)


def _route(sec: Section, shape: _Shape, shapes: list[_Shape], i: int) -> tuple[int, _Shape]:
    idx = [int(v) for v in (sec.get("layers") or "").split(",") if v]
    idx = [i + v if v < 0 else v for v in idx]
    if not idx or any(not 0 <= v < i for v in idx):
        raise DarknetMagicsError(f"[route] at line {sec.line}: layers={sec.get('layers')} points outside the net",
                                 fix="route layers must name earlier layers")
    groups = max(1, sec.get_int("groups", 1))
    return 0, (shapes[idx[0]][0], shapes[idx[0]][1], sum(shapes[v][2] for v in idx) // groups)


def _same(sec: Section, shape: _Shape, shapes: list[_Shape], i: int) -> tuple[int, _Shape]:
    # no weights, the previous layer's shape (AlexeyAB's weighted shortcut is not in stock YOLO cfgs)
    return 0, shape


#: How each layer type sizes its weights and its output: (section, input shape, earlier shapes, index) ->
#: (bytes of weights, output shape).
_LAYERS = {"convolutional": _conv, "conv": _conv, "connected": _connected, "conn": _connected,
           "maxpool": _maxpool, "max": _maxpool, "avgpool": lambda sec, shape, shapes, i: (0, (1, 1, shape[2])),
           "avg": lambda sec, shape, shapes, i: (0, (1, 1, shape[2])), "upsample": _upsample, "reorg": _reorg,
           "reorg3d": _reorg, "route": _route, "shortcut": _same, "scale_channels": _same, "sam": _same}


def layer_weights(cfg_text: str) -> list[LayerWeights]:
    """Parameter bytes per layer, in load order, for the layer types of yolov2/v3/v4 (tiny and full).

    Shapes are propagated because a convolution's weights depend on its input channels (route concatenations,
    grouped routes in yolov4-tiny, ...).

    Raises:
        DarknetMagicsError: a layer type with weights we do not size (so no check is better than a wrong one).
    """
    cfg = Cfg.parse(cfg_text)
    net = cfg.net
    shape: _Shape = (net.get_int("height", 0), net.get_int("width", 0), net.get_int("channels", 3))
    shapes: list[_Shape] = []
    result: list[LayerWeights] = []
    for i, sec in enumerate(cfg.layers):
        size_of = _LAYERS.get(sec.name) or (_same if sec.name in _NO_WEIGHTS else None)
        if size_of is None:
            raise DarknetMagicsError(f"cannot size the weights of a [{sec.name}] layer (line {sec.line})",
                                     fix="the weights check knows YOLO v2/v3/v4 layers only; skip it for this cfg")
        try:
            nbytes, shape = size_of(sec, shape, shapes, i)
        except (ZeroDivisionError, ValueError, IndexError):  # stride=0, layers=a, a route to a layer's own output
            raise DarknetMagicsError(f"[{sec.name}] at line {sec.line}: its values make no layer darknet can build",
                                     fix="check stride/size/layers against a stock cfg") from None
        if min(shape) <= 0 and sec.name not in ("route",) or max(shape) > 2 ** 31:
            raise DarknetMagicsError(f"[{sec.name}] at line {sec.line}: its output would be {shape[1]}x{shape[0]}x"
                                     f"{shape[2]}", fix="check width/height in [net] and the layer's stride/size")
        shapes.append(shape)
        result.append(LayerWeights(index=i, name=sec.name, line=sec.line, nbytes=nbytes, out_shape=shape))
    return result


def read_weights_header(data: bytes) -> Optional[WeightsHeader]:
    """Parse a .weights header from its first bytes; None if there are too few."""
    if len(data) < 12:
        return None
    major, minor, revision = struct.unpack("<3i", data[:12])
    if major * 10 + minor >= 2:
        if len(data) < 20:
            return None
        (seen,) = struct.unpack("<q", data[12:20])
        return WeightsHeader(major, minor, revision, seen, 20)
    if len(data) < 16:
        return None
    (seen,) = struct.unpack("<i", data[12:16])
    return WeightsHeader(major, minor, revision, seen, 16)


def check_weights(cfg_text: str, weights_path: Path, *, cfg_file: Optional[str] = None) -> Optional[Problem]:
    """Does `weights_path` end on a layer boundary of this cfg? None when it does.

    A pretrained ``.conv.N`` file ends cleanly after layer N-1 (N layers); a full file after the last layer. A file
    that ends inside a layer is a broken download (or weights for another cfg): darknet would load it silently
    and train from garbage. A file longer than the whole net was trained with another cfg (a warning: darknet
    ignores the rest, but the last layers then hold the wrong classes' weights).
    """
    weights_path = Path(weights_path)
    size = weights_path.stat().st_size
    with open(weights_path, "rb") as f:
        head = f.read(20)
    header = read_weights_header(head)
    name = str(weights_path)
    if header is None:
        return Problem("truncated-weights", f"{weights_path.name} is {size} bytes: shorter than a weights header",
                       fix="download the weights again (`weights NAME`)", file=name)
    layers = layer_weights(cfg_text)
    offset = header.size
    if size == offset:
        return Problem("truncated-weights", f"{weights_path.name} holds only a header, no weights",
                       fix="download the weights again (`weights NAME`)", file=name)
    for layer in layers:
        if not layer.nbytes:
            continue
        end = offset + layer.nbytes
        if size == end:
            return None
        if size < end:
            got = size - offset
            return Problem(
                "truncated-weights",
                f"{weights_path.name} ends inside layer {layer.index} [{layer.name}] (cfg line {layer.line}): "
                f"{got} of its {layer.nbytes} bytes; {size} bytes in all, the next layer boundary is at {end}",
                fix="the download was cut short, or the file belongs to another cfg: download it again "
                    "(`weights NAME`) or use the weights made for this cfg",
                severity="error", file=name, line=None, evidence=f"header {header.major}.{header.minor}.{header.revision}, seen {header.seen}")
        offset = end
    if size > offset:
        return Problem(
            "weights-size-mismatch",
            f"{weights_path.name} has {size - offset} bytes more than this cfg's {offset - header.size} bytes of weights",
            fix="these weights were trained with another cfg (other classes or layers): use a .conv.N file or the "
                "weights saved for this cfg",
            severity="warning", file=name, line=None)
    return None
