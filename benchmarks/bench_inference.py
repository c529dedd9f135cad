"""Batch inference: N images in ONE darknet process (detection.detect on a folder) vs one process per image.

Run: ``python benchmarks/bench_inference.py [--images 200] [--darknet /usr/bin/darknet]``. Debian's darknet
(pjreddie, CPU) on a yolov3-tiny cfg at 64x64 with weights made from the cfg (see tests/test_inference_batch.py).
The per-image baseline is the same `detection.detect` called once per image (what `%yolo test` did before), so
both sides pay the same parsing and checks; the difference is darknet's start (parsing the cfg, loading weights,
allocating the net) paid once or N times. Bigger nets load longer, so the ratio grows with the model.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from _common import figure_line, ratio, timed  # noqa: E402

from darknet_magics.model import detect as detection  # noqa: E402
from darknet_magics.data.cfg import make_cfg  # noqa: E402
from darknet_magics.report import RecordingReporter  # noqa: E402
from darknet_magics.synth import make_dataset  # noqa: E402
from test_inference_batch import synthetic_weights  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--darknet", default="/usr/bin/darknet")
    parser.add_argument("--template", default="/usr/share/darknet/cfg/yolov3-tiny.cfg")
    parser.add_argument("--quick", action="store_true", help="50 images (run_all.py --quick passes it to all)")
    args = parser.parse_args()
    if args.quick:
        args.images = min(args.images, 50)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp)
        ds = make_dataset(ws / "ds", images=args.images, size=64)
        (ws / "obj.data").write_text(f"classes = 1\nnames = {ws / 'ds' / 'obj.names'}\n")
        cfg = ws / "tiny.cfg"
        cfg.write_text(make_cfg(Path(args.template).read_text(), 1, width=64, height=64, batch=1, subdivisions=1,
                                random=0))
        weights = ws / "tiny.weights"
        weights.write_bytes(synthetic_weights(cfg.read_text()))
        common = dict(darknet=args.darknet, data=ws / "obj.data", cfg=cfg, weights=weights, thresh=0.5, cwd=ws)
        with timed() as batch:
            one = detection.detect(image=ds.folder, out=ws / "batch", reporter=RecordingReporter(), **common)
        rows = 0
        with timed() as each:
            for image in ds.images:
                rows += len(detection.detect(image=image, out=ws / "each", reporter=RecordingReporter(),
                                             **common).detections)
        assert rows == len(one.detections), (rows, len(one.detections))
        print(f"batch inference, {args.images} images, {args.darknet} (yolov3-tiny 64x64):")
        print(figure_line("one process for all images", batch.seconds, "s"))
        print(figure_line("one process per image", each.seconds, "s"))
        print(figure_line("detections (both)", rows, "rows"))
        print(f"  ratio (per image / one process): {ratio(each.seconds, batch.seconds)}")


if __name__ == "__main__":
    main()
