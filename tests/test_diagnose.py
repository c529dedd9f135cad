"""diagnose() over every failure log of the three flavors, judged with the exit status the capture recorded."""
from __future__ import annotations

from pathlib import Path

import pytest

from darknet_magics.output.diagnose import CODES, LineDiagnoser
from darknet_magics.output.judge import diagnose
from darknet_magics.output.logparse import LogParser, ProblemFound

LOGS = Path(__file__).resolve().parent / "fixtures" / "darknet-logs"

# obj-space.data's paths as written (README: '/content/work/ds with space/...'); darknet strips the spaces
SPACE_DATA = ["/content/work/ds with space/train.txt", "/content/work/ds with space/valid.txt"]

# (flavor/run, expected codes of the pty capture, expected codes of the pipe capture (stdout + stderr) or None)
CASES = [
    ("pjreddie/fail-data-classes-mismatch", ["killed"], ["killed"]),  # trains without error, killed at 30 s
    ("pjreddie/fail-missing-cfg", ["missing-file"], ["missing-file"]),  # exit status 0!
    ("pjreddie/fail-missing-train-txt", ["missing-file"], ["missing-file"]),
    ("pjreddie/fail-space-in-path", ["space-in-path"], ["space-in-path"]),
    ("pjreddie/fail-truncated-weights", ["already-trained"], ["already-trained"]),
    ("pjreddie/fail-wrong-filters", ["filters-mismatch"], ["filters-mismatch"]),
    ("pjreddie/map-unsupported", ["unsupported-command"], ["unsupported-command"]),
    ("pjreddie/recall", ["missing-file"], ["missing-file"]),
    ("pjreddie/sigint-train", ["interrupted"], None),
    ("pjreddie/test-one-image", ["no-display"], ["no-display"]),
    ("pjreddie/valid-no-results-dir-segfault", ["segfault"], ["segfault"]),
    ("pjreddie/train", [], []),
    ("alexeyab/fail-data-classes-mismatch", ["killed"], ["killed"]),
    ("alexeyab/fail-missing-cfg", ["missing-file"], ["missing-file"]),
    ("alexeyab/fail-missing-train-txt", ["missing-file"], ["missing-file"]),
    ("alexeyab/fail-space-in-path", ["space-in-path"], ["space-in-path"]),
    # the cause first: errors before warnings (problems.ordered), so the SIGKILL leads the truncated-weights warning
    ("alexeyab/fail-truncated-weights", ["killed", "truncated-weights"], ["killed"]),
    ("alexeyab/fail-truncated-weights-map", ["truncated-weights"], None),
    ("alexeyab/fail-wrong-filters", ["filters-mismatch"], ["filters-mismatch"]),
    ("alexeyab/sigint-train", ["interrupted"], None),
    ("alexeyab/train-diverged-nan-lr0.00261", ["nan-loss", "killed"], ["nan-loss", "killed"]),
    ("alexeyab/train-killed-by-timeout", ["killed"], None),
    ("alexeyab/train-map-nan", [], ["nan-loss", "crash-on-exit"]),  # the pipe copy diverged, then double free
    ("alexeyab/train-map-noise", [], None),
    ("alexeyab/resume", [], []),
    ("hank-ai/fail-data-classes-mismatch", ["killed"], ["killed"]),
    ("hank-ai/fail-missing-cfg", ["segfault"], ["segfault"]),  # hank-ai segfaults on a missing cfg
    ("hank-ai/fail-missing-train-txt", ["missing-file"], ["missing-file"]),
    ("hank-ai/fail-space-in-path", ["killed"], ["nan-loss", "killed"]),  # hank-ai copes with spaces
    ("hank-ai/fail-truncated-weights", ["truncated-weights"], ["truncated-weights"]),
    ("hank-ai/fail-truncated-weights-map", ["truncated-weights"], None),
    ("hank-ai/fail-wrong-filters", ["filters-mismatch"], ["filters-mismatch"]),
    ("hank-ai/sigint-train", ["interrupted"], None),
    ("hank-ai/train-map", ["nan-loss", "killed", "crash-on-exit"], ["nan-loss", "killed", "crash-on-exit"]),
    ("hank-ai/train-map-noise", [], ["nan-loss", "killed", "crash-on-exit"]),
    ("hank-ai/train-noise-nomap", [], None),
]


def _meta(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        k, _, v = line.partition(": ")
        out[k] = v
    return out


def _int(v: str | None) -> int | None:
    return None if v in (None, "None", "") else int(v)


def _data_paths(run: str) -> list[str] | None:
    return SPACE_DATA if run.endswith("fail-space-in-path") else None


@pytest.mark.parametrize("run,pty_codes,pipe_codes", CASES, ids=[c[0] for c in CASES])
def test_failure_logs_are_diagnosed(run: str, pty_codes: list[str], pipe_codes: list[str] | None) -> None:
    base = LOGS / run
    meta = _meta(base.with_name(base.name + ".pty.meta"))
    problems = diagnose(base.with_name(base.name + ".pty.log").read_bytes(), returncode=_int(meta["exitstatus"]),
                        signal=_int(meta["signalstatus"]), data_paths=_data_paths(run))
    assert [p.code for p in problems] == pty_codes
    for p in problems:
        assert p.code in CODES and p.message and p.fix
    if pipe_codes is not None:
        pmeta = _meta(base.with_name(base.name + ".pipe.meta"))
        text = (base.with_name(base.name + ".stdout.log").read_bytes()
                + base.with_name(base.name + ".stderr.log").read_bytes())
        got = diagnose(text, returncode=int(pmeta["returncode"]), data_paths=_data_paths(run))
        assert [p.code for p in got] == pipe_codes


def test_every_failure_log_is_in_the_table() -> None:
    runs = {f"{p.parent.name}/{p.name[:-len('.pty.log')]}" for p in LOGS.glob("*/fail-*.pty.log")}
    assert runs <= {c[0] for c in CASES}


def test_missing_file_names_the_file() -> None:
    (p,) = diagnose((LOGS / "pjreddie" / "fail-missing-train-txt.pty.log").read_bytes(), returncode=0)
    assert p.file == "/content/work/runs/pj/fail/does-not-exist/train.txt"
    assert "does-not-exist/train.txt" in p.message
    (h,) = diagnose((LOGS / "hank-ai" / "fail-missing-train-txt.pty.log").read_bytes(), signal=6)
    assert h.file == "/content/work/runs/hank/fail/does-not-exist/train.txt"  # the warning and the banner: one


def test_space_in_path_found_on_disk(tmp_path: Path) -> None:
    (tmp_path / "ds with space").mkdir()
    (tmp_path / "ds with space" / "train.txt").write_text("")
    stripped = str(tmp_path / "dswithspace" / "train.txt")
    (p,) = diagnose(f"Couldn't open file: {stripped}\n", returncode=0)
    assert p.code == "space-in-path" and "ds with space" in p.message and "symlink" in p.fix


def test_filters_fix_says_how_many() -> None:
    (p,) = diagnose((LOGS / "alexeyab" / "fail-wrong-filters.pty.log").read_bytes(), returncode=1)
    assert "(classes + 5) * masks" in p.fix
    assert "Darknet error location" in p.evidence  # the location line travels with the message


def test_crash_after_finish_is_a_warning_with_the_honest_message() -> None:
    problems = diagnose((LOGS / "hank-ai" / "train-map.pty.log").read_bytes())
    crash = next(p for p in problems if p.code == "crash-on-exit")
    assert crash.severity == "warning" and crash.message.startswith("finished, darknet crashed on exit")
    nan = next(p for p in problems if p.code == "nan-loss")
    assert nan.severity == "error" and nan.iteration is not None


def test_gpu_errors_from_alexeyab_and_hank_lines() -> None:
    cases = {
        "CUDA Error: out of memory\n": "cuda-oom",
        " Try to set subdivisions=64 in your cfg-file. \n": "cuda-oom",
        "cuDNN status Error in: file: ./src/convolutional_layer.c : () : line: 275\n": "cudnn-error",
        "Error: CUDNN_STATUS_BAD_PARAM\n": "cudnn-error",
        "CUDA Error: no kernel image is available for execution on the device\n": "no-kernel-image",
        "* Error message:  CUDA out of memory while allocating 1.2 GiB\n": "cuda-oom",
        "qt.qpa.xcb: could not connect to display \n": "no-display",
    }
    for line, code in cases.items():
        assert [p.code for p in diagnose(line, returncode=1)] == [code], line
    oom = diagnose("CUDA Error: out of memory\n", returncode=1)[0]
    assert "subdivisions" in oom.fix


def test_heap_error_before_the_end_is_fatal() -> None:
    (p,) = diagnose(" 5: 1.0, 1.0 avg loss, 0.0 rate, 1.0 seconds, 8 images, 0.1 hours left\n"
                    "double free or corruption (out)\n", returncode=-6)
    assert p.code == "fatal-error"


def test_streaming_problems_come_from_the_parser() -> None:
    parser = LogParser()
    events = parser.feed("tiny\r\nlayer     filters    size              input                output\r\n"
                         "Couldn't open file: missing.cfg\r\n")
    assert [e.problem.code for e in events if isinstance(e, ProblemFound)] == ["missing-file"]
    assert parser.flavor == "pjreddie"


def test_line_diagnoser_reports_each_problem_once() -> None:
    d = LineDiagnoser()
    p = d.line("Couldn't open file: a.txt")
    assert p is not None and d.first_time(p) and not d.first_time(d.line("Couldn't open file: a.txt"))
    assert d.line("Loaded: 0.000106 seconds") is None


def test_already_trained_names_the_weights_file_without_darknets_dots():
    # pjreddie prints "Loading weights from truncated.weights...Done!" on one line
    from darknet_magics import parse_log

    log = parse_log(LOGS / "pjreddie" /
                    "fail-truncated-weights.pty.log")
    problem = log.problems[log.problems["code"] == "already-trained"].iloc[0]
    assert "truncated.weights is already trained" in problem["message"] and "Done" not in problem["message"]
