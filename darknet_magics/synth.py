"""A tiny synthetic detection dataset: coloured boxes on noisy backgrounds, with YOLO labels.

The demo and the tests train real darknet on it, so it must be small (darknet on 2 CPU cores), deterministic
(a seed), and shaped like a user's dataset: images and `.txt` labels side by side, a few negatives (empty label
files). Pure numpy + zlib: a PNG writer is 20 lines, not worth a dependency.
"""
from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Colours a newcomer can name; class i is drawn in COLOURS[i].
COLOURS: list[tuple[str, tuple[int, int, int]]] = [
    ("red_box", (220, 30, 30)),
    ("blue_box", (30, 60, 220)),
    ("green_box", (30, 190, 60)),
    ("yellow_box", (230, 210, 40)),
]


# The demo's easy set and its training cfg (tests train the same): big plain boxes on light noise, learnt by a
# yolov3-tiny at 64 px in a few hundred iterations (about two minutes on 2 CPU cores) well enough to find them.
DEMO_DATASET = {"images": 40, "classes": 1, "size": 64, "seed": 0}
DEMO_CFG = {"width": 64, "height": 64, "batch": 8, "subdivisions": 1, "max_batches": 300, "burn_in": 5, "random": 0}


def png_bytes(pixels: np.ndarray) -> bytes:
    """Encode an HxWx3 uint8 array as a PNG file."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError("png_bytes expects an HxWx3 uint8 array")
    height, width, _ = pixels.shape
    # Each row starts with filter type 0 (none).
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


@dataclass(frozen=True)
class SyntheticDataset:
    """What `make_dataset` wrote."""

    folder: Path
    images: list[Path]
    names: list[str]
    boxes: int
    negatives: int


def make_dataset(folder: str | Path, *, images: int = 32, classes: int = 1, size: int = 64,
                 negatives: int = 2, noise: int = 20, seed: int = 0) -> SyntheticDataset:
    """Write `images` PNGs with 1-2 boxes each (the first `negatives` have none) and their YOLO labels.

    Labels follow darknet's convention: ``class x_center y_center width height``, all relative to the image.
    Also writes ``obj.names``. Returns the list of image paths.
    """
    if not 1 <= classes <= len(COLOURS):
        raise ValueError(f"classes must be 1..{len(COLOURS)}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [name for name, _ in COLOURS[:classes]]
    paths: list[Path] = []
    n_boxes = 0
    for i in range(images):
        base = rng.integers(90, 160)
        img = np.clip(base + rng.integers(-noise, noise + 1, size=(size, size, 3)), 0, 255).astype(np.uint8)
        lines = []
        if i >= negatives:
            for _ in range(int(rng.integers(1, 3))):
                cls = int(rng.integers(0, classes))
                w = int(rng.integers(size // 5, size // 2))
                h = int(rng.integers(size // 5, size // 2))
                x0 = int(rng.integers(0, size - w))
                y0 = int(rng.integers(0, size - h))
                img[y0:y0 + h, x0:x0 + w] = COLOURS[cls][1]
                lines.append(f"{cls} {(x0 + w / 2) / size:.6f} {(y0 + h / 2) / size:.6f} {w / size:.6f} {h / size:.6f}")
                n_boxes += 1
        path = folder / f"img_{i:03d}.png"
        path.write_bytes(png_bytes(img))
        path.with_suffix(".txt").write_text("".join(line + "\n" for line in lines))
        paths.append(path)
    (folder / "obj.names").write_text("".join(n + "\n" for n in names))
    return SyntheticDataset(folder=folder, images=paths, names=names, boxes=n_boxes, negatives=min(negatives, images))
