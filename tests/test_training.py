"""training.py with the real /usr/bin/darknet (pjreddie, CPU) on a synthetic dataset.

One module-scoped run is shared by the tests that read a finished run; the interrupt, kill, divergence and
resume tests start their own short runs. The runs' folders have spaces in their paths; darknet's own files
(obj.data and what it lists) live in a space-free workspace, because darknet strips spaces from obj.data.
"""
from __future__ import annotations

import _thread
import json
import math
import os
import re
import shutil
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from darknet_magics.model import darknet_map
from darknet_magics.model import detect as detection
from darknet_magics.setup.binary import darknet_flavor
from darknet_magics.train import runs, training
from darknet_magics.train.plan import plan_train
from darknet_magics.view.live import LiveView
from darknet_magics.errors import StepError
from darknet_magics.report import RecordingReporter
from darknet_magics.run.runner import group_alive, processes
from darknet_magics.synth import make_dataset

DARKNET = Path("/usr/bin/darknet")
TEMPLATE = Path("/usr/share/darknet/cfg/yolov3-tiny.cfg")
needs_darknet = pytest.mark.skipif(not DARKNET.exists() or not TEMPLATE.exists(),
                                   reason="needs Debian's darknet (apt-get install darknet)")
ITERATION_LINE = re.compile(r"^\s*(\d+): (-?[\d.]+|-?nan|-?inf), (-?[\d.]+|-?nan|-?inf) avg")


def log_iterations(log: Path) -> list[int]:
    """Iteration numbers in a log, read without our parser: one line per terminal line, \\r\\n endings."""
    out = []
    for line in log.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n").split("\n"):
        m = ITERATION_LINE.match(line)
        if m:
            out.append(int(m.group(1)))
    return out


def saving_lines(log: Path) -> list[str]:
    text = log.read_text(encoding="utf-8", errors="replace").replace("\r\n", "\n")
    return re.findall(r"(?m)^Saving weights to (\S+)$", text)


def write_cfg(path: Path, max_batches: int, **extra) -> Path:
    from darknet_magics.data.cfg import make_cfg

    text = make_cfg(TEMPLATE.read_text(), 1, width=64, height=64, batch=4, subdivisions=1,
                    max_batches=max_batches, random=0, **extra)
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A space-free workspace: dataset, train/valid lists, obj.data, names, backup."""
    ws = tmp_path_factory.mktemp("ws")
    ds = make_dataset(ws / "ds", images=24, size=64)
    (ws / "train.txt").write_text("".join(f"{p}\n" for p in ds.images[:20]))
    (ws / "valid.txt").write_text("".join(f"{p}\n" for p in ds.images[20:]))
    (ws / "obj.data").write_text(f"classes = 1\ntrain = {ws / 'train.txt'}\nvalid = {ws / 'valid.txt'}\n"
                                 f"names = {ws / 'ds' / 'obj.names'}\nbackup = {ws / 'backup'}\n")
    return ws


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("runs") / "my runs"  # a space, as on a Drive folder "My Drive"


@pytest.fixture(scope="module")
def finished(workspace: Path, runs_dir: Path):
    """One real 12-iteration training run, shared."""
    cfg = write_cfg(workspace / "tiny.cfg", 12)
    rec = RecordingReporter()
    run = training.train(darknet=DARKNET, data=workspace / "obj.data", cfg=cfg, weights=None, map=False, gpus=None,
                         backup=None, clear=False, run_dir=runs_dir / "run 1", reporter=rec, cwd=workspace,
                         view=LiveView.maker(rec))
    return run, rec


def test_pjreddie_is_detected_and_gets_no_dont_show(tmp_path: Path) -> None:
    assert darknet_flavor(DARKNET) == "pjreddie"
    run_dir = tmp_path / "run"
    plan = plan_train(darknet=DARKNET, data=tmp_path / "d", cfg=tmp_path / "c", map=True, gpus="0",
                               clear=True, run_dir=run_dir, check_files=False)
    assert plan.flavor == "pjreddie"
    assert "-dont_show" not in plan.argv and "-map" not in plan.argv  # pjreddie takes -dont_show for weights
    assert any("cannot compute mAP" in w for w in plan.warnings)
    ab = plan_train(darknet=DARKNET, data=tmp_path / "d", cfg=tmp_path / "c", weights=tmp_path / "w",
                             map=True, gpus="0", clear=True, flavor="alexeyab", extra_args=("-x",), run_dir=run_dir,
                             check_files=False)
    # the run's own obj.data copy (its backup= is the run's weights folder), then the flags in darknet's order
    assert list(ab.argv[3:]) == [str(run_dir / "obj.data"), str(tmp_path / "c"), str(tmp_path / "w"), "-dont_show",
                                 "-map", "-gpus", "0", "-clear", "-x"]
    assert ab.backup_dir == run_dir / "backup" and ab.own_backup


def test_missing_files_raise_step_errors_naming_them(workspace: Path, tmp_path: Path) -> None:
    missing = tmp_path / "no such dir" / "obj.data"
    with pytest.raises(StepError) as info:
        training.train(darknet=DARKNET, data=missing, cfg=workspace / "tiny.cfg", weights=None, map=False,
                       gpus=None, backup=None, clear=False, run_dir=tmp_path / "r", reporter=RecordingReporter())
    assert str(missing) in str(info.value) and info.value.problems[0].code == "missing-file"
    with pytest.raises(StepError) as info:
        training.train(darknet=DARKNET, data=workspace / "obj.data", cfg=workspace / "obj.data",
                       weights=tmp_path / "yolov4.conv.137", map=False, gpus=None, backup=None, clear=False,
                       run_dir=tmp_path / "r", reporter=RecordingReporter())
    assert "yolov4.conv.137" in str(info.value)
    with pytest.raises(StepError) as info:
        training.train(darknet=tmp_path / "darknet", data=workspace / "obj.data", cfg=workspace / "obj.data",
                       weights=None, map=False, gpus=None, backup=None, clear=False, run_dir=tmp_path / "r",
                       reporter=RecordingReporter())
    assert "darknet" in str(info.value)
    assert not (tmp_path / "r").exists()  # nothing started


@pytest.mark.slow
@needs_darknet
def test_finished_run_frames_match_the_log(finished) -> None:
    run, rec = finished
    assert run.status == "finished", run.summary()
    assert run.returncode == 0 and run.max_batches == 12
    log_its = log_iterations(run.log_path)
    assert log_its == list(range(1, 13))
    assert list(run.iterations["iteration"]) == log_its
    assert run.iterations["avg_loss"].notna().all()
    saved = saving_lines(run.log_path)
    assert list(run.weights["path"]) == saved and saved[-1].endswith("tiny_final.weights")
    assert Path(saved[-1].replace("//", "/")).is_file()
    # the history on disk and run.json rebuild the same run in a "new kernel"
    again = runs.TrainingRun.load(run.run_dir)
    pd.testing.assert_frame_equal(again.iterations.reset_index(drop=True), run.iterations.reset_index(drop=True))
    assert again.status == "finished" and again.argv == run.argv
    meta = json.loads((run.run_dir / "run.json").read_text())
    assert meta["sessions"][0]["status"] == "finished" and meta["args"]["cwd"]
    # the live view: one key, a few updates, never the raw lines
    htmls = [payload for kind, payload in rec.events if kind == "html"]
    assert htmls and len({key for key, _ in htmls}) == 1
    assert "iteration 12/12" in htmls[-1][1]
    assert not any("Region 23 Avg IOU" in str(p) for k, p in rec.events if k in ("info", "progress"))
    assert "finished" in runs.status(run) and "run 1" in str(run.run_dir)
    import darknet_magics.directives  # noqa: F401 (it hands view/'s charts to the run, as the magics and CLI load it)

    fig = run.figure
    assert [t.name for t in fig.data][:2] == ["loss", "avg loss"]  # then the learning rate, images/s, ...


@pytest.mark.slow
@needs_darknet
def test_load_log_of_the_run(finished) -> None:
    run, _ = finished
    loaded, _ = runs.load_log(run.log_path, name="again")
    assert loaded.name == "again" and len(loaded.iterations) == 12 and loaded.status == "finished"


@pytest.mark.slow
@needs_darknet
def test_detect_on_a_real_image(finished, workspace: Path, tmp_path: Path) -> None:
    run, _ = finished
    rec = RecordingReporter()
    result = detection.detect(darknet=DARKNET, data=workspace / "obj.data", cfg=run.args.cfg,
                             weights=Path(saving_lines(run.log_path)[-1]), image=workspace / "ds" / "img_005.png",
                             thresh=0.0001, cwd=tmp_path, reporter=rec)
    assert result.image_path is not None and result.image_path.is_file()
    assert result.image_path.parent == tmp_path
    assert list(result.detections.columns[:2]) == ["name", "confidence"]
    printed = re.findall(r"(?m)^red_box: (\d+)%", result.output.replace("\r", ""))
    assert len(result.detections) == len(printed)
    assert ("image", str(result.image_path)) in rec.events
    assert "detection" in result.summary()


@pytest.mark.slow
@needs_darknet
def test_map_is_unsupported_by_pjreddie(finished, workspace: Path, tmp_path: Path) -> None:
    run, _ = finished
    weights = Path(saving_lines(run.log_path)[-1])
    for flavor in (None, "alexeyab"):  # by the binary, and by its empty output
        with pytest.raises(StepError) as info:
            darknet_map.evaluate_map(darknet=DARKNET, data=workspace / "obj.data", cfg=run.args.cfg,
                                  weights=weights, cwd=tmp_path, reporter=RecordingReporter(), flavor=flavor)
        assert info.value.problems[0].code == "unsupported-command"
        assert "AlexeyAB" in str(info.value)


def _darknet_children() -> list[int]:
    return [pid for pid, name, _, ppid, _ in processes() if ppid == os.getpid() and name == b"darknet"]


def _when_log_shows(log: Path, iteration: int, action, timeout: float = 60) -> threading.Thread:
    def watch() -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if log.exists() and any(i >= iteration for i in log_iterations(log)):
                action()
                return
            time.sleep(0.05)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    return t


@pytest.mark.slow
@needs_darknet
@pytest.mark.timeout(240)  # a hung interrupt must fail, not stall the suite
def test_interrupt_stops_darknet_keeps_log_and_frames_and_reraises(workspace: Path, runs_dir: Path) -> None:
    cfg = write_cfg(workspace / "long.cfg", 500)
    run_dir = runs_dir / "interrupted run"
    _when_log_shows(run_dir / "train.log", 3, _thread.interrupt_main)  # what a kernel interrupt does
    with pytest.raises(KeyboardInterrupt) as info:
        training.train(darknet=DARKNET, data=workspace / "obj.data", cfg=cfg, weights=None, map=False, gpus=None,
                       backup=workspace / "backup-int", clear=False, run_dir=run_dir, reporter=RecordingReporter(),
                       cwd=workspace)
    run = info.value.run
    assert run.status == "interrupted"
    assert not group_alive(run.result.pid) and not _darknet_children()
    log_its = log_iterations(run.log_path)
    assert len(log_its) >= 3 and log_its == list(range(1, len(log_its) + 1))
    assert list(run.iterations["iteration"]) == log_its
    assert runs.TrainingRun.load(run_dir).status == "interrupted"
    # backup= made a per-run obj.data whose backup is the override
    assert f"backup = {workspace / 'backup-int'}" in (run_dir / "obj.data").read_text()


@pytest.mark.slow
@needs_darknet
@pytest.mark.parametrize("sig,code,words", [
    (signal.SIGKILL, "killed", "memory"),  # the OOM killer, or a user's kill -9
    # what a binary built with AVX on another CPU does on this one (the signal is sent here: this CPU runs its own)
    (signal.SIGILL, "illegal-instruction", "AVX=0"),
], ids=["SIGKILL", "SIGILL"])
def test_darknet_killed_by_a_signal_is_reported_with_a_diagnosis(workspace: Path, runs_dir: Path, sig, code,
                                                                  words) -> None:
    cfg = write_cfg(workspace / f"long-{sig}.cfg", 500)
    run_dir = runs_dir / f"{signal.Signals(sig).name} run"

    def kill() -> None:
        for pid in _darknet_children():
            os.kill(pid, sig)

    _when_log_shows(run_dir / "train.log", 2, kill)
    with pytest.raises(StepError) as info:
        training.train(darknet=DARKNET, data=workspace / "obj.data", cfg=cfg, weights=None, map=False, gpus=None,
                       backup=None, clear=False, run_dir=run_dir, reporter=RecordingReporter(), cwd=workspace)
    run = info.value.run
    assert run.status == "failed" and run.signal == sig
    assert signal.Signals(sig).name in str(info.value)
    first = info.value.problems[0]
    assert first.code == code and words in first.fix + first.message, first
    assert list(run.iterations["iteration"]) == log_iterations(run.log_path)


@pytest.mark.slow
@needs_darknet
def test_stop_on_nan_stops_at_the_divergence(workspace: Path, runs_dir: Path) -> None:
    cfg = write_cfg(workspace / "nan.cfg", 300, learning_rate=100, burn_in=0)
    with pytest.raises(StepError) as info:
        training.train(darknet=DARKNET, data=workspace / "obj.data", cfg=cfg, weights=None, map=False, gpus=None,
                       backup=workspace / "backup-nan", clear=False, run_dir=runs_dir / "nan run",
                       reporter=RecordingReporter(), cwd=workspace)
    run = info.value.run
    assert run.status == "diverged"
    text = run.log_path.read_text().replace("\r\n", "\n")
    first_bad = min(int(m.group(1)) for m in re.finditer(r"(?m)^(\d+): (-?nan|-?inf|[\d.]+), (-?nan|-?inf|[\d.]+) avg",
                                                         text) if not all(math.isfinite(float(g))
                                                                          for g in m.group(2, 3)))
    problem = info.value.problems[0]
    assert problem.code == "nan-loss" and problem.iteration == first_bad
    assert run.last_iteration < 300  # stopped early
    assert not _darknet_children()


@pytest.mark.slow
@needs_darknet
def test_resume_after_a_reset_continues_the_iteration_count(finished, runs_dir: Path) -> None:
    """Last: it trains the shared run on (pjreddie resumes from tiny_final.weights with a larger max_batches)."""
    run, _ = finished
    loaded = runs.TrainingRun.load(run.run_dir)  # a new kernel knows only the folder
    rec = RecordingReporter()
    resumed = training.resume(loaded, rec, max_batches=16, view=LiveView.maker(rec))
    assert resumed.status == "finished", resumed.summary()
    its = list(resumed.iterations["iteration"])
    assert its == list(range(1, 17))  # 1..12 then 13..16: no restart at 0
    assert log_iterations(resumed.log_path) == its  # one log, appended
    assert len(json.loads((run.run_dir / "run.json").read_text())["sessions"]) == 2
    assert "resuming" in rec.text()
    assert list(runs.TrainingRun.load(run.run_dir).iterations["iteration"]) == its


@pytest.mark.slow
@needs_darknet
def test_exit_status_0_after_a_missing_file_is_a_failure(workspace: Path, runs_dir: Path, tmp_path: Path) -> None:
    """pjreddie exits 0 after `Couldn't open file`: judged from the output, with the space diagnosed."""
    spaced = tmp_path / "data with space"
    spaced.mkdir()
    shutil.copy(workspace / "train.txt", spaced / "train.txt")
    data = workspace / "obj-space.data"
    data.write_text((workspace / "obj.data").read_text().replace(f"train = {workspace / 'train.txt'}",
                                                                 f"train = {spaced / 'train.txt'}"))
    with pytest.raises(StepError) as info:
        training.train(darknet=DARKNET, data=data, cfg=write_cfg(workspace / "space.cfg", 12), weights=None,
                       map=False, gpus=None, backup=None, clear=False, run_dir=runs_dir / "space run",
                       reporter=RecordingReporter(), cwd=workspace)
    run = info.value.run
    assert run.returncode == 0 and run.status == "failed"
    assert info.value.problems[0].code == "space-in-path", info.value.problems
    assert "Couldn't open file" in info.value.details
