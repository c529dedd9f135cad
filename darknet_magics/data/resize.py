"""`%yolo data ... resize=`: smaller local copies of large photos, so that darknet's loader decodes less.

darknet decodes every image at its full size for every batch, then resizes it to the network size: a 3000x2000
JPEG costs ~40x the decoding of a 480x320 one, and the loader threads, not the network, set the pace on a GPU.
The copies keep the aspect ratio and are only made smaller, never larger: the shorter side is scaled to the
target's (so darknet's crop/jitter still has pixels to cut), and labels are relative, so they stay as they are.

Pillow does the work (it ships with Colab; the ``resize`` extra in pyproject.toml). Its draft mode lets the JPEG
decoder scale by 1/2, 1/4 or 1/8 while decoding, which makes the copy itself fast.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Optional

from ..errors import DarknetMagicsError

__all__ = ["parse_resize", "target_size", "write_resized"]

_SIZE = re.compile(r"^\s*(\d{2,5})\s*[xX*]\s*(\d{2,5})\s*$")


def parse_resize(value: str, cfg_size: Optional[tuple[int, int]] = None) -> tuple[int, int]:
    """``resize=WIDTHxHEIGHT``, or ``resize=cfg`` (the network size of the cfg given, `cfg_size`)."""
    if value.strip().lower() == "cfg":
        if cfg_size is None:
            raise DarknetMagicsError("resize=cfg but no cfg was given", fix="add cfg=PATH.cfg, or write resize=608x608")
        return cfg_size
    m = _SIZE.match(value)
    if not m or not (32 <= int(m.group(1)) <= 16384 and 32 <= int(m.group(2)) <= 16384):
        raise DarknetMagicsError(f"resize={value} is not WIDTHxHEIGHT (32..16384 each)",
                                 fix="write e.g. resize=832x832 (about 2x the network size), or resize=cfg")
    return int(m.group(1)), int(m.group(2))


def target_size(size: tuple[int, int], target: tuple[int, int]) -> Optional[tuple[int, int]]:
    """The copy's size for an image of `size`, or None when it is already no larger than `target` (linked as is).

    The scale is the larger of the two ratios, so that both sides stay at least the target's.
    """
    w, h = size
    scale = max(target[0] / w, target[1] / h)
    if scale >= 1:
        return None
    return max(1, round(w * scale)), max(1, round(h * scale))


def write_resized(src: str, dst: str, size: tuple[int, int]) -> None:
    """Write `src` scaled to `size` at `dst` (same format: JPEG quality 95, others as they are)."""
    from PIL import Image

    with Image.open(src) as im:
        if im.format == "JPEG":
            im.draft("RGB", size)  # decode at 1/2, 1/4 or 1/8 where that is still at least `size`
        out = im.convert("RGB") if im.mode not in ("RGB", "L") else im
        out = out.resize(size, Image.BILINEAR, reducing_gap=2.0)
        fmt = "JPEG" if dst.lower().endswith((".jpg", ".jpeg")) else (im.format or "PNG")
        tmp = f"{dst}.tmp{os.getpid()}"
        out.save(tmp, fmt, **({"quality": 95} if fmt == "JPEG" else {}))
        os.replace(tmp, dst)


def cfg_network_size(cfg: Path) -> tuple[int, int]:
    """[net] width and height of a cfg file."""
    from .cfg import Cfg

    net = Cfg.parse(cfg.read_text(encoding="utf-8", errors="replace")).net
    return net.get_int("width", 416) or 416, net.get_int("height", 416) or 416
