"""data/formats and datasets.prepare_dataset on real-format fixtures: every converted box against its source, 1e-4.

The expected darknet lines are computed here from tests/fixtures/datasets/SOURCE.json (the boxes as each tool
wrote them) with each format's convention written out again, not through the readers under test: VOC's 1-based
corners, COCO's [x, y, w, h] pixels, CVAT/LabelMe corners, Open Images' relative corners, YOLO as is. Sizes are
the images' real sizes (some annotations claim others).
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from darknet_magics.data import formats
from darknet_magics.data.formats import yolo as yolo_format
from darknet_magics.view import dataset as dataset_view
from darknet_magics.data.checks import check_dataset, label_path
from darknet_magics.data.datasets import plan_dataset, prepare_dataset
from darknet_magics.errors import DarknetMagicsError
from darknet_magics.synth import png_bytes

import numpy as np

pytestmark = pytest.mark.timeout(120)

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"
SOURCE = json.loads((FIXTURES / "SOURCE.json").read_text())


def expected(fixture: str) -> tuple[list[str], dict[str, list[tuple[int, float, float, float, float]]]]:
    """(class names in the order we promise, {image basename: [(cls, cx, cy, w, h) relative]})."""
    src = SOURCE[fixture]
    out: dict[str, list[tuple[int, float, float, float, float]]] = {}

    def corners(cls: int, x0: float, y0: float, x1: float, y1: float, W: int, H: int) -> list:
        x0, x1 = max(0.0, x0), min(float(W), x1)  # clipped to the image
        y0, y1 = max(0.0, y0), min(float(H), y1)
        if x1 <= x0 or y1 <= y0:
            return []  # degenerate: left out
        return [(cls, (x0 + x1) / 2 / W, (y0 + y1) / 2 / H, (x1 - x0) / W, (y1 - y0) / H)]

    if fixture in ("voc", "voc_devkit", "labelme"):
        names = sorted({b[0] for v in src.values() for b in v["boxes"]})
    elif fixture == "cvat":
        names = ["dog", "bird"]  # the task's label list order
    elif fixture == "coco":
        names = ["cat", "dog"]  # category ids 1, 2 (Roboflow's unused category 0 'pets' dropped)
    elif fixture == "openimages":
        names = ["Dog", "Cat"]  # class-descriptions order, only the classes used
    elif fixture == "ultralytics":
        names = ["cat", "dog", "bird"]
    elif fixture == "aiguys":
        names = ["cat"]
    else:
        names = ["cat", "dog"]
    for key, v in src.items():
        W, H = v["size"]
        rows: list = []
        for b in v["boxes"]:
            if fixture in ("voc", "voc_devkit"):  # 1-based pixel indexes (darknet's voc_label.py)
                n, xmin, ymin, xmax, ymax = b
                rows += corners(names.index(n), xmin - 1, ymin - 1, xmax - 1, ymax - 1, W, H)
            elif fixture == "coco":
                c, x, y, w, h = b
                rows += corners(c - 1, x, y, x + w, y + h, W, H)
            elif fixture in ("labelme", "cvat"):
                n, x0, y0, x1, y1 = b
                rows += corners(names.index(n), x0, y0, x1, y1, W, H)
            elif fixture == "openimages":
                n, xmin, xmax, ymin, ymax = b
                rows += corners(names.index(n), xmin * W, ymin * H, xmax * W, ymax * H, W, H)
            else:
                c, x, y, w, h = b
                rows.append((c, x, y, w, h))
        out[os.path.basename(key)] = rows
    return names, out


FIXTURE_FORMATS = {"voc": "voc", "voc_devkit": "voc", "coco": "coco", "roboflow_darknet": "yolo",
                   "ultralytics": "ultralytics", "aiguys": "yolo", "labelme": "labelme", "cvat": "cvat",
                   "openimages": "openimages"}


def read_labels(path: str) -> list[tuple[int, float, float, float, float]]:
    rows = []
    for line in Path(path).read_text().splitlines():
        c, *v = line.split()
        rows.append((int(c), *map(float, v)))
    return rows


BOXES_COMPARED: dict[str, int] = {}


@pytest.mark.parametrize("fixture", sorted(FIXTURE_FORMATS))
def test_every_box_matches_its_source(fixture: str, tmp_path: Path) -> None:
    src = tmp_path / "staged" / fixture
    shutil.copytree(FIXTURES / fixture, src, symlinks=True)
    before = {p: p.read_bytes() for p in src.rglob("*") if p.is_file()}
    assert formats.detect_format(src) == FIXTURE_FORMATS[fixture]
    result = prepare_dataset(tmp_path / "work" / "pets.data", images=src, backup=tmp_path / "backup")
    names, want = expected(fixture)
    assert result.names == names
    assert result.names_path.read_text() == "".join(n + "\n" for n in names)
    # the source folder is untouched: nothing written into it
    assert {p: p.read_bytes() for p in src.rglob("*") if p.is_file()} == before
    listed = []
    for lst in {result.train_path, result.valid_path} | ({result.test_path} if result.test_path else set()):
        listed += [line for line in lst.read_text().splitlines() if line]
    seen = set()
    compared = 0
    for image in sorted(set(listed)):  # the test split is listed as valid too
        assert " " not in image and os.path.isfile(image)
        base = os.path.basename(image)
        # every flavor finds the same label for the image
        labels = {label_path(image, "alexeyab"), label_path(image, "pjreddie")}
        texts = {Path(p).read_text() for p in labels}
        assert len(texts) == 1, labels
        got = read_labels(label_path(image))
        exp = want[base]
        assert len(got) == len(exp), (image, got, exp)
        for g, e in zip(sorted(got), sorted(exp)):
            assert g[0] == e[0]
            assert all(abs(a - b) < 1e-4 for a, b in zip(g[1:], e[1:])), (image, g, e)
            compared += 1
        seen.add(base)
    assert seen == set(want)  # every image listed (negatives too)
    assert check_dataset(result.data_path).errors == []
    BOXES_COMPARED[fixture] = compared
    print(f"{fixture}: {compared} boxes compared")


def test_splits_are_kept_and_test_never_trains(tmp_path: Path) -> None:
    rf = prepare_dataset(tmp_path / "rf.data", images=FIXTURES / "roboflow_darknet", backup=tmp_path / "b")
    train = rf.train_path.read_text()
    assert (rf.n_train, rf.n_valid, rf.n_test) == (3, 1, 1)
    assert "/test/" not in train and "/valid/" not in train
    assert rf.train_path.name == "rf.train.txt" and rf.valid_path.name == "rf.valid.txt"
    # theAIGuys: obj/ trains, test/ validates
    ag = prepare_dataset(tmp_path / "ag.data", images=FIXTURES / "aiguys", backup=tmp_path / "b")
    assert (ag.n_train, ag.n_valid) == (3, 1) and "/test/" in ag.valid_path.read_text()
    # two datasets in one folder: each keeps its own lists
    assert rf.train_path.read_text() == train and "rf.train.txt" in rf.data_path.read_text()


def test_train_valid_folders_and_names_order(tmp_path: Path) -> None:
    rf = FIXTURES / "roboflow_darknet"
    r = prepare_dataset(tmp_path / "x.data", train=rf / "train", valid=rf / "valid", names="dog,cat",
                        backup=tmp_path / "b")
    assert (r.n_train, r.n_valid, r.names) == (3, 1, ["dog", "cat"])
    # names= given renames nothing in YOLO ids: id 0 is the first name
    plan = plan_dataset(tmp_path / "x.data", images=FIXTURES / "voc", names=["cat", "dog"])
    assert any(p.code == "unknown-class" and "bird" in p.message for p in plan.problems)
    with pytest.raises(DarknetMagicsError, match="classes=2 but the dataset has 3"):
        plan_dataset(tmp_path / "x.data", images=FIXTURES / "voc", classes=2)


def test_clipped_and_degenerate_boxes_are_counted_with_their_file(tmp_path: Path) -> None:
    r = prepare_dataset(tmp_path / "voc.data", images=FIXTURES / "voc", backup=tmp_path / "b")
    codes = {p.code: p for p in r.problems}
    assert "boxes-clipped" in codes and "1 boxes" in codes["boxes-clipped"].message
    assert "d.xml object 1" in codes["degenerate-box"].message
    assert "size-mismatch" in codes and "128x96" in codes["size-mismatch"].message


def test_awkward_names_get_their_own_links_and_every_flavor_finds_each_label(tmp_path: Path) -> None:
    """Every image listed through a link of its own, named to fit (a space, an extension pjreddie keeps, two images
    that would share a label, a name pjreddie rewrites); all three flavors find the same, exact label, and a re-run
    replaces the folder."""
    src = tmp_path / "src; it's"
    src.mkdir()
    names = ["plain.jpg", "UPPER.JPG", "with space.jpg", "odd.bmp", "twin.jpg", "twin.png", "double.jpg.jpg"]
    images, anns = [], []
    for i, name in enumerate(names):
        w, h = 40 + 8 * i, 30 + 4 * i
        (src / name).write_bytes(png_bytes(np.zeros((h, w, 3), np.uint8)))  # stb_image reads by content too
        images.append({"id": i, "file_name": name, "width": w, "height": h})
        anns.append({"id": i, "image_id": i, "category_id": 1, "bbox": [i, 2 * i, 10 + i, 12 + i]})
    (src / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                      "categories": [{"id": 1, "name": "thing"}]}))
    before = {p.name: p.read_bytes() for p in src.iterdir()}
    ds = formats.read_dataset(src)
    out = tmp_path / "work" / "x.darknet"
    for _ in range(2):
        res = formats.write_darknet(ds, out)
        listed = res.lists["all"]
        assert len(listed) == len(names)
        for image in listed:
            # a hard link to the source image (same disk): hank-ai's map resolves symlinks, not hard links
            real = next(str(p) for p in src.iterdir() if os.path.samefile(p, image))
            assert os.path.isfile(image) and not os.path.islink(image)
            i = names.index(os.path.basename(real))
            w, h = 40 + 8 * i, 30 + 4 * i
            want = (0, (i + (10 + i) / 2) / w, (2 * i + (12 + i) / 2) / h, (10 + i) / w, (12 + i) / h)
            texts = {Path(label_path(image, f)).read_text() for f in ("alexeyab", "pjreddie", "hank-ai")}
            assert len(texts) == 1, image
            (got,) = read_labels(label_path(image))
            assert got[0] == 0 and all(abs(a - b) < 1e-6 for a, b in zip(got[1:], want[1:])), (image, got, want)
        # a link per image: hank-ai reads the label beside the listed path, so no folder link is listed through
        assert not [p for p in listed if "/JPEGImages/" in p]
        links = [p for p in out.rglob("*") if p.is_file() and p.stat().st_nlink == 2]  # labels have one link
        assert len(links) == len(names)
        assert not any(" " in p for p in listed)
    assert {p.name: p.read_bytes() for p in src.iterdir()} == before  # nothing written into the source
    assert [p.name for p in out.parent.iterdir()] == ["x.darknet"]  # no temporary or old folder left


def test_min_box_drops_boxes_small_at_network_size(tmp_path: Path) -> None:
    # at 64x64 network size the Roboflow fixture's smallest boxes are 0.2*64 = 12.8 px wide
    r = prepare_dataset(tmp_path / "m.data", images=FIXTURES / "roboflow_darknet", min_box=14, net=(64, 64),
                        backup=tmp_path / "b")
    assert any(p.code == "tiny-boxes-dropped" and "5 boxes" in p.message for p in r.problems), r.problems
    assert r.boxes == 5


def test_image_size_from_headers(tmp_path: Path) -> None:
    png = tmp_path / "a.png"
    png.write_bytes(png_bytes(np.zeros((7, 13, 3), np.uint8)))
    assert formats.image_size(png) == (13, 7)
    bmp = tmp_path / "a.bmp"
    bmp.write_bytes(b"BM" + b"\0" * 16 + struct.pack("<ii", 21, -9) + b"\0" * 30)  # top-down BMP
    assert formats.image_size(bmp) == (21, 9)
    jpg = next((FIXTURES / "voc").glob("b.jpg"))
    assert formats.image_size(jpg) == (80, 64)
    ppm = tmp_path / "a.ppm"  # PNM, which darknet's stb_image reads too: a comment may sit in the header
    ppm.write_bytes(b"P6\n# GIMP 2.10\n17 5\n255\n" + bytes(range(17 * 5 * 3 % 256)) * 3)
    assert formats.image_size(ppm) == (17, 5)
    (tmp_path / "x.jpg").write_bytes(b"not an image")
    assert formats.image_size(tmp_path / "x.jpg") is None
    assert formats.image_size(tmp_path / "missing.jpg") is None


def test_yaml_names_without_a_yaml_library() -> None:
    names, keys = yolo_format._parse_yaml_names("path: ../d\ntrain: images/train  # x\nnames:\n  0: person\n  1: 'bi cycle'\n")
    assert names == ["person", "bi cycle"] and keys["train"] == "images/train"
    assert yolo_format._parse_yaml_names("names:\n- a\n- b\nnc: 2\n")[0] == ["a", "b"]
    assert yolo_format._parse_yaml_names("names: ['a, b', \"c\"]\n")[0] == ["a, b", "c"]
    assert yolo_format._parse_yaml_names("names: {0: x, 1: y}\n")[0] == ["x", "y"]


def test_unknown_format_and_empty_folder_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DarknetMagicsError, match="format=kitti") as err:
        formats.read_dataset(FIXTURES / "voc", "kitti")
    assert "voc" in err.value.fix
    (tmp_path / "empty").mkdir()
    with pytest.raises(DarknetMagicsError, match="no images or annotations"):
        formats.read_dataset(tmp_path / "empty")


def test_format_override_reads_a_folder_as_told(tmp_path: Path) -> None:
    ds = formats.read_dataset(FIXTURES / "voc_devkit", "voc")
    assert ds.format == "voc" and len(ds.images) == 2 and ds.boxes == 3


def test_summary_frame_and_figure() -> None:
    from darknet_magics.report import RecordingReporter

    ds = formats.read_dataset(FIXTURES / "voc")
    frame = formats.summary_frame(ds, (64, 64))
    assert len(frame.dropna(subset=["class"])) == ds.boxes == 6
    assert frame["class"].isna().sum() == 1  # e.jpg, the negative
    a = frame[(frame["image"].str.endswith("a.jpg")) & (frame["class"] == "cat")].iloc[0]
    assert abs(a["width_px"] - 25 / 64 * 64) < 1e-9 and abs(a["height_px"] - 34 / 48 * 64) < 1e-9
    fig = dataset_view.summary_figure(frame, (64, 64))
    assert [t["type"] for t in fig["data"]] == ["bar", "bar", "histogram", "scattergl"]
    rec = RecordingReporter()
    dataset_view.show_summary(ds, rec, (64, 64))
    kinds = [k for k, _ in rec.events]
    assert "dataframe" in kinds and "html" in kinds
