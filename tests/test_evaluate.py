"""`%yolo eval`: our matching against pycocotools and darknet's own `detector map`, the readers' checks, the views,
the trackers' files (read back by TensorBoard), with a model trained by the real darknet."""
from __future__ import annotations

import contextlib
import json
import io
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cell
from darknet_magics.errors import StepError
from darknet_magics.model import metrics
from darknet_magics.model.evaluate import parse_json_detections, parse_labels, parse_voc_results, read_ground_truth
from darknet_magics.output.trackers import crc32c, write_scalars

sys.path.insert(0, str(Path(__file__).parent))
from builds import flavor_binary  # noqa: E402


def random_boxes(seed: int, images: int = 30, classes: int = 3) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Ground truth and detections near it (some of another class, some false alarms), relative corners."""
    rng = np.random.default_rng(seed)
    truths, dets = [], []
    for _ in range(images):
        gt = []
        for _ in range(rng.integers(0, 5)):
            x0, y0 = rng.uniform(0, 0.7, 2)
            w, h = rng.uniform(0.05, 0.3, 2)
            gt.append((rng.integers(0, classes), x0, y0, x0 + w, y0 + h))
        gt_a = np.array(gt, float).reshape(-1, 5)
        det = []
        for row in gt_a:
            for _ in range(rng.integers(0, 3)):
                cls = row[0] if rng.random() < 0.8 else rng.integers(0, classes)
                det.append((cls, rng.uniform(0.005, 1), *(row[1:] + rng.normal(0, 0.01, 4))))
        for _ in range(rng.integers(0, 4)):
            x0, y0 = rng.uniform(0, 0.7, 2)
            w, h = rng.uniform(0.05, 0.3, 2)
            det.append((rng.integers(0, classes), rng.uniform(0.005, 1), x0, y0, x0 + w, y0 + h))
        truths.append(gt_a)
        dets.append(np.array(det, float).reshape(-1, 6))
    return truths, dets


def pycocotools_map(truths, dets, sizes, classes: int) -> tuple[float, float]:
    """(mAP@0.50:0.95, mAP@0.50) by pycocotools' COCOeval on the same boxes, in pixels."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    gt = {"images": [{"id": k + 1, "width": w, "height": h} for k, (w, h) in enumerate(sizes)],
          "categories": [{"id": c} for c in range(classes)], "annotations": []}
    found = []
    for k, (boxes, (w, h)) in enumerate(zip(truths, sizes)):
        for c, x0, y0, x1, y1 in boxes:
            bw, bh = (x1 - x0) * w, (y1 - y0) * h
            gt["annotations"].append({"id": len(gt["annotations"]) + 1, "image_id": k + 1, "category_id": int(c),
                                      "bbox": [x0 * w, y0 * h, bw, bh], "area": bw * bh, "iscrowd": 0})
    for k, (boxes, (w, h)) in enumerate(zip(dets, sizes)):
        for c, s, x0, y0, x1, y1 in boxes:
            found.append({"image_id": k + 1, "category_id": int(c), "score": float(s),
                          "bbox": [x0 * w, y0 * h, (x1 - x0) * w, (y1 - y0) * h]})
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = gt
        coco.createIndex()
        run = COCOeval(coco, coco.loadRes(found) if found else COCO(), "bbox")
        run.evaluate()
        run.accumulate()
        run.summarize()
    return float(run.stats[0]), float(run.stats[1])


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_coco_ap_agrees_with_pycocotools(seed: int) -> None:
    pytest.importorskip("pycocotools")
    truths, dets = random_boxes(seed)
    ours = metrics.coco_ap(truths, dets, 3)
    theirs, theirs50 = pycocotools_map(truths, dets, [(640, 480)] * len(truths), 3)
    assert abs(np.nanmean(ours) - theirs) < 0.005 and abs(np.nanmean(ours[:, 0]) - theirs50) < 0.005


@pytest.mark.timeout(30)
def test_darknet_ap_is_the_area_under_the_precision_envelope() -> None:
    # one class, two truths in one image; ranked: a hit (0.9), a miss (0.8), a second hit (0.7) and a duplicate
    # of the first truth (0.6, a false positive: a truth counts once)
    gt = np.array([[0, 0.1, 0.1, 0.3, 0.3], [0, 0.6, 0.6, 0.9, 0.9]])
    det = np.array([[0, 0.9, 0.1, 0.1, 0.3, 0.3], [0, 0.8, 0.4, 0.0, 0.5, 0.1], [0, 0.7, 0.6, 0.6, 0.9, 0.9],
                    [0, 0.6, 0.11, 0.1, 0.3, 0.3]])
    ranked = metrics.rank_darknet([gt], [det], 1, 0.5)
    assert list(ranked.tp) == [True, False, True, False]
    # precision 1, 1/2, 2/3, 1/2 at recall 1/2, 1/2, 1, 1: the envelope is 1 up to 1/2, then 2/3
    assert metrics.darknet_ap(ranked, 1)[0] == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    assert metrics.darknet_ap(ranked, 1, points=11)[0] == pytest.approx((6 * 1 + 5 * 2 / 3) / 11)


@pytest.mark.timeout(30)
def test_label_and_detection_readers_name_the_file_and_line(tmp_path: Path) -> None:
    good = parse_labels("0 0.5 0.5 0.2 0.4\n\n", tmp_path / "a.txt", 1)
    assert good.tolist() == [[0, 0.4, 0.3, 0.6, 0.7]]
    for text, words in (("0 0.5 0.5 0.2\n", "4 fields"), ("0 0.5 nan 0.2 0.2\n", "not finite"),
                        ("0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2 0.2\n", "class 3"), ("x 0.5 0.5 0.2 0.2\n", "numbers")):
        with pytest.raises(StepError) as info:
            parse_labels(text, tmp_path / "a.txt", 2)
        assert words in str(info.value) and info.value.problems[0].code == "bad-label"
    image = tmp_path / "img.png"
    image.write_bytes(b"")
    (tmp_path / "img.txt").write_bytes(b"0 0.5 0.5 0.2 0.2\n0 \xff\xfe 0.5\n")
    with pytest.raises(StepError) as info:
        read_ground_truth([image], 1)
    assert f"{tmp_path / 'img.txt'}:2:" in str(info.value) and "UTF-8" in str(info.value)
    assert read_ground_truth([tmp_path / "other.png"], 1)[0].shape == (0, 5)  # no label file: a negative
    with pytest.raises(StepError, match="not finite"):
        parse_json_detections('[{"frame_id":1, "objects": [{"class_id":0, "relative_coordinates":{"center_x":'
                              '0.5, "center_y":0.5, "width":0.1, "height":NaN}, "confidence":0.9}]}]', 1, 1)
    with pytest.raises(StepError, match="class_id 4"):
        parse_json_detections('[{"frame_id":1, "objects": [{"class_id":4, "relative_coordinates":{"center_x":'
                              '0.5, "center_y":0.5, "width":0.1, "height":0.1}, "confidence":0.9}]}]', 1, 1)
    (tmp_path / "det_red.txt").write_text("000000 0.9 1 1 33 33\n000001 inf 1 1 2 2\n")
    with pytest.raises(StepError, match=r"det_red.txt:2"):
        parse_voc_results(tmp_path, "det_", ["red"], [(64, 64), (64, 64)])


@pytest.mark.timeout(60)
def test_event_files_are_read_back_by_tensorboard(tmp_path: Path) -> None:
    assert crc32c(b"123456789") == 0xE3069283  # the CRC-32C check value
    ea_module = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    path = write_scalars(tmp_path, [("val/mAP50", 100, 0.25), ("val/mAP50", 200, 0.5), ("train/loss", 100,
                                                                                         float("nan")),
                                    ("eval/ap50/red\x07box", 0, 1.0)])
    assert path is not None and path.parent == tmp_path and path.name.startswith("events.out.tfevents.")
    acc = ea_module.EventAccumulator(str(tmp_path))
    acc.Reload()
    assert sorted(acc.Tags()["scalars"]) == ["eval/ap50/red_box", "val/mAP50"]  # nan left out, BEL replaced
    assert [(e.step, e.value) for e in acc.Scalars("val/mAP50")] == [(100, 0.25), (200, 0.5)]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test of a checkout trains the model (minutes)
def test_yolo_eval_in_a_real_shell(ip, trained_model, capsys) -> None:
    """pjreddie (which has no `detector map`): the metrics, the views and the trackers' files of a trained model."""
    root, data, cfg, weights = trained_model
    res = run_cell(ip, f"%yolo eval {data} {cfg} {weights} bin=/usr/bin/darknet out={root}/evals")
    out = capsys.readouterr()
    assert res.error_in_exec is None, out.out + out.err
    ev = ip.user_ns["yolo_eval"]
    assert list(ev.per_class.columns) == ["class", "images", "gt", "tp", "fp", "fn", "precision", "recall", "f1",
                                          "ap50", "ap50_95"]
    assert ev.map50 > 0.1 and 0 < ev.map50_95 <= ev.map50  # it finds boxes (training is randomised: 0.39-0.50)
    assert ev.per_class["gt"].sum() == sum(len(t) for t in ev.truths) and len(ev.images) == 8
    errors = (ev.images["fp"] + ev.images["fn"]).tolist()
    assert errors == sorted(errors, reverse=True)  # worst first
    assert list(ev.confusion.index) == ["red_box", "background"] and ev.confusion.to_numpy().sum() > 0
    assert ev.confusion.loc["red_box", "red_box"] == ev.per_class["tp"].iloc[0]
    assert set(ev.curves.columns) == {"class", "confidence", "precision", "recall", "f1"}
    assert ev.folder == root / "evals" / "tiny_final" and "mAP@0.50" in out.out
    for name in ("confusion.html", "curves.html", "mosaic.html", "per_class.csv", "confusion.csv", "images.csv"):
        assert (ev.folder / name).is_file(), name
    assert len(list(ev.folder.glob("events.out.tfevents.*"))) == 1
    # the same line again: a new folder, nothing of the first overwritten
    res = run_cell(ip, f"%yolo eval {data} {cfg} {weights} bin=/usr/bin/darknet out={root}/evals as again")
    assert res.error_in_exec is None and ip.user_ns["again"].folder == root / "evals" / "tiny_final_1"
    assert ip.user_ns["again"].map50 == ev.map50  # darknet is deterministic on the CPU
    # the checkpoints of the run ranked by mAP@0.50:0.95, on pjreddie, which has no `detector map`
    res = run_cell(ip, f"%yolo map {data} {cfg} {weights.parent} metric=map50_95 bin=/usr/bin/darknet as ck")
    out = capsys.readouterr()
    assert res.error_in_exec is None, out.out + out.err
    ck = ip.user_ns["ck"]
    assert ck.metric == "map50_95" and ck.table["map50_95"].notna().all()
    assert ck.table.loc[ck.table["path"] == str(ck.best), "map50_95"].iloc[0] == ck.table["map50_95"].max()
    assert ck.table.loc[ck.table["path"] == str(weights), "map50_95"].iloc[0] == pytest.approx(ev.map50_95)
    assert "mAP@0.50:0.95" in out.out


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test of a checkout trains the model (minutes)
def test_pjreddie_evaluates_a_list_shorter_than_its_four_loaders(ip, trained_model, tmp_path, capsys) -> None:
    """pjreddie's `detector valid` reads paths[0..3] whatever the list's length (it aborted on 2 images): the list it
    gets is padded, and the padded rows are dropped; the two images give what they give in the whole list."""
    root, data, cfg, weights = trained_model
    valid = [line for line in (root / "valid.txt").read_text().splitlines() if line.strip()][:2]
    short = tmp_path / "short.txt"
    short.write_text("".join(f"{line}\n" for line in valid))
    two = tmp_path / "two.data"
    two.write_text("".join(f"valid={short}\n" if line.startswith("valid") else f"{line}\n"
                           for line in data.read_text().splitlines()))
    res = run_cell(ip, f"%yolo eval {two} {cfg} {weights} bin=/usr/bin/darknet out={tmp_path}/evals as short")
    out = capsys.readouterr()
    assert res.error_in_exec is None, out.out + out.err
    ev = ip.user_ns["short"]
    assert len(ev.images) == 2 and ev.per_class["gt"].sum() == sum(len(t) for t in ev.truths)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test of a checkout trains the model (minutes)
@pytest.mark.parametrize("flavor", ["alexeyab", "hank-ai"])
def test_eval_agrees_with_detector_map_and_pycocotools(trained_model, flavor) -> None:
    """The same weights: our mAP@0.50 against the flavor's own `detector map`, our mAP@0.50:0.95 against
    pycocotools on our detections."""
    from darknet_magics.data.formats import image_size
    from darknet_magics.model.darknet_map import evaluate_map
    from darknet_magics.model.evaluate import evaluate

    pytest.importorskip("pycocotools")
    binary = flavor_binary(flavor)
    root, data, cfg, weights = trained_model
    ours = evaluate(darknet=binary, data=data, cfg=cfg, weights=weights, cwd=binary.parent)
    theirs = evaluate_map(darknet=binary, data=data, cfg=cfg, weights=weights, cwd=binary.parent, show=False)
    coco, _ = pycocotools_map(ours.truths, [_dets(ours, p) for p in ours.paths],
                              [image_size(p) for p in ours.paths], 1)
    print(f"{flavor}: mAP@0.50 ours {ours.map50:.4f} darknet {theirs.map50:.4f}; "
          f"mAP@0.50:0.95 ours {ours.map50_95:.4f} pycocotools {coco:.4f}")
    assert ours.map50 > 0.1 and abs(ours.map50 - theirs.map50) <= 0.01
    assert abs(ours.map50_95 - coco) <= 0.005


def _dets(evaluation, path: Path) -> np.ndarray:
    rows = evaluation.detections[evaluation.detections["image"] == str(path)]
    return rows[["class", "confidence", "x0", "y0", "x1", "y1"]].to_numpy(float).reshape(-1, 6)


@pytest.mark.timeout(120)
def test_yolo_eval_bad_input_names_the_line_and_the_fix(ip, tmp_path, capsys) -> None:
    from darknet_magics.synth import make_dataset

    ds = make_dataset(tmp_path / "ds", images=3, size=64)
    (tmp_path / "valid.txt").write_text("".join(f"{p}\n" for p in ds.images))
    data = tmp_path / "obj.data"
    data.write_text(f"classes=1\nvalid={tmp_path / 'valid.txt'}\nnames={ds.folder / 'obj.names'}\n")
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text("[net]\nwidth=64\nheight=64\n")
    res = run_cell(ip, f"%yolo eval {data} {cfg} {tmp_path / 'none.weights'}")
    err = capsys.readouterr().err
    assert res.error_in_exec is not None and "WEIGHTS" in err and "does not exist" in err and "Traceback" not in err
    res = run_cell(ip, f"%yolo eval {data} {cfg} {tmp_path / 'none.weights'} thresh=high")
    err = capsys.readouterr().err
    assert res.error_in_exec is not None and "thresh" in err and "Traceback" not in err
    (tmp_path / "w.weights").write_bytes(b"\0" * 64)
    ds.images[2].with_suffix(".txt").write_text("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 inf 0.2\n")
    res = run_cell(ip, f"%yolo eval {data} {cfg} {tmp_path / 'w.weights'} bin=/usr/bin/darknet")
    out = capsys.readouterr()
    err = out.out + out.err
    assert res.error_in_exec is not None and "Traceback" not in err
    assert f"{ds.images[2].with_suffix('.txt')}:2:" in err and "not finite" in err


@pytest.mark.timeout(120)
def test_a_run_s_results_csv_and_events_come_from_its_history(tmp_path: Path) -> None:
    """The training sink on a real AlexeyAB log with mAP: one row per iteration, the mAP beside its iteration,
    and TensorBoard reads the chart's scalars back."""
    import pandas as pd

    from conftest import FIXTURES
    from darknet_magics.output.logs import parse_log
    from darknet_magics.output.trackers import save_run

    history = parse_log(FIXTURES / "logs" / "alexeyab-train-map.pty.log")
    assert len(history.maps)  # the fixture has mAP lines
    save_run(history, tmp_path)
    table = pd.read_csv(tmp_path / "results.csv")
    assert list(table["iteration"]) == list(history.iterations["iteration"])
    at = history.maps.dropna(subset=["iteration"]).iloc[-1]
    assert table.loc[table["iteration"] == at["iteration"], "map50"].iloc[0] == pytest.approx(at["map50"])
    ea_module = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = ea_module.EventAccumulator(str(tmp_path))
    acc.Reload()
    assert {"train/loss", "train/avg_loss", "val/mAP50"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("train/avg_loss")] == list(history.iterations["iteration"])
    save_run(history, tmp_path)  # a resumed run ends again: the same file, rewritten, not a second copy
    assert [p.name for p in tmp_path.glob("events.out.tfevents.*")] == ["events.out.tfevents.darknet_magics.train"]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_real_training_run_leaves_results_csv_and_events_in_its_folder(tmp_path: Path) -> None:
    """The sink wired into training's end: 3 real iterations of Debian's darknet."""
    from darknet_magics.train import training
    from darknet_magics.data.cfg import make_cfg
    from darknet_magics.report import RecordingReporter
    from darknet_magics.synth import make_dataset

    template = Path("/usr/share/darknet/cfg/yolov3-tiny.cfg")
    if not Path("/usr/bin/darknet").exists() or not template.exists():
        pytest.skip("needs Debian's darknet (apt-get install darknet)")
    ds = make_dataset(tmp_path / "ds", images=4, size=64)
    (tmp_path / "train.txt").write_text("".join(f"{p}\n" for p in ds.images))
    (tmp_path / "obj.data").write_text(f"classes=1\ntrain={tmp_path}/train.txt\nvalid={tmp_path}/train.txt\n"
                                       f"names={ds.folder}/obj.names\nbackup={tmp_path}/backup\n")
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(make_cfg(template.read_text(), 1, width=64, height=64, batch=2, subdivisions=1, max_batches=3,
                            random=0))
    run = training.train(darknet="/usr/bin/darknet", data=tmp_path / "obj.data", cfg=cfg, weights=None, map=False,
                         gpus=None, backup=None, clear=False, run_dir=tmp_path / "run", reporter=RecordingReporter(),
                         cwd=tmp_path)
    import pandas as pd

    table = pd.read_csv(run.run_dir / "results.csv")
    assert list(table["iteration"]) == [1, 2, 3] and table["avg_loss"].notna().all()
    assert (run.run_dir / "events.out.tfevents.darknet_magics.train").stat().st_size > 0


@pytest.mark.timeout(120)
def test_yolo_eval_dry_run_shows_darknet_s_line_and_runs_nothing(tmp_path) -> None:
    import os
    import subprocess

    if not Path("/usr/bin/darknet").exists():
        pytest.skip("needs Debian's darknet (its flavor picks the line)")
    weights = tmp_path / "run" / "backup" / "tiny_final.weights"
    plan = tmp_path / "eval.darknet"
    plan.write_text(f"%yolo eval {tmp_path}/obj.data {tmp_path}/tiny.cfg {weights} iou=0.6 bin=/usr/bin/darknet\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-m", "darknet_magics", "run", str(plan), "--dry-run"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=100)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "/usr/bin/darknet detector valid eval.data" in proc.stdout and "IoU 0.6" in proc.stdout
    assert f"views to {tmp_path}/evaluations/tiny_final" in proc.stdout and not (tmp_path / "run").exists()


@pytest.mark.timeout(60)
def test_views_are_valid_plotly_figures_that_the_report_exports(tmp_path: Path) -> None:
    """The three views of an evaluation of generated images: plotly accepts each spec, the HTML report's exporter
    renders it, and the mosaic shows each image twice with its truth and its detections drawn."""
    import plotly.graph_objects as go

    from darknet_magics.model.evaluate import score
    from darknet_magics.synth import make_dataset
    from darknet_magics.view.evaluation import confusion_figure, curves_figure, mosaic_figure
    from darknet_magics.view.report_html import plotly_output_html

    ds = make_dataset(tmp_path / "ds", images=4, size=64, negatives=1)
    truths = read_ground_truth(ds.images, 1)
    dets = [np.column_stack([t[:, :1], np.full(len(t), 0.9), t[:, 1:] + 0.01]) for t in truths]
    dets[0] = np.array([[0, 0.8, 0.1, 0.1, 0.3, 0.3]])  # a false alarm on the negative image
    ev = score(truths, dets, ds.names, ds.images)
    assert ev.images["image"].iloc[0] == str(ds.images[0]) and ev.per_class["fp"].iloc[0] == 1
    mosaic = mosaic_figure(ev)
    for spec in (confusion_figure(ev.confusion), curves_figure(ev.curves), mosaic):
        go.Figure(spec)  # raises on a property plotly does not know
        assert "<div" in plotly_output_html(json.loads(json.dumps(spec, default=lambda a: a.tolist())))
    assert len(mosaic["layout"]["images"]) == 8
    assert all(i["source"].startswith("data:image/png;base64,") for i in mosaic["layout"]["images"])
    assert len(mosaic["layout"]["shapes"]) == sum(len(t) for t in truths) + sum(len(d) for d in dets)
