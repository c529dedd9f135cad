"""Darknet output -> `Problem`s with their fixes. Pure apart from an optional look at the filesystem (below).

darknet's exit status lies (pjreddie exits 0 after ``Couldn't open file``; AlexeyAB and hank-ai abort with a glibc
heap error after a finished run), so a run is judged by what it printed. The codes are stable; the docs'
troubleshooting page lists them:

====================  ========  ==========================================================================
code                  severity  seen as
====================  ========  ==========================================================================
missing-file          error     ``Couldn't open file: X`` (pjreddie, AlexeyAB); hank-ai ``failed to open the
                                file "X"`` / ``file X does not seem to exist``
space-in-path         error     a missing file whose path is a real path with its spaces stripped (darknet
                                strips the spaces out of obj.data values)
filters-mismatch      error     pjreddie ``Assertion `l.outputs == params.inputs'``; AlexeyAB ``filters= in the
                                [convolutional]-layer doesn't correspond to classes=``; hank-ai ``filters in
                                convolutional layer prior to [yolo] ... does not match``
cuda-oom              error     ``CUDA Error: out of memory``, ``cudaMalloc`` failures, ``Try to set subdivisions``
cudnn-error           error     ``CUDNN_STATUS_...``, ``cuDNN Error``
cuda-error            error     other CUDA errors (e.g. ``no kernel image is available``)
truncated-weights     error     hank-ai ``xfread() ... expected to read N fields``; AlexeyAB loading fewer layers
                                than the network has (warning: a partial ``.conv.N`` file does that on purpose)
nan-loss              error     the first iteration whose loss or avg loss is nan
already-trained       warning   final weights saved without a single iteration: the weights file's seen-count
                                is already past max_batches (or the file is truncated)
crash-on-exit         warning   glibc ``double free or corruption`` / ``free(): invalid next size`` /
                                ``munmap_chunk`` (or hank-ai's SIGABRT banner) after a finished run
fatal-error           error     hank-ai's fatal-error banner, AlexeyAB ``Darknet error location``/``Error:``,
                                a heap error before the end, SIGSEGV/SIGABRT
interrupted           warning   ``^C`` echo, hank-ai's ``signal #2 (Interrupt)`` banner, SIGINT
no-display            error     ``qt.qpa.xcb: could not connect to display``, ``cannot open display``
unsupported-command   error     nothing printed and exit 0 (pjreddie has no ``detector map``)
killed                error     SIGKILL (out of RAM, a timeout or a watchdog)
====================  ========  ==========================================================================

`LineDiagnoser` classifies single lines as they stream (the `LogParser` uses it and emits ``ProblemFound``);
`diagnose()` judges a whole output plus the exit status.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Optional, Union

from .errors import Problem

__all__ = ["diagnose", "LineDiagnoser", "TRIGGERS", "CODES", "nan_loss"]

CODES = (
    "missing-file", "space-in-path", "filters-mismatch", "cuda-oom", "cudnn-error", "cuda-error", "truncated-weights",
    "nan-loss", "already-trained", "crash-on-exit", "fatal-error", "interrupted", "no-display", "unsupported-command",
    "killed",
)

# Literal starts of the lines that may carry a problem (after spaces, escapes, "* " or "-> "). The LogParser's gate
# regex matches only these, so a line that is not listed here is never looked at while streaming.
TRIGGERS: tuple[str, ...] = (
    "Couldn't open file", "WARNING: file ", "darknet: ", "Darknet error location", "Error: ", "Error message:",
    "CUDA", "cuDNN", "CUDNN", "cudaMalloc", "Try to set subdivisions", "double free", "free(): ", "munmap_chunk",
    "malloc(): ", "corrupted ", "*** Error in", "qt.qpa.xcb", "(darknet", "^C", "Segmentation fault", "Killed",
    "terminate called", "Floating point exception", "Aborted",
)

_FIX_FILTERS = ("set filters=(classes + 5) * masks in the [convolutional] layer just before each [yolo] layer "
                "(e.g. 18 for 1 class and 3 masks), and classes= in each [yolo] layer")
_FIX_OOM = "raise subdivisions= in the cfg (e.g. 16 -> 32 -> 64), or lower width/height or batch"
_HEAP = re.compile(r"double free|free\(\): |munmap_chunk|malloc\(\): |corrupted (?:size|double-linked)|\*\*\* Error in")
_MISSING_HANK = re.compile(r'failed to open the file "([^"]+)"|file (.+?) does not seem to exist')
_SIGNAL = re.compile(r"signal #(\d+)")


def nan_loss(iteration: int, evidence: str = "") -> Problem:
    """The `nan-loss` problem for the first iteration whose loss went nan."""
    return Problem(
        "nan-loss", f"training diverged: the loss is nan from iteration {iteration} on",
        fix="lower learning_rate (e.g. divide it by 10) or raise burn_in, and check the labels "
            "(class ids < classes, coordinates in 0..1, no empty or malformed lines)",
        iteration=iteration, evidence=evidence or None)


def truncated_weights_loaded(path: Optional[str], loaded: int, detection_layer: int) -> Optional[Problem]:
    """AlexeyAB loaded fewer layers than the network has: a truncated file, unless it is a partial `.conv.N` one."""
    if path and re.search(r"\.conv\.\d+$", path):
        return None
    return Problem(
        "truncated-weights",
        f"only {loaded} layers were loaded from {path or 'the weights file'}, but the network has at least "
        f"{detection_layer + 1}: the file is truncated (or belongs to another cfg) and training goes on with "
        "random weights", fix="use a complete weights file (e.g. backup/*_last.weights of the same cfg), or "
        "start without weights", severity="warning", file=path,
        evidence=f"Done! Loaded {loaded} layers from weights-file")


class LineDiagnoser:
    """Classifies darknet output lines one at a time (escapes already stripped).

    Args:
        data_paths: the paths obj.data names (as written there); lets a missing path be recognised as the same
            path with its spaces stripped.

    Attributes:
        finished: set by the caller once darknet reported the end of training (a heap error after that is a
            crash on exit, not a failure).
    """

    def __init__(self, data_paths: Optional[Iterable[str]] = None) -> None:
        self.finished = False
        self.data_paths = [str(p) for p in (data_paths or [])]
        self._location: Optional[str] = None
        self._seen: set[tuple[str, Optional[str]]] = set()

    def first_time(self, p: Problem) -> bool:
        """True once per problem (per code, and per file for missing files)."""
        key = (p.code, p.file if p.code in ("missing-file", "space-in-path") else None)
        if key in self._seen or (p.code == "fatal-error" and self._has_error()):
            return False
        self._seen.add(key)
        return True

    def _has_error(self) -> bool:
        # One darknet death is one problem: the specific one (filters, missing file, ...) wins over the banner.
        return any(code not in ("nan-loss", "already-trained", "truncated-weights") for code, _ in self._seen)

    def line(self, text: str, iteration: Optional[int] = None) -> Optional[Problem]:
        """The problem `text` reports, or None."""
        if not text:
            return None
        if text.startswith("Darknet error location"):
            self._location = text  # AlexeyAB's error(): the message follows on the next line
            return None
        if "Couldn't open file" in text:
            return self.missing(text.split("Couldn't open file", 1)[1].lstrip(": ").strip(), text)
        m = _MISSING_HANK.search(text)
        if m:
            return self.missing((m.group(1) or m.group(2)).strip(), text)
        if text.startswith("^C") or "signal #2 " in text or "(Interrupt)" in text:
            return Problem("interrupted", "darknet was interrupted (Ctrl-C / SIGINT)",
                           fix="resume from backup/*_last.weights with `%yolo resume`", severity="warning",
                           iteration=iteration, evidence=text)
        if "l.outputs == params.inputs" in text or "doesn't correspond to classes" in text or (
                "prior to [yolo]" in text and "does not match" in text):
            return Problem("filters-mismatch", "the filters= of a [convolutional] layer before a [yolo] layer do "
                           "not match its classes= and mask=", fix=_FIX_FILTERS, evidence=self._with_location(text))
        if "expected to read" in text or "xfread" in text:
            return Problem("truncated-weights", "the .weights file is shorter than the cfg needs: it is truncated "
                           "(an interrupted copy or download) or belongs to another cfg",
                           fix="use a complete weights file that matches this cfg", evidence=text)
        low = text.lower()
        if "out of memory" in low or "cudamalloc" in low or text.startswith("Try to set subdivisions"):
            return Problem("cuda-oom", "the GPU ran out of memory", fix=_FIX_OOM, iteration=iteration,
                           evidence=text)
        if "cudnn" in low:
            return Problem("cudnn-error", "cuDNN failed: " + text, fix="check that the cuDNN version matches the CUDA "
                           "toolkit darknet was built with, or rebuild with CUDNN=0", evidence=text)
        if "cuda" in low and ("error" in low or "no kernel image" in low):
            fix = ("rebuild darknet with the ARCH (compute capability) of this GPU"
                   if "no kernel image" in low else "check the NVIDIA driver and CUDA toolkit, then rebuild darknet")
            return Problem("cuda-error", "a CUDA call failed: " + text, fix=fix, evidence=text)
        if "could not connect to display" in low or "cannot open display" in low:
            return Problem("no-display", "darknet tried to open a window, but there is no display",
                           fix="add -dont_show (AlexeyAB, hank-ai); pjreddie's `detector test` has no such flag: "
                               "use `detector valid` or a build with OPENCV=0", evidence=text)
        if _HEAP.search(text) or ("signal #6" in text and self.finished):
            if self.finished:
                return Problem("crash-on-exit", "finished, darknet crashed on exit (a glibc heap error after the "
                               "final weights were saved); the results are complete",
                               fix="nothing to do: the weights and the log are complete", severity="warning",
                               evidence=text)
            return Problem("fatal-error", "darknet crashed with a heap error: " + text,
                           fix="resume from the last weights; if it repeats, update darknet", iteration=iteration,
                           evidence=text)
        if text.startswith(("Error message:", "Error: ", "darknet: ", "terminate called", "Segmentation fault",
                            "Floating point exception", "Aborted")):
            msg = text.split(":", 1)[1].strip() if text.startswith(("Error message:", "Error: ")) else text
            m = _SIGNAL.search(text)
            if m and m.group(1) == "11":
                msg = "darknet crashed (segmentation fault)"
            return Problem("fatal-error", "darknet stopped with a fatal error: " + msg,
                           fix="read the message above; check that the files named in the command and in obj.data "
                               "exist and that the cfg is valid", iteration=iteration,
                           evidence=self._with_location(text))
        if text.startswith("Killed"):
            return _killed(iteration)
        return None

    def missing(self, path: str, evidence: str) -> Problem:
        """`missing-file`, or `space-in-path` when `path` is a real path with its spaces removed."""
        original = self._unstripped(path)
        if original is not None:
            return Problem("space-in-path", f"darknet looked for {path!r}, which is {original!r} with its spaces "
                           "removed (darknet strips spaces out of obj.data values)",
                           fix="move the data to a folder without spaces, or point obj.data at a symlink "
                               "without spaces (ln -s)", file=path, evidence=evidence)
        return Problem("missing-file", f"darknet could not open {path!r}",
                       fix="check the path (relative paths are relative to darknet's working directory) and the "
                           "paths inside obj.data and train.txt/valid.txt", file=path, evidence=evidence)

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
        if p.exists() or not path:
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
                    candidate = current.joinpath(entry, *parts[i + 1:])
                    return str(candidate)
            return None
    except OSError:
        return None
    return None


def _killed(iteration: Optional[int]) -> Problem:
    return Problem("killed", "darknet was killed (SIGKILL): the machine may have run out of RAM, or a timeout or "
                   "watchdog ended it", fix="lower batch/subdivisions or width/height if memory ran out; resume "
                   "from backup/*_last.weights", iteration=iteration)


def diagnose(text_or_lines: Union[str, bytes, Iterable[str]], *, returncode: Optional[int] = None,
             signal: Optional[int] = None, flavor: Optional[str] = None,
             data_paths: Optional[Iterable[str]] = None, command: Optional[Iterable[str]] = None) -> list[Problem]:
    """Judge a darknet run by its output and exit status.

    Args:
        text_or_lines: all the output (stdout and stderr together, or one after the other).
        returncode: the exit status (negative: killed by that signal, as `subprocess` reports it).
        signal: the signal that ended it (pexpect's ``signalstatus``), if any.
        flavor: the darknet flavor, if known.
        data_paths: the paths obj.data names, to recognise paths whose spaces darknet stripped.
        command: darknet's argv, to name an unsupported command.

    Returns:
        The problems, most important first as they appeared; empty for a clean run.
    """
    from .logparse import Finished, Iteration, LogParser, ProblemFound

    if isinstance(text_or_lines, (str, bytes, bytearray)):
        chunks: Iterable = [text_or_lines]
    else:
        chunks = ["\n".join(line.rstrip("\r\n") for line in text_or_lines) + "\n"]
    parser = LogParser(flavor, data_paths=data_paths)
    problems: list[Problem] = []
    finished = False
    iterations = 0
    empty = True
    for chunk in chunks:
        if chunk and chunk.strip():
            empty = False
        for e in [*parser.feed(chunk), *parser.close()]:
            if isinstance(e, ProblemFound):
                problems.append(e.problem)
            elif isinstance(e, Finished):
                finished = True
            elif isinstance(e, Iteration):
                iterations += 1
    if signal is None and returncode is not None and returncode < 0:
        signal = -returncode
    codes = {p.code for p in problems}
    serious = [p for p in problems if p.severity == "error" and p.code != "nan-loss"]
    if signal == 9 and "killed" not in codes:
        problems.append(_killed(parser.iteration))
    elif signal == 2 and "interrupted" not in codes:
        problems.append(Problem("interrupted", "darknet was interrupted (SIGINT)", fix="resume from "
                                "backup/*_last.weights with `%yolo resume`", severity="warning",
                                iteration=parser.iteration))
    elif signal in (6, 11) and not serious and "crash-on-exit" not in codes and "interrupted" not in codes:
        if finished and signal == 6:
            problems.append(Problem("crash-on-exit", "finished, darknet crashed on exit (SIGABRT after the final "
                                    "weights were saved); the results are complete", fix="nothing to do",
                                    severity="warning"))
        else:
            what = "a segmentation fault" if signal == 11 else "SIGABRT"
            problems.append(Problem("fatal-error", f"darknet crashed ({what})", fix="read the last lines of the "
                                    "log; for `detector valid`, create the results/ folder it writes to",
                                    iteration=parser.iteration))
    elif empty and not problems and returncode in (0, None) and signal is None:
        cmd = " ".join(list(command or [])[1:3]) or "this command"
        problems.append(Problem("unsupported-command", f"darknet printed nothing for `{cmd}`: this darknet does not "
                                "know the command (pjreddie has no `detector map`)",
                                fix="use AlexeyAB's or hank-ai's darknet for `detector map`, or `detector valid`"))
    elif returncode not in (0, None) and not problems:
        problems.append(Problem("fatal-error", f"darknet exited with status {returncode}",
                                fix="read the last lines of the log", iteration=parser.iteration))
    return problems
