"""`%yolo test`, `%yolo map`, `%yolo show`, `%yolo export` in a real IPython shell with real darknet."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from conftest import run_cell
from darknet_magics.cfg import make_cfg
from darknet_magics.synth import make_dataset

sys.path.insert(0, str(Path(__file__).parent))
from test_inference_batch import ALEXEYAB, DARKNET, TEMPLATE, synthetic_weights  # noqa: E402


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
def test_yolo_map_on_a_backup_folder_in_a_real_shell(ip, files, capsys) -> None:
    tmp, ds, data, cfg, weights = files
    if not ALEXEYAB.exists():
        pytest.skip(f"no AlexeyAB build at {ALEXEYAB}")
    (weights.parent / "tiny_best.weights").write_bytes(synthetic_weights(cfg.read_text(), objectness=-8))
    res = run_cell(ip, f"%yolo map {data} {cfg} {weights.parent} points=0 iou_thresh=0.1 bin={ALEXEYAB} as ck")
    assert res.error_in_exec is None, capsys.readouterr()
    assert list(ip.user_ns["ck"].table["tag"]) == ["1000", "best"]
    assert "best: " in capsys.readouterr().out


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
