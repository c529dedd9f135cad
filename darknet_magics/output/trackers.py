"""What experiment trackers read, written into a run's folder: TensorBoard event files and ``results.csv``.

TensorBoard reads ``events.out.tfevents.*`` files: a TFRecord stream (each record: its length as a little-endian
uint64, the masked CRC-32C of those 8 bytes, the data, the masked CRC-32C of the data) of ``Event`` protocol
buffers. We write the few fields a scalar needs by hand (wall_time, step, a Summary of tag/simple_value), so the
package needs neither tensorflow nor tensorboard; tests read the files back with TensorBoard's own reader.
Point TensorBoard at the runs folder (``%tensorboard --logdir RUNS``) to compare runs and evaluations.
"""
from __future__ import annotations

import math
import os
import socket
import struct
import time
from pathlib import Path
from typing import Any, Iterable, Optional

from ..fileio import atomic_write_bytes, atomic_write_text
from .track_remote import send_evaluation, send_training


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli), the checksum TFRecord uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC: rotated right by 15 bits plus a constant (so a CRC of CRCs is not trivial)."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def record(data: bytes) -> bytes:
    """One TFRecord."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= (1 << 64) - 1  # int64: negatives as two's complement, 10 bytes
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def event(wall_time: float, step: int = 0, *, file_version: Optional[str] = None,
          scalars: Iterable[tuple[str, float]] = ()) -> bytes:
    """An ``Event`` proto: wall_time (1, double), step (2, int64), then file_version (3) or a Summary (5) whose
    values (1) each hold a tag (1) and a simple_value (2, float)."""
    out = b"\x09" + struct.pack("<d", wall_time) + b"\x10" + _varint(int(step))
    if file_version is not None:
        return out + _field_bytes(3, file_version.encode())
    values = b"".join(_field_bytes(1, _field_bytes(1, tag.encode()) + b"\x15" + struct.pack("<f", value))
                      for tag, value in scalars)
    return out + _field_bytes(5, values)


def _clean_tag(tag: str) -> str:
    """A tag TensorBoard shows as it is: printable, no control characters (they come from class names)."""
    return "".join(ch if ch.isprintable() else "_" for ch in tag)[:200]


def write_scalars(folder: Path, points: Iterable[tuple[str, int, float]], *, wall_time: Optional[float] = None,
                  suffix: str = "", name: Optional[str] = None) -> Optional[Path]:
    """Write ``(tag, step, value)`` points as an event file in `folder`, atomically: a new one whose name is unique
    to this writer (time, host, pid, then `suffix`), or `name` (``events.out.tfevents.`` + it), replaced whole.
    Non-finite values are left out (TensorBoard would plot nothing sensible). Returns the file, or None when no
    point was finite."""
    now = time.time() if wall_time is None else wall_time
    by_step: dict[int, list[tuple[str, float]]] = {}
    for tag, step, value in points:
        if value is not None and math.isfinite(float(value)):
            by_step.setdefault(int(step), []).append((_clean_tag(tag), float(value)))
    if not by_step:
        return None
    data = record(event(now, 0, file_version="brain.Event:2"))
    data += b"".join(record(event(now, step, scalars=values)) for step, values in sorted(by_step.items()))
    unique = f"{int(now)}.{socket.gethostname()}.{os.getpid()}.{time.monotonic_ns()}{suffix}"
    path = Path(folder) / f"events.out.tfevents.{name or unique}"
    atomic_write_bytes(path, data)
    return path


_TRAIN_SCALARS = {"loss": "train/loss", "avg_loss": "train/avg_loss", "rate": "train/learning_rate"}
_MAP_SCALARS = {"map50": "val/mAP50", "precision": "val/precision", "recall": "val/recall", "f1": "val/F1",
                "avg_iou": "val/avg_IoU"}


def save_run(history: Any, run_dir: Path, reporter: Any = None) -> None:
    """The training sink: ``results.csv`` (one row per iteration, with the mAP columns where one was computed)
    and a TensorBoard event file of the chart's scalars, in the run's folder. Called when a run ends; a folder
    that cannot be written is a warning, never a failed run."""
    try:
        iterations = history.iterations
        maps = history.maps
        table = iterations
        if len(maps):
            table = iterations.merge(maps.drop_duplicates("iteration", keep="last"), on="iteration", how="left")
        atomic_write_text(Path(run_dir) / "results.csv", table.to_csv(index=False))
        points = [(tag, int(row["iteration"]), row[col]) for col, tag in _TRAIN_SCALARS.items()
                  if col in iterations for row in iterations[["iteration", col]].to_dict("records")]
        points += [(tag, int(row["iteration"]), row[col]) for col, tag in _MAP_SCALARS.items()
                   if col in maps for row in maps[["iteration", col]].dropna(subset=["iteration"]).to_dict("records")]
        # one file per run, rewritten whole when a resumed run ends: the history holds every session's points
        write_scalars(Path(run_dir), points, name="darknet_magics.train")
    except (OSError, KeyError, ValueError) as exc:
        if reporter is not None:
            reporter.warn(f"results.csv and the TensorBoard events were not written in {run_dir}: {exc}")
        return
    _send_remote(send_training, run_dir, points, reporter)


def _send_remote(send: Any, run_dir: Path, points: list, reporter: Any) -> None:
    """The same points to ``track=``'s tracker (track_remote.py); a tracker's failure is a warning, never a failed
    run or evaluation: the event files and CSVs are written already."""
    try:
        send(Path(run_dir), points, Path(run_dir).name)
    except Exception as exc:  # any library's error: the tracker is a copy of what the run folder holds
        if reporter is not None:
            reporter.warn(f"the rows were not sent to the run's tracker ({type(exc).__name__}: {exc}); "
                          f"results.csv and the TensorBoard events in {run_dir} hold them")


def save_evaluation(evaluation: Any, folder: Path, *, step: int = 0, reporter: Any = None,
                    run_dir: Optional[Path] = None) -> None:
    """An evaluation's tables as CSV (per_class, confusion, curves, images) and its metrics as TensorBoard
    scalars (``eval/mAP50``, ``eval/mAP50_95``, ``eval/AP50/CLASS``...) in `folder`; when the weights are a run's
    (`run_dir`) that tracks with ``track=``, the same metrics go to its tracker."""
    try:
        folder = Path(folder)
        for name in ("per_class", "curves", "images"):
            atomic_write_text(folder / f"{name}.csv", getattr(evaluation, name).to_csv(index=False))
        atomic_write_text(folder / "confusion.csv", evaluation.confusion.to_csv())
        points = [("eval/mAP50", step, evaluation.map50), ("eval/mAP50_95", step, evaluation.map50_95)]
        for row in evaluation.per_class.to_dict("records"):
            for key in ("ap50", "ap50_95", "precision", "recall", "f1"):
                points.append((f"eval/{key}/{row['class']}", step, row[key]))
        write_scalars(folder, points, suffix=".eval")
    except OSError as exc:
        if reporter is not None:
            reporter.warn(f"the evaluation's tables and TensorBoard events were not written in {folder}: {exc}")
        return
    if run_dir is not None:
        _send_remote(send_evaluation, run_dir, points, reporter)
