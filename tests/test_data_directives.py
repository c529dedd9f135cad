"""`%yolo check`, `%yolo anchors` and `%yolo data` in a real IPython shell on real files: min_box=, the dataset
summary (shown and bound as a dataframe), and output paths whose folder cannot be written."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from conftest import run_cell
from darknet_magics.synth import make_dataset

pytestmark = pytest.mark.timeout(120)


def _ok(ip, text: str, capsys) -> str:
    result = run_cell(ip, text)
    captured = capsys.readouterr()
    assert result.error_in_exec is None, captured.out + captured.err
    return captured.out + captured.err


def _refused(ip, text: str, capsys) -> str:
    result = run_cell(ip, text)
    captured = capsys.readouterr()
    out = captured.out + captured.err + str(result.error_in_exec)
    assert result.error_in_exec is not None, out
    assert "Traceback" not in out
    return out


@pytest.fixture()
def tiny_set(tmp_path: Path, ip, capsys) -> Path:
    """obj.data of 20 synthetic 64x64 images (boxes 12-32 px) plus three tiny boxes: 0.64, 1.7 and 4.2 px wide at
    416x416, in a folder whose name has a space, a quote and ';'."""
    root = tmp_path / "my set; it's"
    make_dataset(root / "obj", images=20, size=64, seed=3)
    label = root / "obj" / "img_005.txt"
    label.write_text(label.read_text() + "0 0.5 0.5 0.0015 0.3\n0 0.5 0.5 0.3 0.004\n0 0.5 0.5 0.01 0.3\n")
    _ok(ip, f'%yolo data "{root}/obj.data" classes=1 names=box images="{root}/obj" backup="{root}/backup"', capsys)
    return root / "obj.data"


def test_check_min_box_sets_what_counts_as_tiny(ip, tiny_set: Path, capsys) -> None:
    out = _ok(ip, f'%yolo check "{tiny_set}"', capsys)  # default: 3 px at 416 (no cfg)
    assert "tiny-boxes" in out and "2 boxes are under 3 px" in out and "min_box=3" in out
    assert "img_005.txt:" in out  # an example names the label file and line
    out = _ok(ip, f'%yolo check "{tiny_set}" min_box=5', capsys)
    assert "3 boxes are under 5 px" in out
    out = _ok(ip, f'%yolo check "{tiny_set}" min_box=0', capsys)
    assert "tiny-boxes" not in out
    out = _ok(ip, f'%%darknet --dry-run\n%yolo check "{tiny_set}" min_box=5', capsys)
    assert "boxes under 5 px reported" in out


def test_check_and_anchors_refuse_a_bad_min_box(ip, tiny_set: Path, capsys) -> None:
    for line in (f'%yolo check "{tiny_set}" min_box=-1', f'%yolo anchors "{tiny_set}" min_box=-2'):
        assert "min_box=" in _refused(ip, line, capsys) and "0 or more" in str(run_cell(ip, line).error_in_exec)
    result = run_cell(ip, f'%yolo anchors "{tiny_set}" min_box=big')
    assert isinstance(result.error_in_exec, UsageError) and "expected a number" in str(result.error_in_exec)


def test_anchors_min_box_leaves_tiny_boxes_out(ip, tiny_set: Path, capsys) -> None:
    out = _ok(ip, f'%yolo anchors "{tiny_set}" clusters=3 width=416 height=416 as kept', capsys)
    kept = ip.user_ns["kept"]
    assert kept.ignored == 2 and "2 boxes under 3 px left out" in out
    _ok(ip, f'%yolo anchors "{tiny_set}" clusters=3 min_box=0 as every', capsys)
    every = ip.user_ns["every"]
    assert every.ignored == 0 and every.boxes == kept.boxes + 2 and every.anchors != kept.anchors
    _ok(ip, f'%yolo anchors "{tiny_set}" clusters=3 min_box=5 as strict', capsys)
    assert ip.user_ns["strict"].ignored == 3


def _label_boxes(folder: Path) -> int:
    return sum(1 for p in folder.glob("*.txt") if p.name != "obj.names" for line in p.read_text().splitlines()
               if line.strip())


def test_data_and_check_show_the_dataset_and_bind_it(ip, tmp_path: Path, capsys) -> None:
    ip.user_ns.pop("yolo_dataset", None)  # the shell is shared by the tests
    root = tmp_path / "two -classes"
    made = make_dataset(root / "obj", images=12, size=64, classes=2, seed=4)
    out = _ok(ip, f'%yolo data "{root}/obj.data" images="{root}/obj" backup="{root}/backup" split=0.25 as ds',
              capsys)
    frame = ip.user_ns["ds"]
    assert list(frame.columns) == ["image", "split", "class", "width_px", "height_px"]
    assert frame["class"].notna().sum() == made.boxes == _label_boxes(root / "obj")
    assert frame["image"].nunique() == 12 and frame["class"].isna().sum() == made.negatives
    assert "12 images" in out and "the boxes in `ds`" in out
    assert "yolo_dataset" not in ip.user_ns

    cfg = root / "net64.cfg"
    cfg.write_text("[net]\nbatch=4\nsubdivisions=1\nwidth=64\nheight=64\n")
    out = _ok(ip, f'%yolo check "{root}/obj.data" "{cfg}"', capsys)
    checked = ip.user_ns["yolo_dataset"]  # no `as NAME`: the default name
    assert "the boxes in `yolo_dataset`" in out
    assert checked["class"].notna().sum() == made.boxes
    assert set(checked["split"]) == {"train", "valid"} and (checked["split"] == "valid").sum() > 0
    assert set(checked["class"].dropna()) == set(made.names)  # names from obj.data's names file, not ids
    # the same boxes in pixels of the cfg's 64x64 network (labels are 6-decimal relative values)
    merged = frame.dropna(subset=["class"]).sort_values(["image", "width_px"]).reset_index(drop=True)
    got = checked.dropna(subset=["class"]).sort_values(["image", "width_px"]).reset_index(drop=True)
    assert ((merged["width_px"] * 64 / 416 - got["width_px"]).abs() < 1e-3).all()
    assert ((merged["height_px"] * 64 / 416 - got["height_px"]).abs() < 1e-3).all()


def test_check_shows_the_dataset_even_when_it_fails(ip, tmp_path: Path, capsys) -> None:
    made = make_dataset(tmp_path / "ds", images=6, size=64)
    _ok(ip, f"%yolo data {tmp_path}/obj.data classes=1 names=a images={tmp_path}/ds backup={tmp_path}/b", capsys)
    (tmp_path / "ds" / "img_004.txt").write_text("3 0.5 0.5 0.2 0.2\n")  # class 3 in a 1-class set
    out = _refused(ip, f"%yolo check {tmp_path}/obj.data as seen", capsys)
    assert "class-out-of-range" in out
    assert ip.user_ns["seen"]["class"].notna().sum() >= 1 and "3" in set(ip.user_ns["seen"]["class"].dropna())
    assert made.boxes > 0


def test_an_out_path_that_cannot_be_written_is_refused_with_line_directive_and_fix(ip, tmp_path: Path,
                                                                                   capsys) -> None:
    make_dataset(tmp_path / "ds", images=4, size=64)
    (tmp_path / "a file").write_text("not a folder")
    lines = [f'%yolo data "{tmp_path}/a file/obj.data" classes=1 names=a images={tmp_path}/ds',
             f'%yolo cfg yolov3-tiny "{tmp_path}/a file/sub/x.cfg" classes=1']
    for line in lines:
        out = _refused(ip, line, capsys)
        assert "is a file, not a folder" in out and "line 1" in out and "fix:" in out.lower()
    cell = f'%%darknet\nworkspace {tmp_path}/ws\n%yolo data "{tmp_path}/a file/obj.data" images={tmp_path}/ds'
    out = _refused(ip, cell, capsys)
    assert "line 2, `data`" in out  # the cell body's second line
    assert not (tmp_path / "ds" / "obj.data").exists()


def test_an_out_path_in_a_read_only_folder_is_refused(ip, tmp_path: Path, capsys) -> None:
    from faults.fs import can_mount, tmpfs

    make_dataset(tmp_path / "ds", images=4, size=64)
    if can_mount():  # root writes through mode bits: a read-only mount refuses even root
        ctx = tmpfs(tmp_path / "ro", readonly=True)
    else:
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o555)
        import contextlib
        ctx = contextlib.nullcontext(tmp_path / "ro")
    with ctx as ro:
        for line in (f"%yolo data {ro}/sub/obj.data classes=1 names=a images={tmp_path}/ds backup={tmp_path}/b",
                     f"%yolo cfg yolov3-tiny {ro}/x.cfg classes=1"):
            out = _refused(ip, line, capsys)
            assert f"{ro} is read-only" in out and "writable folder" in out and "line 1" in out
        assert os.listdir(ro) == []
    assert not (tmp_path / "b").exists()  # refused before anything was made
