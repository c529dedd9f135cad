"""Every reader of a file a user brought refuses what would otherwise be written wrong without a word (issue 19):
non-finite and absurd numbers, bad class names, paths that leave the dataset folder, files it cannot parse, and
full or read-only disks. Each case is a real fixture copied and broken one way; the error must be ours (no
traceback) and name the file and the line (or json path / xml element).

`TALLY` at the bottom counts the variants per class (the closing note of issue 19 quotes it).
"""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Callable

import pytest
from IPython.core.error import UsageError

from conftest import run_cell
from darknet_magics.data.cfg import make_cfg_changes
from darknet_magics.data.cfg_weights import check_weights, layer_weights
from darknet_magics.data.checks import check_dataset
from darknet_magics.data.anchors import compute_anchors
from darknet_magics.data.datasets import plan_dataset, prepare_dataset
from darknet_magics.errors import DarknetMagicsError, StepError
from darknet_magics.data.formats import read_dataset
from darknet_magics.data.labels import parse_line
from darknet_magics.synth import make_dataset
from darknet_magics.untrusted import BadInput, load_json
from faults.fs import can_mount, tmpfs

pytestmark = pytest.mark.timeout(120)

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"
needs_mount = pytest.mark.skipif(not can_mount(), reason="needs root to mount a tmpfs (full/read-only disk)")


def copy(fixture: str, tmp_path: Path) -> Path:
    root = tmp_path / "set" / fixture
    shutil.copytree(FIXTURES / fixture, root)
    return root


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, (path, old)
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def json_edit(path: Path, change: Callable[[dict], None]) -> None:
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(json.dumps(doc), encoding="utf-8")


def coco_box(i: int, value) -> Callable[[dict], None]:
    def change(doc: dict) -> None:
        doc["annotations"][0]["bbox"][i] = value
    return change


def json_literal(path: Path, change: Callable[[dict, object], None], literal: str) -> None:
    """Put `literal` (json text such as 1e999, which json.dumps never writes) where `change` puts a marker."""
    json_edit(path, lambda d: change(d, 123456.789))
    edit(path, "123456.789", literal)


COCO = "train/_annotations.coco.json"
OI = "train/oidv6-train-annotations-bbox.csv"
RF = "train/train0_png.rf.0000.txt"

# (class, fixture, file, how it is broken, words the error must hold). The file's name is always in the error too.
CASES: list[tuple[str, str, str, Callable[[Path], None], tuple[str, ...]]] = [
    # -- non-finite and absurd numbers
    ("numbers", "roboflow_darknet", RF, lambda p: p.write_text("0 nan 0.5 0.2 0.2\n"), (":1", "x is 'nan'")),
    ("numbers", "roboflow_darknet", RF, lambda p: p.write_text("0 0.5 0.5 0.2 0.2\n0 0.5 0.5 inf 0.2\n"),
     (":2", "w is 'inf'")),
    ("numbers", "roboflow_darknet", RF, lambda p: p.write_text("0 0.5 0.5 1e999 0.2\n"), (":1", "1e999")),
    ("numbers", "roboflow_darknet", RF, lambda p: p.write_text("0 250 120 40 30\n"), (":1", "not in 0..1")),
    ("numbers", "ultralytics", "train/labels/utrain0.txt", lambda p: p.write_text("0 0.5 0.5 0.2 -inf\n"),
     (":1", "h is '-inf'")),
    ("numbers", "voc", "a.xml", lambda p: re_sub(p, r"<xmin>[^<]*</xmin>", "<xmin>nan</xmin>"),
     ("a.xml object 1 <bndbox>", "xmin is 'nan'")),
    ("numbers", "voc", "a.xml", lambda p: re_sub(p, r"<xmax>[^<]*</xmax>", "<xmax>1e999</xmax>"),
     ("a.xml object 1", "xmax", "1e999")),
    ("numbers", "voc", "a.xml", lambda p: re_sub(p, r"<xmin>[^<]*</xmin>", "<xmin>12e6</xmin>"),
     ("object 1", "outside")),
    ("numbers", "voc", "a.xml", lambda p: re_sub(p, r"<width>[^<]*</width>", "<width>-640</width>"),
     ("a.xml <size>", "width")),
    ("numbers", "coco", COCO, lambda p: json_literal(p, lambda d, v: coco_box(0, v)(d), "1e999"),
     ("annotations[0].bbox", "x is inf")),
    ("numbers", "coco", COCO, lambda p: json_edit(p, coco_box(2, -5)), ("annotations[0].bbox", "w = -5", "outside")),
    ("numbers", "coco", COCO, lambda p: json_edit(p, coco_box(1, float("nan"))), ("not valid json", "NaN")),
    ("numbers", "coco", COCO, lambda p: json_edit(p, lambda d: d["images"][0].update(width=10 ** 9)),
     ("images[0]", "width")),
    ("numbers", "cvat", "annotations.xml", lambda p: re_sub(p, r'xtl="[^"]*"', 'xtl="inf"'), ("box 1", "xtl")),
    ("numbers", "labelme", "p1.json",
     lambda p: json_literal(p, lambda d, v: d["shapes"][0]["points"][0].__setitem__(0, v), "-1e999"),
     ("shapes[0].points[0]", "x is -inf")),
    ("numbers", "labelme", "p1.json", lambda p: json_edit(p, coco_like_infinity), ("p1.json", "Infinity")),
    ("numbers", "openimages", OI, lambda p: edit(p, ",0.1,0.5,", ",nan,0.5,"), ("csv:2", "XMin is 'nan'")),
    ("numbers", "openimages", OI, lambda p: edit(p, ",0.1,0.5,", ",640,0.5,"), ("csv:2", "XMin", "outside")),
    # -- bad class names
    ("names", "voc", "a.xml", lambda p: re_sub(p, r"<name>([^<]*)</name>", r"<name>\1&#10;dog</name>", once=False),
     ("a.xml object 1 <name>", "control character")),
    ("names", "voc", "a.xml", lambda p: re_sub(p, r"<name>[^<]*</name>", "<name> </name>", once=False),
     ("object 1", "empty")),
    ("names", "coco", COCO, lambda p: json_edit(p, lambda d: d["categories"][1].update(name="cat\ndog")),
     ("categories[1].name", "control character")),
    ("names", "cvat", "annotations.xml", lambda p: edit(p, "<name>dog</name>", "<name>do\u2028g</name>"),
     ("label 1", "control character")),
    ("names", "labelme", "p1.json", lambda p: json_edit(p, lambda d: d["shapes"][0].update(label="")),
     ("shapes[0].label", "empty")),
    ("names", "labelme", "p1.json", lambda p: json_edit(p, lambda d: d["shapes"][0].update(label=["dog"])),
     ("shapes[0].label", "not text")),
    ("names", "roboflow_darknet", "test/_darknet.labels", lambda p: p.write_text("cat\n\ndog\n"),
     ("_darknet.labels:2", "empty")),
    ("names", "roboflow_darknet", "test/_darknet.labels", lambda p: p.write_text("cat\ndo\x0cg\n"),
     ("_darknet.labels:2", "control character")),
    ("names", "ultralytics", "data.yaml", lambda p: edit(p, "'dog'", "''"), ("names[1]", "empty")),
    ("names", "openimages", "class-descriptions-boxable.csv", lambda p: edit(p, "Cat", "Ca\tt"),
     ("class-descriptions-boxable.csv:3", "control character")),
    # -- files that cannot be parsed
    ("parse", "voc", "a.xml", lambda p: p.write_bytes(p.read_bytes()[:60]), ("a.xml", "not a readable VOC xml")),
    ("parse", "voc", "a.xml", lambda p: p.write_bytes(p.read_bytes().replace(b"<filename>", b"<filename>\xff")),
     ("a.xml", "not a readable VOC xml")),
    ("parse", "cvat", "annotations.xml", lambda p: p.write_text("<annotations><image"), ("not a readable CVAT xml",)),
    ("parse", "coco", COCO, lambda p: p.write_text('{"images": ' + "[" * 200_000 + "]" * 200_000 + "}"),
     ("nested deeper",)),
    ("parse", "coco", COCO, lambda p: p.write_bytes(p.read_bytes().replace(b'"cat"', b'"c\xe9t"')),
     (".json:1", "not UTF-8")),
    ("parse", "coco", COCO, lambda p: p.write_text('{"images": [1, 2'), ("not valid json",)),
    ("parse", "coco", COCO, lambda p: p.write_text('[{"images": []}]'), ("not a json object",)),
    ("parse", "coco", COCO, lambda p: json_edit(p, lambda d: d["annotations"][0].pop("bbox")),
     ("annotations[0]", "has no 'bbox'")),
    ("parse", "coco", COCO, lambda p: json_edit(p, lambda d: d["annotations"][0].update(image_id="abc")),
     ("annotations[0].image_id", "not a number")),
    ("parse", "coco", COCO, lambda p: json_edit(p, lambda d: d["annotations"][0].update(bbox={"x": 1})),
     ("annotations[0].bbox", "not a json list")),
    ("parse", "coco", COCO, lambda p: json_edit(p, lambda d: d["annotations"][0].update(bbox=["12px", 1, 2, 3])),
     ("annotations[0].bbox", "'12px', not a number")),
    ("parse", "coco", COCO, lambda p: json_edit(p, lambda d: d["images"][0].update(file_name=7)),
     ("images[0].file_name", "not a string")),
    ("parse", "labelme", "p1.json", lambda p: json_edit(p, lambda d: d.update(shapes=5)),
     ("shapes", "not a json list")),
    ("parse", "labelme", "p1.json", lambda p: p.write_text('{"imagePath": "p1.jpg",\n"shapes": [}'),
     ("p1.json:2", "not valid json")),
    ("parse", "openimages", OI, lambda p: p.write_bytes(p.read_bytes() + b"\xff\xfe,x\n"), ("csv:5", "not UTF-8")),
    ("parse", "openimages", OI, lambda p: p.write_bytes(p.read_bytes() + b'"' + b"x" * 200_000 + b'"\n'),
     ("csv:5", "not a readable csv", "field limit")),
    ("parse", "openimages", OI, lambda p: edit(p, "XMin", "Xmin"), ("csv:1", "no XMin column")),
    ("parse", "openimages", OI, lambda p: p.write_text(p.read_text() + "0a1b2c3d4e5f6a7b,xclick\n"),
     ("csv:5", "2 values")),
    ("parse", "roboflow_darknet", RF, lambda p: p.write_text("0 0.5 0.5 0.2\n"), (":1", "4 values")),
    ("parse", "roboflow_darknet", RF, lambda p: p.write_text("0.0 0.5 0.5 0.2 0.2\n"), (":1", "not a whole number")),
    ("parse", "roboflow_darknet", RF, lambda p: p.write_bytes(b"0 0.5 0.5 0.2 0.2\n\xff\n"), (":2", "not UTF-8")),
    ("parse", "voc", "a.xml", lambda p: re_sub(p, r"(?s)<bndbox>.*?</bndbox>", ""),
     ("a.xml object 1", "has no <bndbox>")),
    ("parse", "voc", "a.xml", lambda p: re_sub(p, r"<ymin>[^<]*</ymin>", "<ymin>12px</ymin>"),
     ("object 1 <bndbox>", "'12px', not a number")),
    ("parse", "labelme", "p1.json", lambda p: json_edit(p, lambda d: d["shapes"][0]["points"].__setitem__(0, [1])),
     ("shapes[0].points[0]", "not [x, y]")),
    ("parse", "ultralytics", "data.yaml", lambda p: edit(p, "names: ['cat', 'dog', 'bird']", "names:\n  a: cat"),
     ("data.yaml", "not a class number")),
]


def coco_like_infinity(doc: dict) -> None:
    doc["shapes"][0]["points"][0][0] = float("inf")  # json.dumps writes Infinity, which is no json


def re_sub(path: Path, pattern: str, repl: str, once: bool = True) -> None:
    text = path.read_text(encoding="utf-8")
    new = re.sub(pattern, repl, text, count=1 if once else 0)
    assert new != text, (path, pattern)
    path.write_text(new, encoding="utf-8")


@pytest.mark.parametrize("kind,fixture,name,breaks,words", CASES,
                         ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(CASES)])
def test_a_broken_annotation_is_refused_naming_its_file_and_place(tmp_path: Path, kind, fixture, name, breaks,
                                                                    words) -> None:
    root = copy(fixture, tmp_path)
    read_dataset(root)  # the fixture reads before it is broken
    breaks(root / name)
    with pytest.raises(BadInput) as info:
        read_dataset(root)
    message = str(info.value)
    assert Path(name).name in message and info.value.fix, message
    for word in words:
        assert word in message, (word, message)
    # and through plan/prepare: nothing is written
    with pytest.raises(DarknetMagicsError):
        prepare_dataset(tmp_path / "out" / "obj.data", images=root, backup=tmp_path / "backup")
    assert not (tmp_path / "out").exists()


def test_an_unreadable_voc_xml_is_an_error_not_a_background_image(tmp_path: Path) -> None:
    root = copy("voc", tmp_path)
    (root / "b.xml").write_text("<annotation><object><name>cat</name>")  # cut short
    with pytest.raises(BadInput, match=r"b\.xml:1: not a readable VOC xml"):
        read_dataset(root)


# -- paths that leave the dataset folder


def outside_image(tmp_path: Path) -> Path:
    image = tmp_path / "elsewhere" / "secret.jpg"
    image.parent.mkdir()
    shutil.copy(FIXTURES / "voc" / "a.jpg", image)
    return image


@pytest.mark.parametrize("how", ["relative", "absolute"])
def test_coco_file_name_leaving_the_folder_is_refused(tmp_path: Path, how: str) -> None:
    root = copy("coco", tmp_path)
    secret = outside_image(tmp_path)
    name = os.path.relpath(secret, root / "train") if how == "relative" else str(secret)
    json_edit(root / COCO, lambda d: d["images"][0].update(file_name=name))
    with pytest.raises(BadInput, match=r"images\[0\].*outside the dataset folder"):
        read_dataset(root)


def test_cvat_absolute_image_name_outside_is_refused(tmp_path: Path) -> None:
    root = copy("cvat", tmp_path)
    secret = outside_image(tmp_path)
    edit(root / "annotations.xml", 'name="k1.jpg"', f'name="{secret}"')
    with pytest.raises(BadInput, match="annotations.xml image '0'.*outside the dataset folder"):
        read_dataset(root)


def test_labelme_image_path_leaving_the_folder_is_refused(tmp_path: Path) -> None:
    root = copy("labelme", tmp_path)
    secret = outside_image(tmp_path)
    (root / "p1.jpg").unlink()
    json_edit(root / "p1.json", lambda d: d.update(imagePath=os.path.relpath(secret, root)))
    with pytest.raises(BadInput, match="p1.json imagePath.*outside the dataset folder"):
        read_dataset(root)


def test_a_link_pointing_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    root = copy("roboflow_darknet", tmp_path)
    secret = outside_image(tmp_path)
    (root / "train" / "evil.jpg").symlink_to(secret)
    with pytest.raises(BadInput, match=f"evil.jpg is outside the dataset folder .* leads to {secret}"):
        read_dataset(root)
    # a label file that is a link out is refused too (its text would be echoed in errors)
    (root / "train" / "evil.jpg").unlink()
    label = root / "train" / "train0_png.rf.0000.txt"
    label.unlink()
    label.symlink_to(tmp_path / "elsewhere" / "secret.jpg")
    with pytest.raises(BadInput, match="label file .* is outside the dataset folder"):
        read_dataset(root)


def test_a_linked_folder_inside_the_dataset_is_fine(tmp_path: Path) -> None:
    root = copy("roboflow_darknet", tmp_path)
    (root / "train" / "more").symlink_to(root / "valid")  # a link that stays inside
    assert len(read_dataset(root).images) > 0


def test_a_link_loop_lists_each_image_once(tmp_path: Path) -> None:
    root = copy("roboflow_darknet", tmp_path)
    n = len(read_dataset(root).images)
    (root / "train" / "loop").symlink_to(root / "train")
    assert len(read_dataset(root).images) == n


@pytest.mark.parametrize("name", ["9" * 5000, "x\x00.jpg"])
def test_names_too_long_or_with_a_nul_byte_are_no_traceback(tmp_path: Path, name: str) -> None:
    """Found by the property test: pathlib's is_dir()/is_file() raise on these, os.path's say False."""
    root = copy("ultralytics", tmp_path)
    edit(root / "data.yaml", "train: ../train/images", f"train: {name}")
    assert read_dataset(root).images  # the folder's own train/images is read
    root = copy("labelme", tmp_path / "lm")
    json_edit(root / "p1.json", lambda d: d.update(imagePath=name))
    assert read_dataset(root).images
    root = copy("cvat", tmp_path / "cv")
    edit(root / "annotations.xml", 'name="k1.jpg"', f'name="{name.replace(chr(0), "")}"')
    try:
        read_dataset(root)
    except DarknetMagicsError:
        pass


def test_data_yaml_paths_outside_the_folder_are_not_read(tmp_path: Path) -> None:
    root = copy("ultralytics", tmp_path)
    other = copy("ultralytics", tmp_path / "other")
    edit(root / "data.yaml", "train: ../train/images", f"train: {other / 'train' / 'images'}")
    ds = read_dataset(root)
    assert ds.images and all(str(im.path).startswith(str(root)) for im in ds.images)


# -- the directives, in a real IPython shell: our error, no traceback


def _refused(ip, line: str, capsys) -> str:
    result = run_cell(ip, line)
    captured = capsys.readouterr()
    out = captured.out + captured.err + str(result.error_in_exec)
    assert result.error_in_exec is not None, out
    assert isinstance(result.error_in_exec, (UsageError, StepError)), repr(result.error_in_exec)
    assert "Traceback" not in out
    return out


def test_yolo_data_names_from_a_python_variable_with_a_newline_are_refused(ip, tmp_path: Path, capsys) -> None:
    make_dataset(tmp_path / "ds", images=4)
    ip.user_ns["n"] = "cat\ndog"
    out = _refused(ip, f'%yolo data "{tmp_path}/obj.data" images="{tmp_path}/ds" names={{n}}', capsys)
    assert "control character" in out and not (tmp_path / "obj.data").exists()


def test_yolo_data_refuses_a_nan_label_and_writes_nothing(ip, tmp_path: Path, capsys) -> None:
    make_dataset(tmp_path / "ds", images=4)
    (tmp_path / "ds" / "img_003.txt").write_text("0 0.5 nan 0.2 0.2\n")
    out = _refused(ip, f'%yolo data "{tmp_path}/out/obj.data" images="{tmp_path}/ds"', capsys)
    assert "img_003.txt:1" in out and "y is 'nan'" in out
    assert not (tmp_path / "out").exists()


def test_check_reports_what_data_refuses_with_the_same_rule(tmp_path: Path) -> None:
    """One validator: a 4-value line, a nan, a '0.0' class and pixel coordinates are errors in both."""
    make_dataset(tmp_path / "ds", images=6, negatives=0)
    prepare_dataset(tmp_path / "obj.data", images=tmp_path / "ds", names="box", backup=tmp_path / "b")
    bad = {"img_002.txt": "0 0.5 0.5 0.2\n", "img_003.txt": "0 nan 0.5 0.2 0.2\n",
           "img_004.txt": "0.0 0.5 0.5 0.2 0.2\n", "img_005.txt": "0 250 120 40 30\n"}
    for name, text in bad.items():
        (tmp_path / "ds" / name).write_text(text)
    found = {(Path(p.file).name, p.code, p.severity) for p in check_dataset(tmp_path / "obj.data").problems
             if p.file and p.file.endswith(tuple(bad))}
    assert found == {("img_002.txt", "malformed-label", "error"), ("img_003.txt", "malformed-label", "error"),
                     ("img_004.txt", "malformed-label", "error"), ("img_005.txt", "coords-out-of-range", "error")}
    for name, text in bad.items():
        for d in (tmp_path / "ds2",):
            shutil.rmtree(d, ignore_errors=True)
            make_dataset(d, images=6, negatives=0)
            (d / name).write_text(text)
            with pytest.raises(BadInput, match=f"{name}:1"):
                read_dataset(d, names=["box"])


def test_check_reports_bad_names_and_encodings_by_file_and_line(tmp_path: Path) -> None:
    make_dataset(tmp_path / "ds", images=4)
    prepare_dataset(tmp_path / "obj.data", images=tmp_path / "ds", names="box", backup=tmp_path / "b")
    names = tmp_path / "obj.names"
    names.write_text("\nbox\n")
    data = tmp_path / "obj.data"
    data.write_bytes(data.read_bytes() + b"# caf\xe9\n")
    cfg = tmp_path / "x.cfg"
    cfg.write_bytes(b"[net]\nwidth=1e999\nheight=416\n# \xff\n")
    problems = check_dataset(data, cfg).problems
    got = {(p.code, Path(p.file).name, p.line) for p in problems if p.code in ("bad-names", "bad-encoding",
                                                                                 "cfg-invalid")}
    assert ("bad-names", "obj.names", 1) in got and ("bad-encoding", "obj.data", 7) in got
    assert ("bad-encoding", "x.cfg", 4) in got and ("cfg-invalid", "x.cfg", None) in got
    assert any("width=1e999 is not a number darknet reads" in p.message for p in problems)


@pytest.mark.parametrize("extra", ["", "valid=/x\x00y\n", "names=/n\x00\n", "backup=/b\x00\n", "train=/t\x00\n"])
def test_nul_bytes_in_a_list_or_obj_data_are_reported_not_raised(tmp_path: Path, extra: str) -> None:
    """os.scandir/open/pathlib raise ValueError (not OSError) on a path with a NUL byte: found by hand after the
    property test's lists; check reports, anchors skips or refuses."""
    make_dataset(tmp_path / "ds", images=3)
    (tmp_path / "list.txt").write_bytes(f"{tmp_path}/d\x00s/img_000.png\n../rel\x00/x.png\n".encode())
    data = tmp_path / "obj.data"
    data.write_text(f"{extra}classes=1\ntrain={tmp_path}/list.txt\nnames={tmp_path}/ds/obj.names\nbackup=/tmp\n")
    codes = {p.code for p in check_dataset(data, tmp_path / "x\x00.cfg", weights=tmp_path / "w\x00").problems}
    assert "missing-file" in codes
    with pytest.raises(DarknetMagicsError):
        compute_anchors(data, clusters=1)


def test_anchors_refuse_a_non_finite_label(tmp_path: Path) -> None:
    make_dataset(tmp_path / "ds", images=12)
    prepare_dataset(tmp_path / "obj.data", images=tmp_path / "ds", names="box", backup=tmp_path / "b")
    (tmp_path / "ds" / "img_005.txt").write_text("0 0.5 0.5 inf 0.2\n")
    with pytest.raises(BadInput, match=r"img_005.txt:1: w is 'inf'"):
        compute_anchors(tmp_path / "obj.data", clusters=3)


@pytest.mark.parametrize("text,words", [
    ("[net]\nwidth=416\nheight=416\n[convolutional]\nfilters=18\nsize=1\nstride=0\n[yolo]\n", "stride"),
    ("[net]\nwidth=416\nheight=416\n[route]\nlayers=a\n", "[route] at line 4"),
    ("[net]\nwidth=nan\nheight=416\n[convolutional]\nfilters=18\n", "width=nan"),
    ("[net]\nwidth=416\nheight=99999999999\n[convolutional]\nfilters=18\n", "height=99999999999"),
])
def test_cfg_values_darknet_cannot_build_are_errors(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(DarknetMagicsError, match=re.escape(words)):
        layer_weights(text)
    weights = tmp_path / "w.weights"
    weights.write_bytes(b"\0" * 64)
    with pytest.raises(DarknetMagicsError):
        check_weights(text, weights)


@pytest.mark.parametrize("value", ["0.001\n[net]", "1#2", "a=b", "\x1b[31m"])
def test_cfg_option_values_cannot_add_lines(value: str) -> None:
    template = (Path("/usr/share/darknet/cfg/yolov3-tiny.cfg"))
    if not template.is_file():
        pytest.skip("needs Debian's darknet cfgs")
    with pytest.raises(DarknetMagicsError, match="a cfg value is one line"):
        make_cfg_changes(template.read_text(), 1, momentum=value)


def test_parse_line_matches_darknets_fscanf() -> None:
    assert parse_line("3 0.5 0.5 0.25 0.125", "f:1") == (3, 0.5, 0.5, 0.25, 0.125)
    assert parse_line("  \r", "f:2") is None
    assert parse_line("0 0.1 0.1 0.3 0.1 0.3 0.4", "f:3", polygons=True)[3] == pytest.approx(0.2)  # bounding box
    for bad in ("0 0.5 0.5 0.2 0.2 0.9", "1_0 0.5 0.5 0.2 0.2", "0 0.5 0.5 0.2 1_0", "0 0x1 0.5 0.2 0.2"):
        with pytest.raises(BadInput, match="f:9"):
            parse_line(bad, "f:9")


def test_json_constants_and_huge_integers_are_refused(tmp_path: Path) -> None:
    for text in ('{"a": Infinity}', '{"a": -NaN}', '{"a": ' + "9" * 5000 + "}"):
        (tmp_path / "x.json").write_text(text)
        with pytest.raises(BadInput, match="not valid json"):
            load_json(tmp_path / "x.json")


def test_names_given_as_a_list_are_checked(tmp_path: Path) -> None:
    make_dataset(tmp_path / "ds", images=4)
    with pytest.raises(BadInput, match=r"names\[1\].*control character"):
        plan_dataset(tmp_path / "obj.data", images=tmp_path / "ds", names=["box", "b\x00x"])


# -- full and read-only disks: a clear error, no partial or temp file


def _no_temp_files(folder: Path) -> list[str]:
    return [str(p) for p in folder.rglob("*") if ".tmp" in p.name]


@needs_mount
def test_yolo_data_on_a_full_disk_leaves_nothing(ip, tmp_path: Path, capsys) -> None:
    make_dataset(tmp_path / "ds", images=120)
    with tmpfs(tmp_path / "small", size="96k") as small:
        # min_box= makes it convert: 120 label files (a page each) do not fit
        out = _refused(ip, f'%yolo data "{small}/obj.data" images="{tmp_path}/ds" names=box min_box=1 '
                           f'backup="{tmp_path}/backup"', capsys)
        assert "the disk is full" in out and "nothing half-written" in out
        assert _no_temp_files(small) == [] and not (small / "obj.data").exists()
        assert not any(p.name.endswith(".darknet") for p in small.iterdir())


@needs_mount
def test_yolo_data_failing_late_takes_back_the_lists_it_wrote(ip, tmp_path: Path, capsys) -> None:
    """The backup folder cannot be made (a read-only disk) after the lists and names are written: none of them
    replaces an old file or is left behind (no lists beside an old obj.data), and no temp file stays."""
    make_dataset(tmp_path / "ds", images=6)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "obj.valid.txt").write_text("an older list, kept\n")
    with tmpfs(tmp_path / "ro", readonly=True) as ro:
        out = _refused(ip, f'%yolo data "{tmp_path}/out/obj.data" images="{tmp_path}/ds" names=box '
                           f'backup="{ro}/backup"', capsys)
    assert "Read-only file system" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["obj.valid.txt"]
    assert (tmp_path / "out" / "obj.valid.txt").read_text() == "an older list, kept\n"


@needs_mount
def test_yolo_cfg_and_anchors_on_a_full_disk_leave_the_old_file(ip, tmp_path: Path, capsys) -> None:
    template = Path("/usr/share/darknet/cfg/yolov3-tiny.cfg")
    if not template.is_file():
        pytest.skip("needs Debian's darknet cfgs")
    make_dataset(tmp_path / "ds", images=12)
    prepare_dataset(tmp_path / "obj.data", images=tmp_path / "ds", names="box", backup=tmp_path / "b")
    with tmpfs(tmp_path / "small", size="16k") as small:
        (small / "old.cfg").write_text(template.read_text())
        try:
            with open(small / "filler", "wb") as f:
                f.write(b"\0" * 64 * 1024)
        except OSError:
            pass  # full now
        out = _refused(ip, f'%yolo cfg {template} "{small}/new.cfg" classes=1', capsys)
        assert "the disk is full" in out and "new.cfg" in out and not (small / "new.cfg").exists()
        before = (small / "old.cfg").read_text()
        out = _refused(ip, f'%yolo anchors "{tmp_path}/obj.data" clusters=6 cfg="{small}/old.cfg"', capsys)
        assert "the disk is full" in out and (small / "old.cfg").read_text() == before
        assert _no_temp_files(small) == []


@needs_mount
def test_workspace_and_test_out_on_a_read_only_disk(ip, tmp_path: Path, capsys) -> None:
    template = Path("/usr/share/darknet/cfg/yolov3-tiny.cfg")
    if not template.is_file() or not Path("/usr/bin/darknet").exists():
        pytest.skip("needs Debian's darknet and its cfgs")
    with tmpfs(tmp_path / "ro", readonly=True) as ro:
        out = _refused(ip, f'%%darknet\nworkspace "{ro}/ws"', capsys)
        assert "cannot be written: Read-only file system" in out
        make_dataset(tmp_path / "ds", images=4)
        prepare_dataset(tmp_path / "obj.data", images=tmp_path / "ds", names="box", backup=tmp_path / "b")
        cfg_text = template.read_text()
        weights = tmp_path / "w.weights"
        with open(weights, "wb") as f:  # a header and zeros: the size the cfg needs (sparse)
            f.write(b"\0\0\0\0\x02\0\0\0" + b"\0" * 12)
            f.truncate(20 + sum(layer.nbytes for layer in layer_weights(cfg_text)))
        out = _refused(ip, f'%yolo test "{tmp_path}/obj.data" {template} "{weights}" "{tmp_path}/ds/img_003.png" '
                           f'out="{ro}/pred"', capsys)
        assert "the annotated images" in out and "Read-only file system" in out


# -- the tally the closing note of issue 19 quotes


def test_tally_of_variants() -> None:
    counts: dict[str, int] = {}
    for kind, *_ in CASES:
        counts[kind] = counts.get(kind, 0) + 1
    assert counts == {"numbers": 18, "names": 10, "parse": 25}, counts


# -- why: real darknet on the labels we now refuse


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.skipif(not Path("/usr/bin/darknet").exists()
                    or not Path("/usr/share/darknet/cfg/yolov3-tiny.cfg").exists(),
                    reason="needs Debian's darknet (apt-get install darknet)")
def test_darknet_drops_nan_boxes_without_a_word_which_data_and_check_refuse_first(ip, tmp_path: Path,
                                                                                   capsys) -> None:
    """A nan box is read by darknet's fscanf and dropped without a word ("count: 0" in every Region line: each
    image trains as a background image, the loss looks normal). `%yolo data` refuses the label, `%yolo check`
    reports it, and only `force` makes darknet train on it; the same images with real boxes give darknet boxes."""
    make_dataset(tmp_path / "ds", images=8, negatives=0)
    good = {p: p.read_text() for p in (tmp_path / "ds").glob("img_*.txt")}
    for label in good:
        label.write_text("0 0.5 0.5 nan 0.3\n")
    ws = tmp_path / "ws"
    out = _refused(ip, f'%yolo data "{ws}/obj.data" images="{tmp_path}/ds" names=box', capsys)
    assert ".txt:1" in out and "w is 'nan'" in out and not (ws / "obj.data").exists()
    # The obj.data a user writes by hand, around our reader:
    ws.mkdir()
    (ws / "train.txt").write_text("".join(f"{p}\n" for p in sorted((tmp_path / "ds").glob("*.png"))))
    (ws / "obj.names").write_text("box\n")
    (ws / "obj.data").write_text(f"classes = 1\ntrain = {ws}/train.txt\nvalid = {ws}/train.txt\n"
                                 f"names = {ws}/obj.names\nbackup = {ws}/backup\n")
    (ws / "backup").mkdir()
    out = _refused(ip, f"%yolo check {ws}/obj.data", capsys)
    assert "malformed-label" in out and "w is 'nan'" in out
    assert run_cell(ip, f'%%darknet\nworkspace "{ws}"\n').error_in_exec is None
    assert run_cell(ip, f"%yolo cfg yolov3-tiny {ws}/t.cfg classes=1 width=64 height=64 batch=4 subdivisions=1 "
                        "max_batches=3 random=0").error_in_exec is None
    capsys.readouterr()
    assert "pre-flight check" in _refused(ip, f"%yolo train {ws}/obj.data {ws}/t.cfg", capsys)

    def counts() -> list[int]:
        assert run_cell(ip, f"%yolo train {ws}/obj.data {ws}/t.cfg force").error_in_exec is None
        log = ip.user_ns["yolo_run"].log_path.read_text(errors="replace")
        return [int(n) for n in re.findall(r"Region \d+ Avg IOU: .*count: (\d+)", log)]

    nan_counts = counts()
    assert nan_counts and set(nan_counts) == {0}  # darknet trained on no box at all, and said nothing
    for label, text in good.items():
        label.write_text(text)
    assert sum(counts()) > 0
