"""The exports people really have (tests/fixtures/exports, written by its make_exports.py from each tool's
documented layout): every one converts, box by box against SOURCE.json, where each darknet flavor looks for the
labels; what is no box is left out and said; the policies; mixed formats; the label-path rules of each flavor,
checked against Debian's real darknet; the health table and the check rules in a real IPython shell."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from test_data_directives import _ok, _refused
from darknet_magics.data import shapes
from darknet_magics.data.datasets import prepare_dataset
from darknet_magics.data.formats import read_dataset
from darknet_magics.data.health import LabeledImage, duplicate_groups, health
from darknet_magics.data.labelpaths import label_path, rewrites
from darknet_magics.data.leftout import BoxPolicy, Policies
from darknet_magics.errors import DarknetMagicsError

# What decides these tests is the exports' files, our readers and darknet's label rules, not the IPython, pandas
# or plotly versions: they run in the first environment of scripts/test only (see pyproject's `once` marker).
pytestmark = [pytest.mark.timeout(120), pytest.mark.once]

EXPORTS = Path(__file__).parent / "fixtures" / "exports"
SOURCE = json.loads((EXPORTS / "SOURCE.json").read_text())
CASES = [c for c in SOURCE if SOURCE[c]["images"]]
FLAVORS = ("pjreddie", "alexeyab", "hank-ai")
DARKNET = Path("/usr/bin/darknet")
TINY_CFG = Path("/usr/share/darknet/cfg/yolov3-tiny.cfg")


def _stage(case: str, tmp_path: Path) -> Path:
    src = tmp_path / "staged" / case
    shutil.copytree(EXPORTS / case, src)
    return src


def _expected(case: str, names: list[str], src: Path) -> dict[str, list[tuple]]:
    """{real image path: sorted (class, cx, cy, w, h)} from SOURCE.json's pixel boxes and the image sizes."""
    from darknet_magics.data.formats import image_size

    out = {}
    for rel, boxes in SOURCE[case]["images"].items():
        w, h = image_size(src / rel)
        out[str((src / rel).resolve())] = sorted(
            (names.index(n), (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h)
            for n, x0, y0, x1, y1 in boxes)
    return out


def _read_label(path: str) -> list[tuple]:
    rows = []
    for line in Path(path).read_text().split("\n"):
        if line.strip():
            c, *v = line.split()
            rows.append((int(c), *map(float, v)))
    return sorted(rows)


def _tiny_cfg(path: Path, classes: int) -> Path:
    """Debian's yolov3-tiny at 64x64, batch 4, one iteration, for `classes` classes."""
    text = TINY_CFG.read_text()
    for pattern, value in ((r"(?m)^batch=\d+", "batch=4"), (r"(?m)^subdivisions=\d+", "subdivisions=1"),
                           (r"(?m)^width=\d+", "width=64"), (r"(?m)^height=\d+", "height=64"),
                           (r"(?m)^max_batches\s*=\s*\d+", "max_batches=1"), (r"(?m)^random=1", "random=0"),
                           (r"(?m)^classes=80", f"classes={classes}"),
                           (r"(?m)^filters=255", f"filters={3 * (classes + 5)}")):
        text = re.sub(pattern, value, text)
    path.write_text(text)
    return path


def _listed(result) -> dict[str, list[str]]:
    out = {}
    for key, path in (("train", result.train_path), ("valid", result.valid_path)):
        out[key] = [line for line in Path(path).read_text().split("\n") if line]
    return out


@pytest.mark.parametrize("case", CASES)
def test_every_export_converts_box_by_box_where_each_flavor_looks(tmp_path: Path, case: str) -> None:
    spec = SOURCE[case]
    src = _stage(case, tmp_path)
    result = prepare_dataset(tmp_path / "ws" / f"{case}.data", images=src, format=spec.get("format"),
                             backup=tmp_path / "ws" / "backup")
    if "names" in spec:
        assert result.names == spec["names"]
    expected = _expected(case, result.names, src)
    listed = _listed(result)
    seen: dict[str, str] = {}
    for split, images in listed.items():
        if split == "valid" and result.valid_path == result.train_path:
            continue
        for image in images:
            assert not rewrites(image), image  # every flavor reads the label beside the listed path
            real = next((e for e in expected if os.path.samefile(e, image)), None)  # a hard link to it
            assert real is not None, image
            seen[real] = split
            for flavor in FLAVORS:
                got = _read_label(label_path(image, flavor))
                want = expected[real]
                assert len(got) == len(want), (flavor, image, got, want)
                for g, e in zip(got, want):
                    assert g[0] == e[0] and all(abs(a - b) < 2e-6 for a, b in zip(g[1:], e[1:])), (flavor, g, e)
    assert set(seen) == set(expected), "every source image is listed once"
    assert result.boxes == sum(len(v) for v in expected.values())
    if "splits" in spec:
        got_splits = {k: sum(1 for s in seen.values() if s == k) for k in spec["splits"]}
        assert got_splits == spec["splits"]
    left = [p for p in result.problems if p.code == "boxes-left-out"]
    if spec["left_out"]:
        (p,) = left
        total = sum(spec["left_out"].values())
        assert p.message.startswith(f"{total} boxes left out: "), p.message
        for kind, n in spec["left_out"].items():
            assert f"{n} {kind} (" in p.message, p.message
    else:
        assert not left, left


def test_policies_keep_difficult_and_crowd_and_the_source_ids(tmp_path: Path) -> None:
    voc = _stage("voc_difficult", tmp_path)
    kept = read_dataset(voc, policies=Policies(difficult=BoxPolicy.KEEP))
    assert kept.boxes == 2 and not any(p.code == "boxes-left-out" for p in kept.problems)
    assert read_dataset(voc).boxes == 1
    coco = _stage("coco_val2017", tmp_path)
    default = read_dataset(coco)
    assert default.names == ["person", "car", "train"]
    assert default.source_ids == {int(k): v for k, v in SOURCE["coco_val2017"]["source_ids"].items()}
    crowd = read_dataset(coco, policies=Policies(crowd=BoxPolicy.KEEP))
    assert crowd.boxes == default.boxes + 1
    ids = read_dataset(coco, policies=Policies(keep_ids=True))
    assert ids.names[1] == "person" and ids.names[3] == "car" and ids.names[7] == "train" and ids.names[9] == "boat"
    assert ids.names[0] == "unused_0" and len(ids.names) == 10
    by_name = {ids.names[b.cls] for im in ids.images for b in im.boxes}
    assert by_name == {"person", "car", "train"}
    plan_lines = prepare_dataset(tmp_path / "c.data", images=coco, backup=tmp_path / "b").plan.lines
    assert any("class ids: source 1 -> 0, 3 -> 1, 7 -> 2" in line and "difficult=drop, crowd=drop" in line
               for line in plan_lines), plan_lines


def test_mixed_formats_are_refused_naming_both(tmp_path: Path) -> None:
    src = _stage("mixed", tmp_path)
    with pytest.raises(DarknetMagicsError) as info:
        read_dataset(src)
    assert "obj/ holds yolo" in info.value.message and "test/ holds coco" in info.value.message
    assert "train=" in info.value.fix and "valid=" in info.value.fix
    # each folder read in its own format, as the fix says
    result = prepare_dataset(tmp_path / "m.data", train=src / "obj", valid=src / "test", names="cat",
                             backup=tmp_path / "b")
    assert result.boxes == 2 and result.n_train == 1 and result.n_valid == 1


def test_no_images_found_says_where_it_looked(tmp_path: Path) -> None:
    src = _stage("coco_val2017", tmp_path)
    shutil.move(str(src / "val2017"), str(tmp_path / "elsewhere"))
    with pytest.raises(DarknetMagicsError) as info:
        read_dataset(src)
    assert "looked in" in info.value.message and str(src / "annotations") in info.value.message
    assert "000000000139.jpg" in info.value.message


def test_shapes_are_their_bounding_boxes() -> None:
    assert shapes.rotated_bounds(0, 0, 20, 10, 90) == pytest.approx((5, -5, 15, 15))
    assert shapes.ellipse_bounds(10, 10, 4, 2, 0) == pytest.approx((6, 8, 14, 12))
    assert shapes.circle_bounds((5, 5), (8, 9)) == pytest.approx((0, 0, 10, 10))
    # CVAT rle over a 4-wide box: background 5, 2 set (row 1, cols 1-2), background 1, 3 set (row 2 col 0-2)
    assert shapes.cvat_rle_bounds([5, 2, 1, 3, 1], 10, 20, 4) == (10, 21, 13, 23)
    assert shapes.cvat_rle_bounds([12], 0, 0, 4) is None
    # COCO rle over a 3-high image: column 1 rows 1-2 set
    assert shapes.coco_rle_bounds([4, 2, 3], 3) == (1.0, 1.0, 2.0, 3.0)


def test_compressed_coco_rle_decodes_as_pycocotools_encodes() -> None:
    mask_api = pytest.importorskip("pycocotools.mask", reason="pycocotools not installed")
    import numpy as np

    rng = np.random.default_rng(5)
    for _ in range(20):
        h, w = rng.integers(1, 40, size=2)
        mask = np.asfortranarray((rng.random((h, w)) > 0.6).astype(np.uint8))
        rle = mask_api.encode(mask)
        counts = shapes.coco_rle_counts(rle["counts"].decode())
        assert sum(counts) == h * w
        ys, xs = np.nonzero(mask)
        want = None if not len(xs) else (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        assert shapes.coco_rle_bounds(counts, int(h)) == want


def test_label_path_rules_as_each_flavor_writes_them() -> None:
    assert label_path("/d/openimages/train/a.jpg", "pjreddie") == "/d/openlabels/train/a.txt"
    assert label_path("/content/drawings/a.png", "pjreddie") == "/content/dlabelsings/a.txt"
    assert label_path("/d/VOC/JPEGImages/a.jpg", "alexeyab") == "/d/VOC/labels/a.txt"
    assert label_path("/d/coco/images/train2014/a.jpg", "alexeyab") == "/d/coco/labels/train2014/a.txt"
    assert label_path("/d/VOC/JPEGImages/a.jpg", "hank-ai") == "/d/VOC/JPEGImages/a.txt"
    assert label_path("/d/x/a.tif", "hank-ai") == "/d/x/a.txt"
    found = rewrites("/d/openimages/a.jpg")
    assert [(r.flavor.value, r.found) for r in found] == [("pjreddie", "images")]
    assert rewrites("/d/plain/a.jpg") == []


@pytest.mark.slow
@pytest.mark.timeout(200)
@pytest.mark.skipif(not DARKNET.exists() or not TINY_CFG.exists(), reason="needs Debian's darknet")
def test_real_darknet_looks_where_the_pjreddie_rule_says(tmp_path: Path) -> None:
    """Debian's darknet, trained on a list under openimages/ (then drawings/), opens the label path
    `label_path(..., "pjreddie")` gives: it prints "Couldn't open file" for the first one it misses and ends (its
    file_error calls exit(0); the loader threads sometimes crash it on the way out)."""
    from darknet_magics.synth import make_dataset

    (tmp_path / "n.names").write_text("red_box\n")
    cfg = _tiny_cfg(tmp_path / "t.cfg", classes=1)
    for folder in ("openimages", "drawings"):
        images = [str(p) for p in make_dataset(tmp_path / folder, images=2, size=64).images]
        lst = tmp_path / f"{folder}.txt"
        lst.write_text("".join(p + "\n" for p in images))
        data = tmp_path / f"{folder}.data"
        data.write_text(f"classes=1\ntrain={lst}\nvalid={lst}\nnames={tmp_path}/n.names\nbackup={tmp_path}\n")
        proc = subprocess.run([str(DARKNET), "detector", "train", str(data), str(cfg)], cwd=tmp_path,
                              capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        out = proc.stdout + proc.stderr
        opened = re.findall(r"Couldn't open file: (\S+)", out)
        assert opened and set(opened) <= {label_path(p, "pjreddie") for p in images}, out[-1500:]
        assert proc.returncode in (0, -11), out[-1500:]  # never an error status: a notebook would see success
        assert all(label_path(p, "pjreddie") != label_path(p, "alexeyab") for p in images)
    # and %yolo check, not knowing the flavor, calls it an error
    from darknet_magics.data.checks import check_dataset

    found = [p for p in check_dataset(data).problems if p.code == "label-path-rewritten"]
    assert found and found[0].severity == "error" and "pjreddie" in found[0].message


def test_yolo_data_never_converts_into_a_path_a_flavor_rewrites(tmp_path: Path) -> None:
    src = _stage("cvat_task", tmp_path)
    out = tmp_path / "openimages" / "raw" / "obj.data"
    result = prepare_dataset(out, images=src, backup=tmp_path / "b")
    for images in _listed(result).values():
        for image in images:
            assert not rewrites(image), image


def test_data_says_what_it_left_out_and_shows_the_health_table(ip, tmp_path: Path, capsys) -> None:
    src = _stage("cvat_task", tmp_path)
    out = _ok(ip, f"%yolo data {tmp_path}/ws/c.data images={src}", capsys)
    assert "4 boxes left out: " in out and "1 polyline (an open line marks no extent" in out, out
    assert "4 shapes made their bounding boxes" in out, out
    assert "policies: difficult=drop, crowd=drop, keep_ids=no" in out
    assert "dataset health" in out and "classes with no box" in out
    coco = _stage("coco_val2017", tmp_path)
    out = _ok(ip, f"%yolo data {tmp_path}/ws/k.data images={coco} keep_ids=on as kd", capsys)
    assert "keep_ids=yes; class ids: the source's" in out, out
    assert ip.user_ns["kd"].attrs["source_ids"] == {1: 1, 3: 3, 7: 7, 9: 9}
    out = _ok(ip, f"%yolo check {tmp_path}/ws/c.data", capsys)
    assert "dataset health" in out


def test_data_and_check_refuse_a_dataset_without_boxes(ip, tmp_path: Path, capsys) -> None:
    from darknet_magics.synth import make_dataset

    ds = make_dataset(tmp_path / "set", images=4, size=64)
    for label in (tmp_path / "set").glob("*.txt"):
        if label.name != "classes.txt":
            label.write_text("")
    (tmp_path / "set" / "obj.names").write_text("red_box\n")
    out = _refused(ip, f"%yolo data {tmp_path}/ws/e.data images={tmp_path}/set", capsys)
    assert "no-boxes" in out and "4 images" in out
    assert not (tmp_path / "ws" / "e.data").exists()
    lst = tmp_path / "l.txt"
    lst.write_text("".join(f"{p}\n" for p in ds.images))
    (tmp_path / "n.names").write_text("red_box\n")
    (tmp_path / "b").mkdir()
    data = tmp_path / "hand.data"
    data.write_text(f"classes=1\ntrain={lst}\nvalid={lst}\nnames={tmp_path}/n.names\nbackup={tmp_path}/b\n")
    out = _refused(ip, f"%yolo check {data}", capsys)
    assert "no-boxes" in out and "none of the 4 listed images has a box" in out


def test_check_refuses_an_image_listed_twice_or_in_train_and_valid(ip, tmp_path: Path, capsys) -> None:
    from darknet_magics.synth import make_dataset

    ds = make_dataset(tmp_path / "set", images=4, size=64)
    train, valid = tmp_path / "train.txt", tmp_path / "valid.txt"
    train.write_text("".join(f"{p}\n" for p in ds.images + ds.images[:1]))
    valid.write_text(f"{ds.images[1]}\n{ds.images[3]}\n")
    (tmp_path / "n.names").write_text("red_box\n")
    (tmp_path / "b").mkdir()
    data = tmp_path / "hand.data"
    data.write_text(f"classes=1\ntrain={train}\nvalid={valid}\nnames={tmp_path}/n.names\nbackup={tmp_path}/b\n")
    out = _refused(ip, f"%yolo check {data}", capsys)
    assert "listed-twice" in out and "train-valid-overlap" in out and "2 images are in both" in out, out


def test_check_names_mixed_formats(ip, tmp_path: Path, capsys) -> None:
    src = _stage("mixed", tmp_path)
    lst = tmp_path / "all.txt"
    lst.write_text(f"{src}/obj/a.jpg\n{src}/test/b.jpg\n")
    (tmp_path / "b").mkdir()
    data = tmp_path / "hand.data"
    data.write_text(f"classes=1\ntrain={lst}\nnames={src}/obj.names\nbackup={tmp_path}/b\n")
    out = _refused(ip, f"%yolo check {data}", capsys)
    assert "mixed-formats" in out and "COCO json" in out and f"{src}/obj" in out, out


def test_health_finds_duplicates_leakage_and_box_troubles(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.jpg", tmp_path / "b.jpg", tmp_path / "c.jpg"
    a.write_bytes(b"same picture")
    b.write_bytes(b"same picture")
    c.write_bytes(b"other bytes!")  # the same size, another content: hashed, not a duplicate
    assert duplicate_groups([str(a), str(b), str(c)]) == [[str(a), str(b)]]
    rows = {r.check: r for r in health([
        LabeledImage(str(a), "train", ((0, 0.5, 0.5, 0.2, 0.2), (0, 0.5, 0.5, 0.2, 0.2), (1, 0.95, 0.5, 0.2, 0.1))),
        LabeledImage(str(b), "valid", ((0, 0.5, 0.5, 0.0, 0.1),)),
        LabeledImage(str(c), "train", ())], ["cat", "dog", "bird"])}
    assert rows["exact duplicate images"].count == 1
    assert rows["same picture in train and valid/test"].count == 1
    assert rows["duplicate labels in an image"].count == 1
    assert rows["boxes outside the image"].count == 1
    assert rows["boxes with no area"].count == 1
    assert rows["classes with no box"].example == "bird"
    assert "counters_per_class=3,1,0" in rows["class imbalance (most/fewest boxes)"].advice
    assert rows["negatives (images without boxes)"].count == 1


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not DARKNET.exists() or not TINY_CFG.exists(), reason="needs Debian's darknet")
@pytest.mark.parametrize("case", CASES)
def test_converted_exports_train_with_darknet_reading_every_label(ip, tmp_path: Path, capsys, case: str) -> None:
    src = _stage(case, tmp_path)
    ws = tmp_path / "ws"
    fmt = f" format={SOURCE[case]['format']}" if "format" in SOURCE[case] else ""
    n = None
    for cell in (f'%%darknet\nworkspace "{ws}"\n', f"%yolo data {ws}/x.data images={src}{fmt}"):
        _ok(ip, cell, capsys)
    n = len((ws / "x.names").read_text().split())
    _ok(ip, f"%yolo cfg yolov3-tiny {ws}/t.cfg classes={n} width=64 height=64 batch=4 subdivisions=1 "
            "max_batches=2 random=0", capsys)
    _ok(ip, f"%yolo train {ws}/x.data {ws}/t.cfg", capsys)
    run = ip.user_ns["yolo_run"]
    assert run.status == "finished"
    assert "Couldn't open" not in run.log_path.read_text(errors="replace")


HANKAI = os.environ.get("DARKNET_HANKAI", "")


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not (HANKAI and os.access(HANKAI, os.X_OK)) or not DARKNET.exists() or not TINY_CFG.exists(),
                    reason="needs hank-ai's darknet (DARKNET_HANKAI=...) and Debian's")
def test_hank_ai_reads_every_converted_label_beside_the_listed_image(tmp_path: Path) -> None:
    """hank-ai's `detector map` refuses a validation image without the .txt beside it ("does not have a
    corresponding .txt annotation file"): the VOC layout (labels/ beside JPEGImages/, which pjreddie and AlexeyAB
    read) fails, the list `%yolo data` writes passes."""
    from darknet_magics.synth import make_dataset

    cfg = _tiny_cfg(tmp_path / "t.cfg", classes=2)
    src = _stage("cvat_task", tmp_path)
    result = prepare_dataset(tmp_path / "ws" / "c.data", images=src, backup=tmp_path / "ws" / "backup")
    subprocess.run([str(DARKNET), "detector", "train", str(result.data_path), str(cfg)], cwd=tmp_path,
                   capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    weights = tmp_path / "ws" / "backup" / "t_final.weights"
    assert weights.is_file()

    def hank_map(data: Path) -> str:
        proc = subprocess.run([HANKAI, "detector", "map", str(data), str(cfg), str(weights), "-dont_show"],
                              cwd=tmp_path, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        return f"rc={proc.returncode}\n" + proc.stdout + proc.stderr

    out = hank_map(result.data_path)
    assert out.startswith("rc=0") and "corresponding .txt" not in out, out[-1500:]
    voc = make_dataset(tmp_path / "VOC" / "JPEGImages", images=2, size=64)
    (tmp_path / "VOC" / "labels").mkdir()
    for image in voc.images:
        shutil.move(str(image.with_suffix(".txt")), str(tmp_path / "VOC" / "labels" / (image.stem + ".txt")))
    lst = tmp_path / "voc.txt"
    lst.write_text("".join(f"{p}\n" for p in voc.images))
    data = tmp_path / "voc.data"
    data.write_text(f"classes=2\ntrain={lst}\nvalid={lst}\nnames={result.names_path}\nbackup={tmp_path}\n")
    out = hank_map(data)
    assert "does not have a corresponding .txt annotation file" in out, out[-1500:]


def test_resize_writes_smaller_local_copies_and_the_labels_still_match(ip, tmp_path: Path, capsys) -> None:
    from darknet_magics.data.formats import image_size

    src = _stage("coco_val2017", tmp_path)
    out = _ok(ip, f"%yolo data {tmp_path}/ws/r.data images={src} resize=40x40 split=0", capsys)
    assert "2 images written as copies no larger than 40x40" in out, out
    expected = _expected("coco_val2017", ["person", "car", "train"], src)
    listed = [line for line in (tmp_path / "ws" / "r.train.txt").read_text().split("\n") if line]
    assert len(listed) == 2
    for image in listed:
        assert not os.path.islink(image) and image_size(image) == (53, 40)  # 80x60 scaled by 2/3, aspect kept
        name = os.path.basename(image)
        want = next(v for k, v in expected.items() if k.endswith(name))
        for flavor in FLAVORS:
            got = _read_label(label_path(image, flavor))
            assert [g[0] for g in got] == [w[0] for w in want]
            assert all(abs(a - b) < 2e-6 for g, w in zip(got, want) for a, b in zip(g[1:], w[1:]))
    assert {p.name for p in (src / "val2017").iterdir()} == {"000000000139.jpg", "000000000285.jpg"}
    refused = _refused(ip, f"%yolo data {tmp_path}/ws/q.data images={src} resize=big", capsys)
    assert "resize=big is not WIDTHxHEIGHT" in refused


def test_a_yolo_set_under_openimages_is_relinked_and_then_checks_clean(tmp_path: Path) -> None:
    """YOLO labels beside the images in a folder pjreddie rewrites: `%yolo data` lists them through its own
    links, so the check that calls the raw list an error finds nothing to say about label paths."""
    from darknet_magics.data.checks import check_dataset
    from darknet_magics.synth import make_dataset

    ds = make_dataset(tmp_path / "openimages" / "set", images=4, size=64)
    (tmp_path / "openimages" / "set" / "obj.names").write_text("red_box\n")
    result = prepare_dataset(tmp_path / "openimages" / "obj.data", images=ds.folder, split=0.25,
                             backup=tmp_path / "b")
    assert result.converted is not None and not rewrites(str(result.converted / "x.jpg"))
    codes = {p.code for p in check_dataset(result.data_path).problems}
    assert "label-path-rewritten" not in codes and "no-boxes" not in codes, codes


def test_mask_and_rotation_bounds_match_the_pixels_and_corners() -> None:
    """Random CVAT masks (row by row) and rotated boxes, against numpy and the turned corners themselves."""
    import math

    import numpy as np

    rng = np.random.default_rng(22)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 30, size=2))
        mask = (rng.random((h, w)) > 0.85).astype(np.uint8)
        edges = np.diff(np.concatenate([[0], mask.flatten(), [0]]))
        starts, ends = np.nonzero(edges == 1)[0], np.nonzero(edges == -1)[0]
        gaps = starts - np.concatenate([[0], ends[:-1]])
        counts = [int(v) for pair in zip(gaps, ends - starts) for v in pair] or [h * w]
        ys, xs = np.nonzero(mask)
        want = None if not len(xs) else (5 + xs.min(), 7 + ys.min(), 5 + xs.max() + 1, 7 + ys.max() + 1)
        assert shapes.cvat_rle_bounds(counts, 5, 7, w) == want
        x0, x1 = sorted(rng.uniform(0, 100, 2))
        y0, y1 = sorted(rng.uniform(0, 100, 2))
        deg = rng.uniform(-360, 360)
        cx, cy, t = (x0 + x1) / 2, (y0 + y1) / 2, math.radians(deg)
        corners = [(cx + (x - cx) * math.cos(t) - (y - cy) * math.sin(t),
                    cy + (x - cx) * math.sin(t) + (y - cy) * math.cos(t)) for x in (x0, x1) for y in (y0, y1)]
        got = shapes.rotated_bounds(x0, y0, x1, y1, deg)
        assert got == pytest.approx((min(c[0] for c in corners), min(c[1] for c in corners),
                                     max(c[0] for c in corners), max(c[1] for c in corners)))
