"""`python -m darknet_magics` as a user runs it: real subprocesses, a real plan file, real darknet for `run`.

The `demo` subcommand's full run (a notebook executed in a kernel, an HTML report) is tested in
test_notebook.py, whose fixture runs it as a subprocess; here are its argument errors.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ITERATIONS = 8
ITERATION_LINE = re.compile(r"^\s*(\d+): [-+\w.]+, [-+\w.]+ avg(?: loss)?,", re.MULTILINE)

PLAN = """\
# the quickstart's steps as a file for a VM in tmux: python -m darknet_magics run THIS_FILE
%%darknet
drive "{drive}"
workspace {{drive}}/project
stage {{drive}}/datasets/boxes
%yolo data {{workspace}}/boxes.data classes=1 names={{dataset}}/obj.names images={{dataset}} split=0.25
%yolo cfg yolov3-tiny {{workspace}}/boxes.cfg classes=1 width=64 height=64 batch=4 subdivisions=1 max_batches={iterations} burn_in=2 random=0
%yolo check {{workspace}}/boxes.data {{workspace}}/boxes.cfg
%yolo train {{workspace}}/boxes.data {{workspace}}/boxes.cfg
"""


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    # timeout: a hang guard only
    return subprocess.run([sys.executable, "-m", "darknet_magics", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=900)


@pytest.fixture
def plan(tmp_path: Path) -> Path:
    """A plan file whose drive is a local folder with a path that has a space, holding a generated dataset."""
    from darknet_magics.synth import make_dataset

    drive = tmp_path / "my drive"
    make_dataset(drive / "datasets" / "boxes", images=16, classes=1, size=64, negatives=1, seed=1)
    path = tmp_path / "train.darknet"
    path.write_text(PLAN.format(drive=drive, iterations=ITERATIONS))
    return path


def test_help_lists_the_subcommands(tmp_path):
    proc = cli("--help", cwd=tmp_path)
    assert proc.returncode == 0
    for sub in ("run", "log", "demo"):
        assert sub in proc.stdout


def test_dry_run_prints_the_plan_and_runs_nothing(plan, tmp_path):
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    proc = cli("run", str(plan), "--dry-run", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    headers = re.findall(r"^\[(\d+)/(\d+)\] (\S+)", out, re.MULTILINE)
    assert [h[2] for h in headers] == ["drive", "workspace", "stage", "data", "cfg", "check", "train"]
    assert all(total == "7" for _, total, _ in headers)
    drive = tmp_path / "my drive"
    assert f"{{workspace}} = {drive}/project" in out  # placeholders resolved from the simulated steps
    assert f"{{dataset}} = {tmp_path}/data/boxes" in out
    assert "(dry run: nothing was run)" in out
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_a_bad_line_is_one_error_with_its_line_number_and_nothing_runs(tmp_path):
    path = tmp_path / "bad.darknet"
    path.write_text(f"workspace {tmp_path}/ws\nstagee {tmp_path}/data\n")
    proc = cli("run", str(path), cwd=tmp_path)
    assert proc.returncode == 2
    assert "line 2" in proc.stderr and "stage" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "ws").exists()


def test_dry_run_and_real_run_agree_on_the_staged_dataset(tmp_path):
    from darknet_magics.synth import make_dataset

    make_dataset(tmp_path / "drive" / "boxes", images=4, seed=2)
    path = tmp_path / "stage.darknet"
    path.write_text(f"drive {tmp_path}/drive\nstage {{drive}}/boxes\nset data={{dataset}}\n")
    planned = re.search(r"\{data\} = (\S+)", cli("run", str(path), "--dry-run", cwd=tmp_path).stdout)
    proc = cli("run", str(path), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    real = re.search(r"\{data\} = (\S+)", proc.stdout)
    assert planned and real and planned.group(1) == real.group(1)
    assert (Path(real.group(1)) / "img_000.png").is_file()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("darknet") is None, reason="needs darknet on PATH: apt-get install -y darknet")
def test_run_trains_for_real_with_the_same_logs_and_history(plan, tmp_path):
    proc = cli("run", str(plan), cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    workspace = tmp_path / "my drive" / "project"
    logs = sorted(workspace.glob("runs/*/train.log"))
    assert len(logs) == 1
    run_dir = logs[0].parent
    text = logs[0].read_text(errors="replace").replace("\r", "\n")
    assert [int(m.group(1)) for m in ITERATION_LINE.finditer(text)] == list(range(1, ITERATIONS + 1))
    assert (run_dir / "run.json").is_file()
    # each run keeps its weights in its own folder (two runs of one cfg never share boxes_final.weights)
    assert (run_dir / "backup" / "boxes_final.weights").is_file()
    assert (tmp_path / "data" / "boxes").is_dir()  # staged onto "local" disk: the working folder outside Colab
    out = proc.stdout
    assert "[7/7] %yolo train" in out or "[7/7] train" in out
    assert re.search(rf"finished \| iteration {ITERATIONS}/{ITERATIONS}", out)
    # the same history the notebook's dataframes come from, read back with the public API
    from darknet_magics import parse_log

    assert len(parse_log(logs[0]).iterations) == ITERATIONS


def test_demo_refuses_a_folder_it_did_not_make(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "thesis.tex").write_text("keep me")
    proc = cli("demo", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 2
    assert "not made by the demo" in proc.stderr
    assert (out / "thesis.tex").read_text() == "keep me"


def test_demo_rejects_zero_iterations(tmp_path):
    proc = cli("demo", "--out", str(tmp_path / "o"), "--iterations", "0", cwd=tmp_path)
    assert proc.returncode == 2 and "--iterations" in proc.stderr
