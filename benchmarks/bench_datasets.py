"""`check` on 100,000 images, and converting a COCO json of 20,000 images / 150,000 boxes to darknet labels (ours
vs globox, in the same run). Staging has its own benchmark: bench_staging.py.

Run: ``python benchmarks/bench_datasets.py [--images 100000]``. One run, figures printed as seconds and ratios.
``--only-coco --baseline-ref COMMIT`` also converts with formats.py as it was at COMMIT, in the same run: on a
shared machine, times from different runs do not compare. Each line gives the CPU seconds too, and how many
files, links and folders were made (on a slow or busy disk each one costs far more than the CPU work).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ratio, timed  # noqa: E402

from darknet_magics.data.checks import check_dataset  # noqa: E402
from darknet_magics.data.formats import read_dataset, write_darknet  # noqa: E402
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


def _files_made(folder: Path) -> int:
    """Files, links and folders under `folder` (what the conversion made, each one a file-system operation)."""
    return sum(len(dirs) + len(files) for _root, dirs, files in os.walk(folder))


def formats_at(ref: str):
    """formats.py as it was at git `ref`, imported beside the current one (the 'before' of a before/after run)."""
    import subprocess
    import types

    repo = Path(__file__).resolve().parent.parent
    src = subprocess.run(["git", "show", f"{ref}:darknet_magics/data/formats.py"], cwd=repo, check=True,
                         capture_output=True, text=True).stdout
    name = "darknet_magics.data._formats_at_" + "".join(c if c.isalnum() else "_" for c in ref)
    mod = types.ModuleType(name)
    mod.__package__ = "darknet_magics.data"  # its relative imports (..errors) resolve to the current package
    sys.modules[name] = mod  # dataclasses look their module up here
    exec(compile(src, f"{ref}:darknet_magics/data/formats.py", "exec"), mod.__dict__)
    return mod


def convert_with(module, src: Path, out: Path) -> tuple[float, float, float, int]:
    """(read s, write s, CPU s of both, boxes) converting the COCO folder `src` into `out` with `module`."""
    cpu = time.process_time()
    with timed() as t_read:
        ds = module.read_dataset(src)
    with timed() as t_write:
        res = module.write_darknet(ds, out)
    return t_read.seconds, t_write.seconds, time.process_time() - cpu, res.boxes


def bench_coco(root: Path, n_images: int, n_boxes: int, baseline_ref: str = "") -> None:
    from darknet_magics.data import formats

    src = make_coco(root / "coco", n_images, n_boxes)
    print(f"COCO -> darknet, {n_images:,} images, {n_boxes:,} boxes (reads every image header, writes labels and "
          "image links):", flush=True)
    runs = [("ours", formats)] + ([(f"ours at {baseline_ref}", formats_at(baseline_ref))] if baseline_ref else [])
    seconds = {}
    for label, module in runs:
        r, w, cpu, boxes = convert_with(module, src, root / label.replace(" ", "_"))
        seconds[label] = r + w
        print(f"  {label}: {r + w:.2f} s (read {r:.2f} s, write {w:.2f} s; CPU {cpu:.2f} s; "
              f"{_files_made(root / label.replace(' ', '_')):,} files/links/folders made; {boxes:,} boxes)",
              flush=True)
    if baseline_ref:
        print(f"  ratio ours / ours at {baseline_ref} = {ratio(seconds['ours'], seconds[runs[1][0]])}")
    try:
        import globox  # noqa: F401
    except ImportError:
        print("  globox not installed (pip install globox): the library comparison is skipped")
        return
    from globox import AnnotationSet

    cpu = time.process_time()
    with timed() as t_gb:
        ann = AnnotationSet.from_coco(src / "annotations.json")
        ids = {f"c{c}": c - 1 for c in range(1, 6)}
        ann.save_yolo_darknet(root / "globox", label_to_id=ids)
    print(f"  globox {t_gb.seconds:.2f} s (CPU {time.process_time() - cpu:.2f} s; sizes from the json, labels only, "
          f"no image links; {_files_made(root / 'globox'):,} files made)")
    print(f"  ratio ours / globox = {ratio(seconds['ours'], t_gb.seconds)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100000)
    parser.add_argument("--quick", action="store_true", help="20,000 images")
    parser.add_argument("--coco-images", type=int, default=20000)
    parser.add_argument("--coco-boxes", type=int, default=150000)
    parser.add_argument("--only-coco", action="store_true", help="only the COCO conversion")
    parser.add_argument("--baseline-ref", default="", metavar="REF",
                        help="also convert with formats.py as it was at this git commit (one before the split into data/formats/; before/after in one run)")
    args = parser.parse_args()
    if args.only_coco:
        with tempfile.TemporaryDirectory(prefix="bench_coco_") as tmp:
            bench_coco(Path(tmp), args.coco_images, args.coco_boxes, args.baseline_ref)
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
        bench_coco(root, args.coco_images, args.coco_boxes, args.baseline_ref)


if __name__ == "__main__":
    main()
