"""The parser and the diagnosis against darknet output that users really saw: what they pasted into public issue
threads (tests/fixtures/real-logs, with each thread's URL in index.tsv) and every GPU-path message of darknet's
own sources (tests/fixtures/gpu-messages.tsv).

The rules, for every log (a further set of real logs that is not in the repository must pass them too, so the
parser and the line rules are fixed at the rule, never for a file):

* a healthy run (``healthy-training``, ``finished``) shows no error-level problem;
* a failure's FIRST problem is the thread's verdict (mapped to our codes in VERDICT_CODES);
* the last iteration, avg loss and mAP are what the log printed (index.tsv's ``last_*`` columns).

Verdicts that only the exit status can tell (``segfault``, ``killed``: a pasted log often ends before the shell's
"Segmentation fault" line) are judged with the signal a live run has (11, 9), as `%yolo train` does. A hang
(``hang-no-output``) is only knowable from the clock: darknet prints nothing more, and the runner's watchdog ends
it; no code is asserted for it, nor for ``unknown`` and unmapped ``other:*`` verdicts.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from darknet_magics import parse_log
from darknet_magics.output.diagnose import LineDiagnoser
from darknet_magics.output.judge import diagnose
from darknet_magics.output.problems import CODES

FIXTURES = Path(__file__).resolve().parent / "fixtures"
REAL = FIXTURES / "real-logs"
pytestmark = pytest.mark.timeout(60)

# verdict (before any ":WHICH") -> the code the first problem must have
VERDICT_CODES = {
    "cuda-oom": "cuda-oom", "cudnn-error": "cudnn-error", "no-kernel-image": "no-kernel-image",
    "filters-mismatch": "filters-mismatch", "missing-file": "missing-file", "bad-label": "bad-label",
    "nan-loss": "nan-loss", "killed": "killed", "segfault": "segfault", "opencv-missing": "opencv-missing",
    # the "other:SHORT" verdicts seen so far; an unknown one gets no code assertion
    "other:driver-insufficient": "cuda-driver", "other:bad-weights-file": "truncated-weights",
    "other:loss-explosion-crash": "fatal-error", "other:opencv-image": "opencv-image",
}
HEALTHY = {"healthy-training", "finished", "other:healthy-inference", "other:one-class-ap-zero"}
EXIT_SIGNAL = {"segfault": 11, "killed": 9}


def _cases() -> list[dict[str, str]]:
    with open(REAL / "index.tsv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


CASES = _cases()


def _raw(case: dict[str, str]) -> bytes:
    return (REAL / "cases" / f"{case['id']}.log").read_bytes()


def _verdict_code(verdict: str) -> str | None:
    return VERDICT_CODES.get(verdict) or VERDICT_CODES.get(verdict.split(":", 1)[0] if not
                                                            verdict.startswith("other:") else verdict)


def test_the_index_lists_every_case_with_its_thread() -> None:
    files = {p.stem for p in (REAL / "cases").glob("*.log")}
    assert files == {c["id"] for c in CASES} and len(CASES) >= 40
    assert all(c["url"].startswith("https://github.com/") for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[f"{c['id']}-{c['verdict']}" for c in CASES])
def test_verdict(case: dict[str, str]) -> None:
    verdict = case["verdict"]
    signal = EXIT_SIGNAL.get(verdict)
    problems = diagnose(_raw(case), signal=signal)
    codes = [p.code for p in problems]
    assert all(c in CODES for c in codes)
    for p in problems:
        assert p.message and p.fix, p
    if verdict in HEALTHY:
        assert [p for p in problems if p.severity == "error"] == [], (case["url"], codes)
        return
    want = _verdict_code(verdict)
    if want is None:  # unknown, hang-no-output, an unmapped other:*: nothing to assert about the code
        return
    assert codes and codes[0] == want, (case["url"], case["evidence"], codes)


def _same(printed: str, value: float) -> bool:
    """A number as the log printed it (``-nan``, ``57.07 %``, ``0.250378``) against the parsed value."""
    text = printed.strip()
    percent = text.endswith("%")
    want = float(text.rstrip("% ").strip()) if "nan" not in text else math.nan
    if percent:
        want /= 100.0
    if math.isnan(want):
        return math.isnan(value)
    return math.isclose(value, want, rel_tol=1e-6, abs_tol=1e-6 if not percent else 5e-5)


@pytest.mark.parametrize("case", CASES, ids=[f"{c['id']}" for c in CASES])
def test_last_values_are_what_the_log_printed(case: dict[str, str]) -> None:
    log = parse_log(_raw(case).decode("utf-8", "replace"))
    its = log.iterations
    if case["last_iter"]:
        assert len(its) and int(its["iteration"].iloc[-1]) == int(case["last_iter"])
    else:
        assert len(its) == 0, its.tail()
    if case["last_avg_loss"]:
        assert _same(case["last_avg_loss"], float(its["avg_loss"].iloc[-1]))
    if case["last_map"]:
        assert len(log.maps), "no mAP parsed"
        assert _same(case["last_map"], float(log.maps["map50"].iloc[-1])), log.maps.tail()
    else:
        assert len(log.maps) == 0


def _gpu_messages() -> list[tuple[str, str, str]]:
    with open(FIXTURES / "gpu-messages.tsv", encoding="utf-8", newline="") as f:
        return [(r["line"], r["expected"], r["source"]) for r in csv.DictReader(f, delimiter="\t")]


GPU = _gpu_messages()


@pytest.mark.parametrize("line,expected,source", GPU, ids=[f"{i:02d}" for i in range(len(GPU))])
def test_gpu_message(line: str, expected: str, source: str) -> None:
    """Each line of darknet's GPU paths, alone and in a healthy run: only real failures flagged, each with its
    own code (and never the startup report that every GPU run prints)."""
    d = LineDiagnoser()
    p = d.line(line.strip())
    assert (p.code if p is not None else "none") == expected, source
    healthy = (" 1: 620.4, 620.4 avg loss, 0.000000 rate, 2.3 seconds, 64 images, 12.1 hours left\n" + line + "\n"
               " 2: 610.1, 619.4 avg loss, 0.000000 rate, 2.2 seconds, 128 images, 12.0 hours left\n")
    got = [q.code for q in diagnose(healthy)]
    assert got == ([] if expected == "none" else [expected]), source


def test_gpu_messages_cover_every_gpu_code() -> None:
    codes = {e for _, e, _ in GPU}
    assert {"cuda-oom", "cudnn-error", "cuda-error", "no-kernel-image", "cuda-driver", "no-gpu", "segfault",
            "none"} <= codes


def test_oom_leads_the_cudnn_noise_it_causes() -> None:
    # AlexeyAB on a GPU that ran out of memory: the startup report, then the failure and darknet's own follow-ups
    text = (" CUDA-version: 12020 (12020), cuDNN: 8.9.6, CUDNN_HALF=1, GPU count: 1  \n"
            " 0 : compute_capability = 750, cudnn_half = 1, GPU: Tesla T4 \n"
            " cuDNN status Error in: file: ./src/convolutional_layer.c : () : line: 275 \n"
            " cuDNN Error: CUDNN_STATUS_EXECUTION_FAILED\n"
            "CUDA status Error: file: ./src/dark_cuda.c: func: cuda_make_array() line: 492\n"
            " CUDA Error: out of memory\n"
            "Darknet error location: ./src/dark_cuda.c, check_error, line #69\n"
            "CUDA Error: out of memory: Resource temporarily unavailable\n")
    problems = diagnose(text, returncode=1)
    assert [p.code for p in problems] == ["cuda-oom", "cudnn-error"]
    assert "subdivisions" in problems[0].fix


def test_a_location_line_that_no_message_followed_is_that_librarys_failure() -> None:
    cut = " cuDNN status Error in: file: ./src/convolutional_layer.c : () : line: 275\n"
    assert [p.code for p in diagnose(cut, returncode=1)] == ["cudnn-error"]
    assert [p.code for p in diagnose("CUDA status Error: file: ./src/dark_cuda.c: func: f() line: 1\n",
                                     returncode=1)] == ["cuda-error"]


def test_loader_errors_name_the_library() -> None:
    (p,) = diagnose("/content/darknet/darknet: error while loading shared libraries: libcudnn.so.8: cannot open "
                    "shared object file: No such file or directory\n", returncode=127)
    assert p.code == "missing-library" and p.file == "libcudnn.so.8"
    (q,) = diagnose("./darknet: error while loading shared libraries: libopencv_core.so.406: cannot open shared "
                    "object file: No such file or directory\n", returncode=127)
    assert q.code == "opencv-missing" and "libopencv_core.so.406" in q.message


def test_shell_job_lines() -> None:
    seg = "/bin/bash: line 1:  4242 Segmentation fault      (core dumped) ./darknet detector train obj.data\n"
    assert [p.code for p in diagnose(seg)] == ["segfault"]
    killed = "bash: line 1:  4242 Killed                  ./darknet detector train obj.data\n"
    assert [p.code for p in diagnose(killed)] == ["killed"]


@pytest.mark.parametrize("case_id, signal", [("191", 6), ("191", None), ("192", 6)])
def test_cuda_oom_glued_to_a_layer_index_is_out_of_memory(case_id: str, signal) -> None:
    """issue 19: pjreddie prints the layer's index, then builds it, so the CUDA error shares its line ("    0 CUDA
    Error: out of memory"); it was read as the generic assertion after it. At layer 0 the GPU was full before the
    network: the fix is to free it, not to raise subdivisions."""
    case = next(c for c in CASES if c["id"] == case_id)
    problems = diagnose(_raw(case), signal=signal)
    assert problems[0].code == "cuda-oom" and [p.code for p in problems].count("fatal-error") == 0
    if case_id == "191":
        assert "first layer" in problems[0].message and "nvidia-smi" in problems[0].fix
    else:
        assert "layer 29" in problems[0].message and "subdivisions" in problems[0].fix


@pytest.mark.parametrize("case_id", ["193", "194"])
def test_a_segfault_after_an_opencv_exception_names_the_image_cause(case_id: str) -> None:
    """issue 19: AlexeyAB's ``OpenCV exception: load_image_mat_cv`` before a segfault is the cause (an image
    OpenCV cannot read), said first; the segfault is its consequence and is not a second headline."""
    case = next(c for c in CASES if c["id"] == case_id)
    problems = diagnose(_raw(case), signal=11)
    assert [p.code for p in problems] == ["opencv-image"]
    assert "%yolo check" in problems[0].fix
