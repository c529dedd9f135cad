"""The whole-output judge: darknet's output plus its exit status -> the problems, the cause first.

Above the parser: it runs a `LogParser` over the text (whose line rules are `diagnose.LineDiagnoser`'s) and adds
what only the exit status tells (SIGKILL, SIGINT, a crash that printed nothing, a command that printed nothing).
"""
from __future__ import annotations

from typing import Callable, Iterable, Optional, Union

from . import problems as P
from ..errors import Problem
from .events import Finished, ProblemFound
from .logparse import LogParser

__all__ = ["diagnose", "verdict"]


def diagnose(text_or_lines: Union[str, bytes, Iterable[str]], *, returncode: Optional[int] = None,
             signal: Optional[int] = None, flavor: Optional[str] = None,
             data_paths: Optional[Iterable[str]] = None, command: Optional[Iterable[str]] = None,
             gpu_found: Optional[Callable[[], Optional[bool]]] = None) -> list[Problem]:
    """Judge a darknet run by its output and exit status.

    Args:
        text_or_lines: all the output (stdout and stderr together, or one after the other).
        returncode: the exit status (negative: killed by that signal, as `subprocess` reports it).
        signal: the signal that ended it (pexpect's ``signalstatus``), if any.
        flavor: the darknet flavor, if known.
        data_paths: the paths obj.data names, to recognise paths whose spaces darknet stripped.
        command: darknet's argv, to name an unsupported command.
        gpu_found: asked only when a CUDA problem is found: whether nvidia-smi finds a GPU. False turns every CUDA
            problem into one `no-gpu` with Colab's fix (CUDA's "driver version is insufficient" on a CPU runtime
            would send the user to update a driver that is not there).

    Returns:
        The problems, the cause first (`problems.ordered`: errors before warnings, then by priority, e.g. a CUDA
        out-of-memory before the cuDNN failure it caused, a nan loss before the SIGKILL); empty for a clean run.
    """
    if isinstance(text_or_lines, (str, bytes, bytearray)):
        chunks: Iterable = [text_or_lines]
    else:
        chunks = ["\n".join(line.rstrip("\r\n") for line in text_or_lines) + "\n"]
    parser = LogParser(flavor, data_paths=data_paths)
    problems: list[Problem] = []
    finished = False
    empty = True
    for chunk in chunks:
        if chunk and chunk.strip():
            empty = False
        for e in [*parser.feed(chunk), *parser.close()]:
            t = type(e)
            if t is ProblemFound:
                problems.append(e.problem)
            elif t is Finished:
                finished = True
    return verdict(problems, parser, finished=finished, printed=not empty, returncode=returncode, signal=signal,
                   command=command, gpu_found=gpu_found)


def verdict(found: Iterable[Problem], parser: LogParser, *, finished: bool, printed: bool,
            returncode: Optional[int], signal: Optional[int], command: Optional[Iterable[str]] = None,
            gpu_found: Optional[Callable[[], Optional[bool]]] = None) -> list[Problem]:
    """The problems of a run from what its parser found (as the output passed, or read again) and how it ended:
    the one verdict a live run and a log read later share.

    Args:
        found: the problems the parser reported (its `ProblemFound` events).
        parser: that parser, after the whole output (its iteration, and its diagnoser's unfinished line).
        finished: the parser saw darknet say training finished.
        printed: darknet printed anything but white space.
        returncode, signal, command, gpu_found: as `diagnose` takes them.
    """
    problems = list(found)
    late = parser.diagnoser.unfinished(parser.iteration)
    if late is not None:
        problems.append(late)
    if signal is None and returncode is not None and returncode < 0:
        signal = -returncode
    codes = {p.code for p in problems}
    serious = [p for p in problems if p.severity == "error" and p.code != "nan-loss"]
    if signal == 4 and "illegal-instruction" not in codes:
        problems.append(P.illegal_instruction(iteration=parser.iteration))
    elif signal == 9 and "killed" not in codes:
        problems.append(P.killed(parser.iteration))
    elif signal == 2 and "interrupted" not in codes:
        problems.append(P.interrupted(iteration=parser.iteration))
    elif signal in (6, 11) and not serious and "crash-on-exit" not in codes and "interrupted" not in codes:
        if finished and signal == 6:
            problems.append(P.crash_on_exit(heap=False))
        elif signal == 11:
            problems.append(P.segfault(iteration=parser.iteration))
        else:
            problems.append(P.sigabrt(parser.iteration))
    elif not printed and not problems and returncode in (0, None) and signal is None:
        problems.append(P.unsupported_command(" ".join(list(command or [])[1:3]) or "this command"))
    elif returncode not in (0, None) and not problems:
        problems.append(P.exit_status(returncode, parser.iteration))
    return P.ordered(_without_gpu(problems, gpu_found))


def _without_gpu(problems: list[Problem], gpu_found: Optional[Callable[[], Optional[bool]]]) -> list[Problem]:
    """The CUDA problems as one `no-gpu` when `gpu_found` says the machine has no GPU; else `problems` as they are."""
    cuda = [p for p in problems if p.code in P.GPU_CODES]
    if not cuda or gpu_found is None or gpu_found() is not False:
        return problems
    first = problems.index(cuda[0])
    rest = [p for p in problems if p.code not in P.GPU_CODES]
    return rest[:first] + [P.no_gpu_here(cuda[0].evidence)] + rest[first:]
