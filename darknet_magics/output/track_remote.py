"""``track=mlflow`` / ``track=wandb``: the rows the TensorBoard writer gets, sent to the tracker people already use.

The choice is the run folder's ``track.json`` (written by ``%yolo train``, kept by ``%yolo resume``), so the
session's end and a later ``%yolo eval`` of the run's weights find it without the directive's options. Both
trackers log into the run folder and never reach the network: MLflow to a ``file:`` store (``RUN/mlruns``), W&B in
offline mode (``RUN/wandb``; ``wandb sync`` uploads it later). Each session sends only the iterations after the ones
``track.json`` says were sent, so a resumed run is one series, not two copies.
"""
from __future__ import annotations

import dataclasses
import enum
import importlib.util
import json
import math
import os
import time
from pathlib import Path
from typing import Iterable, Optional

from ..errors import StepError
from ..fileio import atomic_write_text
from ..jsonread import RecordError, load_json

TRACK_FILE = "track.json"


class Tracker(enum.Enum):
    """A tracker a run's rows go to (TensorBoard's event files and results.csv are always written)."""
    MLFLOW = "mlflow"
    WANDB = "wandb"


# what to import, and what the error tells the user to install (mlflow-skinny: the client without the server)
_PACKAGES = {Tracker.MLFLOW: ("mlflow", "pip install mlflow-skinny"), Tracker.WANDB: ("wandb", "pip install wandb")}
# where each writes in the run folder (MLflow's file store, W&B's offline runs)
TRACK_FOLDERS = {Tracker.MLFLOW: "mlruns", Tracker.WANDB: "wandb"}
assert set(_PACKAGES) == set(Tracker) == set(TRACK_FOLDERS)


@dataclasses.dataclass(frozen=True)
class TrackState:
    """``track.json``: the tracker, its run id (one tracker run per training run) and the last iteration sent."""
    tracker: Tracker
    run_id: Optional[str] = None
    sent_through: int = -1


def parse_track(value: Optional[str]) -> Optional[Tracker]:
    """``track=`` as a Tracker, checked before training starts: a name we know, whose package is installed."""
    if value is None or value.strip().lower() in ("", "tensorboard", "off"):
        return None
    try:
        tracker = Tracker(value.strip().lower())
    except ValueError:
        raise StepError(f"track={value!r}: not a tracker known here",
                        fix="write track=mlflow or track=wandb (TensorBoard's event files are always written)") \
            from None
    module, pip = _PACKAGES[tracker]
    if importlib.util.find_spec(module) is None:
        raise StepError(f"track={tracker.value}: the {module} package is not installed",
                        fix=f"`{pip}` (then restart nothing: the next %yolo line finds it)")
    return tracker


def write_state(run_dir: Path, state: TrackState) -> None:
    """``track.json``, atomically."""
    data = {"tracker": state.tracker.value, "run_id": state.run_id, "sent_through": state.sent_through}
    atomic_write_text(Path(run_dir) / TRACK_FILE, json.dumps(data, indent=1) + "\n")


def read_state(run_dir: Path) -> Optional[TrackState]:
    """The run's ``track.json``, or None when the run tracks nothing; a damaged one is a RecordError (file, line)."""
    path = Path(run_dir) / TRACK_FILE
    try:
        value, _ = load_json(path)
    except FileNotFoundError:
        return None
    if not isinstance(value, dict):
        raise RecordError(path, 1, "not a JSON object", fix="delete it, or write track=mlflow|wandb again")
    try:
        tracker = Tracker(value.get("tracker"))
    except ValueError:
        raise RecordError(path, None, f"tracker {value.get('tracker')!r} is neither mlflow nor wandb") from None
    run_id, sent = value.get("run_id"), value.get("sent_through", -1)
    if run_id is not None and not (isinstance(run_id, str) and run_id.isalnum() and len(run_id) <= 64):
        raise RecordError(path, None, "run_id is not a tracker's id (letters and digits)")
    if not isinstance(sent, int) or isinstance(sent, bool):
        raise RecordError(path, None, "sent_through is not an integer")
    return TrackState(tracker, run_id, sent)


def _finite(points: Iterable[tuple[str, int, float]]) -> dict[int, dict[str, float]]:
    """(tag, step, value) points grouped by step, non-finite values left out (as the TensorBoard writer does)."""
    by_step: dict[int, dict[str, float]] = {}
    for tag, step, value in points:
        if value is not None and math.isfinite(float(value)):
            by_step.setdefault(int(step), {})[tag] = float(value)
    return by_step


def send_training(run_dir: Path, points: Iterable[tuple[str, int, float]], name: str) -> None:
    """Send a session's new training points (iterations after ``sent_through``) to the run's tracker, if any."""
    state = read_state(run_dir)
    if state is None:
        return
    rows = {s: v for s, v in _finite(points).items() if s > state.sent_through}
    run_id = _send(state, Path(run_dir), rows, name=name, job="train")
    write_state(run_dir, dataclasses.replace(state, run_id=run_id, sent_through=max(rows, default=state.sent_through)))


def send_evaluation(run_dir: Path, points: Iterable[tuple[str, int, float]], name: str) -> None:
    """Send an evaluation's metrics to the run's tracker (a tracker run of its own, beside the training's)."""
    state = read_state(run_dir)
    if state is not None:
        _send(dataclasses.replace(state, run_id=None), Path(run_dir), _finite(points), name=name, job="eval")


def _send(state: TrackState, run_dir: Path, rows: dict[int, dict[str, float]], *, name: str, job: str) -> str:
    if state.tracker is Tracker.MLFLOW:
        return _send_mlflow(state.run_id, run_dir, rows, name=name, job=job)
    if state.tracker is Tracker.WANDB:
        return _send_wandb(state.run_id, run_dir, rows, name=name, job=job)
    raise AssertionError(state.tracker)  # every Tracker is handled above


def mlflow_uri(run_dir: Path) -> str:
    """The run folder's own MLflow store (``mlflow ui --backend-store-uri`` this)."""
    return (Path(run_dir).resolve() / TRACK_FOLDERS[Tracker.MLFLOW]).as_uri()


def _send_mlflow(run_id: Optional[str], run_dir: Path, rows: dict[int, dict[str, float]], *, name: str,
                 job: str) -> str:
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    # MLflow 3 keeps the file store in maintenance mode behind this opt-out; it is the one store that needs no
    # server and no SQLAlchemy (mlflow-skinny has none), and `mlflow migrate-filestore` moves it to a database
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    # the client, not mlflow's global state: a second run in the kernel never logs into this one
    client = MlflowClient(tracking_uri=mlflow_uri(run_dir))
    if run_id is None:
        experiment = client.get_experiment_by_name("darknet_magics")
        experiment_id = experiment.experiment_id if experiment else client.create_experiment("darknet_magics")
        run_id = client.create_run(experiment_id, run_name=f"{name}-{job}", tags={"job": job}).info.run_id
    now = int(1000 * time.time())
    metrics = [Metric(tag, value, now, step)
               for step, values in sorted(rows.items()) for tag, value in values.items()]
    for start in range(0, len(metrics), 1000):  # MLflow's batch limit is 1000 metrics
        client.log_batch(run_id, metrics=metrics[start:start + 1000])
    client.set_terminated(run_id)
    return run_id


def _send_wandb(run_id: Optional[str], run_dir: Path, rows: dict[int, dict[str, float]], *, name: str,
                job: str) -> str:
    import wandb

    env = {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(run_dir)}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # offline whatever the user set: the rows go into the run folder, never the network
    try:
        run = wandb.init(dir=str(run_dir), project="darknet_magics", name=f"{name}-{job}", job_type=job,
                         id=run_id, resume="allow" if run_id else None, mode="offline", reinit="create_new")
        try:
            for step, values in sorted(rows.items()):
                run.log(values, step=step)
        finally:
            run.finish()
        return run.id
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
