"""Staging 20,000 small files (per-file copy vs packed archive vs `cp -r`), `check` on 100,000 images, and
converting a COCO json of 20,000 images / 150,000 boxes to darknet labels (ours vs globox, in the same run).

Run: ``python benchmarks/bench_datasets.py [--files 20000] [--images 100000]``. One run, figures printed as
seconds and ratios. Both sides are local disk here; on Colab the source is Drive's FUSE mount, where every file
costs a network round trip, so the packed archive's advantage is larger there than what this prints.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ratio, timed  # noqa: E402

from darknet_magics.checks import check_dataset  # noqa: E402
from darknet_magics.formats import read_dataset, write_darknet  # noqa: E402
from darknet_magics.synth import png_bytes  # noqa: E402
from darknet_magics.staging import pack_folder, stage  # noqa: E402


def make_small_files(folder: Path, n: int) -> int:
    """`n` files of 1-4 KiB in folders of 5,000 (images and labels alike); returns total bytes."""
    total = 0
    payload = os.urandom(4096)
    for i in range(n):
        sub = folder / f"part{i // 5000:02d}"
        if i % 5000 == 0:
            sub.mkdir(parents=True, exist_ok=True)
        size = 1024 + (i * 37) % 3072
        (sub / f"f{i:06d}.jpg").write_bytes(payload[:size])
        total += size
    return total


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
    parser.add_argument("--files", type=int, default=20000)
    parser.add_argument("--images", type=int, default=100000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="5,000 files, 20,000 images, one round")
    parser.add_argument("--coco-images", type=int, default=20000)
    parser.add_argument("--coco-boxes", type=int, default=150000)
    parser.add_argument("--only-coco", action="store_true", help="only the COCO conversion")
    args = parser.parse_args()
    if args.only_coco:
        with tempfile.TemporaryDirectory(prefix="bench_coco_") as tmp:
            bench_coco(Path(tmp), args.coco_images, args.coco_boxes)
        return
    if args.quick:
        args.files, args.images, args.rounds = 5000, 20000, 1
    with tempfile.TemporaryDirectory(prefix="bench_datasets_") as tmp:
        root = Path(tmp)
        src = root / "drive" / "dataset"
        total = make_small_files(src, args.files)
        print(f"staging {args.files:,} files, {total / 1e6:.1f} MB")
        with timed() as t_pack:
            pack_folder(src, src.parent / "dataset.tar")
        # Rounds alternate the three ways and keep each one's best: other work on the machine slows whichever
        # happens to run beside it.
        t_files = t_packed = t_cp = float("inf")
        for r in range(args.rounds):
            with timed() as t:
                stage(src, root / f"vm1-{r}")
            t_files = min(t_files, t.seconds)
            with timed() as t:
                result = stage(src, root / f"vm2-{r}", pack=True)
            assert result.action == "unpacked" and not result.packed
            t_packed = min(t_packed, t.seconds)
            with timed() as t:
                subprocess.run(["cp", "-r", str(src), str(root / f"vm3-{r}")], check=True)
            t_cp = min(t_cp, t.seconds)
            for d in ("vm1", "vm2", "vm3"):
                if r + 1 < args.rounds:
                    shutil.rmtree(root / f"{d}-{r}")
        with timed() as t_skip:
            result = stage(src, root / f"vm1-{args.rounds - 1}")
        assert result.action == "skipped"
        print(f"  per-file copy (stage)       {t_files:7.2f} s   (best of {args.rounds})")
        print(f"  archive copy+unpack (pack)  {t_packed:7.2f} s   (packing once on the drive: {t_pack.seconds:.2f} s)")
        print(f"  cp -r                       {t_cp:7.2f} s")
        print(f"  skip (manifest says done)   {t_skip.seconds:7.2f} s")
        print(f"  ratios: per-file / cp -r = {ratio(t_files, t_cp)}, "
              f"packed / cp -r = {ratio(t_packed, t_cp)}, "
              f"per-file / packed = {ratio(t_files, t_packed)}")
        shutil.rmtree(root / "drive")
        for d in ("vm1", "vm2", "vm3"):
            shutil.rmtree(root / f"{d}-{args.rounds - 1}")

        data = make_check_dataset(root / "big", args.images)
        with timed() as t_check:
            res = check_dataset(data, None)
        print(f"check on {args.images:,} images ({res.boxes:,} boxes): {t_check.seconds:.2f} s, "
              f"{len(res.problems)} problems")
        bench_coco(root, args.coco_images, args.coco_boxes)


if __name__ == "__main__":
    main()
