"""Issue 20, a user's day: the smaller problems, in a real IPython shell with Debian's darknet and 64 px cfgs.

Resume after stop, a failure said once, cfg keys darknet does not read, one weights folder, two trainings at once.
"""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from IPython.core.error import UsageError

from conftest import run_cell
from darknet_magics.data.cfg import Cfg
from darknet_magics.data.cfg_keys import cfg_key_problems, unknown_keys, NET_KEYS
from darknet_magics.synth import make_dataset

FIXTURES = Path(__file__).parent / "fixtures"
STOCK = Path("/usr/share/darknet/cfg")
DARKNET = Path("/usr/bin/darknet")
needs_darknet = pytest.mark.skipif(not DARKNET.exists(), reason="Debian's darknet not installed")
needs_stock = pytest.mark.skipif(not STOCK.is_dir(), reason="Debian's darknet cfgs not installed")
TINY = "classes=1 width=64 height=64 batch=4 subdivisions=1 random=0"


def _ok(ip, text: str, capsys) -> str:
    result = run_cell(ip, text)
    captured = capsys.readouterr()
    assert result.error_in_exec is None, captured.out + captured.err
    return captured.out + captured.err


def _fails(ip, text: str, capsys) -> tuple[str, BaseException]:
    """A line that must fail without a traceback: what the cell shows, and the error."""
    result = run_cell(ip, text)
    captured = capsys.readouterr()
    shown = captured.out + captured.err
    assert result.error_in_exec is not None, shown
    assert "Traceback" not in shown
    return shown, result.error_in_exec


def _workspace(ip, tmp_path: Path, capsys, images: int = 8) -> Path:
    ws = tmp_path / "ws"
    make_dataset(ws / "boxes", images=images, size=64, seed=20)
    _ok(ip, f"%%darknet\nworkspace {ws}\n", capsys)
    _ok(ip, "%yolo data {workspace}/boxes.data classes=1 names={workspace}/boxes/obj.names "
            "images={workspace}/boxes", capsys)
    return ws


def _tiny_cfg(ip, ws: Path, name: str, max_batches: int, capsys) -> None:
    _ok(ip, f"%yolo cfg yolov3-tiny {ws}/{name}.cfg {TINY} max_batches={max_batches}", capsys)


# --------------------------------------------------------------------------------------------- 1 and 5: two runs
@pytest.mark.slow
@needs_darknet
@pytest.mark.timeout(240)
def test_a_second_training_warns_and_a_stopped_run_resumes(ip, tmp_path, capsys):
    ws = _workspace(ip, tmp_path, capsys)
    _tiny_cfg(ip, ws, "long", 2000, capsys)
    _tiny_cfg(ip, ws, "short", 2, capsys)
    _ok(ip, f"%yolo train {ws}/boxes.data {ws}/long.cfg background as bg", capsys)
    bg = ip.user_ns["bg"]
    deadline = time.monotonic() + 60
    while bg.last_iteration is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert bg.running

    # issue 20.5: a second training on the same machine is told what the first costs it
    out = _ok(ip, f"%yolo train {ws}/boxes.data {ws}/short.cfg as quick", capsys)
    warning = [line for line in out.splitlines() if "is still training on this machine" in line]
    assert len(warning) == 1 and f"the run bg ({bg.run_dir})" in warning[0], out
    assert "CUDA out of memory" in warning[0] and "%yolo stop bg" in warning[0]
    assert ip.user_ns["quick"].status == "finished"

    # issue 20.1: a run stopped with %yolo stop resumes and trains on (it was stopped 0.3 s after each start)
    _ok(ip, "%yolo stop bg", capsys)
    assert bg.status == "interrupted" and bg.stop_requested.is_set()
    # pjreddie saves long.backup every 100 iterations: the same network's weights from `quick` (at iteration 2)
    # stand in for it, as darknet would have written them
    shutil.copy(ip.user_ns["quick"].backup_dir / "short_final.weights", bg.backup_dir / "long.backup")
    target = 6
    out = _ok(ip, f"%yolo resume bg max_batches={target} as again", capsys)
    again = ip.user_ns["again"]
    assert again.status == "finished" and again.last_iteration == target, (again.message, out)
    assert not again.stop_requested.is_set()
    assert "still training on this machine" not in out  # bg is stopped: no live run to warn about


# ------------------------------------------------------------------------------------- 2: a failure said once
@pytest.mark.slow
@needs_darknet
@pytest.mark.timeout(120)
def test_a_failed_run_says_its_diagnosis_once_and_its_fix_once(ip, tmp_path, capsys):
    ws = _workspace(ip, tmp_path, capsys)
    _tiny_cfg(ip, ws, "t", 3, capsys)
    train_list = re.search(r"^train\s*=\s*(\S+)", (ws / "boxes.data").read_text(), re.M).group(1)
    Path(train_list).unlink()  # pjreddie prints "Couldn't open file" and exits 0
    shown, error = _fails(ip, f"%yolo train {ws}/boxes.data {ws}/t.cfg force", capsys)
    diagnosis = f"darknet could not open '{train_list}'"
    fix = "check the path (relative paths are relative to darknet's working directory)"
    assert shown.count(diagnosis) == 1 and shown.count(fix) == 1, shown  # were 3 and 2
    assert "[error: missing-file]" in shown and "stopped before finishing (exit status 0)" in shown
    assert "Couldn't open file" in shown  # the evidence stays
    assert error.problems[0].code == "missing-file" and error.run.status == "failed"


# ------------------------------------------------------------------------------------------------- 3: cfg keys
@needs_stock
@pytest.mark.timeout(60)
def test_cfg_refuses_keys_darknet_does_not_read(ip, tmp_path, capsys):
    out = tmp_path / "t.cfg"
    shown, error = _fails(ip, f"%yolo cfg yolov3-tiny {out} classes=1 widht=64 heigth=64 max_batch=100 rnadom=0",
                          capsys)
    assert isinstance(error, UsageError) and not out.exists()
    message = str(error)
    for typo, key in [("widht", "width"), ("heigth", "height"), ("max_batch", "max_batches"), ("rnadom", "random")]:
        assert f"{typo}= (did you mean {key}=?)" in message
    assert "line 1, `cfg`" in message and "add=widht,heigth,max_batch,rnadom" in message
    # a [yolo] key that %yolo cfg would put in [net]
    _, error = _fails(ip, f"%yolo cfg yolov3-tiny {out} classes=1 num=9", capsys)
    assert "num= belongs in [yolo]" in str(error) and not out.exists()
    # add= lets a key through, on purpose
    _ok(ip, f"%yolo cfg yolov3-tiny {out} classes=1 width=64 my_note=1 add=my_note", capsys)
    net = Cfg.parse(out.read_text()).net
    assert net.get("my_note") == "1" and net.get("add") is None and net.get("width") == "64"

    # %yolo check warns on a cfg with such a key, naming its line and the near-match
    text = out.read_text().replace("width=64", "widht=64")
    (tmp_path / "typo.cfg").write_text(text)
    line = text.splitlines().index("widht=64") + 1
    ws = _workspace(ip, tmp_path, capsys)
    checked = _ok(ip, f"%yolo check {ws}/boxes.data {tmp_path}/typo.cfg", capsys)
    assert f"[warning: unknown-cfg-key] {tmp_path}/typo.cfg:{line}: [net] widht=" in checked
    assert "write width=" in checked and "my_note=" in checked


@needs_stock
@pytest.mark.timeout(60)
def test_cfg_epochs_says_the_max_batches_it_means(ip, tmp_path, capsys):
    ws = _workspace(ip, tmp_path, capsys, images=9)  # a split of 9 images: 8 train, 1 valid
    train = len((ws / "boxes.train.txt").read_text().split())
    shown = _ok(ip, "%yolo cfg yolov3-tiny {workspace}/e.cfg classes=1 batch=4 subdivisions=1 epochs=3 "
                    "data={workspace}/boxes.data", capsys)
    expected = -(-3 * train // 4)
    assert Cfg.parse((ws / "e.cfg").read_text()).net.get_int("max_batches", 0) == expected
    assert f"max_batches={expected} is 3 epochs: 3 x {train} training images / batch 4" in shown
    _, error = _fails(ip, "%yolo cfg yolov3-tiny {workspace}/f.cfg classes=1 epochs=3", capsys)
    assert "not epochs" in str(error) and "add data=obj.data" in str(error)
    _, error = _fails(ip, "%yolo cfg yolov3-tiny {workspace}/f.cfg classes=1 epochs=3 max_batches=9 "
                          "data={workspace}/boxes.data", capsys)
    assert "keep one" in str(error) and not (ws / "f.cfg").exists()


@pytest.mark.timeout(60)
def test_stock_cfgs_keys_against_darknets_parsers():
    """Real cfgs: the stock ones Debian ships read clean but one (an RNN's seen=); two of AlexeyAB's (hank-ai ships
    the same) carry keys their sections' parsers never read."""
    found = {}
    for path in sorted(STOCK.glob("*.cfg")) if STOCK.is_dir() else []:
        problems = cfg_key_problems(Cfg.parse(path.read_text(errors="replace")), str(path))
        if problems:
            found[path.name] = [p.message for p in problems]
    assert found in ({}, {"writing.cfg": ["[net] seen= is a key darknet does not read there"]})
    bfm = FIXTURES / "cfgs" / "yolov4-sam-mish-csp-reorg-bfm.cfg"
    problems = cfg_key_problems(Cfg.parse(bfm.read_text()), str(bfm))
    assert [(p.line, p.message.split()[1]) for p in problems] == [
        (1156, "uc_normalizer="), (1160, "beta1="), (1290, "uc_normalizer="), (1294, "beta1="),
        (1424, "uc_normalizer="), (1428, "beta1=")]
    assert "reads it only in [Gaussian_yolo]" in problems[0].fix and all(p.severity == "warning" for p in problems)
    bdd = FIXTURES / "cfgs" / "Gaussian_yolov3_BDD.cfg"
    (problem,) = cfg_key_problems(Cfg.parse(bdd.read_text()), str(bdd))
    assert problem.line == 24 and "max_epochs=" in problem.message and "max_batches=" in problem.fix
    assert [u.near for u in unknown_keys(["MAX_BATCHES", "learning_rte", "zzz"], NET_KEYS)] == [
        "max_batches", "learning_rate", None]


# ------------------------------------------------------------------------------------------ 4: the weights folder
@pytest.mark.slow
@needs_darknet
@pytest.mark.timeout(120)
def test_data_train_and_test_agree_on_the_weights_folder(ip, tmp_path, capsys):
    ws = tmp_path / "ws"
    make_dataset(ws / "boxes", images=8, size=64, seed=21)
    _ok(ip, f"%%darknet\nworkspace {ws}\n", capsys)
    shown = _ok(ip, "%yolo data {workspace}/boxes.data classes=1 names={workspace}/boxes/obj.names "
                    "images={workspace}/boxes", capsys)
    assert f"`%yolo train` saves each run's weights in {ws}/runs/NAME/backup" in shown
    _tiny_cfg(ip, ws, "t", 2, capsys)
    test_line = "%yolo test {workspace}/boxes.data {workspace}/t.cfg {workspace}/backup/t_final.weights {workspace}/boxes"
    _, error = _fails(ip, test_line, capsys)
    assert f"{ws}/runs/NAME/backup (no run there yet)" in str(error)
    _ok(ip, "%yolo train {workspace}/boxes.data {workspace}/t.cfg as run", capsys)
    run = ip.user_ns["run"]
    assert run.backup_dir == run.run_dir / "backup" and (run.backup_dir / "t_final.weights").is_file()
    _, error = _fails(ip, test_line, capsys)
    assert f"the newest run saved {run.backup_dir / 't_final.weights'}" in str(error)
    assert not (ws / "backup" / "t_final.weights").exists()  # the folder obj.data names stays empty
