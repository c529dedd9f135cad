"""History: frames, persistence (whole and incremental) and stitching a real resume."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from darknet_magics.output.history import History, TrainingLog
from darknet_magics.output.logparse import Iteration, LogParser, ProblemFound, Prompt, Resumed

LOGS = Path(__file__).resolve().parent / "fixtures" / "darknet-logs"


def events(name: str) -> list:
    p = LogParser()
    return p.feed((LOGS / name).read_bytes()) + p.close()


def events_of(text: str) -> list:
    p = LogParser()
    return p.feed(text) + p.close()


def assert_same_frames(a: History, b: History) -> None:
    for frame in ("iterations", "maps", "class_ap", "weights", "problems"):
        pd.testing.assert_frame_equal(getattr(a, frame), getattr(b, frame))


def test_frames_and_summary() -> None:
    h = History(events("alexeyab/train-map-noise.pty.log"))
    assert len(h) == 200 and h.last_iteration == 200
    assert h.last_avg_loss == 0.696266  # " 200: 0.760215, 0.696266 avg loss, ..."
    assert h.best_map50 == 0.027968 and h.max_batches == 200 and h.finished == "final weights saved"
    assert h.iterations is h.iterations  # cached until new rows arrive
    before = h.iterations
    h.add([Iteration(201, 1.0, 1.0)])
    assert h.iterations is not before and len(h.iterations) == 201
    assert h.iterations["iteration"].iloc[-1] == 201 and len(h.iterations["avg_loss"]) == 201
    log = h.to_log("alexeyab")
    assert isinstance(log, TrainingLog) and log.flavor == "alexeyab" and len(log.maps) == 2


def test_empty_frames_keep_their_columns() -> None:
    h = History()
    assert list(h.iterations.columns) == ["iteration", "loss", "avg_loss", "rate", "seconds", "images", "hours_left"]
    assert list(h.weights.columns) == ["iteration", "path"]
    assert "ap" in h.class_ap.columns and "map50" in h.maps.columns
    assert str(h.iterations["iteration"].dtype) == "int64"


def test_save_load_round_trip(tmp_path: Path) -> None:
    h = History(events("hank-ai/train-map.pty.log"))  # iterations with NaN, maps, class AP, weights, problems
    path = tmp_path / "history.jsonl"
    h.save(path)
    back = History.load(path)
    assert_same_frames(h, back)
    assert back.max_batches == 200 and back.finished == h.finished
    assert [p.code for p in back.problem_list] == ["nan-loss", "crash-on-exit"]
    # plain JSON lines (NaN as null): pandas reads it without us
    assert len(pd.read_json(path, lines=True)) == sum(1 for _ in path.open())


def test_incremental_append_is_readable_after_every_append(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    parser = LogParser()
    raw = (LOGS / "alexeyab" / "train-map-noise.pty.log").read_bytes()
    live = History()
    for i in range(0, len(raw), 40_000):
        evs = parser.feed(raw[i:i + 40_000])
        live.add(evs)
        History.append_to(path, evs)
        assert len(History.load(path)) == len(live)  # what a crash right now would leave
    evs = parser.close()
    live.add(evs)
    History.append_to(path, evs, fsync=True)
    assert_same_frames(History.load(path), live)


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "history.jsonl"
    History.append_to(path, [Iteration(1, 2.0, 2.0), Iteration(2, 1.5, 1.9)])
    with open(path, "a") as f:
        f.write('{"kind":"iteration","iteration":3,"lo')  # the machine died mid-write
    assert History.load(path).last_iteration == 2


def test_stitch_a_real_resume() -> None:
    previous = History(events("alexeyab/train-map-noise.pty.log"))  # 1..200, mAP at 100 and 200
    current = History(events("alexeyab/resume.pty.log"))  # resumed from tiny_last.weights: 201..240
    h = History.stitch(previous, current)
    its = h.iterations["iteration"].tolist()
    assert its == list(range(1, 241)) and h.iterations["iteration"].is_unique
    assert h.maps["iteration"].tolist() == [100, 200, 240]
    assert h.max_batches == 240
    assert len(previous) == 200 and len(current) == 40  # inputs unchanged


def test_resume_from_older_weights_drops_the_overlap() -> None:
    full = events("alexeyab/train-map-noise.pty.log")
    # a run that got to 200 but is resumed from weights of iteration 149: darknet continues at 150
    resumed = [e for e in full if getattr(e, "iteration", 150) is None or getattr(e, "iteration", 150) >= 150]
    previous = History(full)
    previous.extend(History(resumed))
    its = previous.iterations["iteration"].tolist()
    assert its == list(range(1, 201)) and previous.iterations["iteration"].is_unique
    assert previous.maps["iteration"].tolist() == [100, 200]
    assert previous.weights["iteration"].tolist() == [100, 100, 200, 200]


def test_problems_frame() -> None:
    h = History(events("alexeyab/train-diverged-nan-lr0.00261.pty.log"))
    df = h.problems
    assert list(df.columns) == ["code", "message", "fix", "severity", "iteration", "evidence"]
    assert df["code"].tolist() == ["nan-loss"] and df["iteration"].iloc[0] >= 1
    assert any(isinstance(e, ProblemFound) for e in h.events())
    json.dumps([e.problem.code for e in h.events() if isinstance(e, ProblemFound)])


# pjreddie prints an inf loss the iteration before it turns nan. No capture in ../shared/darknet-logs diverged that
# way, so this excerpt is pjreddie's line format (as in pjreddie/train.pty.log) with the values of such a run.
PJ_INF = ("70: 0.351793, 0.528331 avg, 0.000010 rate, 1.176939 seconds, 560 images\r\n"
          "71: inf, inf avg, 0.000010 rate, 1.163001 seconds, 568 images\r\n"
          "72: -inf, inf avg, 0.000010 rate, 1.158020 seconds, 576 images\r\n"
          "73: -nan, -nan avg, 0.000010 rate, 1.160342 seconds, 584 images\r\n")


def _strict_json(line: str) -> dict:
    def refuse(name: str) -> None:
        raise AssertionError(f"not JSON: {name}")

    return json.loads(line, parse_constant=refuse)


def test_infinite_loss_round_trips_through_save_and_append(tmp_path: Path) -> None:
    parser = LogParser()
    evs = parser.feed(PJ_INF) + parser.close()
    h = History(evs)
    its = h.iterations.set_index("iteration")
    assert its.loc[71, "loss"] == float("inf") and its.loc[72, "loss"] == float("-inf")
    assert pd.isna(its.loc[73, "loss"])
    saved, appended = tmp_path / "saved.jsonl", tmp_path / "appended.jsonl"
    h.save(saved)  # crashed before: "Out of range float values are not JSON compliant"
    assert History.append_to(appended, evs) == len([e for e in evs if not isinstance(e, Prompt)])
    for path in (saved, appended):
        rows = [_strict_json(line) for line in path.read_text().splitlines()]  # strict JSON: no Infinity/NaN
        by_it = {r["iteration"]: r for r in rows if r["kind"] == "iteration"}
        assert by_it[71]["loss"] == "inf" and by_it[72]["loss"] == "-inf" and by_it[73]["loss"] is None
        back = History.load(path)
        assert_same_frames(h, back)
        assert [p.code for p in back.problem_list] == ["nan-loss"]
    assert len(pd.read_json(saved, lines=True)) == len(h.events())


def test_iteration_lines_are_the_generic_encoding(tmp_path: Path) -> None:
    from darknet_magics.output.history import _dumps, _lines

    evs = events("alexeyab/train-map-noise.pty.log") + [Iteration(3, 1.0, float("inf"), images=7.0)]
    fast = _lines(evs)
    assert [_strict_json(line) for line in fast] == [
        _strict_json(_dumps(e)) for e in evs if not isinstance(e, Prompt)]
    assert all(line.endswith("\n") and line.count("\n") == 1 for line in fast)


def test_a_log_of_a_resumed_run_is_stitched_like_the_live_history(tmp_path: Path) -> None:
    """`%yolo log` of a run interrupted at iteration N and resumed from weights saved at k < N: darknet appends
    the second session to the same log; its rows from k on supersede the first session's (as History.stitch does
    for the live object), so no iteration appears twice."""
    from darknet_magics import parse_log

    text = (LOGS / "pjreddie" / "train.pty.log").read_bytes().decode("utf-8", "replace")
    lines = text.splitlines(keepends=True)
    its = [i for i, line in enumerate(lines) if re.match(r"\d+: ", line)]
    first = "".join(lines[:its[-1] + 1])  # the whole first session
    k_line = its[len(its) // 2]  # resumed from the middle: the second session repeats the later half
    second = "".join(lines[:its[0]]) + "".join(lines[k_line:])
    live = History.stitch(History(events_of(first)), History(events_of(second)))
    log = parse_log(first + second)
    assert len(log.iterations) == len(its) == len(live.iterations)
    assert not log.iterations["iteration"].duplicated().any()
    pd.testing.assert_frame_equal(log.iterations, live.iterations, check_exact=True)
    pd.testing.assert_frame_equal(log.weights, live.weights, check_exact=True)
    # the events say where the second session started
    assert [e.iteration for e in events_of(first + second) if isinstance(e, Resumed)] == [int(lines[k_line].split(":")[0])]


def test_save_writes_through_fileio_with_the_usual_mode(tmp_path: Path) -> None:
    path = tmp_path / "train.history.jsonl"
    History([Iteration(1, 2.0, 2.0)]).save(path)
    mask = os.umask(0)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask  # not mkstemp's 0600
    assert len(History.load(path)) == 1
