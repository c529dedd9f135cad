"""The dataset's health in the picture `%yolo data` and `%yolo check` draw (view/dataset.py) and in the table they
print (data/health.py), in a real IPython shell on real files: a Roboflow-style COCO export with a picture in both
train and valid, a box labelled twice, a box with no area, one outside its image and a class with one box; and a
healthy generated dataset, whose figure says so with no alarm.

``DM_SCREENSHOTS=DIR pytest tests/test_dataset_health.py`` writes the two figures as PNGs into DIR (kaleido and
Chromium; docs/images/dataset-health-*.png are made so)."""
from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from IPython.utils.capture import capture_output

from conftest import run_cell
from darknet_magics.synth import make_dataset, png_bytes
from darknet_magics.view.media import PLOTLY_MIME, figure_png, png_unavailable

pytestmark = pytest.mark.timeout(120)

# Resolved now: the tests run in their own folder (the `ip` fixture changes into it).
SCREENSHOTS = Path(os.environ["DM_SCREENSHOTS"]).resolve() if os.environ.get("DM_SCREENSHOTS") else None

CHECKS = ["exact duplicate images", "same picture in train and valid/test", "duplicate labels in an image",
          "boxes outside the image", "boxes with no area", "classes with no box",
          "class imbalance (most/fewest boxes)", "negatives (images without boxes)"]


def _unhealthy(root: Path) -> Path:
    """A COCO export as Roboflow writes it (train/ and valid/, each with _annotations.coco.json), 80x64 images:
    train 10 images with 2 cars each; train_00 has the only bike, train_01 a car labelled twice, train_02 a car
    with no width, train_03 a car reaching out of the image; valid 3 images with 2 cars, a negative, and
    leak.png, train_00's bytes. 30 cars, 1 bike."""
    rng = np.random.default_rng(7)

    def ann(image_id: int, cat: int, box: list[float]) -> dict:
        return {"image_id": image_id, "category_id": cat, "bbox": box, "area": box[2] * box[3], "iscrowd": 0}

    for split, n in (("train", 10), ("valid", 3)):
        folder = root / split
        folder.mkdir(parents=True)
        images, anns = [], []
        for i in range(n):
            name = f"{split}_{i:02d}.png"
            (folder / name).write_bytes(png_bytes(rng.integers(0, 256, size=(64, 80, 3), dtype=np.uint8)))
            images.append({"id": i + 1, "file_name": name, "width": 80, "height": 64})
            anns += [ann(i + 1, 1, [4, 8, 18, 20]), ann(i + 1, 1, [30, 10, 16, 22])]
        if split == "train":
            anns += [ann(1, 2, [50, 30, 20, 25]), ann(2, 1, [4, 8, 18, 20]), ann(3, 1, [40, 30, 0, 12]),
                     ann(4, 1, [66, 40, 30, 20])]
        else:
            (folder / "negative.png").write_bytes(png_bytes(rng.integers(0, 256, size=(64, 80, 3), dtype=np.uint8)))
            shutil.copyfile(root / "train" / "train_00.png", folder / "leak.png")
            images += [{"id": n + 1, "file_name": "negative.png", "width": 80, "height": 64},
                       {"id": n + 2, "file_name": "leak.png", "width": 80, "height": 64}]
            anns.append(ann(n + 2, 1, [4, 8, 18, 20]))
        for k, a in enumerate(anns):
            a["id"] = k + 1
        (folder / "_annotations.coco.json").write_text(json.dumps({
            "images": images, "annotations": anns,
            "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "bike"}]}))
    return root


def _figure(ip, line: str) -> tuple[dict, str, str]:
    """Run `line` with the notebook's reporter (as in Jupyter or Colab): the figure it showed, the figure's text
    (what a front end without plotly shows) and what it printed."""
    ip.magics_manager.registry["DarknetMagics"].session.platform = "jupyter"
    with capture_output() as shown:
        result = run_cell(ip, line)
    assert result.error_in_exec is None, shown.stdout + shown.stderr + str(result.error_in_exec)
    charts = [o.data for o in shown.outputs if PLOTLY_MIME in o.data]
    assert len(charts) == 1, [list(o.data) for o in shown.outputs]
    return charts[0][PLOTLY_MIME], charts[0]["text/plain"], shown.stdout


def _table(spec: dict) -> dict[str, tuple[str, str, str, str]]:
    """The health panel: {check: (mark, found, example, what to do)}."""
    tables = [t for t in spec["data"] if t["type"] == "table"]
    assert len(tables) == 1
    mark, check, found, example, advice = tables[0]["cells"]["values"]
    return {c: (m, f, e, a) for m, c, f, e, a in zip(mark, check, found, example, advice)}


def _annotations(spec: dict) -> list[str]:
    return [a["text"] for a in spec["layout"].get("annotations", [])]


def _png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


def _screenshot(spec: dict, name: str) -> None:
    """The figure as the saved reports have it (1000 px wide), when kaleido and Chromium are there."""
    png = figure_png(spec, width=1000)
    if png is None:
        pytest.skip(f"no static export here: {png_unavailable()}")
    assert _png_size(png) == (1000, spec["layout"]["height"])
    if SCREENSHOTS is not None:
        (SCREENSHOTS / name).write_bytes(png)


def test_an_unhealthy_dataset_shows_each_finding_in_the_figure_and_the_table(ip, tmp_path: Path, capsys) -> None:
    src = _unhealthy(tmp_path / "export")
    spec, text, printed = _figure(ip, f"%yolo data {tmp_path}/ws/sick.data images={src} backup={tmp_path}/b")
    layout = spec["layout"]
    assert layout["title"]["text"] == "dataset health: <b>4 warnings, 2 notes</b>"
    rows = _table(spec)
    assert list(rows) == CHECKS
    assert rows["exact duplicate images"] == ("⚠ warning", "1", "train_00.png = leak.png",
                                              "keep one of each: duplicates weigh those pictures twice")
    assert rows["same picture in train and valid/test"][:3] == ("⚠ warning", "1", "train_00.png = leak.png")
    assert rows["duplicate labels in an image"][:3] == ("⚠ warning", "1", "train_01.png")
    assert rows["boxes with no area"][:3] == ("⚠ warning", "1", "train_02.png")
    assert rows["boxes outside the image"][:3] == ("ℹ note", "1", "train_03.png")
    imbalance = rows["class imbalance (most/fewest boxes)"]
    assert imbalance[:3] == ("ℹ note", "30:1", "car: 30, bike: 1")
    assert "counters_per_class=30,1 to every [yolo]" in imbalance[3]
    assert rows["classes with no box"] == ("✔ ok", "0", "", "")
    assert rows["negatives (images without boxes)"][:2] == ("✔ ok", "1")
    # the class panel: the rare class's bar in the note's colour, the note with the ratio and darknet's advice
    boxes = next(t for t in spec["data"] if t["type"] == "bar" and t["name"] == "boxes")
    colours = dict(zip(boxes["x"], boxes["marker"]["color"]))
    assert colours["bike"] != colours["car"]
    note = next(t for t in _annotations(spec) if t.startswith("imbalance"))
    assert note == "imbalance 30:1<br>few: bike<br>→ counters_per_class"
    assert layout["height"] > 600  # the table under the three charts
    assert text == "15 images, 31 boxes in 2 classes; dataset health: 4 warnings, 2 notes"
    assert "dataset health: 4 warnings, 2 notes" in printed  # the table's title (the table: a rich output)
    # a terminal (and the CLI) prints the table whole: the verdict, the paths, the advice
    ip.magics_manager.registry["DarknetMagics"].session.platform = "terminal"
    result = run_cell(ip, f"%yolo data {tmp_path}/ws/sick.data images={src} backup={tmp_path}/b")
    out = capsys.readouterr().out
    assert result.error_in_exec is None, out
    assert "dataset health: 4 warnings, 2 notes" in out, out
    # the figure's own summary line too: a finished figure's line is never the one a progress throttle drops
    assert "15 images, 31 boxes in 2 classes; dataset health: 4 warnings, 2 notes" in out, out
    assert f"{src}/train/train_00.png = {src}/valid/leak.png" in out
    assert "counters_per_class=30,1" in out
    _screenshot(spec, "dataset-health-unhealthy.png")


def test_a_healthy_dataset_says_so_with_no_alarm(ip, tmp_path: Path) -> None:
    made = make_dataset(tmp_path / "set", images=20, size=64, classes=3, seed=3)
    spec, text, printed = _figure(ip, f"%yolo data {tmp_path}/ws/ok.data images={made.folder} backup={tmp_path}/b")
    assert spec["layout"]["title"]["text"] == "dataset health: <b>healthy (8 checks passed)</b>"
    rows = _table(spec)
    assert list(rows) == CHECKS
    assert {r[0] for r in rows.values()} == {"✔ ok"}
    assert all(r[2] == r[3] == "" for r in rows.values())  # nothing to show, nothing to do
    assert rows["negatives (images without boxes)"][1] == str(made.negatives)
    assert not [t for t in _annotations(spec) if "imbalance" in t]
    boxes = next(t for t in spec["data"] if t["type"] == "bar" and t["name"] == "boxes")
    assert len(set(boxes["marker"]["color"])) == 1
    assert "⚠" not in json.dumps(spec, ensure_ascii=False) and "warning" not in json.dumps(spec)
    assert text.endswith("; dataset health: healthy (8 checks passed)")
    assert "dataset health: healthy (8 checks passed)" in printed
    _screenshot(spec, "dataset-health-healthy.png")


def test_check_draws_the_health_of_the_labels_darknet_reads(ip, tmp_path: Path, capsys) -> None:
    src = _unhealthy(tmp_path / "export")
    ip.magics_manager.registry["DarknetMagics"].session.platform = "terminal"
    assert run_cell(ip, f"%yolo data {tmp_path}/ws/sick.data images={src} backup={tmp_path}/b").error_in_exec is None
    capsys.readouterr()
    spec, _, printed = _figure(ip, f"%yolo check {tmp_path}/ws/sick.data")
    rows = _table(spec)
    # the converted labels: the leak is still there (the same bytes, linked), the box with no area was left out
    # and the one outside clipped by `%yolo data`; the twice-labelled car is still labelled twice
    assert rows["same picture in train and valid/test"][:2] == ("⚠ warning", "1")
    assert rows["duplicate labels in an image"][:2] == ("⚠ warning", "1")
    assert rows["boxes with no area"][:2] == rows["boxes outside the image"][:2] == ("✔ ok", "0")
    assert rows["class imbalance (most/fewest boxes)"][1] == "29:1"
    assert "dataset health: " in spec["layout"]["title"]["text"] and "dataset health: " in printed


def test_names_from_the_users_files_are_text_in_the_figure(tmp_path: Path) -> None:
    """Plotly draws a subset of HTML in its text: a file or class name is escaped, never markup."""
    from darknet_magics.data.formats.summary import boxes_frame
    from darknet_magics.data.health import LabeledImage, health
    from darknet_magics.view.dataset import summary_figure

    a, b = tmp_path / "<img src=x>.png", tmp_path / "b&c.png"
    a.write_bytes(b"the same bytes")
    b.write_bytes(b"the same bytes")
    names = ["car", "<i>bike</i>"]
    rows = health([LabeledImage(str(a), "train", tuple((0, 0.5, 0.5, 0.2, 0.2) for _ in range(12))),
                   LabeledImage(str(b), "valid", ((1, 0.5, 0.5, 0.2, 0.2),))], names)
    frame = boxes_frame([(str(a), "train", "car", 80.0, 80.0)] * 12 + [(str(b), "valid", "<i>bike</i>", 80.0, 80.0)])
    spec = summary_figure(frame, (416, 416), rows)
    table = _table(spec)
    assert table["same picture in train and valid/test"][2] == "&lt;img src=x&gt;.png = b&amp;c.png"
    assert table["class imbalance (most/fewest boxes)"][2] == "car: 12, &lt;i&gt;bike&lt;/i&gt;: 1"
    assert "few: &lt;i&gt;bike&lt;/i&gt;" in next(t for t in _annotations(spec) if t.startswith("imbalance"))
