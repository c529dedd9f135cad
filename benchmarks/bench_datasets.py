"""`check` on 100,000 images, and converting a COCO json of 20,000 images / 150,000 boxes to darknet labels (ours
vs globox, in the same run). Staging has its own benchmark: bench_staging.py.

Run: ``python benchmarks/bench_datasets.py [--images 100000]``. One run, figures printed as seconds and ratios.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ratio, timed  # noqa: E402

from darknet_magics.checks import check_dataset  # noqa: E402
from darknet_magics.formats import read_dataset, write_darknet  # noqa: E402
from darknet_magics.synth import png_bytes  # noqa: E402


def make_check_dataset(root: Path, n: int) -> Path:
    """`n` empty images with real 1-2 box labels, lists and obj.data, 10,000 images a folder."""
    lines = []
    for i in range(n):
        sub = root / f"obj{i // 10000:02d}"
        if i % 10000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        img = sub / f"img_{i:06d}.jpg"
        img.write_bytes(b"")
        label = f"{i % 3} 0.5 0.5 0.2 0.3\n" + ("1 0.25 0.75 0.1 0.1\n" if i % 2 else "")
        img.with_suffix(".txt").write_text(label)
        lines.append(f"{img}\n")
    (root / "train.txt").write_text("".join(lines[: n * 9 // 10]))
    (root / "valid.txt").write_text("".join(lines[n * 9 // 10:]))
    (root / "obj.names").write_text("a\nb\nc\n")
    (root / "backup").mkdir()
    data = root / "obj.data"
    data.write_text(f"classes = 3\ntrain = {root}/train.txt\nvalid = {root}/valid.txt\nnames = {root}/obj.names\n"
                    f"backup = {root}/backup\n")
    return data


def make_coco(root: Path, n_images: int, n_boxes: int) -> Path:
    """A COCO folder: `n_images` real (tiny, identical) PNGs of 640x480 claimed size and a json of `n_boxes` boxes."""
    import json

    import numpy as np

    root.mkdir(parents=True)
    # one real 640x480 PNG, hard-linked: the header is what we read, the pixels do not matter
    (root / "proto.png").write_bytes(png_bytes(np.zeros((480, 640, 3), np.uint8)))
    images, anns = [], []
    for i in range(n_images):
        name = f"im{i:06d}.png"
        os.link(root / "proto.png", root / name)
        images.append({"id": i, "file_name": name, "width": 640, "height": 480})
    for k in range(n_boxes):
        anns.append({"id": k, "image_id": k % n_images, "category_id": 1 + k % 5,
                     "bbox": [(k * 7) % 500, (k * 11) % 400, 20 + k % 100, 15 + k % 60], "area": 1, "iscrowd": 0})
    (root / "proto.png").unlink()
    doc = {"images": images, "annotations": anns,
           "categories": [{"id": c, "name": f"c{c}", "supercategory": "x"} for c in range(1, 6)]}
    (root / "annotations.json").write_text(json.dumps(doc))
    return root


def bench_coco(root: Path, n_images: int, n_boxes: int) -> None:
    src = make_coco(root / "coco", n_images, n_boxes)
    with timed() as t_ours:
        ds = read_dataset(src)
        res = write_darknet(ds, root / "ours")
    print(f"COCO -> darknet, {n_images:,} images, {n_boxes:,} boxes (reads every image header, writes labels and "
          f"image links): ours {t_ours.seconds:.2f} s ({res.boxes:,} boxes)")
    try:
        import globox  # noqa: F401
    except ImportError:
        print("  globox not installed (pip install globox): the library comparison is skipped")
        return
    from globox import AnnotationSet

    with timed() as t_gb:
        ann = AnnotationSet.from_coco(src / "annotations.json")
        ids = {f"c{c}": c - 1 for c in range(1, 6)}
        ann.save_yolo_darknet(root / "globox", label_to_id=ids)
    print(f"  globox {t_gb.seconds:.2f} s (sizes from the json, labels only, no image links)")
    print(f"  ratio ours / globox = {ratio(t_ours.seconds, t_gb.seconds)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100000)
    parser.add_argument("--quick", action="store_true", help="20,000 images")
    parser.add_argument("--coco-images", type=int, default=20000)
    parser.add_argument("--coco-boxes", type=int, default=150000)
    parser.add_argument("--only-coco", action="store_true", help="only the COCO conversion")
    args = parser.parse_args()
    if args.only_coco:
        with tempfile.TemporaryDirectory(prefix="bench_coco_") as tmp:
            bench_coco(Path(tmp), args.coco_images, args.coco_boxes)
        return
    if args.quick:
        args.images = 20000
    with tempfile.TemporaryDirectory(prefix="bench_datasets_") as tmp:
        root = Path(tmp)
        data = make_check_dataset(root / "big", args.images)
        with timed() as t_check:
            res = check_dataset(data, None)
        print(f"check on {args.images:,} images ({res.boxes:,} boxes): {t_check.seconds:.2f} s, "
              f"{len(res.problems)} problems")
        bench_coco(root, args.coco_images, args.coco_boxes)


if __name__ == "__main__":
    main()
