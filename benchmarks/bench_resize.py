"""darknet's training throughput on large photos, with and without `%yolo data ... resize=`, in one run.

Run: ``python benchmarks/bench_resize.py [--images 16] [--iterations 6] [--net 64] [--batch 32] [--quick]``. Makes ``--images`` noisy
3000x2000 JPEGs with boxes (YOLO labels beside them), writes two datasets with `datasets.prepare_dataset` (one
linking the photos as they are, one with resize= twice the network size), and trains each with Debian's darknet
(``/usr/bin/darknet``, yolov3-tiny at ``--net`` px) for ``--iterations`` iterations. Prints iterations per second of
each and the ratio (resized / as is). Skips with a message when darknet, its cfg or Pillow is missing.
"""
from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import ratio, timed  # noqa: E402

DARKNET = Path("/usr/bin/darknet")
TINY_CFG = Path("/usr/share/darknet/cfg/yolov3-tiny.cfg")


def make_photos(folder: Path, n: int) -> None:
    """`n` 3000x2000 JPEGs (noise, so they do not compress to nothing) with two boxes each."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    tile = rng.integers(0, 255, size=(500, 750, 3), dtype=np.uint8)
    for i in range(n):
        px = np.tile(np.roll(tile, i * 37, axis=1), (4, 4, 1))
        px[400:1200, 600:1500] = (200, 40, 40)
        Image.fromarray(px).save(folder / f"photo_{i:03d}.jpg", quality=90)
        (folder / f"photo_{i:03d}.txt").write_text("0 0.35 0.4 0.3 0.4\n0 0.75 0.7 0.2 0.3\n")
    (folder / "obj.names").write_text("thing\n")


def tiny_cfg(path: Path, net: int, iterations: int, batch: int) -> None:
    text = TINY_CFG.read_text()
    for pattern, value in ((r"(?m)^batch=\d+", f"batch={batch}"), (r"(?m)^subdivisions=\d+", "subdivisions=1"),
                           (r"(?m)^width=\d+", f"width={net}"), (r"(?m)^height=\d+", f"height={net}"),
                           (r"(?m)^max_batches\s*=\s*\d+", f"max_batches={iterations}"),
                           (r"(?m)^random=1", "random=0"), (r"(?m)^classes=80", "classes=1"),
                           (r"(?m)^filters=255", "filters=18")):
        text = re.sub(pattern, value, text)
    path.write_text(text)


def train_rate(data: Path, cfg: Path, iterations: int, cwd: Path) -> tuple[float, float]:
    """(iterations per second of a darknet training run, wall clock start to end; seconds darknet waited for its
    loader, the sum of its "Loaded: X seconds" lines)."""
    with timed() as t:
        proc = subprocess.run([str(DARKNET), "detector", "train", str(data), str(cfg)], cwd=cwd, capture_output=True,
                              text=True, timeout=3600, stdin=subprocess.DEVNULL)
    done = len(re.findall(r"(?m)^\s*\d+: [\d.]+, [\d.]+ avg", proc.stdout + proc.stderr))
    if proc.returncode != 0 or done < iterations or "Couldn't open" in proc.stdout + proc.stderr:
        raise SystemExit(f"darknet failed ({proc.returncode}, {done} iterations):\n{(proc.stdout + proc.stderr)[-2000:]}")
    waited = sum(float(x) for x in re.findall(r"Loaded: ([\d.]+) seconds", proc.stdout + proc.stderr))
    return done / t.seconds, waited


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--net", type=int, default=64, help="small, so that on a CPU decoding, not the network, "
                        "sets the pace as it does on a GPU")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--quick", action="store_true", help="8 photos, 3 iterations")
    args = parser.parse_args()
    if args.quick:
        args.images, args.iterations = min(args.images, 8), min(args.iterations, 3)
    missing = [str(p) for p in (DARKNET, TINY_CFG) if not p.exists()]
    try:
        import PIL  # noqa: F401
    except ImportError:
        missing.append("Pillow")
    if missing:
        print(f"bench_resize: skipped, missing {', '.join(missing)}")
        return
    from darknet_magics.data.datasets import prepare_dataset

    with tempfile.TemporaryDirectory(prefix="bench-resize-") as tmp:
        root = Path(tmp)
        with timed() as t:
            make_photos(root / "photos", args.images)
        print(f"made {args.images} 3000x2000 JPEGs in {t.seconds:.1f} s")
        cfg = root / "t.cfg"
        tiny_cfg(cfg, args.net, args.iterations, args.batch)
        size = (2 * args.net, 2 * args.net)
        as_is = prepare_dataset(root / "asis" / "a.data", images=root / "photos", split=0,
                                backup=root / "asis" / "backup")
        with timed() as t:
            small = prepare_dataset(root / "small" / "s.data", images=root / "photos", split=0, resize=size,
                                    backup=root / "small" / "backup")
        print(f"resize={size[0]}x{size[1]}: copies written in {t.seconds:.1f} s")
        rate_as_is, wait_as_is = train_rate(as_is.data_path, cfg, args.iterations, root)
        rate_small, wait_small = train_rate(small.data_path, cfg, args.iterations, root)
        print(f"darknet yolov3-tiny {args.net}x{args.net}, batch {args.batch}, {args.iterations} iterations "
              "(/usr/bin/darknet, CPU):")
        print(f"  photos as they are: {rate_as_is:.3f} iterations/s, {wait_as_is:.1f} s waiting for the loader")
        print(f"  resize={size[0]}x{size[1]}:    {rate_small:.3f} iterations/s, {wait_small:.1f} s waiting for the loader")
        verdict = "ok" if rate_small >= rate_as_is else "MISSED"
        print(f"ratio: iterations/s resized/as is = {ratio(rate_small, rate_as_is)} (target >= 1x): {verdict}")


if __name__ == "__main__":
    main()
