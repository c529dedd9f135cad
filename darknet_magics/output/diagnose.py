"""Darknet output lines -> `Problem`s: a table of rules, one line at a time. Pure apart from an optional look at
the filesystem (space-in-path).

darknet's exit status lies (pjreddie exits 0 after ``Couldn't open file``; AlexeyAB and hank-ai abort with a glibc
heap error after a finished run), so a run is judged by what it printed. The codes, their severities and their
fixes are in `darknet_magics.output.problems` (each built there, in one place); the whole-output judge, which adds the exit
status, is `darknet_magics.output.judge.diagnose`.

The rules were written from darknet's own sources (AlexeyAB ``src/dark_cuda.c``: ``check_error``,
``check_error_extended``, ``cudnn_check_error_extended``, ``show_cuda_cudnn_info``; hank-ai
``src-lib/dark_cuda.cpp``, ``darknet_fatal_error``) and from real users' logs (tests/fixtures/real-logs). What is
*not* a problem matters as much: every GPU run prints ``CUDA-version: 12020 (12020), cuDNN: 8.9.6, CUDNN_HALF=1``
or hank-ai's ``cuDNN version 12050 (v9.2.0), use of half-size floats is ENABLED``; a rule matches a failure's own
words (``cuDNN Error:``, ``CUDNN_STATUS_BAD_PARAM``), never a library's name.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
try:  # the regex parser (its module moved in Python 3.11): only to read the rules' first characters
    from re import _constants as _sre_constants, _parser as _sre_parse
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants as _sre_constants  # type: ignore[no-redef]
    import sre_parse as _sre_parse  # type: ignore[no-redef]
from typing import Callable, Iterable, NamedTuple, Optional

from . import problems as P
from ..errors import Problem
from .problems import CODES

__all__ = ["LineDiagnoser", "TRIGGERS", "TRIGGER_PATTERNS", "RULES", "CODES", "Rule"]

# Literal starts of the lines that may carry a problem (after spaces, escapes, "* " or "-> "). The LogParser's gate
# regex matches only these (and TRIGGER_PATTERNS), so a line that is not listed here is never looked at while
# streaming.
TRIGGERS: tuple[str, ...] = (
    "Couldn't open file", "WARNING: file ", "Warning: ", "darknet: ", "Darknet error location", "Error: ",
    "Error message:", "Error location:", "CUDA", "cuDNN", "CUDNN", "cudaMalloc", "cuBLAS Error", "Try to set subdivisions",
    "double free", "free(): ", "munmap_chunk", "malloc(): ", "corrupted ", "*** Error in", "*** buffer overflow",
    "*** stack smashing", "qt.qpa.xcb", "(darknet", "^C", "Segmentation fault", "Killed", "terminate called",
    "Floating point exception", "Aborted", "Wrong annotation", "Cannot load image", "calling Darknet's fatal error",
    "failed to set the GPU", "=> no CUDA", "OpenCV exception: load_image_mat_cv",
    " Error in load_data_detection() - OpenCV",
)
# Regex starts (each begins with a plain character, as the gate's factoring needs) for lines whose first word is
# a path or a shell's prefix: the loader's "./darknet: error while loading shared libraries: ..." and the shell's
# "/bin/bash: line 1:  1234 Segmentation fault (core dumped)  ./darknet ...".
TRIGGER_PATTERNS: tuple[str, ...] = (
    r"\./[^\n\r:]*: error while loading shared libraries",
    r"/[^\n\r:]*: error while loading shared libraries",
    r"/bin/(?:ba|z|)sh: line \d+: ",
    r"bash: line \d+: ",
    # pjreddie prints a layer's index, then builds it: a CUDA failure there lands on the same line ("    0 CUDA
    # Error: out of memory", pjreddie#499)
    r"\d+ CUDA Error",
)

_HEAP = re.compile(r"double free|free\(\): |munmap_chunk|malloc\(\): |corrupted (?:size|double-linked)|\*\*\* Error in")
_SHELL = re.compile(r"^(?:/bin/)?(?:ba|z|)sh: (?:line )?\d+: +(?:\d+ +)?")
_PATH_END = re.compile(r"""^["']?(.*?)["']?\s*$""")


class Rule(NamedTuple):
    """One line rule: where `pattern` matches (``search`` on the escape-free, stripped line), `build` makes the
    problem (or None: the line is known and is not one, e.g. a location line held for the next)."""

    pattern: re.Pattern
    build: Callable[["LineDiagnoser", re.Match, str, Optional[int]], Optional[Problem]]


def _path(text: str) -> str:
    """A path as darknet printed it after its keyword: spaces kept, quotes and trailing blanks dropped."""
    m = _PATH_END.match(text.strip().lstrip(": ").strip())
    return m.group(1) if m else text.strip()


def _location(d: "LineDiagnoser", m: re.Match, text: str, it: Optional[int]) -> None:
    d._location, d._location_at = text, it  # AlexeyAB's error() / check_error_extended, hank-ai's box: the message follows
    return None


def _none(d: "LineDiagnoser", m: re.Match, text: str, it: Optional[int]) -> None:
    return None


def _error_message(d: "LineDiagnoser", m: re.Match, text: str, it: Optional[int]) -> Problem:
    """hank-ai's ``Error message:`` / AlexeyAB's ``Error:``: the message is judged by the rules, else fatal-error."""
    msg = text.split(":", 1)[1].strip()
    inner = d._classify(msg, it, depth=1)
    if inner is not None:
        return inner
    return P.fatal_error(msg, evidence=d._with_location(text), iteration=it)


def _fatal_line(d: "LineDiagnoser", m: re.Match, text: str, it: Optional[int]) -> Problem:
    return P.fatal_error(text, evidence=d._with_location(text), iteration=it)


def _heap(d: "LineDiagnoser", m: re.Match, text: str, it: Optional[int]) -> Problem:
    return P.crash_on_exit(text) if d.finished else P.heap_error(text, it)


def _rule(pattern: str, build: Callable, flags: int = 0) -> Rule:
    return Rule(re.compile(pattern, flags), build)


# The rules, first match wins. Order matters where two could match one line: locations first (they name source
# files such as dark_cuda.c), specific causes before the generic CUDA/cuDNN/fatal ones.
RULES: tuple[Rule, ...] = (
    # lines that say where the message that follows comes from
    _rule(r"^Darknet error location|^CUDA status(?: = cudaDeviceSynchronize\(\))? [Ee]rror|"
          r"^cuDNN status [Ee]rror in|^cudaError_t status = cudaDeviceSynchronize\(\) Error|^Error location:",
          _location),
    # missing files and images (the path keeps its spaces)
    _rule(r"Couldn't open file:?\s*(.*)$", lambda d, m, t, it: d.missing(_path(m.group(1)), t)),
    _rule(r'failed to open (?:the |annotation |)file "([^"]+)"|file (.+?) does not seem to exist',
          lambda d, m, t, it: d.missing((m.group(1) or m.group(2)).strip(), t)),
    _rule(r"^Cannot load image\s*(.*)$", lambda d, m, t, it: P.image_not_loaded(_path(m.group(1)), t, it)),
    # AlexeyAB: OpenCV threw while reading an image of the list; the segfault that often follows is its consequence
    _rule(r"OpenCV exception: load_image_mat_cv|Error in load_data_detection\(\) - OpenCV",
          lambda d, m, t, it: P.opencv_image(t, it)),
    _rule(r"^Wrong annotation", lambda d, m, t, it: P.bad_label(t, file=_after(t, "file: "))),
    # the loader: a library of the build is not on this machine
    _rule(r"error while loading shared libraries: ([^:\s]+)", lambda d, m, t, it: P.missing_library(m.group(1), t)),
    # Ctrl-C (pty echo, hank-ai's banner)
    _rule(r"^\^C|signal #2\b|\(Interrupt\)", lambda d, m, t, it: P.interrupted(t, it)),
    _rule(r"Segmentation fault|signal #11\b|SIGSEGV", lambda d, m, t, it: P.segfault(d._with_location(t), it)),
    # a shell's "Illegal instruction (core dumped)", hank-ai's banner for signal #4
    _rule(r"Illegal instruction|signal #4\b|SIGILL", lambda d, m, t, it: P.illegal_instruction(t, it)),
    _rule(r"l\.outputs == params\.inputs|doesn't correspond to classes|prior to \[yolo\].*does not match",
          lambda d, m, t, it: P.filters_mismatch(d._with_location(t))),
    _rule(r"expected to read|xfread", lambda d, m, t, it: P.truncated_weights(t)),
    _rule(r"Unexpected end of w[ei]+ghts-file", lambda d, m, t, it: P.truncated_weights_file(d.weights, t)),
    # the GPU, from the specific to the generic
    _rule(r"out of memory|cudaErrorMemoryAllocation|^Try to set subdivisions|try to set subdivisions|"
          r"CUDA memory allocation failed|CUDA malloc failed|^cudaMalloc",
          lambda d, m, t, it: P.cuda_oom(t, it, layer=_layer_index(t)),
          re.I),
    _rule(r"no kernel image is available|cudaErrorNoKernelImageForDevice",
          lambda d, m, t, it: P.no_kernel_image(d._with_location(t))),
    _rule(r"driver version is insufficient|cudaErrorInsufficientDriver",
          lambda d, m, t, it: P.cuda_driver(d._with_location(t))),
    _rule(r"CUDA-version is higher than Driver-version", lambda d, m, t, it: P.cuda_driver(t, warning=True)),
    _rule(r"no CUDA-capable device|cudaErrorNoDevice|no CUDA devices", lambda d, m, t, it: P.no_gpu(t)),
    _rule(r"failed to set the GPU device", lambda d, m, t, it: P.no_gpu(t, warning=True)),
    _rule(r"cuDNN Error|cuDNN (?:current|most recent) error|CUDNN_STATUS_(?!SUCCESS)[A-Z_]+|cuDNN did not find",
          lambda d, m, t, it: P.cudnn_error(d._with_location(t))),
    _rule(r"CUDA Error(?: Prev)?: |(?:current|most recent) CUDA error|CUDA error[: #]|cuBLAS Error",
          lambda d, m, t, it: P.cuda_error(d._with_location(t), it)),
    # the display
    _rule(r"could not connect to display|cannot open display", lambda d, m, t, it: P.no_display(t), re.I),
    # how it died
    _rule(_HEAP.pattern, _heap),
    _rule(r"signal #6\b", lambda d, m, t, it: P.crash_on_exit(t, heap=False) if d.finished else None),
    _rule(r"^\*\*\* (?:buffer overflow|stack smashing) detected", _fatal_line),
    _rule(r"^Error: cuCtxGetCurrent\(\) is failed", _none),  # AlexeyAB prints it and goes on
    _rule(r"^(?:Error message|Error):", _error_message),
    _rule(r"^(?:darknet: |terminate called|Floating point exception|Aborted)", _fatal_line),
    _rule(r"^Killed\b", lambda d, m, t, it: P.killed(it, evidence=t)),
)

# All rules in one pattern, tried first: almost every line darknet prints matches none, and one search in C is
# cheaper than a Python loop over ~30 (12 MB of lone-\r progress segments, 740,000 lines: 9.1 -> 7.8 s CPU).
# Which rule matches, in which order, and the match that builds the problem stay the rules' own.
def _first_chars(pattern: re.Pattern) -> Optional[set[str]]:
    """The characters a match of `pattern` can start with, or None when that is not a short list (a class, an
    optional start, anything the walk below does not know): the caller then does without."""
    try:
        tree = _sre_parse.parse(pattern.pattern, pattern.flags)
    except Exception:  # a private module: its shape may change; the filter is only a speed-up
        return None
    return _firsts(list(tree), bool(pattern.flags & re.IGNORECASE))


def _firsts(items: list, icase: bool) -> Optional[set[str]]:
    """First characters of a parsed sequence (None: unknown, or it can match the empty string)."""
    c = _sre_constants
    for op, av in items:
        if op is c.AT:  # ^, \b: zero-width, the next item consumes the first character
            continue
        if op is c.LITERAL:
            ch = chr(av)
            return {ch.lower(), ch.upper(), ch} if icase else {ch}
        if op is c.SUBPATTERN:
            _, add, dele, sub = av
            return _firsts(list(sub), (icase or bool(add & re.IGNORECASE)) and not dele & re.IGNORECASE)
        if op is c.BRANCH:
            out: set[str] = set()
            for alt in av[1]:
                f = _firsts(list(alt), icase)
                if f is None:
                    return None
                out |= f
            return out
        return None
    return None


# All rules in one pattern, tried first: almost every line darknet prints matches none, and one search in C is
# cheaper than a Python loop over ~30 (12 MB of lone-\r progress segments, 740,000 lines: 9.1 -> 7.8 s CPU).
# Which rule matches, in which order, and the match that builds the problem stay the rules' own. Behind a lookahead
# of the rules' first characters (case-insensitive ones in a (?i:) class): a search tries the ~70 alternatives only
# where one of them can start, not at every character (25 -> ~5 us for a 60-character line that is no problem).
_ANY_RULE_ALTS = "|".join(
    f"(?i:{r.pattern.pattern})" if r.pattern.flags & re.IGNORECASE else f"(?:{r.pattern.pattern})" for r in RULES)


def _any_rule() -> re.Pattern:
    exact: set[str] = set()
    folded: set[str] = set()
    for r in RULES:
        f = _first_chars(r.pattern)
        if f is None:
            return re.compile(_ANY_RULE_ALTS)
        (folded if r.pattern.flags & re.IGNORECASE else exact).update(f)
    cls = "".join(sorted(map(re.escape, exact)))
    icls = "".join(sorted(map(re.escape, folded)))
    ahead = "|".join(x for x in (f"[{cls}]" if cls else "", f"(?i:[{icls}])" if icls else "") if x)
    return re.compile(f"(?=(?:{ahead}))(?:{_ANY_RULE_ALTS})")


_ANY_RULE = _any_rule()


_LAYER_INDEX = re.compile(r"^\s*(\d+)\s+CUDA Error")


def _layer_index(text: str) -> Optional[int]:
    """The layer pjreddie was building when a CUDA error came (its index starts the line), or None."""
    m = _LAYER_INDEX.match(text)
    return int(m.group(1)) if m else None


def _after(text: str, key: str) -> Optional[str]:
    i = text.find(key)
    return text[i + len(key):].strip() or None if i >= 0 else None


class LineDiagnoser:
    """Classifies darknet output lines one at a time (escapes already stripped), through `RULES`.

    Args:
        data_paths: the paths obj.data names (as written there); lets a missing path be recognised as the same
            path with its spaces stripped.

    Attributes:
        finished: set by the caller once darknet reported the end of training (a heap error after that is a
            crash on exit, not a failure).
        weights: the weights file darknet said it loads (set by the parser), to name it in a problem.
    """

    def __init__(self, data_paths: Optional[Iterable[str]] = None) -> None:
        self.finished = False
        self.weights: Optional[str] = None
        self.data_paths = [str(p) for p in (data_paths or [])]
        self._location: Optional[str] = None
        self._location_at: Optional[int] = None  # the training iteration when the location line came
        self._seen: set[tuple[str, Optional[str]]] = set()
        self._errors: set[str] = set()

    def first_time(self, p: Problem) -> bool:
        """True once per problem (per code, and per file for missing files)."""
        key = (p.code, p.file if p.code in ("missing-file", "space-in-path") else None)
        if key in self._seen or (p.code in ("fatal-error", "segfault") and self._has_error()):
            return False
        self._seen.add(key)
        if p.severity == "error":
            self._errors.add(p.code)
        return True

    def _has_error(self) -> bool:
        # One darknet death is one problem: the specific one (filters, missing file, ...) wins over the banner.
        return bool(self._errors - {"nan-loss"})

    def line(self, text: str, iteration: Optional[int] = None) -> Optional[Problem]:
        """The problem `text` reports, or None."""
        if not text:
            return None
        return self._classify(_SHELL.sub("", text, count=1), iteration)

    def _classify(self, text: str, iteration: Optional[int], depth: int = 0) -> Optional[Problem]:
        if _ANY_RULE.search(text) is None:
            return None
        for rule in RULES:
            m = rule.pattern.search(text)
            if m is not None:
                if depth and rule.build is _error_message:
                    return None  # an "Error:" inside an error message: the caller's fatal-error
                return rule.build(self, m, text, iteration)
        return None

    def unfinished(self, iteration: Optional[int] = None) -> Optional[Problem]:
        """At the end of the output (the last training iteration was `iteration`): a CUDA/cuDNN location line that
        no message followed (the output was cut) is that library's failure; None otherwise (training went on
        after it, or a problem with the error severity was reported)."""
        loc = self._location
        if loc is None or self._errors or iteration != self._location_at:
            return None
        if loc.startswith("cuDNN") or "cudnn" in loc.split(":", 1)[0]:
            return P.cudnn_error(loc)
        if loc.startswith(("CUDA", "cudaError_t")):
            return P.cuda_error(loc)
        return None

    def missing(self, path: str, evidence: str) -> Problem:
        """`missing-file`, or `space-in-path` when `path` is a real path with its spaces removed."""
        original = self._unstripped(path)
        if original is not None:
            return P.space_in_path(path, original, evidence)
        return P.missing_file(path, evidence)

    def _unstripped(self, path: str) -> Optional[str]:
        for p in self.data_paths:
            if p != path and re.sub(r"\s+", "", p) == path:
                return p
        return _unstrip_on_disk(path)

    def _with_location(self, text: str) -> str:
        return f"{self._location}\n{text}" if self._location else text


def _unstrip_on_disk(path: str) -> Optional[str]:
    """The existing path whose spaces, removed, give `path` (None when there is none or `path` exists)."""
    try:
        p = Path(path)
        if not path or " " in path or p.exists():
            return None
        parts = p.parts
        current = Path(parts[0])
        for i, part in enumerate(parts[1:], 1):
            nxt = current / part
            if nxt.exists():
                current = nxt
                continue
            if not current.is_dir():
                return None
            for entry in os.listdir(current):
                if entry != part and re.sub(r"\s+", "", entry) == part:
                    return str(current.joinpath(entry, *parts[i + 1:]))
            return None
    except (OSError, ValueError):
        return None
    return None
