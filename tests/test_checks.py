"""checks.py: a clean generated dataset reports nothing; each classic mistake is caught with file, line and fix."""
from __future__ import annotations

from pathlib import Path

import pytest

from darknet_magics.data.cfg import make_cfg
from darknet_magics.data.checks import check, check_dataset, format_report, label_path
from darknet_magics.data.datasets import write_data
from darknet_magics.synth import make_dataset

STOCK = Path("/usr/share/darknet/cfg")
pytestmark = pytest.mark.skipif(not STOCK.is_dir(), reason="Debian's darknet cfgs not installed")


@pytest.fixture()
def clean(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(obj.data, cfg, image folder) of a correct 2-class dataset in a folder with spaces, quotes and ';'."""
    root = tmp_path / "my data; 'x'"
    make_dataset(root / "obj", images=12, classes=2)
    data = write_data(root / "obj.data", classes=2, names="red_box,blue_box", images=root / "obj", split=0.25,
                      backup=root / "backup").data_path
    cfg = root / "tiny.cfg"
    cfg.write_text(make_cfg((STOCK / "yolov3-tiny.cfg").read_text(), 2, width=64, height=64, batch=4, subdivisions=2))
    return data, cfg, root / "obj"


def codes(problems) -> list[str]:
    return [p.code for p in problems]


def one(problems, code: str):
    found = [p for p in problems if p.code == code]
    assert found, format_report(problems)
    assert all(p.fix and p.file for p in found)
    return found[0]


def test_clean_dataset_reports_nothing(clean) -> None:
    data, cfg, _ = clean
    result = check_dataset(data, cfg)
    assert result.problems == [], format_report(result.problems)
    assert result.images == 12 and result.negatives == 2 and result.boxes > 10
    assert format_report(result.problems).endswith("no problems found")


def test_missing_files_in_obj_data(clean, tmp_path: Path) -> None:
    data, cfg, _ = clean
    bad = tmp_path / "bad.data"
    bad.write_text(f"classes = 2\ntrain = {tmp_path}/nope/train.txt\nnames = {tmp_path}/x.names\n"
                   f"backup = {tmp_path}/no-backup\n")
    problems = check(bad, cfg)
    assert one(problems, "missing-file").line == 2
    assert one(problems, "missing-backup").line == 4
    assert check(tmp_path / "none.data")[0].code == "missing-file"
    assert one(check(data, tmp_path / "none.cfg"), "missing-file").file.endswith("none.cfg")


def test_missing_keys_spaces_and_relative(tmp_path: Path) -> None:
    bad = tmp_path / "bad.data"
    bad.write_text("train = data/train.txt\nvalid = /content/My Drive/valid.txt\n")
    problems = check(bad)
    assert {"classes", "names", "backup"} <= {p.message.split()[1].rstrip("=") for p in problems
                                              if p.code == "data-missing-key"}
    assert one(problems, "path-with-space").line == 2
    assert one(problems, "relative-path").line == 1


def test_names_count_mismatch(clean) -> None:
    data, cfg, _ = clean
    data.write_text(data.read_text().replace("classes = 2", "classes = 3"))
    problems = check(data)
    classes_line = next(i for i, ln in enumerate(data.read_text().splitlines(), 1) if ln.startswith("classes"))
    assert one(problems, "names-count-mismatch").line == classes_line


def test_missing_images_show_a_few_and_count_the_rest(clean, tmp_path: Path) -> None:
    data, cfg, _ = clean
    train = Path([l for l in data.read_text().splitlines() if l.startswith("train")][0].split("=")[1].strip())
    lines = train.read_text().splitlines()
    train.write_text("\n".join(lines + [f"/nowhere/gone_{i}.jpg" for i in range(8)]) + "\n")
    problems = check(data, cfg, max_examples=3)
    missing = [p for p in problems if p.code == "missing-images"]
    assert len(missing) == 4 and "5 more" in missing[-1].message
    assert missing[0].line == len(lines) + 1 and missing[0].file == str(train)


def test_wrong_folder_from_another_machine(clean) -> None:
    data, cfg, images = clean
    train = Path([l for l in data.read_text().splitlines() if l.startswith("train")][0].split("=")[1].strip())
    train.write_text("".join(f"/home/someone/laptop/obj/{Path(l).name}\n" for l in train.read_text().splitlines()))
    p = one(check(data, cfg), "wrong-folder")
    assert "images=" in p.fix and p.line == 1


def test_relative_list_entries(clean) -> None:
    data, cfg, images = clean
    train = Path([l for l in data.read_text().splitlines() if l.startswith("train")][0].split("=")[1].strip())
    train.write_text("".join(f"obj/{Path(l).name}\n" for l in train.read_text().splitlines()))
    assert one(check(data, cfg), "relative-path").severity == "warning"


def test_missing_labels_are_counted_negatives(clean) -> None:
    data, cfg, images = clean
    (images / "img_005.txt").unlink()
    result = check_dataset(data, cfg)
    p = one(result.problems, "missing-labels")
    assert p.severity == "info" and result.missing_labels == 1 and result.negatives == 3
    for t in images.glob("*.txt"):
        t.unlink()
    assert one(check(data, cfg), "missing-labels").severity == "warning"


@pytest.mark.parametrize("text, code, line", [
    ("0 0.5 0.5 0.2\n", "malformed-label", 1),
    ("0 0.5 0.5 0.2 0.2\nzero 0.5 0.5 0.2 0.2\n", "malformed-label", 2),
    ("2 0.5 0.5 0.2 0.2\n", "class-out-of-range", 1),
    ("-1 0.5 0.5 0.2 0.2\n", "class-out-of-range", 1),
    ("0 0.5 0.5 0.2 0.2\n1 120 80 30 40\n", "coords-out-of-range", 2),
    ("0 0.5 0.5 0 0.2\n", "coords-out-of-range", 1),
])
def test_bad_labels(clean, text: str, code: str, line: int) -> None:
    data, cfg, images = clean
    (images / "img_007.txt").write_text(text)
    p = one(check(data, cfg), code)
    # Reported as darknet will open it: through the space-free link write_data made.
    assert Path(p.file).resolve() == (images / "img_007.txt").resolve() and p.line == line


def test_cfg_classes_and_filters_mismatch(clean) -> None:
    data, cfg, _ = clean
    text = cfg.read_text()
    cfg.write_text(text.replace("classes=2", "classes=3", 1))
    problems = check(data, cfg)
    assert one(problems, "classes-mismatch").line == 135
    assert one(problems, "filters-mismatch").line == 127  # the head's classes=3 needs 24
    cfg.write_text(text.replace("filters=21", "filters=255"))
    p = one(check(data, cfg), "filters-mismatch")
    assert "= 21" in p.message and "filters=21" in p.fix


def test_cfg_size_batch_and_schedule(clean) -> None:
    data, cfg, _ = clean
    text = cfg.read_text()
    cfg.write_text(text.replace("width=64", "width=100").replace("subdivisions=2", "subdivisions=3")
                   .replace("steps=", "steps=999999,"))
    problems = check(data, cfg)
    assert one(problems, "size-not-multiple-of-32").line == 8
    assert one(problems, "batch-subdivisions")
    assert one(problems, "steps-beyond-max-batches").severity == "warning"
    cfg.write_text(text.replace("batch=4", "batch=1").replace("subdivisions=2", "subdivisions=1"))
    assert one(check(data, cfg), "testing-batch").severity == "warning"


def test_cfg_masks_and_anchors(clean) -> None:
    data, cfg, _ = clean
    text = cfg.read_text()
    cfg.write_text(text.replace("mask = 3,4,5", "mask = 3,4,9").replace("num=6", "num=7", 1))
    problems = check(data, cfg)
    assert one(problems, "anchors-count")
    cfg.write_text(text.replace("mask = 3,4,5", "mask = 3,4,9"))
    assert one(check(data, cfg), "mask-out-of-range").line == 133


def test_weights_checked_against_cfg(clean, tmp_path: Path) -> None:
    data, cfg, _ = clean
    import struct
    w = tmp_path / "cut.weights"
    w.write_bytes(struct.pack("<3iq", 0, 2, 0, 0) + b"\0" * 1000)
    assert one(check(data, cfg, weights=w), "truncated-weights")
    assert one(check(data, cfg, weights=tmp_path / "none.weights"), "missing-file")


def test_label_path_rules() -> None:
    assert label_path("/d/images/a.JPG") == "/d/images/a.txt"
    assert label_path("/d/JPEGImages/a.jpg") == "/d/labels/a.txt"
    assert label_path("/d/my_images/a.jpg", "pjreddie") == "/d/my_labels/a.txt"
    assert label_path("/d/x/a.jpeg", "pjreddie") == "/d/x/a.jpeg"  # pjreddie never finds .jpeg labels


def test_pjreddie_flavor_flags_images_folder(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "images", images=4)
    # A hand-written list of images in an images/ folder: pjreddie looks in labels/ instead
    (tmp_path / "hand.txt").write_text("".join(f"{p}\n" for p in ds.images))
    data = write_data(tmp_path / "obj.data", classes=1, names="red_box", train=tmp_path / "hand.txt",
                      backup=tmp_path / "b").data_path
    # AlexeyAB finds the labels; pjreddie's rule (the first "images" -> "labels") is said, a warning for another flavor
    p = one(check(data), "label-path-rewritten")
    assert p.severity == "warning" and p.message.startswith("pjreddie's darknet") and "'images' -> 'labels'" in p.message
    found = check(data, flavor="pjreddie")
    assert one(found, "label-path-rewritten").severity == "error"
    p = one(found, "missing-labels")
    assert p.severity == "warning" and "/labels/" in p.message
    # images=DIR sees the problem and writes labels where both flavors look (a folder of links next to OUT)
    result = write_data(tmp_path / "obj2.data", images=tmp_path / "images", backup=tmp_path / "b")
    assert result.converted == tmp_path / "obj2.darknet"
    assert check(result.data_path) == [] and check(result.data_path, flavor="pjreddie") == []


def test_tiny_boxes_at_the_cfg_network_size(clean) -> None:
    data, cfg, obj = clean
    label = obj / "img_004.txt"
    label.write_text(label.read_text() + "0 0.5 0.5 0.03 0.2\n")  # 1.9 px wide at 64, 12.5 px at 416
    p = one(check(data, cfg), "tiny-boxes")
    assert p.severity == "warning" and "1 boxes" in p.message and "64x64" in p.message
    assert "img_004.txt:" in p.message and "min_box=" in p.fix
    assert "tiny-boxes" not in codes(check(data))  # at 416 (no cfg) the box is big enough


@pytest.mark.parametrize("which", ["data", "cfg", "list"])
def test_crlf_cr_and_bom_are_findings_with_file_and_fix(clean, which: str) -> None:
    data, cfg, _obj = clean
    train = Path([line.split("=", 1)[1].strip() for line in data.read_text().splitlines()
                  if line.startswith("train")][0])
    path = {"data": data, "cfg": cfg, "list": train}[which]
    original = path.read_bytes()
    path.write_bytes(original.replace(b"\n", b"\r\n"))
    p = one(check(data, cfg), "line-endings")
    assert p.file == str(path) and "sed -i" in p.fix and p.severity == "warning"
    assert one(check(data, cfg, flavor="pjreddie"), "line-endings").severity == "error"
    path.write_bytes(original.replace(b"\n", b"\r"))
    p = one(check(data, cfg), "line-endings")
    assert "CR-only" in p.message and p.severity == "error"
    path.write_bytes(b"\xef\xbb\xbf" + original)
    problems = check(data, cfg)
    assert one(problems, "bom").file == str(path)
    if which == "data":
        assert "data-missing-key" not in codes(problems)  # the BOM is named, not a misread 'classes' key


def test_voc_xml_without_txt_labels_names_the_conversion(tmp_path: Path) -> None:
    import shutil

    src = tmp_path / "voc"
    shutil.copytree(Path(__file__).parent / "fixtures" / "datasets" / "voc", src)
    (tmp_path / "list.txt").write_text("".join(f"{p}\n" for p in sorted(src.glob("*.jpg"))))
    data = write_data(tmp_path / "obj.data", classes=3, names="bird,cat,dog", train=tmp_path / "list.txt",
                      backup=tmp_path / "b").data_path
    p = one(check(data), "annotations-not-converted")
    assert p.severity == "error" and "Pascal VOC" in p.message and f"images={src}" in p.fix
