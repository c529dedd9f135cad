"""Each real-format fixture, converted by datasets.prepare_dataset, trains with Debian's darknet in a real IPython
shell (`%yolo cfg` + `%yolo train`, a 64 px tiny cfg, a few iterations)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import run_cell
from darknet_magics.data.datasets import prepare_dataset

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300),
              pytest.mark.skipif(not Path("/usr/bin/darknet").exists()
                                 or not Path("/usr/share/darknet/cfg/yolov3-tiny.cfg").exists(),
                                 reason="needs Debian's darknet (apt-get install darknet)")]

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"


@pytest.mark.once  # the conversion and darknet do not change with the Python libraries; the COCO directive test below runs everywhere
@pytest.mark.parametrize("fixture", ["voc", "voc_devkit", "coco", "roboflow_darknet", "ultralytics", "aiguys",
                                     "labelme", "cvat", "openimages"])
def test_fixture_trains_with_darknet(ip, tmp_path: Path, capsys, fixture: str) -> None:
    src = tmp_path / "staged" / fixture
    shutil.copytree(FIXTURES / fixture, src)
    ws = tmp_path / "ws"
    result = prepare_dataset(ws / f"{fixture}.data", images=src, backup=ws / "backup")
    n = len(result.names)
    for cell in (f'%%darknet\nworkspace "{ws}"\n',
                 f"%yolo cfg yolov3-tiny {ws}/t.cfg classes={n} width=64 height=64 batch=4 subdivisions=1 "
                 "max_batches=3 random=0",
                 f"%yolo train {result.data_path} {ws}/t.cfg"):
        out = run_cell(ip, cell)
        captured = capsys.readouterr()
        assert out.error_in_exec is None, captured.out + captured.err
    run = ip.user_ns["yolo_run"]
    assert run.status == "finished", captured.out
    assert list(run.iterations["iteration"]) == [1, 2, 3]
    assert "Couldn't open" not in run.log_path.read_text(errors="replace")


def test_yolo_data_directive_reads_a_coco_folder_and_trains(ip, tmp_path: Path, capsys) -> None:
    src = tmp_path / "staged" / "coco"
    shutil.copytree(FIXTURES / "coco", src)
    ws = tmp_path / "ws"
    for cell in (f'%%darknet\nworkspace "{ws}"\n',
                 f"%yolo data {ws}/pets.data images={src} min_box=2",
                 f"%yolo cfg yolov3-tiny {ws}/t.cfg classes=2 width=64 height=64 batch=4 subdivisions=1 "
                 "max_batches=3 random=0",
                 f"%yolo check {ws}/pets.data {ws}/t.cfg",
                 f"%yolo train {ws}/pets.data {ws}/t.cfg"):
        out = run_cell(ip, cell)
        captured = capsys.readouterr()
        assert out.error_in_exec is None, captured.out + captured.err
        if "%yolo data" in cell:
            assert "classes: 2 from coco categories by id: cat, dog" in captured.out
            assert (ws / "pets.train.txt").is_file() and (ws / "pets.valid.txt").is_file()
    assert ip.user_ns["yolo_run"].status == "finished"
