"""logparse against every real darknet log in tests/fixtures/darknet-logs, plus what a pty really delivers.

Expected counts are taken independently of the parser: simple regexes here, over the raw text (escapes removed
by this file's own pattern), one per fact.
"""
from __future__ import annotations

import math
import random
import re
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from darknet_magics.output.logparse import (ClassAP, Finished, Iteration, LogParser, MapResult, MaxBatches, NextMapAt,
                                     ProblemFound, Prompt, Resumed, WeightsSaved, strip_escapes)
from darknet_magics.output.logs import parse_log

LOGS = Path(__file__).resolve().parent / "fixtures" / "darknet-logs"
ALL_LOGS = sorted(p for p in LOGS.glob("*/*.log"))

_TEST_ESC = re.compile(r"\x1b\][^\x07]*\x07|\x1b\[[0-9;?]*[A-Za-z]")


def text_of(path: Path) -> str:
    return path.read_bytes().decode("utf-8", errors="replace")


def expected_counts(text: str) -> dict[str, int]:
    """Facts counted with grep-like regexes, independent of the parser."""
    clean = _TEST_ESC.sub("", text)
    return {
        # pjreddie "N: x, y avg, ..." / AlexeyAB " N: x, y avg loss, ..." / hank-ai "N: loss=x, avg loss=y, ..."
        "iterations": len(re.findall(r"^ ?\d+: [^,\s]+, [^,\s]+ avg", clean, re.M))
        + len(re.findall(r"^\d+: loss=\S+, avg loss=", clean, re.M)),
        # one mAP calculation = the "mean average precision" line (AlexeyAB's second format is not counted)
        "maps": clean.count("mean average precision (mAP@0.50)"),
        # AlexeyAB "class_id = N, name = .., ap = ..%"; hank-ai table rows "  0 red_box  1.8519  0 0 9 9 ..."
        "class_ap": clean.count("class_id = ")
        + len(re.findall(r"^ +\d+ +\S+ +[\d.]+ +\d+ +\d+ +\d+ +\d+ +[\d.]+ +[\d.]+\s*$", clean, re.M)),
        "weights": clean.count("Saving weights to "),
    }


def events_of(text, chunks=None) -> list:
    p = LogParser()
    if chunks is None:
        return p.feed(text) + p.close()
    out = []
    for c in chunks:
        out += p.feed(c)
    return out + p.close()


def key(events: list) -> list[str]:
    # repr, not ==: NaN fields make equal events compare unequal
    return [repr(e) for e in events]


# ---------------------------------------------------------------------------------------------- real logs
@pytest.mark.parametrize("path", ALL_LOGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_log_parses_and_counts_match(path: Path) -> None:
    text = text_of(path)
    log = parse_log(path)
    want = expected_counts(text)
    assert len(log.iterations) == want["iterations"]
    assert len(log.maps) == want["maps"]
    assert len(log.class_ap) == want["class_ap"]
    assert len(log.weights) == want["weights"]
    assert log.flavor in (path.parent.name, None)
    if want["iterations"]:
        assert log.flavor == path.parent.name
        assert log.iterations["iteration"].is_monotonic_increasing


def test_known_totals_of_the_healthy_runs() -> None:
    # numbers established with grep on the files (e.g. grep -c 'avg loss' train-map-noise.pty.log)
    ab = parse_log(LOGS / "alexeyab" / "train-map-noise.pty.log")
    assert (len(ab.iterations), len(ab.maps), len(ab.class_ap), len(ab.weights)) == (200, 2, 2, 4)
    pj = parse_log(LOGS / "pjreddie" / "train.pty.log")
    assert (len(pj.iterations), len(pj.maps), len(pj.weights)) == (120, 0, 3)
    hk = parse_log(LOGS / "hank-ai" / "train-map-noise.pty.log")
    assert (len(hk.iterations), len(hk.maps), len(hk.class_ap), len(hk.weights)) == (200, 2, 2, 4)
    assert list(ab.iterations.columns) == ["iteration", "loss", "avg_loss", "rate", "seconds", "images",
                                           "hours_left"]
    assert str(ab.iterations["iteration"].dtype) == "int64"
    assert all(str(ab.iterations[c].dtype) == "float64" for c in ab.iterations.columns[1:])


def test_alexeyab_values_match_the_text() -> None:
    log = parse_log(LOGS / "alexeyab" / "train-map-noise.pty.log")
    row = log.iterations.set_index("iteration").loc[100]
    # " 100: 0.755379, 0.721060 avg loss, 0.000500 rate, 1.859184 seconds, 1600 images, 0.101112 hours left"
    assert tuple(row) == (0.755379, 0.721060, 0.0005, 1.859184, 1600.0, 0.101112)
    maps = log.maps.set_index("iteration")
    # "mean average precision (mAP@0.50) = 0.027968, or 2.80 %" at 100, 0.008547 at 200; best stays 0.027968
    assert maps.loc[100, "map50"] == 0.027968 and maps.loc[200, "map50"] == 0.008547
    assert maps.loc[200, "best_map50"] == 0.027968
    # "for conf_thresh = 0.25, precision = -nan, recall = 0.00, .." / "TP = 0, FP = 0, FN = 9, average IoU = 0.00 %"
    assert math.isnan(maps.loc[100, "precision"]) and maps.loc[100, "recall"] == 0.0
    assert maps.loc[100, "fn"] == 9 and maps.loc[100, "detections"] == 176
    ap = log.class_ap.iloc[0]
    # "class_id = 0, name = red_box, ap = 2.80%", glued after "rank = .. \r" progress on the same line
    assert (ap["iteration"], ap["class_id"], ap["name"], ap["ap"]) == (100, 0, "red_box", pytest.approx(0.028))
    assert log.weights["path"].iloc[-1].endswith("backup//tiny_final.weights")
    assert log.weights["iteration"].tolist() == [100, 100, 200, 200]


def test_pjreddie_and_hank_values_match_the_text() -> None:
    pj = parse_log(LOGS / "pjreddie" / "train.pty.log").iterations.iloc[-1]
    # "120: 0.351793, 0.528331 avg, 0.000010 rate, 1.176939 seconds, 960 images" (no ETA in pjreddie)
    assert tuple(pj[:6]) == (120, 0.351793, 0.528331, 0.00001, 1.176939, 960.0)
    assert math.isnan(pj["hours_left"])
    hk = parse_log(LOGS / "hank-ai" / "train-map-noise.pty.log")
    second = hk.iterations.iloc[1]
    # "2: loss=20.693, avg loss=20.672, .. rate=0.00000005, .. train=709.4 milliseconds, 32 images,
    #  time remaining=99 seconds"
    assert tuple(second) == (2, 20.693, 20.672, 0.00000005, pytest.approx(0.7094), 32.0, pytest.approx(99 / 3600))
    maps = hk.maps.set_index("iteration")
    assert maps.loc[100, "map50"] == pytest.approx(0.0185) and maps.loc[200, "best_map50"] == pytest.approx(0.0185)
    assert hk.class_ap["ap"].tolist() == pytest.approx([0.018519, 0.00254])


def test_standalone_map_has_no_iteration() -> None:
    for flavor in ("alexeyab", "hank-ai"):
        log = parse_log(LOGS / flavor / "map.pty.log")
        assert len(log.maps) == 1 and log.maps["iteration"].isna().all()
    assert parse_log(LOGS / "alexeyab" / "map.pty.log").maps["map50"].iloc[0] == 0.027968


def test_resume_continues_iterations_and_reports_max_batches() -> None:
    events = events_of(text_of(LOGS / "alexeyab" / "resume.pty.log"))
    its = [e.iteration for e in events if isinstance(e, Iteration)]
    assert its == list(range(201, 241))
    assert MaxBatches(240) in events and NextMapAt(300) in events
    first = next(e for e in events if isinstance(e, Iteration))
    assert first.hours_left == -1.0
    assert [e.iteration for e in events if isinstance(e, MapResult)] == [240]
    assert [e.reason for e in events if isinstance(e, Finished)] == ["final weights saved"]


@pytest.mark.timeout(30)  # prompt parsing is instant
def test_hank_prompt_max_batches_and_finish() -> None:
    events = events_of(text_of(LOGS / "hank-ai" / "train-noise-nomap.pty.log"))
    assert isinstance(events[0], Prompt) and events[0].text.startswith('Type "yes" to begin training')
    assert MaxBatches(200) in events
    assert not any(isinstance(e, NextMapAt) for e in events)  # "mAP=DISABLED"
    assert sum(isinstance(e, Finished) for e in events) == 1


@pytest.mark.timeout(30)  # prompt parsing is instant
def test_prompt_is_reported_before_its_line_ends() -> None:
    p = LogParser()
    got = p.feed("Are you certain?\r\n\r\nType \"yes\" to begin training, or anything else to quit:  ")
    assert got == [Prompt('Type "yes" to begin training, or anything else to quit:')]
    assert p.feed("yes\r\n") == []  # the echoed answer does not repeat it
    assert p.flavor == "hank-ai"


def test_nan_loss_is_a_problem_at_the_first_nan_iteration() -> None:
    events = events_of(text_of(LOGS / "alexeyab" / "train-diverged-nan-lr0.00261.pty.log"))
    problems = [e.problem for e in events if isinstance(e, ProblemFound)]
    first_nan = next(e.iteration for e in events if isinstance(e, Iteration) and math.isnan(e.avg_loss))
    assert [p.code for p in problems] == ["nan-loss"] and problems[0].iteration == first_nan
    # independently: the first "N: nan, nan avg loss" line
    assert first_nan == int(re.search(r"(\d+): -?nan, -?nan avg loss", text_of(
        LOGS / "alexeyab" / "train-diverged-nan-lr0.00261.pty.log")).group(1))


# ---------------------------------------------------------------------------------------------- pty hazards
AB_MAP_BLOCK = (
    " (next mAP calculation at 100 iterations) \x1b[H\x1b[J100/200: loss=0.8 hours left=0.1\x07\r\n"
    " 100: 0.755379, 0.721060 avg loss, 0.000500 rate, 1.859184 seconds, 1600 images, 0.101112 hours left\r\n"
    "\r\n calculation mAP (mean average precision)...\r\n"
    "\r4\r8\r\n detections_count = 176, unique_truth_count = 9  \r\n"
    " rank = 0 of ranks = 176 \r rank = 100 of ranks = 176 \rclass_id = 0, name = red_box, ap = 2.80%   \t"
    " (TP = 0, FP = 0) \r\n\r\n"
    " for conf_thresh = 0.25, precision = -nan, recall = 0.00, F1-score = -nan \r\n"
    " for conf_thresh = 0.25, TP = 0, FP = 0, FN = 9, average IoU = 0.00 % \r\n"
    " mean average precision (mAP@0.50) = 0.027968, or 2.80 % \r\n"
    " mean_average_precision (mAP@0.50) = 0.027968 \r\nNew best mAP!\r\n"
    "Saving weights to /b//tiny_best.weights\r\n"
    " (next mAP calculation at 200 iterations) \r\n"
    " Last accuracy mAP@0.50 = 2.80 %, best = 2.80 % \x1b[H\x1b[J101/200: loss=0.6 map=0.03 best=0.03\x07\r\n"
    " 101: 0.601205, 0.709074 avg loss, 0.000500 rate, 1.893652 seconds, 1616 images, 0.100683 hours left\r\n"
)
HANK_LINE = (
    "\x1b]2;7/200: loss=20.2 time=2.8 minutes\x07\x1b[1;37m7\x1b[0m: loss=\x1b[0;31m-nan\x1b[0m, avg loss="
    "\x1b[0;31m20.636\x1b[0m, last=\x1b[0mnone\x1b[0m, best=\x1b[0mnone\x1b[0m, mAP=100, rate=0.00000750, "
    "load 16=65.6 milliseconds, train=979.0 milliseconds, 112 images, time remaining=2.8 minutes\r\n"
)


def test_alexeyab_map_block_excerpt() -> None:
    events = events_of(AB_MAP_BLOCK)
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["NextMapAt", "MaxBatches", "Iteration", "ClassAP", "MapResult", "WeightsSaved", "NextMapAt",
                     "Iteration"]
    m = next(e for e in events if isinstance(e, MapResult))
    assert (m.iteration, m.map50, m.tp, m.fn, m.avg_iou, m.detections) == (100, 0.027968, 0, 9, 0.0, 176)
    assert math.isnan(m.precision) and math.isnan(m.f1)


def test_hank_line_with_escapes_and_minus_nan() -> None:
    (mb, nm, it, problem) = events_of(HANK_LINE)
    assert mb == MaxBatches(200) and nm == NextMapAt(100)
    assert it.iteration == 7 and math.isnan(it.loss) and it.avg_loss == 20.636
    assert it.seconds == pytest.approx(0.979) and it.hours_left == pytest.approx(2.8 / 60) and it.images == 112
    assert problem.problem.code == "nan-loss"


@pytest.mark.parametrize("size", range(1, 41))
def test_any_chunk_size_gives_the_same_events(size: int) -> None:
    text = AB_MAP_BLOCK + HANK_LINE
    whole = key(events_of(text))
    assert key(events_of(text, [text[i:i + size] for i in range(0, len(text), size)])) == whole
    raw = text.encode()
    assert key(events_of(raw, [raw[i:i + size] for i in range(0, len(raw), size)])) == whole


@pytest.mark.parametrize("name", ["alexeyab/train-map-noise.pty.log", "hank-ai/train-map-noise.pty.log",
                                  "pjreddie/train.pty.log", "alexeyab/train-map-nan.stdout.log"])
def test_random_splits_of_real_logs(name: str) -> None:
    raw = (LOGS / name).read_bytes()
    whole = key(events_of(raw))
    rng = random.Random(name)
    for _ in range(3):
        cuts = sorted(rng.sample(range(1, len(raw)), 400))
        chunks = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)])]
        assert key(events_of(raw, chunks)) == whole


def test_truncated_last_line_is_flushed_by_close() -> None:
    p = LogParser()
    assert p.feed("1: 28.027271, 28.027271 avg, 0.000000 rate, 1.488678 seconds, 8 images\r\n2: 29.1906") == [
        Iteration(1, 28.027271, 28.027271, 0.0, 1.488678, 8)]
    assert p.close() == []  # "2: 29.1906" is not an iteration line: nothing, no exception
    p = LogParser()
    p.feed("Saving weights to /w/tiny_final.weights")  # no newline: the process was killed mid-line
    assert [type(e) for e in p.close()] == [WeightsSaved, Finished]


def test_garbage_bells_and_binary_bytes() -> None:
    raw = (b"\x00\xff\xfe garbage \x07\x07\r\n\x1b[31m\x1b]0;title\x07"
           b" 5: 1.5, 2.5 avg loss, 0.1 rate, 1.0 seconds, 40 images, 0.5 hours left\r\n\xc3")
    events = events_of(raw)
    assert events == [Iteration(5, 1.5, 2.5, 0.1, 1.0, 40, 0.5)]


def test_event_mid_line_after_progress_without_carriage_return() -> None:
    events = events_of(" rank = 0 of ranks = 5 class_id = 3, name = traffic light, ap = 50.00%   \t"
                       " (TP = 1, FP = 2) \n")
    assert events == [ClassAP(None, 3, "traffic light", 0.5, 1, 2)]


def test_interleaved_stderr_does_not_break_lines() -> None:
    # a stderr line lands between two stdout lines (merged pty stream)
    text = (" 1: 2.0, 2.0 avg loss, 0.0 rate, 1.0 seconds, 16 images, -1.000000 hours left\r\n"
            "Loaded: 0.000106 seconds\r\n"
            "Couldn't open file: /x/train.txt\r\n"
            " 2: 1.0, 1.9 avg loss, 0.0 rate, 1.0 seconds, 32 images, 0.1 hours left\r\n")
    kinds = [type(e).__name__ for e in events_of(text)]
    assert kinds == ["Iteration", "ProblemFound", "Iteration"]


def test_strip_escapes() -> None:
    assert strip_escapes("\x1b[1;31m1.85%\x1b[0m\x1b]2;t\x07\x07") == "1.85%"


def test_parse_log_accepts_text_lines_and_paths(tmp_path: Path) -> None:
    text = text_of(LOGS / "pjreddie" / "train.pty.log")
    a = parse_log(text).iterations
    b = parse_log(text.splitlines()).iterations
    c = parse_log(str(LOGS / "pjreddie" / "train.pty.log")).iterations
    with open(LOGS / "pjreddie" / "train.pty.log", encoding="utf-8", errors="replace") as f:
        d = parse_log(f).iterations
    for other in (b, c, d):
        assert other.equals(a)
    empty = parse_log("")
    assert list(empty.maps.columns)[:2] == ["iteration", "map50"] and len(empty.iterations) == 0
    assert list(empty.problems.columns) == ["code", "message", "fix", "severity", "iteration", "evidence"]


def test_unknown_flavor_is_refused() -> None:
    with pytest.raises(ValueError):
        LogParser("yolov9")


# ---------------------------------------------------------------------------------------------- fuzz
_FRAGMENTS = [AB_MAP_BLOCK, HANK_LINE, "\r", "\n", "\x1b[", "\x1b]2;", "\x07", "-nan", " avg", "class_id = ",
              "Saving weights to ", ": loss=", "mean average precision (mAP@0.50)=", "\udcff", "^C"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.one_of(st.text(max_size=40), st.sampled_from(_FRAGMENTS)), max_size=12),
       st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=8))
def test_fuzz_never_raises_and_chunking_does_not_matter(parts: list[str], sizes: list[int]) -> None:
    text = "".join(parts)
    whole = key(events_of(text))
    chunks, i, k = [], 0, 0
    while i < len(text):
        n = sizes[k % len(sizes)]
        chunks.append(text[i:i + n])
        i, k = i + n, k + 1
    assert key(events_of(text, chunks)) == whole


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_bytes(raw: bytes) -> None:
    events_of(raw)
    parse_log([raw])


# ---------------------------------------------------------------------------------------------- fast paths
# The parser has a per-row reference path (`LogParser.bulk = False`) and a bulk path that converts queued iteration
# lines column by column; `parse_log` also has a columnar path that hands the columns to the history without
# building events. All of them must give the same events and the same frames.
def events_via(text, bulk: bool, chunks=None) -> list:
    p = LogParser()
    p.bulk = bulk
    out = []
    for c in (chunks if chunks is not None else [text]):
        out += p.feed(c)
    return out + p.close()


def frames_of_events(events: list):
    from darknet_magics.output.history import History

    return History(events)


def assert_same_frames(log, history) -> None:
    import pandas as pd

    for name in ("iterations", "maps", "class_ap", "weights", "problems"):
        pd.testing.assert_frame_equal(getattr(log, name), getattr(history, name), check_exact=True)


def assert_all_paths_agree(text) -> None:
    slow = events_via(text, bulk=False)
    fast = events_via(text, bulk=True)
    assert key(fast) == key(slow)
    # in chunks: after the first hank-ai line, the gate is specialised to its max_batches
    for size in (4096, 1 << 16):
        chunks = [text[i:i + size] for i in range(0, len(text), size)]
        assert key(events_via(text, bulk=True, chunks=chunks)) == key(slow)
    log = parse_log([text]) if isinstance(text, bytes) else parse_log(text)
    assert_same_frames(log, frames_of_events(slow))


@pytest.mark.parametrize("path", ALL_LOGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_bulk_columnar_and_per_row_paths_agree_on_every_log(path: Path) -> None:
    raw = path.read_bytes()
    assert_all_paths_agree(raw)
    # three copies in a row: long queues, a window title / next-mAP change inside a queue, hank-ai's first
    # "time remaining=unknown" in the middle of one
    assert_all_paths_agree(raw * 3)


def test_bulk_path_takes_queues_with_state_changes_and_bad_rows() -> None:
    text = text_of(LOGS / "hank-ai" / "train-map-noise.pty.log")
    assert "time remaining=unknown" in text  # its first iteration: not a number, taken by the per-row path
    # four sessions in one log, each from iteration 1: each supersedes the one before (a resumed run's log is
    # stitched like the live run), so the rows are the last session's; every copy went through the bulk path
    log = parse_log(text * 4)
    assert len(log.iterations) == 200 and log.iterations["hours_left"].isna().sum() == 1
    assert log.iterations["iteration"].is_monotonic_increasing
    events = events_via(text * 2, bulk=True)
    assert sum(isinstance(e, Iteration) for e in events) == 400
    assert [e.iteration for e in events if isinstance(e, Resumed)] == [1]
    # max_batches once, the next mAP iteration each time it changes: 100, 200, then 100 again for the 2nd copy
    assert [e.iteration for e in events if isinstance(e, NextMapAt)] == [100, 200, 100, 200]
    assert sum(isinstance(e, MaxBatches) for e in events) == 1


def test_iteration_is_a_named_tuple_with_the_event_fields() -> None:
    it = Iteration(5, 1.5, 2.5)
    assert (it.iteration, it.loss, it.avg_loss) == (5, 1.5, 2.5) and math.isnan(it.rate)
    assert it._fields == ("iteration", "loss", "avg_loss", "rate", "seconds", "images", "hours_left")
    assert repr(it).startswith("Iteration(iteration=5, loss=1.5, avg_loss=2.5, rate=nan")
    with pytest.raises(AttributeError):
        it.loss = 3.0  # type: ignore[misc]


def test_keyword_gate_is_the_plain_alternation_factored() -> None:
    """The gate groups the keywords by first character; the plain alternation must match the same lines."""
    from darknet_magics.output import diagnose
    from darknet_magics.output import patterns as lp

    diag = [*map(re.escape, diagnose.TRIGGERS), *diagnose.TRIGGER_PATTERNS]
    keywords = [(n, h, rx if n != "diag" else "(?:" + "|".join(diag) + ")") for n, h, rx in lp.KEYWORDS]
    plain = "|".join(f"{rx}(?P<k_{name}>)" for name, _, rx in keywords)
    plain_handlers = {f"k_{name}": handler for name, handler, _ in keywords}
    gate = re.compile(r"\n(?:" + lp.IT_PJ_AB + "|" + lp.IT_HANK + "|" + lp.IT_HANK_PLAIN + "|" + lp.SEG_START
                      + "(?:" + plain + "))")
    assert len(lp.KW_HANDLERS) == len(lp.KEYWORDS) - 1 + len(diagnose.TRIGGERS) + len(diagnose.TRIGGER_PATTERNS)
    for path in ALL_LOGS:
        buf = "\n" + text_of(path)
        want = [(m.start(), m.end(), plain_handlers.get(m.lastgroup)) for m in gate.finditer(buf)]
        got = [(m.start(), m.end(), lp.KW_HANDLERS.get(m.lastgroup)) for m in lp.GATE_NL.finditer(buf)]
        assert got == want, path


_PJ_LINE = "{i}: {loss}, {avg} avg, 0.000010 rate, 1.176939 seconds, {img} images\r\n"
_AB_LINE = " {i}: {loss}, {avg} avg loss, 0.000500 rate, 1.859184 seconds, {img} images, {hl} hours left\r\n"
_HANK_FAST = ("\x1b]2;{i}/{mb}: loss=0.7 time=2.6 minutes\x07\x1b[1;37m{i}\x1b[0m: loss=\x1b[1;36m{loss}\x1b[0m, "
              "avg loss=\x1b[1;36m{avg}\x1b[0m, last=\x1b[0mnone\x1b[0m, best=\x1b[0mnone\x1b[0m, mAP={nm}, "
              "rate=0.00050000, load 16=10.2 milliseconds, train=921.8 {unit}, {img} images, "
              "time remaining={rem} minutes\r\n")
_HANK_OTHER = ("\x1b[1;37m{i}\x1b[0m\x1b[0m: loss={loss}, avg loss={avg}, last=none, best=none, mAP={nm}, "
               "rate=0.0005, load 16=10.2 milliseconds, train=1.5 seconds, {img} images\r\n")
_GOOD = ["0.682", "20.693", "7", "1e3", "0.000001"]
_NUMS = st.sampled_from(_GOOD * 6 + ["-nan", "nan", "inf", "-inf", "x1", "0.5.5", "1_0"])


@st.composite
def _iteration_block(draw) -> str:
    """A run of iteration lines, mostly of one kind (long queues for the bulk path), with rare odd fields."""
    main = draw(st.sampled_from(["pj", "ab", "hank", "hank2"]))
    lines = []
    for i in range(draw(st.integers(1, 40))):
        kind = main if draw(st.integers(0, 19)) else draw(st.sampled_from(["pj", "ab", "hank", "hank2"]))
        f = {"i": draw(st.integers(0, 10**6)), "loss": draw(_NUMS), "avg": draw(_NUMS),
             "img": draw(st.integers(0, 10**7)), "hl": draw(st.sampled_from(["0.1"] * 8 + ["-1.000000", "nan", "z"])),
             "mb": draw(st.sampled_from(["200"] * 8 + ["300"])),
             "nm": draw(st.sampled_from(["100"] * 8 + ["200", "DISABLED"])),
             "unit": draw(st.sampled_from(["milliseconds"] * 8 + ["seconds", "fortnights"])),
             "rem": draw(st.sampled_from(["2.6"] * 8 + ["unknown", "3"]))}
        lines.append({"pj": _PJ_LINE, "ab": _AB_LINE, "hank": _HANK_FAST, "hank2": _HANK_OTHER}[kind].format(**f))
    return "".join(lines)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(_iteration_block(), st.sampled_from(_FRAGMENTS), st.text(max_size=20)), max_size=8),
       st.integers(min_value=1, max_value=400))
def test_fuzz_bulk_columnar_and_per_row_paths_agree(parts: list[str], size: int) -> None:
    text = "".join(parts)
    slow = events_via(text, bulk=False)
    assert key(events_via(text, bulk=True)) == key(slow)
    chunks = [text[i:i + size] for i in range(0, len(text), size)]
    assert key(events_via(text, bulk=True, chunks=chunks)) == key(slow)
    assert_same_frames(parse_log(text), frames_of_events(slow))


def test_nextmap_after_queued_hank_row_keeps_line_order() -> None:
    # A hank-ai row (mAP=200) still queued when an AlexeyAB "(next mAP calculation at 100 ..)" line comes: the
    # bulk path had flushed the row before it (mAP=100: its gate specialisation flushes), so the stale "100" made
    # the next-mAP line look like no change; the queued row then said NextMapAt(200) last, and NextMapAt(100) of
    # the later line was lost (found by the fuzz test above).
    text = ("\x1b]2;0/200: loss=0.7 time=2.6 minutes\x07\x1b[1;37m0\x1b[0m: loss=\x1b[1;36m0.682\x1b[0m, "
            "avg loss=\x1b[1;36m0.682\x1b[0m, last=\x1b[0mnone\x1b[0m, best=\x1b[0mnone\x1b[0m, mAP=100, "
            "rate=0.00050000, load 16=10.2 milliseconds, train=921.8 milliseconds, 0 images, "
            "time remaining=2.6 minutes\r\n"
            "\x1b[1;37m0\x1b[0m\x1b[0m: loss=0.682, avg loss=0.682, last=none, best=none, mAP=200, rate=0.0005, "
            "load 16=10.2 milliseconds, train=1.5 seconds, 0 images\r\n"
            " (next mAP calculation at 100 iterations) \x1b[H\x1b[J100/200: loss=0.8 hours left=0.1\x07\r\n")
    slow = events_via(text, bulk=False)
    kinds = [type(e).__name__ + (f"({e.iteration})" if isinstance(e, NextMapAt) else "") for e in slow]
    # the second row repeats iteration 0: a later session (Resumed) as far as the parser can tell
    assert kinds == ["MaxBatches", "NextMapAt(100)", "Iteration", "NextMapAt(200)", "Resumed", "Iteration",
                     "NextMapAt(100)"]
    assert key(events_via(text, bulk=True)) == key(slow)
    for size in (1, 7, 64, 200):
        chunks = [text[i:i + size] for i in range(0, len(text), size)]
        assert key(events_via(text, bulk=True, chunks=chunks)) == key(slow)
        assert key(events_via(text, bulk=False, chunks=chunks)) == key(slow)
    # the same with a window title: a queued hank-ai row's max_batches (300) between two AlexeyAB titles (200);
    # the second title changes it back (the per-row path lost that MaxBatches(200))
    hank300 = text.split("\r\n")[0].replace("0/200: loss=0.7", "0/300: loss=0.7") + "\r\n"
    title = " \x1b[H\x1b[J100/200: loss=0.8 hours left=0.1\x07\r\n"
    t2 = " (next mAP calculation at 100 iterations)" + title + hank300 + title
    slow2 = events_via(t2, bulk=False)
    assert [e.n for e in slow2 if isinstance(e, MaxBatches)] == [200, 300, 200]
    assert isinstance(slow2[-1], MaxBatches) and isinstance(slow2[-2], Iteration)
    for size in (None, 1, 50):
        chunks = None if size is None else [t2[i:i + size] for i in range(0, len(t2), size)]
        assert key(events_via(t2, bulk=True, chunks=chunks)) == key(slow2)
        assert key(events_via(t2, bulk=False, chunks=chunks)) == key(slow2)


@pytest.mark.parametrize("before", [
    " 200: 0.601205, 0.709074 avg loss, 0.000500 rate, 1.893652 seconds, 1616 images, 0.100683 hours left\r",
    "Saving weights to /b/tiny_last.weights\r",
])
def test_prompt_after_other_text_on_its_line_keeps_the_order_however_split(before):
    # The prompt is reported early from a partial line only when it starts the line; glued after other text (a
    # pty's \r, or fuzzed input) it comes with its line, so the events never depend on how the bytes arrived.
    text = before + 'Type "yes" to begin training, or anything else to quit: yes\r\nnext line\r\n'
    whole = key(events_via(text, bulk=False))
    assert any(e.startswith("Prompt(") for e in whole)
    for bulk in (False, True):
        for size in (1, 5, len(before) + 20, len(text)):
            chunks = [text[i:i + size] for i in range(0, len(text), size)]
            assert key(events_via(text, bulk=bulk, chunks=chunks)) == whole


@pytest.mark.timeout(30)  # prompt parsing is instant
def test_prompt_that_starts_its_line_is_reported_before_the_answer():
    p = LogParser()
    events = p.feed('Are you certain?\r\n\r\n\x1b[1mType "yes" to begin training, or anything else to quit: ')
    assert [type(e).__name__ for e in events][-1] == "Prompt"


@pytest.mark.timeout(30)  # prompt parsing is instant
def test_a_stray_type_yes_is_not_the_prompt():
    # Found by the fuzz test: 'Type "yes"' glued before an AlexeyAB next-mAP line and a window title. Only hank-ai's
    # whole sentence is the prompt, however the bytes are split.
    text = ('Type "yes" (next mAP calculation at 100 iterations) \x1b[H\x1b[J100/200: loss=0.8 hours left=0.1\x07\r\n'
            ' 100: 0.755379, 0.721060 avg loss, 0.000500 rate, 1.859184 seconds, 1600 images, 0.101112 hours left\r\n')
    whole = key(events_via(text, bulk=False))
    assert not any(e.startswith("Prompt(") for e in whole)
    for bulk in (False, True):
        assert key(events_via(text, bulk=bulk, chunks=list(text))) == whole


# ---------------------------------------------------------------------------------------------- paths with spaces
# Google Drive mounts at "/content/drive/My Drive": every path the parser reads must keep its spaces. The lines are
# shaped as darknet prints them (AlexeyAB parser.c load_weights_upto / save_weights, pjreddie's "...Done!", hank-ai's
# quoted names, the fatal messages).
DRIVE = "/content/drive/My Drive/yolo run 1"


def test_a_conv_backbone_on_a_spaced_path_is_not_truncated_weights() -> None:
    text = (f"Loading weights from {DRIVE}/yolov4-tiny.conv.29...\n"
            " seen 64, trained: 0 K-images (0 Kilo-batches_64) \n"
            "Done! Loaded 29 layers from weights-file \n"
            " Detection layer: 30 - type = 28 \n"
            " Detection layer: 37 - type = 28 \n"
            " 1: 620.4, 620.4 avg loss, 0.000000 rate, 2.3 seconds, 64 images, 12.1 hours left\n")
    log = parse_log(text)
    assert list(log.problems["code"]) == []
    assert len(log.iterations) == 1


def test_a_truncated_full_weights_file_on_a_spaced_path_is_named_whole() -> None:
    text = (f"Loading weights from {DRIVE}/backup/yolov4-tiny_last.weights...\n"
            "Done! Loaded 2 layers from weights-file \n"
            " Detection layer: 30 - type = 28 \n")
    (p,) = LogParser().feed(text)
    assert p.problem.code == "truncated-weights" and p.problem.file == f"{DRIVE}/backup/yolov4-tiny_last.weights"


@pytest.mark.parametrize("load", [
    f"Loading weights from {DRIVE}/backup/tiny final.weights...Done!",  # pjreddie: one line
    f"Loading weights from {DRIVE}/backup/tiny final.weights...\n seen 64, trained: 12800 K-images (200 Kilo-batches_64) \nDone! Loaded 24 layers from weights-file ",
    f'Loading weights from "{DRIVE}/backup/tiny final.weights"...',  # hank-ai quotes the name
])
def test_already_trained_names_a_spaced_weights_file(load: str) -> None:
    text = load + f"\nSaving weights to {DRIVE}/backup/tiny_final.weights\n"
    log = parse_log(text)
    problem = log.problems[log.problems["code"] == "already-trained"].iloc[0]
    assert f"{DRIVE}/backup/tiny final.weights is already trained" in problem["message"]
    assert list(log.weights["path"]) == [f"{DRIVE}/backup/tiny_final.weights"]


@pytest.mark.parametrize("line,code,path", [
    (f"Couldn't open file: {DRIVE}/data/train.txt", "missing-file", f"{DRIVE}/data/train.txt"),
    (f"Couldn't open file: {DRIVE}/data/train.txt  ", "missing-file", f"{DRIVE}/data/train.txt"),
    (f'Cannot load image "{DRIVE}/obj/img 001.jpg"', "missing-file", f"{DRIVE}/obj/img 001.jpg"),
    (f"Cannot load image {DRIVE}/obj/img 001.jpg", "missing-file", f"{DRIVE}/obj/img 001.jpg"),
    (f'* Error message:  failed to open the file "{DRIVE}/cfg/yolo v4.cfg"', "missing-file", f"{DRIVE}/cfg/yolo v4.cfg"),
    (f'* Error message:  failed to open annotation file "{DRIVE}/obj/img 001.txt"', "missing-file",
     f"{DRIVE}/obj/img 001.txt"),
    (f'WARNING: file {DRIVE}/data/valid.txt does not seem to exist ("valid=...") in obj.data', "missing-file",
     f"{DRIVE}/data/valid.txt"),
])
def test_missing_paths_keep_their_spaces(line: str, code: str, path: str) -> None:
    for ending in ("\n", "\r\n"):
        events = LogParser().feed(line + ending)
        (p,) = [e.problem for e in events if isinstance(e, ProblemFound)]
        assert (p.code, p.file) == (code, path)


def test_saving_weights_keeps_spaces_and_colours() -> None:
    text = (f"Saving weights to {DRIVE}/backup/tiny_last.weights\n"
            f"Saving weights to \x1b[1;35m{DRIVE}/backup/tiny_best.weights\x1b[0m\n")
    assert [e.path for e in LogParser().feed(text) if isinstance(e, WeightsSaved)] == [
        f"{DRIVE}/backup/tiny_last.weights", f"{DRIVE}/backup/tiny_best.weights"]


# ---------------------------------------------------------------------------------------------- robustness
_BIG = "9" * 10_000


@pytest.mark.parametrize("line", [
    f"{_BIG}: 1.0, 1.0 avg loss, 0.1 rate, 1.0 seconds, 64 images, 0.1 hours left",
    f" 5: 1.0, 1.0 avg loss, 0.1 rate, 1.0 seconds, {_BIG} images, 0.1 hours left",
    f" (next mAP calculation at {_BIG} iterations) ",
    f"Last accuracy mAP@0.50 = {_BIG} %, best = 1.00 % ",
    f"\x1b]2;1/{_BIG}: loss=1\x07\x1b[1;37m{_BIG}\x1b[0m: loss=\x1b[1;36m1\x1b[0m, avg loss=\x1b[1;36m1\x1b[0m, "
    f"last=\x1b[0mnone\x1b[0m, best=\x1b[0mnone\x1b[0m, mAP={_BIG}, rate=0.0005, load 16=10.2 milliseconds, "
    "train=921.8 milliseconds, 6 images, time remaining=2.6 minutes",
    f"{_BIG}/{_BIG}: loss=1",
    f"Training iteration has reached max batch limit of {_BIG}",
    f"class_id = {_BIG}, name = x, ap = 1.00 %   \t (TP = {_BIG}, FP = 0) ",
    f"Done! Loaded {_BIG} layers from weights-file",
])
def test_a_10000_digit_number_never_raises(line: str) -> None:
    text = " 1: 1.0, 1.0 avg loss, 0.1 rate, 1.0 seconds, 64 images, 0.1 hours left\n" + line + "\n"
    for bulk in (True, False):
        p = LogParser()
        p.bulk = bulk
        p.feed(text)
        p.close()
    log = parse_log(text)
    assert log.iterations["iteration"].iloc[0] == 1  # the number that fits is read; the huge one is no iteration


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=4000))
def test_random_bytes_are_not_diagnosed(raw: bytes) -> None:
    from darknet_magics.output.judge import diagnose

    codes = [p.code for p in diagnose(raw)]
    assert "interrupted" not in codes or any(w in raw for w in (b"^C", b"signal #2", b"(Interrupt)"))
    assert "unsupported-command" not in codes or not raw.strip()


def _peak(source) -> tuple[int, int]:
    """(peak bytes traced while parse_log reads `source`, rows in its frames)."""
    import tracemalloc

    tracemalloc.start()
    try:
        log = parse_log(source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return peak, sum(len(getattr(log, k)) for k in ("iterations", "maps", "class_ap", "weights", "problems"))


@pytest.mark.once  # the parser's own memory on a log with no rows (empty frames): no IPython/plotly, pandas idle
@pytest.mark.timeout(120)
@pytest.mark.parametrize("unit", [
    b"\x1b[1;31m\x1b[0m\x1b]2;title\x07",  # escapes, no line end at all
    b"\x1b[1;31m\r\x1b[0mCUDA\r",  # lone \r progress with a keyword after each
    b"\x1b[1;31m\x1b[0m\n",  # escape-only lines
], ids=["no-newline", "lone-cr", "lines"])
def test_memory_of_escape_floods_is_bounded(tmp_path: Path, unit: bytes) -> None:
    path = tmp_path / "flood.log"
    path.write_bytes(unit * ((9 << 20) // len(unit)))  # 9 MB: three of the parser's 4 MiB scans
    peak, rows = _peak(path)
    assert rows == 0
    assert peak < 40 << 20, f"{peak / 2**20:.0f} MiB for a 9 MB log"  # a few scans' worth, not the input's 55x


@pytest.mark.timeout(120)
def test_memory_grows_with_the_rows_not_the_text(tmp_path: Path) -> None:
    # a long run of AlexeyAB: each iteration line followed by three v3 lines (no event), 12 MB
    region = ("v3 (iou loss, Normalizer: (iou: 0.07, obj: 1.00, cls: 1.00) Region 16 Avg (IOU: 0.312405), count: 4, "
              "class_loss = 1.2, iou_loss = 0.5, total_loss = 1.7 \r\n")
    lines = [f" {i}: 2.1, 2.2 avg loss, 0.001000 rate, 1.2 seconds, {i * 64} images, 1.1 hours left\r\n" + region * 3
             for i in range(1, 30_001)]
    path = tmp_path / "long.log"
    path.write_text("".join(lines))
    peak, rows = _peak(path)
    assert rows == 30_000
    # the history's columns (7 Python objects a row, ~0.3 KB) and the frame; bounded by the scan, not the file
    assert peak < rows * 1200 + (24 << 20), f"{peak / 2**20:.0f} MiB for {rows} rows of a {path.stat().st_size >> 20} MB log"


@pytest.mark.parametrize("line", [
    "  1234:  2.860175,  3.180630 avg loss, 0.001000 rate, 2.646987 seconds, 78976 images, 1.2 hours left   ",
    "1234:\t2.860175, 3.180630 avg loss,\t0.001000 rate, 2.646987 seconds, 78976 images, 1.2 hours left",
    " 1234: 2.860175, 3.180630  avg loss, 0.001000  rate, 2.646987 seconds, 78976  images, 1.2  hours left",
    "1234:  2.860175, 3.180630 avg, 0.001000 rate, 2.646987 seconds, 78976 images",  # pjreddie
])
def test_an_iteration_line_re_spaced_by_a_paste_is_read(line: str) -> None:
    for ending in ("\n", "\r\n"):
        its = parse_log("Loaded: 0.000021 seconds\n" + line + ending).iterations
        assert list(its["iteration"]) == [1234]
        assert its["avg_loss"].iloc[0] == 3.180630 and its["images"].iloc[0] == 78976


# ---------------------------------------------------------------------------------------------- the whole-log reader
def plain_text(text: str) -> str:
    """A pty capture as a user's ``tee``'d file holds it: no escapes, no \\r (this file's own escape pattern)."""
    return re.sub(r"\x1b\][^\x07\n]*(?:\x07|\x1b\\)?|\x1b\[[0-9;?]*[A-Za-z]", "", text).replace("\r\n", "\n").replace(
        "\r", "\n")


def frames_equal(a, b) -> None:
    for name in ("iterations", "maps", "class_ap", "weights"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.equals(y), (name, x.compare(y) if x.shape == y.shape else (x.shape, y.shape))
    assert list(a.problems["code"]) == list(b.problems["code"])


TRAINING_LOGS = [p for p in ALL_LOGS if p.name.startswith(("train", "resume", "sigint")) and ".pty." in p.name]


@pytest.mark.parametrize("path", TRAINING_LOGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_plain_text_log_reads_as_its_pty_capture(path: Path) -> None:
    pty = text_of(path)
    plain = plain_text(pty)
    assert "\r" not in plain and "\x1b" not in plain
    a, b = parse_log(pty), parse_log(plain)
    assert len(a.iterations) == expected_counts(pty)["iterations"] > 0
    frames_equal(a, b)
    assert a.flavor == b.flavor


def test_read_log_reads_a_path_its_text_bytes_and_lines_alike(tmp_path: Path) -> None:
    from darknet_magics.output.logs import read_log

    path = LOGS / "alexeyab" / "train-map-noise.pty.log"
    raw = path.read_bytes()
    whole = read_log(path)
    assert whole.flavor == "alexeyab" and whole.last_iteration == int(whole.history.iterations["iteration"].iloc[-1])
    for other in (read_log(str(path)), read_log(raw), read_log(raw.decode("utf-8", errors="replace")),
                  read_log(raw.decode("utf-8", errors="replace").splitlines())):
        frames_equal(whole.frames(), other.frames())
        assert other.last_iteration == whole.last_iteration


def test_read_log_reads_one_session_of_a_log_by_its_byte_range(tmp_path: Path) -> None:
    from darknet_magics.output.logs import read_log

    first = (LOGS / "alexeyab" / "train-map-noise.pty.log").read_bytes()
    second = (LOGS / "alexeyab" / "resume.pty.log").read_bytes()
    log = tmp_path / "train.log"
    log.write_bytes(first + second)  # a resumed run appends its session to the log
    one = read_log(log, start=0, stop=len(first))
    two = read_log(log, start=len(first))
    frames_equal(one.frames(), read_log(first).frames())
    frames_equal(two.frames(), read_log(second).frames())
    # read whole, the second session supersedes the first's rows from its first iteration on
    whole = read_log(log).history.iterations["iteration"]
    start = int(two.history.iterations["iteration"].iloc[0])
    assert list(whole) == [i for i in one.history.iterations["iteration"] if i < start] + list(
        two.history.iterations["iteration"])


@pytest.mark.parametrize("kind,name,kwargs,words", [
    ("str", "runs/train.log", {}, "no darknet log at"),  # a path that is not there: never parsed as text
    ("path", "", {}, "a log file, not a folder"),
    ("path", "t.log", {"start": 5, "stop": 2}, "no byte range"),
    ("path", "t.log", {"start": -1}, "no byte range"),
    ("text", "1: 2.0, 3.0 avg, 0.1 rate, 1.0 seconds, 64 images\n", {"start": 3}, "only be read from a log file"),
])
def test_read_log_refuses_what_is_no_log_with_our_error(tmp_path: Path, kind: str, name: str, kwargs: dict,
                                                        words: str) -> None:
    from darknet_magics.errors import DarknetMagicsError
    from darknet_magics.output.logs import read_log

    (tmp_path / "t.log").write_bytes(b"1: 2.0, 3.0 avg, 0.1 rate, 1.0 seconds, 64 images\n")
    source = {"str": str(tmp_path / name), "path": tmp_path / name, "text": name}[kind]
    with pytest.raises(DarknetMagicsError, match=words) as e:
        read_log(source, **kwargs)
    assert e.value.fix


@pytest.mark.parametrize("buf,want", [
    ("abc\ndef", 3),  # a newline
    ("abc\r\ndef", 3),  # a \r\n ends at its \r
    ("abc\rdef\n", 3),  # a lone \r (progress overwritten on the same line)
    ("abc\r\r\rdef", 5),  # a run of \r ends at its last one
    ("abc\r\r\ndef", 4),  # ... and before the \n of a \r\n
    ("abcdef", 6),  # none: the end
])
def test_segment_end_stops_at_the_first_separator(buf: str, want: int) -> None:
    from darknet_magics.output.patterns import segment_end

    assert segment_end(buf, 0, len(buf)) == want
    assert segment_end(buf, 1, len(buf)) == want  # from inside the segment


@pytest.mark.timeout(60)
def test_a_plain_text_log_costs_what_its_pty_capture_costs() -> None:
    """A log with no \\r at all once searched the whole buffer for one per segment (quadratic in the buffer): the
    same lines as plain text cost 1.9x the pty capture then, 0.9x now (CPU time, best of 3; escapes are gone)."""
    import time

    pty = text_of(LOGS / "alexeyab" / "resume.pty.log") * 60  # ~46,000 lines, two 1 MiB slices
    plain = plain_text(pty)

    def cost(text: str) -> float:
        best = float("inf")
        for _ in range(3):
            start = time.process_time()
            parse_log(text)
            best = min(best, time.process_time() - start)
        return best

    assert cost(plain) < 1.3 * cost(pty)
