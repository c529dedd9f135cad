"""`track=mlflow` / `track=wandb`: the TensorBoard rows reach the tracker, offline in the run folder, read back by
the tracker's own client (MLflow) or from its own record format (W&B's ``.wandb`` file); no account, no network.

mlflow-skinny and wandb are in the test extra (about 25 s to install both); where one is missing its tests skip by
name (pytest.importorskip)."""
from __future__ import annotations

import struct
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

from conftest import FIXTURES, run_cell
from darknet_magics.errors import StepError
from darknet_magics.jsonread import RecordError
from darknet_magics.output import track_remote
from darknet_magics.output.track_remote import Tracker, TrackState, parse_track, read_state, write_state
from darknet_magics.output.trackers import save_run


def mlflow_metrics(run_dir: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """{run name: {metric: [(step, value)]}} as MLflow's own client reads the run folder's store."""
    mlflow_tracking = pytest.importorskip("mlflow.tracking")
    client = mlflow_tracking.MlflowClient(tracking_uri=track_remote.mlflow_uri(run_dir))
    out = {}
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            out[run.info.run_name] = {key: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, key)]
                                      for key in run.data.metrics}
    return out


def _wandb_records(path: Path):
    """The records of a ``.wandb`` file: a 7-byte header (``:W&B``, magic, version), then LevelDB's log format
    (32 KiB blocks of records: crc32, length, type; FULL=1, FIRST=2, MIDDLE=3, LAST=4)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7]) if left >= 7 else (0, 0, 0)
        if left < 7 or (length == 0 and kind == 0):
            pos += left  # a block's zero-filled tail
            continue
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            yield pending
            pending = b""


def _wandb_file(pb, path: Path) -> tuple[Optional[str], dict[int, dict[str, float]], bool]:
    """One offline run's job type, its history rows and whether its exit record is there."""
    job, rows, ended = None, {}, False
    for data in _wandb_records(path):
        record = pb.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            job = record.run.job_type
        elif kind == "exit":
            ended = True
        elif kind == "history":  # a key with "/" is stored as its parts
            keyed = [(i.key or "/".join(i.nested_key), i.value_json) for i in record.history.item]
            steps = [int(value) for key, value in keyed if key == "_step"]
            rows[steps[0] if steps else record.history.step.num] = {
                key: float(value) for key, value in keyed if not key.startswith("_")}
    return job, rows, ended


def wandb_history(run_dir: Path) -> dict[str, dict[int, dict[str, float]]]:
    """{job type: {step: {key: value}}} from every offline run's ``.wandb`` file in the run folder. wandb-core
    (a process of its own) may still be writing a file when `finish()` has returned: wait for its exit record."""
    pb = pytest.importorskip("wandb.proto.wandb_internal_pb2")
    deadline = time.monotonic() + 20
    while True:
        files = [_wandb_file(pb, path) for path in sorted(run_dir.glob("wandb/offline-run-*/run-*.wandb"))]
        if all(ended for _, _, ended in files) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    out: dict[str, dict[int, dict[str, float]]] = {}
    for job, rows, _ in files:
        out.setdefault(job, {}).update(rows)
    return out


@pytest.mark.timeout(30)
def test_track_names_a_known_tracker_and_its_pip_command(monkeypatch) -> None:
    assert parse_track(None) is None and parse_track("tensorboard") is None
    with pytest.raises(StepError) as err:
        parse_track("neptune")
    assert "track=mlflow or track=wandb" in err.value.fix
    monkeypatch.setitem(sys.modules, "wandb", None)  # as if not installed: find_spec answers None
    with pytest.raises(StepError) as err:
        parse_track("wandb")
    assert "not installed" in str(err.value) and "pip install wandb" in err.value.fix


@pytest.mark.timeout(30)
def test_a_damaged_track_json_is_refused_with_its_file(tmp_path: Path) -> None:
    (tmp_path / "track.json").write_text('{"tracker": "mlflow", "run_id": "../../x; rm -rf /"}\n')
    with pytest.raises(RecordError, match="track.json"):
        read_state(tmp_path)
    (tmp_path / "track.json").write_text('{"tracker": "comet"}\n')
    with pytest.raises(RecordError, match="neither mlflow nor wandb"):
        read_state(tmp_path)
    (tmp_path / "track.json").write_text('{"tracker": "mlflow", "sent_through": NaN}\n')
    with pytest.raises(RecordError):
        read_state(tmp_path)
    assert read_state(tmp_path / "nothing") is None


@pytest.mark.timeout(60)
def test_a_missing_package_stops_train_before_any_folder(ip, tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    result = run_cell(ip, f"%yolo train {tmp_path}/obj.data {tmp_path}/t.cfg track=mlflow")
    text = capsys.readouterr()
    assert result.error_in_exec is not None and "pip install mlflow-skinny" in str(result.error_in_exec)
    assert "Traceback" not in text.out + text.err
    assert not (tmp_path / "runs").exists()


def _history():
    from darknet_magics.output.logs import parse_log

    history = parse_log(FIXTURES / "logs" / "alexeyab-train-map.pty.log")
    assert len(history.maps)
    return history


@pytest.mark.timeout(120)
@pytest.mark.parametrize("tracker", list(Tracker))
def test_a_run_s_rows_reach_the_tracker_once(tracker: Tracker, tmp_path: Path) -> None:
    """The rows the TensorBoard writer gets (a real AlexeyAB log with mAP), then the same run ending again (a
    resume): nothing is sent twice; an evaluation is a tracker run of its own."""
    pytest.importorskip(tracker.value)
    history = _history()
    write_state(tmp_path, TrackState(tracker))
    save_run(history, tmp_path)
    save_run(history, tmp_path)  # the run ends again with the same history: no new iteration, nothing sent
    state = read_state(tmp_path)
    last = int(history.iterations["iteration"].max())
    assert state.tracker is tracker and state.run_id and state.sent_through == last
    expected = dict(zip(history.iterations["iteration"], history.iterations["avg_loss"]))
    maps = history.maps.dropna(subset=["iteration"])
    track_remote.send_evaluation(tmp_path, [("eval/mAP50", 0, 0.625), ("eval/mAP50_95", 0, float("nan"))], "r")
    if tracker is Tracker.MLFLOW:
        runs = mlflow_metrics(tmp_path)
        assert set(runs) == {f"{tmp_path.name}-train", "r-eval"}
        train = runs[f"{tmp_path.name}-train"]
        assert dict(train["train/avg_loss"]) == pytest.approx(expected)
        assert len(train["train/avg_loss"]) == len(expected)  # once, not twice
        assert dict(train["val/mAP50"]) == pytest.approx(dict(zip(maps["iteration"], maps["map50"])))
        assert runs["r-eval"] == {"eval/mAP50": [(0, 0.625)]}  # the nan left out
    else:
        jobs = wandb_history(tmp_path)
        assert {s: row["train/avg_loss"] for s, row in jobs["train"].items()} == pytest.approx(expected)
        assert jobs["train"][int(maps["iteration"].iloc[-1])]["val/mAP50"] == pytest.approx(maps["map50"].iloc[-1])
        assert jobs["eval"] == {0: {"eval/mAP50": 0.625}}
        assert not list(tmp_path.glob("wandb/run-*"))  # offline only: nothing synced


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_train_resume_and_eval_with_track_mlflow_in_a_real_shell(ip, tmp_path: Path, capsys) -> None:
    """Debian's darknet trains 3 iterations with track=mlflow, resumes to 5, and `%yolo eval` of the run's
    weights adds its metrics: MLflow's client reads the run folder's store."""
    pytest.importorskip("mlflow")
    from darknet_magics.synth import make_dataset

    if not Path("/usr/bin/darknet").exists():
        pytest.skip("needs Debian's darknet (apt-get install darknet)")
    from darknet_magics.data.cfg import make_cfg

    template = Path("/usr/share/darknet/cfg/yolov3-tiny.cfg")
    make_dataset(tmp_path / "ds", images=40, size=64)  # 4+ validation images: Debian's `detector valid` needs 4
    result = run_cell(ip, f"%yolo data {tmp_path}/obj.data classes=1 names={tmp_path}/ds/obj.names "
                          f"images={tmp_path}/ds")  # its obj.data: the run keeps its weights in its own folder
    assert result.error_in_exec is None, capsys.readouterr()
    (tmp_path / "t.cfg").write_text(make_cfg(template.read_text(), 1, width=64, height=64, batch=2, subdivisions=1,
                                             max_batches=3, random=0))
    for line in (f"%yolo train {tmp_path}/obj.data {tmp_path}/t.cfg bin=/usr/bin/darknet track=mlflow",
                 "%yolo resume max_batches=5 bin=/usr/bin/darknet"):
        result = run_cell(ip, line)
        out = capsys.readouterr()
        assert result.error_in_exec is None, line + out.out + out.err
    run_dir = ip.user_ns["yolo_run"].run_dir
    weights = sorted((run_dir / "backup").glob("*_final.weights")) or sorted((run_dir / "backup").glob("*.weights"))
    result = run_cell(ip, f"%yolo eval {tmp_path}/obj.data {tmp_path}/t.cfg {weights[0]} bin=/usr/bin/darknet")
    out = capsys.readouterr()
    assert result.error_in_exec is None, out.out + out.err
    runs = mlflow_metrics(run_dir)
    train = runs[f"{run_dir.name}-train"]
    assert [step for step, _ in train["train/avg_loss"]] == [1, 2, 3, 4, 5]  # both sessions, one series
    assert runs[f"{run_dir.name}-eval"]["eval/mAP50"][0][1] == pytest.approx(ip.user_ns["yolo_eval"].map50)


@pytest.mark.timeout(120)
def test_the_dry_run_says_where_the_rows_go_and_refuses_an_unknown_tracker(tmp_path: Path) -> None:
    import os
    import subprocess

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    for tracker, expected in (("mlflow", "rows also to mlflow, offline in the run folder (mlruns)"),
                              ("comet", "fix: write track=mlflow or track=wandb")):
        plan = tmp_path / f"{tracker}.darknet"
        plan.write_text(f"%yolo train obj.data t.cfg bin=/bin/true track={tracker}\n")
        proc = subprocess.run([sys.executable, "-m", "darknet_magics", "run", str(plan), "--dry-run"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=100)
        assert expected in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        assert (proc.returncode == 0) == (tracker == "mlflow") and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()
