"""Issue 4 and 5 in a real IPython shell: the %yolo loop a user runs, with real darknet, real files and a
"VM reset" (a fresh session) in the middle."""
from __future__ import annotations

import re

import pytest
from IPython.core.error import UsageError

from conftest import LOGS, run_cell
from darknet_magics import magics
from darknet_magics.synth import make_dataset

pytestmark = pytest.mark.slow

ITERATION_LINE = re.compile(rb"^\s*(\d+): [\d.na-]+, [\d.na-]+ avg", re.M)


def _fresh_session(ip):
    ip.run_line_magic("unload_ext", "darknet_magics")
    magics.forget(ip)
    ip.run_line_magic("load_ext", "darknet_magics")


def _ok(ip, text, capsys):
    result = run_cell(ip, text)
    captured = capsys.readouterr()
    assert result.error_in_exec is None, captured.out + captured.err
    return captured.out


def test_the_yolo_loop_with_a_reset_in_the_middle(ip, tmp_path, capsys):
    drive = tmp_path / "My Drive"
    make_dataset(drive / "datasets" / "boxes", images=20, size=64, seed=1)
    setup = f'%%darknet\ndrive "{drive}"\nstage {{drive}}/datasets/boxes\n'
    _ok(ip, setup, capsys)
    out = _ok(ip, "%yolo data {workspace}/boxes.data classes=1 names={dataset}/obj.names images={dataset}", capsys)
    assert "boxes.data" in out
    _ok(ip, "%yolo cfg yolov3-tiny {workspace}/boxes.cfg classes=1 width=64 height=64 batch=4 subdivisions=1 "
            "max_batches=10 random=0", capsys)
    assert "no problems found" in _ok(ip, "%yolo check {workspace}/boxes.data {workspace}/boxes.cfg", capsys)

    out = _ok(ip, "%yolo train {workspace}/boxes.data {workspace}/boxes.cfg", capsys)
    run = ip.user_ns["yolo_run"]
    assert run.status == "finished", out
    log = run.log_path.read_bytes()
    assert len(run.iterations) == len(ITERATION_LINE.findall(log)) == 10
    assert list(run.iterations["iteration"]) == list(range(1, 11))
    assert (drive / "darknet" / "runs").is_dir()  # everything went to the drive, through the space-free alias
    assert "yolo_run" in _ok(ip, "%yolo status", capsys)

    # the VM resets: a new session knows nothing, but the drive has the run
    _fresh_session(ip)
    _ok(ip, setup, capsys)
    out = _ok(ip, "%yolo status", capsys)
    assert "iteration 10/10" in out
    _ok(ip, "%yolo resume max_batches=14 as resumed", capsys)
    resumed = ip.user_ns["resumed"]
    assert list(resumed.iterations["iteration"]) == list(range(1, 15))  # stitched, not restarted at 0
    assert len(ITERATION_LINE.findall(resumed.log_path.read_bytes())) == 14

    # a log read back is the same frames; it cannot be resumed (it has no arguments), and says so
    _ok(ip, f'%yolo log "{resumed.log_path}" as old', capsys)
    assert list(ip.user_ns["old"].iterations["iteration"]) == list(range(1, 15))
    result = run_cell(ip, "%yolo resume old")
    captured = capsys.readouterr()
    assert result.error_in_exec is not None and "Traceback" not in captured.out + captured.err
    assert "read from a log" in captured.out + captured.err + str(result.error_in_exec)


def test_log_of_every_flavor(ip, capsys):
    for flavor, name, iterations in [("pjreddie", "train", 120), ("alexeyab", "train-map-noise", 200),
                                     ("hank-ai", "train-noise-nomap", 200)]:
        path = LOGS / flavor / f"{name}.pty.log"
        _ok(ip, f'%yolo log "{path}" as parsed', capsys)
        assert ip.user_ns["parsed"].iterations["iteration"].max() == iterations


def test_train_refuses_a_broken_dataset_before_darknet_starts(ip, tmp_path, capsys):
    make_dataset(tmp_path / "ds", images=8, size=64)
    (tmp_path / "ds" / "img_005.txt").write_text("3 0.5 0.5 0.2 0.2\n")  # class 3 in a 1-class set
    _ok(ip, f"%yolo data {tmp_path}/obj.data classes=1 names=a images={tmp_path}/ds backup={tmp_path}/backup", capsys)
    _ok(ip, f"%yolo cfg yolov3-tiny {tmp_path}/t.cfg classes=1 width=64 height=64 batch=4 subdivisions=1 "
            "max_batches=5 random=0", capsys)
    result = run_cell(ip, f"%yolo train {tmp_path}/obj.data {tmp_path}/t.cfg")
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert result.error_in_exec is not None
    assert "class-out-of-range" in text and "class 3 but classes = 1" in text
    assert "training was not started" in text
    assert not (tmp_path / "runs").exists()


def test_typo_in_a_flag_is_not_taken_for_a_weights_file(ip):
    result = run_cell(ip, "%yolo train obj.data y.cfg mapp")
    assert isinstance(result.error_in_exec, UsageError)
    assert "did you mean the flag `map`" in str(result.error_in_exec)


def test_cfg_max_batches_auto_is_sized_from_the_data(ip, tmp_path, capsys):
    make_dataset(tmp_path / "ds", images=8, size=64)
    _ok(ip, f"%yolo data {tmp_path}/obj.data classes=2 names=a,b images={tmp_path}/ds backup={tmp_path}/b", capsys)
    _ok(ip, f"%yolo cfg yolov3-tiny {tmp_path}/t.cfg classes=2 max_batches=auto data={tmp_path}/obj.data", capsys)
    text = (tmp_path / "t.cfg").read_text()
    assert re.search(r"^max_batches\s*=\s*6000$", text, re.M)  # max(2000 * classes, 6000, train images)
    result = run_cell(ip, f"%yolo cfg yolov3-tiny {tmp_path}/u.cfg classes=2 max_batches=auto")
    assert isinstance(result.error_in_exec, UsageError) and "add data=obj.data" in str(result.error_in_exec)


def test_two_runs_of_one_cfg_keep_their_own_weights_and_resume_their_own(ip, tmp_path, capsys):
    drive = tmp_path / "My Drive"
    make_dataset(drive / "datasets" / "boxes", images=12, size=64, seed=2)
    _ok(ip, f'%%darknet\ndrive "{drive}"\nstage {{drive}}/datasets/boxes\n', capsys)
    _ok(ip, "%yolo data {workspace}/boxes.data classes=1 names={dataset}/obj.names images={dataset}", capsys)
    _ok(ip, "%yolo cfg yolov3-tiny {workspace}/boxes.cfg classes=1 width=64 height=64 batch=4 subdivisions=1 "
            "max_batches=4 random=0", capsys)
    _ok(ip, "%yolo train {workspace}/boxes.data {workspace}/boxes.cfg as first", capsys)
    out = _ok(ip, "%yolo train {workspace}/boxes.data {workspace}/boxes.cfg as second", capsys)
    first, second = ip.user_ns["first"], ip.user_ns["second"]
    assert first.run_dir != second.run_dir
    assert first.backup_dir != second.backup_dir
    assert (first.backup_dir / "boxes_final.weights").is_file() and (second.backup_dir / "boxes_final.weights").is_file()
    # darknet got the space-free link `drive` made, never the spaced real path: the printed command can be pasted
    assert all(" " not in word for word in second.argv), second.argv
    assert " ".join(second.argv) in out
    # resuming the second with more iterations continues from ITS weights (iteration 4 by their header)
    out = _ok(ip, "%yolo resume second max_batches=6 as again", capsys)
    again = ip.user_ns["again"]
    assert str(second.backup_dir) in out and "at iteration 4 (its header)" in out
    assert list(again.iterations["iteration"]) == list(range(1, 7))
    assert "iteration before" not in out and "iteration None" not in out
    # the runs side by side: by name, and by a glob of their folders on the drive
    _ok(ip, "%yolo compare first again as table", capsys)
    table = ip.user_ns["table"]
    assert len(table) == 2 and list(table["iterations"]) == [4, 6]
    _ok(ip, "%yolo compare {workspace}/runs/* as everything", capsys)
    assert len(ip.user_ns["everything"]) == 2


def test_weights_already_at_max_batches_are_reported_not_called_finished(ip, tmp_path, capsys):
    ws = tmp_path / "ws"
    make_dataset(ws / "boxes", images=8, size=64, seed=3)
    _ok(ip, f"%%darknet\nworkspace {ws}\n", capsys)
    _ok(ip, f"%yolo data {ws}/boxes.data classes=1 names={ws}/boxes/obj.names images={ws}/boxes", capsys)
    _ok(ip, f"%yolo cfg yolov3-tiny {ws}/boxes.cfg classes=1 width=64 height=64 batch=4 subdivisions=1 "
            "max_batches=2 random=0", capsys)
    _ok(ip, f"%yolo train {ws}/boxes.data {ws}/boxes.cfg as done", capsys)
    final = ip.user_ns["done"].backup_dir / "boxes_final.weights"
    result = run_cell(ip, f"%yolo train {ws}/boxes.data {ws}/boxes.cfg {final} as again")
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert result.error_in_exec is None, text
    assert "already-trained" in text and "iteration 2" in text and "max_batches=2" in text


def test_background_training_returns_at_once_and_stops_on_request(ip, tmp_path, capsys):
    import time

    ws = tmp_path / "ws"
    make_dataset(ws / "boxes", images=8, size=64, seed=5)
    _ok(ip, f"%%darknet\nworkspace {ws}\n", capsys)
    _ok(ip, f"%yolo data {ws}/boxes.data classes=1 names={ws}/boxes/obj.names images={ws}/boxes", capsys)
    _ok(ip, f"%yolo cfg yolov3-tiny {ws}/long.cfg classes=1 width=64 height=64 batch=4 subdivisions=1 "
            "max_batches=2000 random=0", capsys)
    _ok(ip, f"%yolo cfg yolov3-tiny {ws}/short.cfg classes=1 width=64 height=64 batch=4 subdivisions=1 "
            "max_batches=3 random=0", capsys)
    start = time.monotonic()
    out = _ok(ip, f"%yolo train {ws}/boxes.data {ws}/long.cfg background as bg", capsys)
    assert time.monotonic() - start < 10 and "training in the background" in out
    bg = ip.user_ns["bg"]
    deadline = time.monotonic() + 60
    while bg.last_iteration is None and time.monotonic() < deadline:  # other cells run meanwhile
        assert run_cell(ip, "x = 1 + 1").error_in_exec is None
        time.sleep(0.2)
    assert bg.running and "running in the background" in _ok(ip, "%yolo status", capsys)
    out = _ok(ip, "%yolo stop bg", capsys)
    assert not bg.running and bg.status == "interrupted" and "stopped on request" in bg.message
    assert bg.log_path.stat().st_size > 0 and len(bg.iterations) >= 1
    _ok(ip, f"%yolo train {ws}/boxes.data {ws}/short.cfg background as quick", capsys)
    quick = ip.user_ns["quick"].wait(120)
    assert quick.status == "finished" and quick.last_iteration == 3
