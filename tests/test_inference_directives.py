"""`%yolo test`, `%yolo map`, `%yolo show`, `%yolo export` in a real IPython shell with real darknet."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import run_cell
from darknet_magics.data.cfg import make_cfg
from darknet_magics.synth import make_dataset

sys.path.insert(0, str(Path(__file__).parent))
from builds import alexeyab, flavor_binary, hankai  # noqa: E402,F401 (alexeyab, hankai: fixtures)
from test_inference_batch import DARKNET, TEMPLATE, synthetic_weights  # noqa: E402


@pytest.fixture()
def files(tmp_path: Path):
    if not DARKNET.exists() or not TEMPLATE.exists():
        pytest.skip("needs Debian's darknet (apt-get install darknet)")
    ds = make_dataset(tmp_path / "ds", images=5, size=64)  # darknet strips spaces in obj.data
    data = tmp_path / "obj.data"
    data.write_text(f"classes = 1\ntrain = {tmp_path / 'l.txt'}\nvalid = {tmp_path / 'l.txt'}\n"
                    f"names = {ds.folder / 'obj.names'}\n")
    (tmp_path / "l.txt").write_text("".join(f"{p}\n" for p in ds.images))
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(make_cfg(TEMPLATE.read_text(), 1, width=64, height=64, batch=1, subdivisions=1, random=0))
    backup = tmp_path / "backup"
    backup.mkdir()
    (backup / "tiny_1000.weights").write_bytes(synthetic_weights(cfg.read_text()))
    return tmp_path, ds, data, cfg, backup / "tiny_1000.weights"


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_yolo_test_on_a_folder_in_a_real_shell(ip, files, capsys) -> None:
    tmp, ds, data, cfg, weights = files
    res = run_cell(ip, f'%yolo test {data} {cfg} {weights} "{ds.folder}" out=\"{tmp}/out dir\" bin={DARKNET} as det')
    assert res.error_in_exec is None, capsys.readouterr()
    det = ip.user_ns["det"]
    assert len(det.annotated) == 5 and set(det.detections["image"]) <= {str(p.resolve()) for p in ds.images}
    res = run_cell(ip, f"%yolo test {data} {cfg} {weights} {ds.folder} args=\"-mjpeg_port 8090\" bin={DARKNET}")
    out = capsys.readouterr()
    assert "pjreddie's darknet has no flag -mjpeg_port" in out.out + out.err
    res = run_cell(ip, f'%yolo show "{det.annotated[0]}"')
    assert res.error_in_exec is None


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_yolo_map_on_a_backup_folder_in_a_real_shell(ip, files, capsys, alexeyab) -> None:
    from IPython.utils.capture import capture_output

    from darknet_magics.view.live import PLOTLY_MIME, png_unavailable
    from test_inference_batch import with_seen

    tmp, ds, data, cfg, weights = files
    backup = weights.parent
    (backup / "tiny_best.weights").write_bytes(with_seen(synthetic_weights(cfg.read_text(), objectness=-8), 700))
    # the notebook's reporter (CellReporter), as in a kernel; outside one it displays through IPython's display()
    ip.magics_manager.registry["DarknetMagics"].session.platform = "jupyter"
    with capture_output() as shown:
        res = run_cell(ip, f"%yolo map {data} {cfg} {backup} points=0 iou_thresh=0.1 bin={alexeyab} as ck")
    assert res.error_in_exec is None, shown.stdout + shown.stderr
    ck = ip.user_ns["ck"]
    assert list(ck.table["tag"]) == ["1000", "best"] and list(ck.table["iteration"]) == [1000, 700]
    assert "best: " in shown.stdout
    # the chart goes the way of the training chart: plotly's mimetype and our HTML, at once (no wait for a
    # browser); the PNG file is made in the background where the static export works
    charts = [o.data for o in shown.outputs if PLOTLY_MIME in o.data]
    assert len(charts) == 1 and {t["name"] for t in charts[0][PLOTLY_MIME]["data"]} >= {"mAP@0.50", "F1"}
    assert "text/html" in charts[0] and "image/png" not in charts[0]
    assert ck.saved.html == backup / "checkpoints.html" and (backup / "checkpoints.csv").is_file()
    png = ck.saved.wait(120)
    assert (png is not None) == (png_unavailable() is None)
    if png is not None:
        assert png == backup / "checkpoints.png" and png.read_bytes().startswith(b"\x89PNG")
    assert charts[0]["text/plain"] == f"checkpoint chart: {backup / 'checkpoints.html'}"


@pytest.mark.timeout(120)
def test_train_args_are_checked_before_darknet_starts(ip, files, capsys) -> None:
    tmp, ds, data, cfg, weights = files
    res = run_cell(ip, f'%yolo train {data} {cfg} bin={DARKNET} force args="-mAP_epochs 2"')
    out = capsys.readouterr()
    assert res.error_in_exec is not None
    assert "pjreddie's darknet has no flag -mAP_epochs" in out.out + out.err
    assert not list(tmp.glob("**/train.log"))  # nothing started


def test_show_puts_an_image_inline_and_refuses_what_is_no_image(ip, tmp_path, capsys):
    from darknet_magics.synth import make_dataset

    ds = make_dataset(tmp_path / "img dir; x", images=1, size=32)
    image = ds.images[0]
    result = ip.run_cell(f'%yolo show "{image}"', store_history=False)
    out = capsys.readouterr().out
    assert result.error_in_exec is None and str(image) in out
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    result = ip.run_cell(f'%yolo show "{text}"', store_history=False)
    captured = capsys.readouterr()
    assert result.error_in_exec is not None and "Traceback" not in captured.out + captured.err


# ---------------------------------------------------------------------------------------------------------------
# %yolo video and %yolo export through their directives, with the real AlexeyAB and hank-ai builds

from test_inference_batch import FFMPEG, make_clip  # noqa: E402


@pytest.mark.once
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("flavor", ["alexeyab", "hank-ai"])
def test_yolo_video_in_a_real_shell(ip, files, capsys, flavor) -> None:
    from darknet_magics.model.video import video_frames

    tmp, ds, data, cfg, weights = files
    if not FFMPEG.exists():
        pytest.skip("needs Debian's ffmpeg (apt-get install ffmpeg)")
    binary = flavor_binary(flavor)
    clip = make_clip(tmp / "-my clip; it's.mp4")  # a leading '-': darknet gets an absolute path
    out = tmp / "-videos out"
    res = run_cell(ip, f'%yolo video {data} {cfg} {weights} "{clip}" out="{out}" thresh=0.5 bin={binary} as v')
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert res.error_in_exec is None, text[-3000:]
    v = ip.user_ns["v"]
    assert v.video.is_file() and v.video.parent == out and v.playable is not None
    assert video_frames(v.playable) == v.frames and 15 <= v.frames <= 20, text[-2000:]
    assert "video: " in text and f"frame(s) written to {v.video.name}" in text  # the progress line, final form
    assert "Cannot load image" not in v.output  # AlexeyAB found its box glyphs (data/labels beside the binary)
    assert "Traceback" not in text


@pytest.mark.timeout(120)
def test_yolo_video_bad_input_names_the_line_and_the_fix(ip, files, capsys) -> None:
    tmp, ds, data, cfg, weights = files
    for line, said in [(f'%yolo video {data} {cfg} {weights} "{tmp}/no where.mp4" bin={DARKNET}', "no where.mp4"),
                       (f"%yolo video {data} {cfg} {tmp}/missing.weights {ds.images[0]} bin={DARKNET}",
                        "WEIGHTS"),
                       (f"%yolo video {data} {cfg} {weights} {ds.images[0]} bin={DARKNET}", "use %yolo test"),
                       (f"%yolo video {data} {cfg} {weights} {tmp} bin={DARKNET}", "is a folder")]:
        res = run_cell(ip, line)
        text = "".join(capsys.readouterr())
        assert res.error_in_exec is not None and "Traceback" not in text, text
        assert "line 1, `video`" in text and said in text and "fix: " in text, text
    clip = tmp / "clip.mp4"
    clip.write_bytes(b"\0" * 64)  # pjreddie is refused before the file is read
    res = run_cell(ip, f"%yolo video {data} {cfg} {weights} {clip} bin={DARKNET}")
    text = "".join(capsys.readouterr())
    assert res.error_in_exec is not None and "Traceback" not in text and "pjreddie" in text, text
    # a flag without its value, refused before darknet runs (a script that darknet_flavor reads as AlexeyAB's)
    fake = tmp / "alexeyab" / "darknet"
    fake.parent.mkdir()
    fake.write_bytes(b"#!/bin/sh\n# -dont_show\necho ran > ran.txt\n")
    fake.chmod(0o755)
    res = run_cell(ip, f'%yolo video {data} {cfg} {weights} {clip} args="-mjpeg_port" bin={fake}')
    text = "".join(capsys.readouterr())
    assert res.error_in_exec is not None and "Traceback" not in text, text
    assert "line 1, `video`" in text and "-mjpeg_port takes a value" in text, text
    assert not list(tmp.rglob("ran.txt"))


@pytest.mark.once
@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("template_name", ["yolov4-tiny", "yolov3-tiny"])
def test_yolo_export_in_a_real_shell_agrees_with_darknet(ip, tmp_path, capsys, template_name, hankai) -> None:
    """`%yolo export` with hank-ai's darknet_onnx_export; the model passes onnx's checker and onnxruntime gives
    darknet's detections on the same image (yolov3-tiny: after the maxpool padding repair)."""
    pytest.importorskip("onnx", reason="pip install 'darknet_magics[export]'")
    pytest.importorskip("onnxruntime", reason="pip install 'darknet_magics[export]'")
    from darknet_magics.model import detect as detection, export
    from darknet_magics.report import RecordingReporter

    template = hankai.parents[2] / "cfg" / f"{template_name}.cfg"  # the source tree's own cfg/
    ds = make_dataset(tmp_path / "ds", images=1, size=64)
    names = tmp_path / "ds" / "obj.names"
    data = tmp_path / "obj.data"
    data.write_text(f"classes = 1\nnames = {names}\n")
    cfg = tmp_path / "v4t.cfg"
    cfg.write_text(make_cfg(template.read_text(), 1, width=64, height=64, batch=1, subdivisions=1, random=0))
    weights = tmp_path / "v4t.weights"
    weights.write_bytes(synthetic_weights(cfg.read_text(), objectness=0.0, noise=0.05))
    out = tmp_path / "model out; 'x'"
    res = run_cell(ip, f'%yolo export {cfg} {weights} names={names} out="{out}" bin={hankai} as onnx_model')
    text = "".join(capsys.readouterr())
    assert res.error_in_exec is None, text[-3000:]
    model = ip.user_ns["onnx_model"].path
    assert model == out / "v4t.onnx" and model.is_file() and "checked by onnx" in text
    if template_name == "yolov3-tiny":
        assert "MaxPool node(s) given darknet's padding" in text
    darknet_rows = detection.detect(darknet=hankai, data=data, cfg=cfg, weights=weights, image=ds.images[0],
                                    thresh=0.25, cwd=tmp_path, out=tmp_path, reporter=RecordingReporter()).detections
    onnx_rows = export.run_onnx(model, ds.images[0], thresh=0.25, names=("red_box",))
    assert len(darknet_rows) == len(onnx_rows) > 0
    pairs = export.compare(darknet_rows, onnx_rows)
    assert all(p["iou"] >= 0.9 and abs(p["darknet"] - p["onnx"]) <= 0.02 for p in pairs), pairs


@pytest.mark.timeout(120)
def test_yolo_export_bad_input_names_the_line_and_the_fix(ip, tmp_path, capsys) -> None:
    cfg = tmp_path / "c.cfg"
    cfg.write_text("[net]\n")
    for line, said in [(f"%yolo export {cfg} {tmp_path}/missing.weights bin={DARKNET}", "missing.weights"),
                       (f"%yolo export {cfg} {cfg} names={tmp_path}/obj.names bin={DARKNET}", "names="),
                       (f"%yolo export {tmp_path} {cfg} bin={DARKNET}", "is a folder")]:
        res = run_cell(ip, line)
        text = "".join(capsys.readouterr())
        assert res.error_in_exec is not None and "Traceback" not in text, text
        assert "line 1, `export`" in text and said in text and "fix: " in text, text
    if DARKNET.exists():
        res = run_cell(ip, f"%yolo export {cfg} {cfg} bin={DARKNET}")
        text = "".join(capsys.readouterr())
        assert res.error_in_exec is not None and "Traceback" not in text
        assert "pjreddie's darknet has no ONNX exporter" in text and "hank-ai" in text


@pytest.mark.once
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_trained_yolov3_tiny_exported_in_a_real_shell_agrees_with_darknet(ip, tmp_path, capsys, alexeyab,
                                                                          hankai) -> None:
    """The tutorial's path: train yolov3-tiny with AlexeyAB (`%yolo train`, 30 CPU iterations), export the
    trained weights with hank-ai (`%yolo export`), and run the ONNX model on every image of the set: the same
    detections as hank-ai's darknet (one process for the folder), the same classes, confidence within 0.02, IoU
    >= 0.9 for boxes of 40 pixels or more, and every edge within 1.5 pixels (darknet prints whole pixels)."""
    pytest.importorskip("onnx", reason="pip install 'darknet_magics[export]'")
    pytest.importorskip("onnxruntime", reason="pip install 'darknet_magics[export]'")
    from darknet_magics.model import detect as detection, export
    from darknet_magics.report import RecordingReporter

    template = alexeyab.parent / "cfg" / "yolov3-tiny.cfg"
    ds = make_dataset(tmp_path / "ds", images=16, size=64, seed=4)
    (tmp_path / "train.txt").write_text("".join(f"{p}\n" for p in ds.images))
    data = tmp_path / "obj.data"
    data.write_text(f"classes = 1\ntrain = {tmp_path / 'train.txt'}\nvalid = {tmp_path / 'train.txt'}\n"
                    f"names = {ds.folder / 'obj.names'}\nbackup = {tmp_path / 'backup'}\n")
    cfg = tmp_path / "v3t.cfg"
    cfg.write_text(make_cfg(template.read_text(), 1, width=64, height=64, batch=4, subdivisions=1, random=0,
                            max_batches=30, steps="20,25", burn_in=2, learning_rate=0.001))
    res = run_cell(ip, f"%yolo train {data} {cfg} bin={alexeyab} stop_on_nan=off as run")
    text = "".join(capsys.readouterr())
    assert res.error_in_exec is None, text[-3000:]
    run = ip.user_ns["run"]
    final = run.backup_dir / "v3t_final.weights"
    assert run.status.ok and run.last_iteration == 30 and final.is_file(), text[-3000:]
    res = run_cell(ip, f'%yolo export {cfg} {final} out="{tmp_path}/onnx model" bin={hankai} as model')
    text = "".join(capsys.readouterr())
    assert res.error_in_exec is None and "checked by onnx" in text, text[-3000:]
    model = ip.user_ns["model"]
    assert any("L11_maxpool" in r for r in model.repairs)
    found = detection.detect(darknet=hankai, data=data, cfg=cfg, weights=final, image=ds.folder, thresh=0.05,
                             cwd=tmp_path, out=tmp_path / "pred", reporter=RecordingReporter()).detections
    assert len(found) > 0, "30 iterations should find something at thresh 0.05"
    pairs = []
    for image in ds.images:
        # compared above 0.051: a score within 1e-6 of the run's 0.05 may fall on either side of it
        mine = found[(found["image"] == str(image.resolve())) & (found["confidence"] >= 0.051)]
        theirs = export.run_onnx(model.path, image, thresh=0.05, names=("red_box",))
        theirs = theirs[theirs["confidence"] >= 0.051].reset_index(drop=True)
        # a score within the confidence tolerance (0.02) of the cut may fall on either side of it in the other model
        # (a 30-iteration model has such boxes in about one run of three): the boxes clear of it must be in both.
        # So must the boxes clear of the 64 px image's border: one that crosses it is moved inside whole by hank-ai
        # and clipped by ONNX (and darknet's other flavors), so its edges differ by how far it crossed, and the
        # moved box may then lose to a neighbour in darknet's NMS where the clipped one does not.
        def sure(boxes):
            inside = ((boxes["left"] > 1) & (boxes["top"] > 1) & (boxes["left"] + boxes["width"] < 63)
                      & (boxes["top"] + boxes["height"] < 63))
            return boxes[(boxes["confidence"] >= 0.071) & inside]

        sure_mine, sure_theirs = sure(mine), sure(theirs)
        assert len(sure_mine) <= len(theirs) and len(sure_theirs) <= len(mine), (image.name, mine, theirs)
        for d, p in zip(sure_mine.itertuples(), export.compare(sure_mine, theirs)):
            o = theirs.loc[(theirs["confidence"] - p["onnx"]).abs().idxmin()]  # the row compare() matched
            edges = [abs(d.left - o.left), abs(d.top - o.top), abs(d.left + d.width - o.left - o.width),
                     abs(d.top + d.height - o.top - o.height)]
            assert max(edges) <= 1.5 and abs(p["darknet"] - p["onnx"]) <= 0.02, (image.name, d, o)
            # hank-ai prints whole pixels (w rounded, then x = round(cx - w/2)) and moves boxes off the border
            # instead of clipping them: up to a pixel per edge, which costs a 16-pixel box over 0.1 of IoU
            if min(d.width, d.height) >= 40:
                assert p["iou"] >= 0.9, (image.name, d, o)
            pairs.append({**p, "edge": max(edges), "small": min(d.width, d.height) < 40})
    assert len(pairs) >= 5, f"only {len(pairs)} boxes clear of the border and the cut were compared"
    print(f"trained yolov3-tiny ONNX vs darknet: {len(pairs)} detections on {len(ds.images)} images, "
          f"min IoU {min((p['iou'] for p in pairs if not p['small']), default=float('nan')):.4f} (boxes >= 40 px), "
          f"{min((p['iou'] for p in pairs), default=float('nan')):.4f} (all), max edge difference "
          f"{max((p['edge'] for p in pairs), default=float('nan')):.2f} px, "
          f"max |conf diff| {max((abs(p['darknet'] - p['onnx']) for p in pairs), default=float('nan')):.2e}")
