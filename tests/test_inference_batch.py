"""Batch inference (detection.detect on a folder / list / glob), its parsers and darknet's own flags.

The parsers are tested on output captured from the real binaries (tests/fixtures/detections: Debian's pjreddie,
AlexeyAB 59596d78 built with OPENCV=1, hank-ai v5.1 built with CMake, on a yolov3-tiny 64x64 one-class model
trained 40 iterations on the synthetic dataset). The end-to-end tests run Debian's darknet for real; AlexeyAB and
hank-ai run with the builds of tests/builds.py (prebuilt, else built from ../shared, else skipped by name).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from darknet_magics.data import formats
from darknet_magics.model import darknet_map
from darknet_magics.model import detect as detection
from darknet_magics.model import inputs
from darknet_magics.model import video
from darknet_magics.output import detections
from darknet_magics.view import show
from darknet_magics.setup.binary import check_darknet_args
from darknet_magics.errors import StepError
from darknet_magics.report import RecordingReporter
from darknet_magics.synth import make_dataset

from builds import alexeyab, flavor_binary, hankai  # noqa: F401 (alexeyab, hankai: fixtures)

FIXTURES = Path(__file__).parent / "fixtures" / "detections"
DARKNET = Path("/usr/bin/darknet")
TEMPLATE = Path("/usr/share/darknet/cfg/yolov3-tiny.cfg")
needs_darknet = pytest.mark.skipif(not DARKNET.exists() or not TEMPLATE.exists(),
                                   reason="needs Debian's darknet (apt-get install darknet)")


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text(errors="replace")


# ---------------------------------------------------------------------------------------------------------------
# Pure parsers on real output


@pytest.mark.timeout(30)
def test_alexeyab_stdin_batch_rows_match_its_json() -> None:
    text = fixture("alexeyab-stdin-2images.txt")
    images = ["/tmp/i12/ds/img_005.png", "/tmp/i12/ds/img_006.png"]
    rows = detections.parse_prompt_batch(text, images)
    assert [r["image"] for r in rows].count(images[0]) == 9 and [r["image"] for r in rows].count(images[1]) == 7
    # darknet's own -out result.json of the same run: the same boxes, per image
    result = json.loads(fixture("alexeyab-result.json"))
    for frame in result:
        mine = sorted(round(r["confidence"], 2) for r in rows if r["image"] == frame["filename"])
        theirs = sorted(round(o["confidence"], 2) for o in frame["objects"])
        assert mine == theirs
    first = next(r for r in rows if r["confidence"] == 0.49)
    assert (first["left"], first["top"], first["width"], first["height"]) == (23, 25, 29, 32)


@pytest.mark.timeout(30)
def test_pjreddie_stdin_batch_has_names_and_confidences() -> None:
    rows = detections.parse_prompt_batch(fixture("pjreddie-stdin-2images.txt"), ["a.png", "b.png"])
    assert {r["image"] for r in rows} == {"a.png", "b.png"}
    assert all(r["name"] == "red_box" and "left" not in r for r in rows)
    assert max(r["confidence"] for r in rows if r["image"] == "a.png") == 0.49


@pytest.mark.timeout(30)
def test_hank_ai_v5_cli_detections_are_parsed() -> None:
    """issue 10: v5 prints no `Predicted in`, and tab-separated `red_box<TAB>c=7.69%<TAB>x=11...` lines."""
    text = fixture("hank-ai-cli-detector-test.txt")
    assert "Predicted in" not in text
    df = detections.parse_detections(text)
    assert len(df) == 9 and list(df.columns) == ["name", "confidence", "left", "top", "width", "height"]
    best = df.sort_values("confidence").iloc[-1]
    assert best["name"] == "red_box" and abs(best["confidence"] - 0.49408535) < 1e-9
    assert (best["left"], best["top"], best["width"], best["height"]) == (23, 25, 29, 32)
    # the issue's own example line
    rows = detections.parse_detection_lines("red_box\tc=7.69%\tx=11\ty=26\tw=26\th=24\n")
    assert rows[0]["confidence"] == pytest.approx(0.0769) and rows[0]["width"] == 26


@pytest.mark.timeout(30)
def test_hank_ai_tool_output_and_its_invalid_images() -> None:
    rows, invalid = detections.parse_hank_tool(fixture("hank-ai-01-inference-2images.txt"), ["red_box"])
    assert len(rows) == 16 and not invalid
    assert rows[0] == {"name": "red_box", "confidence": 0.494085, "image": "/tmp/i12/ds/img_005.png",
                       "class_id": 0, "left": 23, "top": 25, "width": 29, "height": 32}
    rows, invalid = detections.parse_hank_tool(fixture("hank-ai-01-inference-invalid.txt"), ["red_box"])
    assert invalid == ["/tmp/i12/notimg.jpg"] and all(r["image"] != invalid[0] for r in rows)


@pytest.mark.timeout(30)
def test_cannot_load_image_and_missing_label_glyphs_are_diagnosed() -> None:
    problems = detections.inference_problems(fixture("pjreddie-stdin-cannot-load.txt"))
    assert problems[0].code == "bad-image" and "notimg.jpg" in problems[0].message
    glyphs = 'Cannot load image "data/labels/32_0.png"\nSTB Reason: can\'t fopen\n' * 3
    problems = detections.inference_problems(glyphs)
    assert [p.code for p in problems] == ["missing-label-glyphs"] and "clone folder" in problems[0].fix


# ---------------------------------------------------------------------------------------------------------------
# Sources and images


@pytest.mark.timeout(30)
def test_sources_folder_list_glob_and_not_an_image(tmp_path: Path) -> None:
    folder = tmp_path / "my images; -x 'q'"
    ds = make_dataset(folder, images=3, size=32)
    assert inputs.resolve_images(folder) == [p.resolve() for p in ds.images]
    listed = tmp_path / "list.txt"
    listed.write_text(f"{ds.images[2]}\n\n{folder.name}/img_000.png\n")
    assert [p.name for p in inputs.resolve_images(listed)] == ["img_002.png", "img_000.png"]
    assert len(inputs.resolve_images(str(folder) + "/img_00[12].png")) == 2
    assert formats.image_size(ds.images[0]) == (32, 32)
    fake = folder / "notes.jpg"
    fake.write_text("hello")
    listed.write_text(f"{ds.images[0]}\n{fake}\n")
    with pytest.raises(StepError) as info:
        inputs.resolve_images(listed)
    assert str(fake) in str(info.value) and info.value.problems[0].code == "bad-image"
    with pytest.raises(StepError) as info:
        inputs.resolve_images(tmp_path / "nowhere" / "*.jpg")
    assert "matches no file" in str(info.value)


@pytest.mark.timeout(30)
def test_jpeg_size_is_read_from_its_header() -> None:
    jpg = Path("/usr/share/darknet/data/dog.jpg")
    if not jpg.exists():
        pytest.skip("needs Debian's darknet data (dog.jpg)")
    assert formats.image_size(jpg) == (768, 576)


# ---------------------------------------------------------------------------------------------------------------
# darknet's own flags


@pytest.mark.timeout(30)
def test_darknet_flags_are_checked_per_flavor() -> None:
    assert check_darknet_args("alexeyab", "train", ["-mAP_epochs", "2", "-points", "0"]) == []
    errors = check_darknet_args("alexeyab", "train", ["-mapepochs", "3"])
    assert errors == ["AlexeyAB's darknet has no flag -mapepochs; did you mean -mAP_epochs?"]
    errors = check_darknet_args("hank-ai", "train", ["-mAP_epochs", "2"])
    assert errors == ["hank-ai's darknet has no flag -mAP_epochs"]
    assert check_darknet_args("hank-ai", "test", ["-points", "11", "-verbose"]) == []
    assert check_darknet_args("hank-ai", "test", ["-Letter_Box"]) == []  # hank-ai ignores '_' and case
    # issue 19: it would write predictions over the dataset's labels (tests/test_safenames.py has the others)
    assert "refused" in check_darknet_args("hank-ai", "test", ["-save_labels"])[0]
    errors = check_darknet_args("pjreddie", "train", ["-mjpeg_port", "8090"])
    assert errors == ["pjreddie's darknet has no flag -mjpeg_port"]
    assert "takes a int value" in check_darknet_args("alexeyab", "map", ["-mAP_epochs", "x"])[0]
    assert "takes a value" in check_darknet_args("alexeyab", "test", ["-json_port"])[0]
    assert "set by %yolo map itself" in check_darknet_args("alexeyab", "map", ["-iou_thresh", "0.7"])[0]
    assert "flag expected" in check_darknet_args("alexeyab", "train", ["; rm -rf /"])[0]
    assert check_darknet_args(None, "train", ["-anything"]) == []


# ---------------------------------------------------------------------------------------------------------------
# Real darknet, one process for a whole folder


def synthetic_weights(cfg_text: str, objectness: float = 6.0, noise: float = 0.0, seed: int = 0) -> bytes:
    """A weights file for `cfg_text` made from the cfg alone: every weight 0, batch-norm neutral, and the biases of
    the convolution before each [yolo] head set so that every anchor of every cell predicts class 0 with
    sigmoid(objectness) * sigmoid(objectness) confidence (about 0.995 at 6). Deterministic detections without
    training (Debian's darknet trained for a few CPU iterations predicts nothing at all). With `noise`, the conv
    weights are seeded normal values of that scale, so that scores differ from cell to cell and with the image."""
    import struct

    import numpy as np

    from darknet_magics.data.cfg import Cfg
    from darknet_magics.data.cfg_weights import layer_weights

    cfg = Cfg.parse(cfg_text)
    sections = cfg.layers
    parts = [struct.pack("<3iq", 0, 2, 0, 0)]
    for layer in layer_weights(cfg_text):
        if not layer.nbytes:
            continue
        sec = sections[layer.index]
        n = sec.get_int("filters", 1)
        bn = sec.get_int("batch_normalize", 0)
        biases = np.zeros(n, np.float32)
        after = sections[layer.index + 1].name if layer.index + 1 < len(sections) else ""
        if after == "yolo":
            head = sections[layer.index + 1]
            per = 5 + head.get_int("classes", 1)
            for a in range(n // per):
                biases[a * per + 4] = objectness
                biases[a * per + 5] = objectness
        floats = [biases]
        if bn:
            floats += [np.ones(n, np.float32), np.zeros(n, np.float32), np.ones(n, np.float32)]
        rest = layer.nbytes // 4 - sum(len(f) for f in floats)
        rng = np.random.default_rng(seed + layer.index)
        floats.append((rng.standard_normal(rest) * noise).astype(np.float32) if noise else np.zeros(rest, np.float32))
        parts.append(b"".join(f.tobytes() for f in floats))
    return b"".join(parts)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A yolov3-tiny 64x64 one-class cfg with `synthetic_weights`, and a synthetic dataset."""
    from darknet_magics.data.cfg import make_cfg
    from darknet_magics.data.cfg_weights import check_weights

    if not TEMPLATE.exists():
        pytest.skip("needs Debian's darknet cfgs (apt-get install darknet)")
    ws = tmp_path_factory.mktemp("ws")
    ds = make_dataset(ws / "ds", images=8, size=64)
    (ws / "train.txt").write_text("".join(f"{p}\n" for p in ds.images))
    (ws / "obj.data").write_text(f"classes = 1\ntrain = {ws / 'train.txt'}\nvalid = {ws / 'train.txt'}\n"
                                 f"names = {ws / 'ds' / 'obj.names'}\nbackup = {ws / 'backup'}\n")
    cfg = ws / "tiny.cfg"
    cfg.write_text(make_cfg(TEMPLATE.read_text(), 1, width=64, height=64, batch=1, subdivisions=1, random=0))
    weights = ws / "tiny.weights"
    weights.write_bytes(synthetic_weights(cfg.read_text()))
    assert check_weights(cfg.read_text(), weights) is None
    return ws, cfg, weights, ds


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("flavor", ["pjreddie", pytest.param("alexeyab", marks=pytest.mark.once),
                                    pytest.param("hank-ai", marks=pytest.mark.once)])
def test_one_process_for_a_folder(model, tmp_path: Path, flavor: str) -> None:
    ws, cfg, weights, ds = model
    if flavor == "pjreddie" and not DARKNET.exists():
        pytest.skip("needs Debian's darknet (apt-get install darknet)")
    binary = DARKNET if flavor == "pjreddie" else flavor_binary(flavor)
    cwd = binary.parent if flavor == "alexeyab" else tmp_path  # AlexeyAB reads data/labels from its clone
    out = tmp_path / "out dir; 'x'"
    rec = RecordingReporter()
    result = detection.detect(darknet=binary, data=ws / "obj.data", cfg=cfg, weights=weights, image=ds.folder,
                              thresh=0.5, cwd=cwd, out=out, reporter=rec)
    assert result.images == [p.resolve() for p in ds.images]
    assert len(result.annotated) == len(ds.images) and all(p.parent == out and p.is_file() for p in result.annotated)
    df = result.detections
    assert len(df) and set(df["image"]) <= {str(p.resolve()) for p in ds.images}
    assert (df["confidence"] > 0.9).all() and (df["name"] == "red_box").all()
    if flavor != "pjreddie":  # pjreddie prints no boxes
        assert df["left"].notna().all()
        assert ((df["x_center"] * 64 - (df["left"] + df["width"] / 2)).abs() < 1e-6).all()
    assert [k for k, _ in rec.events].count("image") == 4
    # a second run never overwrites the first's pictures
    again = detection.detect(darknet=binary, data=ws / "obj.data", cfg=cfg, weights=weights, image=ds.images[0],
                             thresh=0.5, cwd=cwd, out=out, reporter=RecordingReporter())
    assert again.annotated[0].name == "img_000_predictions_1.jpg" and result.annotated[0].is_file()


@pytest.mark.slow
@needs_darknet
@pytest.mark.timeout(120)
def test_truncated_weights_and_a_non_image_are_refused_before_darknet(model, tmp_path: Path) -> None:
    ws, cfg, weights, ds = model
    cut = tmp_path / "cut.weights"
    cut.write_bytes(weights.read_bytes()[:100000])
    with pytest.raises(StepError) as info:
        detection.detect(darknet=DARKNET, data=ws / "obj.data", cfg=cfg, weights=cut, image=ds.images[0],
                         cwd=tmp_path, reporter=RecordingReporter())
    assert info.value.problems[0].code == "truncated-weights"
    fake = tmp_path / "photo.jpg"
    fake.write_text("not a picture")
    with pytest.raises(StepError) as info:
        detection.detect(darknet=DARKNET, data=ws / "obj.data", cfg=cfg, weights=weights, image=fake,
                         cwd=tmp_path, reporter=RecordingReporter())
    assert str(fake) in str(info.value)
    assert not list(tmp_path.glob("*predictions*"))


@pytest.mark.timeout(30)
def test_checkpoint_files_are_ordered_by_iteration_then_best_last_final(tmp_path: Path) -> None:
    for name in ("yolo_final.weights", "yolo_2000.weights", "yolo_best.weights", "yolo_1000.weights",
                 "yolo_last.weights", "yolov4.conv.137", "notes.weights"):
        (tmp_path / name).write_bytes(b"x")
    tags = [tag for _, tag, _ in darknet_map.checkpoint_files(tmp_path)]
    assert tags == ["1000", "2000", "best", "last", "final"]
    with pytest.raises(StepError) as info:
        darknet_map.evaluate_checkpoints(DARKNET, tmp_path / "obj.data", tmp_path / "c.cfg", tmp_path / "empty")
    assert "no checkpoint" in str(info.value)


def with_seen(weights: bytes, seen: int) -> bytes:
    """A version-0.2 weights file whose header says `seen` images were trained on (bytes 12..20)."""
    import struct

    return weights[:12] + struct.pack("<q", seen) + weights[20:]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_every_checkpoint_of_a_folder_is_evaluated_and_the_best_named(model, tmp_path: Path, alexeyab) -> None:
    """AlexeyAB's `detector map` (pjreddie has none) on each checkpoint of a run's backup folder."""
    ws, cfg, weights, ds = model
    run_dir = tmp_path / "my run; 'x'"
    backup = run_dir / "backup"
    backup.mkdir(parents=True)
    (run_dir / "run.json").write_text("{}")  # a run's folder: the table and chart go there, beside run.json
    (backup / "tiny_1000.weights").write_bytes(weights.read_bytes())
    # finds nothing; its header says 1500 images seen, and the cfg's batch is 1: iteration 1500
    (backup / "tiny_best.weights").write_bytes(with_seen(synthetic_weights(cfg.read_text(), objectness=-8.0), 1500))
    rec = RecordingReporter()
    report = darknet_map.evaluate_checkpoints(alexeyab, ws / "obj.data", cfg, backup, cwd=alexeyab.parent,
                                            reporter=rec, iou_thresh=0.1, points=0)
    table = report.table
    assert list(table["tag"]) == ["1000", "best"] and list(table["iteration"]) == [1000, 1500]
    assert {"map", "precision", "recall", "f1"} <= set(table.columns)
    assert table["map"].iloc[1] == 0.0 and table["map"].iloc[0] >= 0.0
    assert report.best == Path(table.loc[table["map"].idxmax(), "path"])
    assert set(report.class_ap["checkpoint"]) == {"tiny_1000.weights", "tiny_best.weights"}
    assert "best: " in report.summary() and any(k == "progress" and "checkpoint 2/2" in p for k, p in rec.events)
    # the chart: shown (this reporter takes HTML) and saved beside the table in the run's folder
    names = [t["name"] for t in report.figure["data"]]
    assert names[:4] == ["mAP@0.50", "precision", "recall", "F1"] and names[4] == f"best: {report.best.name}"
    shown = [p for k, p in rec.events if k == "html" and p[0].startswith("darknet-checkpoints:")]
    assert len(shown) == 1 and "Plotly.react" in shown[0][1]
    import pandas as pd

    assert report.saved.html == run_dir / "checkpoints.html" and report.saved.html.is_file()
    saved = pd.read_csv(run_dir / "checkpoints.csv")
    assert list(saved["iteration"]) == [1000, 1500] and list(saved["tag"].astype(str)) == ["1000", "best"]


@pytest.mark.timeout(30)
def test_checkpoint_chart_marks_the_best_and_leaves_out_rows_without_an_iteration() -> None:
    import pandas as pd

    from darknet_magics.view.live import checkpoint_figure

    table = pd.DataFrame({"iteration": pd.array([2000, 1000, None, 2000], dtype="Int64"),
                          "tag": ["2000", "1000", "final", "last"],
                          "path": ["/r/b/y_2000.weights", "/r/b/y_1000.weights", "/r/b/y_final.weights",
                                   "/r/b/y_last.weights"],
                          "map": [0.5, 0.25, 0.75, 0.5], "precision": [0.6, 0.3, 0.8, 0.6],
                          "recall": [0.4, 0.2, 0.7, 0.4], "f1": [0.48, 0.24, 0.75, 0.48]})
    spec = checkpoint_figure(table, "/r/b/y_2000.weights", title="checkpoints of r")
    traces = {t["name"]: t for t in spec["data"]}
    assert list(traces["mAP@0.50"]["x"]) == [1000, 2000, 2000]  # sorted; the final without iteration left out
    assert [round(float(v), 3) for v in traces["recall"]["y"]] == [20.0, 40.0, 40.0]
    assert traces["mAP@0.50"]["text"] == ["y_1000.weights", "y_2000.weights", "y_last.weights"]
    star = traces["best: y_2000.weights"]
    assert star["x"] == [2000] and star["y"] == [50.0] and star["marker"]["symbol"] == "star"
    assert spec["layout"]["annotations"][0]["text"] == "best: y_2000.weights (50.00%)"
    assert spec["layout"]["title"]["text"] == "checkpoints of r"


@pytest.mark.timeout(30)
def test_map_at_another_iou_threshold_is_read() -> None:
    """AlexeyAB's `detector map -iou_thresh 0.1` prints `mAP@0.10`, which the training parser does not read."""
    df = darknet_map.map_at_any_iou(fixture("alexeyab-map-iou0.10.txt"))
    assert len(df) == 1 and df["iou"].iloc[0] == 0.1
    assert df["map50"].iloc[0] == pytest.approx(0.050427)
    assert (df["precision"].iloc[0], df["recall"].iloc[0], df["f1"].iloc[0]) == (0.04, 1.0, 0.07)


# ---------------------------------------------------------------------------------------------------------------
# Video, show, download

FFMPEG = Path("/usr/bin/ffmpeg")


def make_clip(path: Path, seconds: int = 2) -> Path:
    import subprocess

    subprocess.run([str(FFMPEG), "-hide_banner", "-loglevel", "error", "-nostdin", "-f", "lavfi", "-i",
                    "testsrc=size=64x64:rate=10", "-t", str(seconds), "-pix_fmt", "yuv420p", "-y", str(path)],
                   check=True, timeout=60)
    return path


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.once
@pytest.mark.parametrize("flavor", ["alexeyab", "hank-ai"])
def test_video_is_annotated_with_frame_progress_and_shown(model, tmp_path: Path, flavor: str) -> None:
    ws, cfg, weights, ds = model
    if not FFMPEG.exists():
        pytest.skip("needs Debian's ffmpeg (apt-get install ffmpeg)")
    binary = flavor_binary(flavor)
    clip = make_clip(tmp_path / "my clip.mp4")
    rec = RecordingReporter()
    result = video.detect_video(darknet=binary, data=ws / "obj.data", cfg=cfg, weights=weights, video=clip,
                                    out=tmp_path / "out", cwd=binary.parent if flavor == "alexeyab" else tmp_path,
                                    reporter=rec)
    assert result.video.is_file() and result.video.parent == tmp_path / "out"
    assert result.playable is not None and video.video_frames(result.playable) == result.frames
    assert 15 <= result.frames <= 20  # AlexeyAB's demo writes from its third frame on
    progress = [p for k, p in rec.events if k == "progress"]
    assert any(p.startswith("video: frame ") and p.endswith("/20") for p in progress)
    html = [p for k, p in rec.events if k == "html"][-1][1]
    assert html.startswith("<video controls") and "data:video/mp4;base64," in html


@pytest.mark.timeout(60)
def test_video_needs_an_opencv_build_said_before_starting(model, tmp_path: Path) -> None:
    ws, cfg, weights, _ = model
    fake = tmp_path / "darknet"
    fake.write_bytes(b"#!/bin/sh\necho ran > ran.txt\n# dont_show Demo needs OpenCV for webcam images.\n")
    fake.chmod(0o755)
    with pytest.raises(StepError) as info:
        video.detect_video(darknet=fake, data=ws / "obj.data", cfg=cfg, weights=weights, video=weights,
                               cwd=tmp_path, reporter=RecordingReporter())
    assert "without OpenCV" in str(info.value) and info.value.problems[0].code == "opencv-missing"
    assert not (tmp_path / "ran.txt").exists()
    if DARKNET.exists():
        with pytest.raises(StepError) as info:
            video.detect_video(darknet=DARKNET, data=ws / "obj.data", cfg=cfg, weights=weights, video=weights,
                                   cwd=tmp_path, reporter=RecordingReporter())
        assert "pjreddie" in str(info.value)


@pytest.fixture()
def colab_stub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import sys

    monkeypatch.syspath_prepend(str(Path(__file__).parent / "colab_stub"))
    monkeypatch.setenv("COLAB_RELEASE_TAG", "test")
    monkeypatch.setenv("COLAB_STUB_DOWNLOADS", str(tmp_path / "browser"))
    for name in [m for m in sys.modules if m == "google.colab" or m.startswith("google.colab.")]:
        monkeypatch.delitem(sys.modules, name)
    yield tmp_path / "browser"
    for name in [m for m in sys.modules if m == "google.colab" or m.startswith("google.colab.")]:
        del sys.modules[name]


@pytest.mark.timeout(60)
def test_show_images_and_videos_and_download_in_colab(colab_stub: Path, tmp_path: Path) -> None:
    from darknet_magics.setup import colab

    ds = make_dataset(tmp_path / "ds", images=1, size=32)
    rec = RecordingReporter()
    show.show(ds.images[0], reporter=rec, download=True)
    assert ("image", str(ds.images[0])) in rec.events
    assert (colab_stub / "img_000.png").read_bytes() == ds.images[0].read_bytes()
    if FFMPEG.exists():
        clip = make_clip(tmp_path / "c.mp4", 1)
        show.show(clip, reporter=rec)
        assert rec.events[-1][0] == "html" and "<video" in rec.events[-1][1][1]
    with pytest.raises(FileNotFoundError, match="Cannot find file"):
        colab.download(str(tmp_path / "nothing.jpg"))
    with pytest.raises(StepError):
        show.show(tmp_path / "nothing.jpg", reporter=rec)
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(StepError) as info:
        show.show(tmp_path / "notes.txt", reporter=rec)
    assert "neither an image nor a video" in str(info.value)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize("template_name", ["yolov4-tiny", "yolov3-tiny"])
def test_onnx_export_checks_and_agrees_with_darknet(tmp_path: Path, template_name: str, hankai) -> None:
    """hank-ai's darknet_onnx_export on yolov4-tiny and yolov3-tiny (64x64, weights made from the cfg); onnx's
    checker; the model run by onnxruntime on the CPU gives darknet's detections: same classes, IoU >= 0.9,
    confidence within 0.02. yolov3-tiny loads only because export_onnx repairs its maxpool padding."""
    onnx = pytest.importorskip("onnx", reason="pip install 'darknet_magics[export]'")
    pytest.importorskip("onnxruntime", reason="pip install 'darknet_magics[export]'")
    from darknet_magics.model import export
    from darknet_magics.data.cfg import make_cfg

    template = hankai.parents[2] / "cfg" / f"{template_name}.cfg"  # the source tree's own cfg/
    ds = make_dataset(tmp_path / "ds", images=1, size=64)
    data = tmp_path / "obj.data"
    data.write_text(f"classes = 1\nnames = {tmp_path / 'ds' / 'obj.names'}\n")
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(make_cfg(template.read_text(), 1, width=64, height=64, batch=1, subdivisions=1, random=0))
    weights = tmp_path / "tiny.weights"
    weights.write_bytes(synthetic_weights(cfg.read_text(), objectness=0.0, noise=0.05))
    rec = RecordingReporter()
    result = export.export_onnx(darknet=hankai, cfg=cfg, weights=weights, names=tmp_path / "ds" / "obj.names",
                                out=tmp_path / "model out", reporter=rec)
    assert result.path == tmp_path / "model out" / "tiny.onnx" and result.path.is_file()
    onnx.checker.check_model(str(result.path), full_check=True)  # full_check: shape inference too
    export.check_onnx(result.path)
    if template_name == "yolov3-tiny":  # the size-2 stride-1 maxpool (layer 11) now pads as darknet does
        assert any(r.startswith("N17_L11_maxpool: pads [0, 0, 0, 0] -> [0, 0, 1, 1]") for r in result.repairs)
        assert "darknet_magics: MaxPool padding" in onnx.load(str(result.path)).doc_string
    darknet_rows = detection.detect(darknet=hankai, data=data, cfg=cfg, weights=weights, image=ds.images[0],
                                    thresh=0.25, cwd=tmp_path, out=tmp_path, reporter=RecordingReporter()).detections
    onnx_rows = export.run_onnx(result.path, ds.images[0], thresh=0.25, names=("red_box",))
    assert len(darknet_rows) == len(onnx_rows) > 0
    pairs = export.compare(darknet_rows, onnx_rows)
    assert all(p["iou"] >= 0.9 for p in pairs), min(p["iou"] for p in pairs)
    assert all(abs(p["darknet"] - p["onnx"]) <= 0.02 for p in pairs)
    print(f"{template_name} ONNX vs darknet: {len(pairs)} detections, min IoU {min(p['iou'] for p in pairs):.4f}, "
          f"max |conf diff| {max(abs(p['darknet'] - p['onnx']) for p in pairs):.6f}")
    if template_name == "yolov3-tiny":  # the exporter's own model, unrepaired: onnxruntime refuses it, we say why
        raw = export.export_onnx(darknet=hankai, cfg=cfg, weights=weights, out=tmp_path / "raw", repair=False,
                                 reporter=RecordingReporter())
        assert raw.repairs == ()
        with pytest.raises(StepError) as info:
            export.run_onnx(raw.path, ds.images[0])
        assert "Concat" in str(info.value) and "repairs it" in str(info.value)


@pytest.mark.timeout(30)
def test_darknet_maxpool_padding_in_onnx_matches_darknets_loop() -> None:
    """`repair_maxpools` on a one-node graph: onnxruntime's MaxPool with the repaired pads gives, value for value,
    darknet's maxpool loop (maxpool_layer.cpp: window from -pad/2, pixels outside ignored), for size 2 stride 1
    (yolov3-tiny), size 2 stride 2 on an odd size, and size 3 stride 1 (yolov4's SPP)."""
    import numpy as np

    onnx = pytest.importorskip("onnx", reason="pip install 'darknet_magics[export]'")
    ort = pytest.importorskip("onnxruntime", reason="pip install 'darknet_magics[export]'")
    from onnx import TensorProto, helper

    from darknet_magics.model import export

    def darknet_maxpool(x, size, stride, pad):
        c, h, w = x.shape
        out_h, out_w = (h + pad - size) // stride + 1, (w + pad - size) // stride + 1
        out = np.full((c, out_h, out_w), -np.inf, np.float32)
        for i in range(out_h):
            for j in range(out_w):
                for n in range(size):
                    for m in range(size):
                        y, xx = -(pad // 2) + i * stride + n, -(pad // 2) + j * stride + m
                        if 0 <= y < h and 0 <= xx < w:
                            out[:, i, j] = np.maximum(out[:, i, j], x[:, y, xx])
        return out

    rng = np.random.default_rng(1)
    for size, stride, side in [(2, 1, 13), (2, 2, 13), (3, 1, 9), (5, 1, 8)]:
        # the exporter's own attributes: pads (size-1)/2 on every side
        pad0 = (size - 1) // 2
        node = helper.make_node("MaxPool", ["x"], ["y"], name="N17_L1_maxpool", kernel_shape=[size, size],
                                strides=[stride, stride], pads=[pad0] * 4, ceil_mode=0, dilations=[1, 1])
        out = (side + size - 1 - size) // stride + 1  # darknet's out_w with its default padding size-1
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, side, side])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, out, out])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
        model.ir_version = 7
        cfg = f"[net]\nwidth={side}\nheight={side}\n\n[convolutional]\nfilters=2\n\n[maxpool]\nsize={size}\nstride={stride}\n"
        changes = export.repair_maxpools(model, cfg)
        onnx.checker.check_model(model, full_check=True)  # shape inference agrees with darknet's out size
        x = rng.standard_normal((2, side, side)).astype(np.float32)
        got = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
            None, {"x": x[None]})[0][0]
        want = darknet_maxpool(x, size, stride, size - 1)
        assert got.shape == want.shape and np.array_equal(got, want), (size, stride, side, changes)
        assert bool(changes) == (size % 2 == 0)  # odd sizes: darknet pads (size-1)/2 on each side, as exported


@pytest.mark.timeout(30)
def test_export_says_what_to_do_for_alexeyab_and_pjreddie(tmp_path: Path) -> None:
    from darknet_magics.model import export

    if not DARKNET.exists():
        pytest.skip("needs Debian's darknet")
    cfg = tmp_path / "c.cfg"
    cfg.write_text("[net]\n")
    with pytest.raises(StepError) as info:
        export.export_onnx(darknet=DARKNET, cfg=cfg, weights=cfg)
    assert "pjreddie's darknet has no ONNX exporter" in str(info.value) and "hank-ai" in str(info.value)
