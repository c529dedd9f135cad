"""Run a child program on a pseudo-terminal: stream it, tee it to a log, answer prompts, stop it cleanly.

Darknet block-buffers its output on a pipe and line-buffers it on a terminal, so it runs on a pty
(`pexpect.spawn`, which puts the child in a new session: its own process group, ``pgid == pid``).
`run` reads in short non-blocking slices so that a kernel interrupt (KeyboardInterrupt) lands between reads:

* every byte is appended to `log_path` as it arrives and flushed, so a crash of anything loses nothing;
* decoded text (UTF-8, bad bytes replaced) goes to `on_text` in chunks, for the log parser;
* known prompts (hank-ai's ``Type "yes" to begin training ...``) are answered;
* a `Watchdog` ends a child that printed a fatal banner and then went quiet (hank-ai deadlocks in its own
  signal handler), that was silent far longer than usual, or that finished its work and then hung
  (pjreddie's `detector test` waiting for a key in an OpenCV window).

Interrupts: on KeyboardInterrupt, the child's process group gets SIGINT, then SIGTERM, then SIGKILL, with short
waits, while its last output is still drained into the log. Then `run` raises `RunInterrupted` (a subclass of
KeyboardInterrupt) carrying the `ProcessResult`: a caller that does nothing re-raises the interrupt as IPython's
``%%script`` does; a caller that must finalize (training.py saves its history) catches `RunInterrupted`, saves,
and re-raises it.
"""
from __future__ import annotations

import codecs
import math
import os
import re
import signal as _signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

import pexpect

__all__ = [
    "ProcessResult", "RunInterrupted", "Watchdog", "run", "group_alive", "HANK_PROMPT", "DEFAULT_PROMPTS",
    "FATAL_PATTERNS",
]

#: hank-ai's CPU build asks this before it trains and waits on stdin.
HANK_PROMPT = r'Type "yes" to begin training, or anything else to quit:'
DEFAULT_PROMPTS: tuple[tuple[str, str], ...] = ((re.escape(HANK_PROMPT), "yes"),)

#: Lines after which a darknet should exit soon; if it goes quiet instead, it hangs (hank-ai does).
FATAL_PATTERNS: tuple[str, ...] = (
    r"calling Darknet's fatal error handler",
    r"\* Error message:",
    r"Darknet error location",
    r"double free or corruption",
    r"free\(\): invalid",
    r"malloc\(\): ",
    r"corrupted size vs\. prev_size",
    r"munmap_chunk\(\): invalid pointer",
    r"Segmentation fault",
    r"Assertion `[^']*' failed",
    r"CUDA Error",
    r"CUDA status Error",
    r"cuDNN status Error",
)

_TAIL = 512  # characters kept across chunks so a pattern split between reads is still found


@dataclass(frozen=True)
class ProcessResult:
    """How a child ended.

    `returncode` is the exit status (None when killed by a signal), `signal` the signal that killed it;
    `interrupted` says the user interrupted (we escalated SIGINT/TERM/KILL), `killed_by_watchdog` names the
    watchdog's reason when it ended the child; `answered` lists the prompts we answered.
    """

    returncode: Optional[int]
    signal: Optional[int]
    interrupted: bool
    killed_by_watchdog: Optional[str]
    seconds: float
    pid: int = 0
    answered: tuple[str, ...] = ()
    stopped_by_caller: Optional[str] = None
    bytes_read: int = 0
    log_error: Optional[str] = None  # the log could not be written (a full disk, a read-only folder): why
    notices: tuple[str, ...] = ()  # what happened to the log that the user must know (deleted and recreated)

    @property
    def signal_name(self) -> Optional[str]:
        if self.signal is None:
            return None
        try:
            return _signal.Signals(self.signal).name
        except ValueError:
            return f"signal {self.signal}"

    def describe(self) -> str:
        """One line: 'exit status 0', 'killed by SIGKILL', ... and why we ended it, if we did."""
        if self.signal is not None:
            text = f"killed by {self.signal_name}"
        elif self.returncode is None:  # nobody saw it end (its keeper died first)
            text = "exit status unknown"
        else:
            text = f"exit status {self.returncode}"
        if self.interrupted:
            text += " (interrupted)"
        if self.killed_by_watchdog:
            text += f" (ended by the watchdog: {self.killed_by_watchdog})"
        if self.stopped_by_caller:
            text += f" (stopped: {self.stopped_by_caller})"
        return text


class RunInterrupted(KeyboardInterrupt):
    """The user interrupted a run; the child is gone and its output is in the log. Carries `result`."""

    def __init__(self, result: ProcessResult) -> None:
        super().__init__("interrupted")
        self.result = result


@dataclass
class Watchdog:
    """Decides when a child that will not end by itself must be ended.

    Reasons it returns: ``"fatal-then-silent"`` (printed one of `fatal` and then nothing for `after_fatal_s`),
    ``"done-then-hung"`` (printed one of `done` and then nothing for `after_done_s`), ``"silent"`` (no output for
    `silence_s`, or, when that is None, for `silence_factor` times the longest gap seen so far but at least
    `min_silence_s`). Feed it text and ask it with `check(now)`; `run` does both.

    It costs nothing per chunk: a child that hangs after a banner has the banner at the end of its output, so
    the patterns are searched only in the last `tail_chars` of the output, once the child has gone quiet.
    """

    fatal: Sequence[str] = FATAL_PATTERNS
    after_fatal_s: float = 20.0
    done: Sequence[str] = ()
    after_done_s: float = 5.0
    silence_s: Optional[float] = None
    silence_factor: float = 30.0
    min_silence_s: float = 1800.0
    tail_chars: int = 16384
    _fatal_re: Optional[re.Pattern] = field(default=None, init=False, repr=False)
    _done_re: Optional[re.Pattern] = field(default=None, init=False, repr=False)
    _tail: str = field(default="", init=False, repr=False)
    _searched: bool = field(default=True, init=False, repr=False)
    _last_output: float = field(default=0.0, init=False, repr=False)
    _longest_gap: float = field(default=0.0, init=False, repr=False)
    _outputs: int = field(default=0, init=False, repr=False)
    fatal_seen: Optional[str] = field(default=None, init=False)
    done_seen: Optional[str] = field(default=None, init=False)

    def start(self, now: float) -> None:
        self._fatal_re = re.compile("|".join(f"(?:{p})" for p in self.fatal)) if self.fatal else None
        self._done_re = re.compile("|".join(f"(?:{p})" for p in self.done)) if self.done else None
        self._last_output = now
        self._tail = ""
        self._searched = True
        self._longest_gap = 0.0
        self._outputs = 0
        self.fatal_seen = None
        self.done_seen = None

    def feed(self, text: str, now: float) -> None:
        if self._outputs:  # the wait before the first output is start-up, not an iteration
            self._longest_gap = max(self._longest_gap, now - self._last_output)
        self._outputs += 1
        self._last_output = now
        if len(text) >= self.tail_chars:
            self._tail = text[-self.tail_chars:]
        else:
            self._tail = (self._tail + text)[-self.tail_chars:]
        self._searched = False

    def _search(self) -> None:
        """Look for the patterns at the end of the output (once per quiet spell)."""
        self._searched = True
        if self._fatal_re is not None and self.fatal_seen is None:
            m = self._fatal_re.search(self._tail)
            if m:
                self.fatal_seen = m.group(0)
        if self._done_re is not None and self.done_seen is None:
            m = self._done_re.search(self._tail)
            if m:
                self.done_seen = m.group(0)

    def silence_limit(self) -> float:
        if self.silence_s is not None:
            return self.silence_s
        return max(self.min_silence_s, self.silence_factor * self._longest_gap)

    def check(self, now: float) -> Optional[str]:
        quiet = now - self._last_output
        if not self._searched and quiet >= min(self.after_fatal_s, self.after_done_s if self.done else math.inf):
            self._search()
        if self.fatal_seen is not None and quiet >= self.after_fatal_s:
            return "fatal-then-silent"
        if self.done_seen is not None and quiet >= self.after_done_s:
            return "done-then-hung"
        if quiet >= self.silence_limit():
            return "silent"
        return None


def processes() -> Iterator[tuple[int, bytes, bytes, int, int]]:
    """(pid, command name, state, ppid, pgid) of every process, read from /proc (Linux only)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...; comm may contain spaces and parentheses
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 2:
            yield int(entry.name), stat[stat.find(b"(") + 1:stat.rfind(b")")], fields[0], int(fields[1]), int(fields[2])


def group_alive(pgid: int) -> bool:
    """True while a live process (not a zombie) of the group `pgid` exists.

    On Linux this reads /proc (a killed grandchild stays a zombie until init reaps it, and ``killpg(pgid, 0)``
    still finds zombies); elsewhere it asks ``killpg(pgid, 0)``.
    """
    if Path("/proc").is_dir():
        return any(group == pgid and state not in (b"Z", b"X") for _, _, state, _, group in processes())
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


class _LogFile:
    """The log every byte goes to, kept findable: deleted or moved while the child runs, it is made again at its
    path with everything written so far (copied from the still-open old file); a write that fails (a full disk, a
    folder made read-only) is remembered in `error` and writing stops, so the caller can stop the child and say so.
    """

    CHECK_EVERY_S = 1.0

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = open(self.path, "ab+", buffering=0)
        self.error: Optional[str] = None
        self.notices: list[str] = []
        self._checked = time.monotonic()

    def write(self, data: bytes) -> None:
        if self.error is not None:
            return
        try:
            now = time.monotonic()
            if now - self._checked >= self.CHECK_EVERY_S:
                self._checked = now
                self._relink_if_gone()
            self.handle.write(data)
        except OSError as exc:
            self.error = f"{exc.strerror or exc} ({self.path})"

    def _relink_if_gone(self) -> None:
        try:
            if os.stat(self.path).st_ino == os.fstat(self.handle.fileno()).st_ino:
                return
        except FileNotFoundError:
            pass
        old = self.handle
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = open(self.path, "ab+", buffering=0)
        offset, size = 0, os.fstat(old.fileno()).st_size
        while offset < size:  # what the lost file held: the new one starts with it
            block = os.pread(old.fileno(), 1 << 20, offset)
            if not block:
                break
            new.write(block)
            offset += len(block)
        old.close()
        self.handle = new
        self.notices.append(f"{self.path} was deleted or moved while darknet ran: made it again there, with "
                            f"everything written so far ({size:,} bytes)")

    def close(self) -> None:
        try:
            self.handle.close()
        except OSError as exc:
            self.error = self.error or f"{exc.strerror or exc} ({self.path})"


class _Stream:
    """Reads the child; every chunk goes to the log, the decoder, the prompt matcher and the watchdog."""

    def __init__(self, child: pexpect.spawn, log, on_text, prompts, watchdog, chunk: int) -> None:
        self.child = child
        self.log = log
        self.on_text = on_text
        self.prompts = [(re.compile(p), a) for p, a in prompts]
        self.watchdog = watchdog
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.tail = ""
        self.answered: list[str] = []
        self.eof = False
        self.chunk = chunk
        self.coalesce = 1 << 20
        self.bytes = 0

    def read(self, timeout: float) -> bool:
        """Read what is there (waiting up to `timeout`); False on timeout or EOF.

        After the first read it keeps reading what is already waiting (up to `coalesce` bytes) and handles it as
        one chunk: a child that writes fast costs one parse and one log write per batch, not per 4 KB read.
        """
        if self.eof:
            return False
        try:
            data = self.child.read_nonblocking(self.chunk, timeout)
        except pexpect.TIMEOUT:
            return False
        except pexpect.EOF:
            self.eof = True
            self._text(self.decoder.decode(b"", final=True))
            return False
        if len(data) >= 1024:  # a burst: gather what else is waiting
            parts = [data]
            total = len(data)
            while total < self.coalesce:
                try:
                    more = self.child.read_nonblocking(self.chunk, 0)
                except (pexpect.TIMEOUT, pexpect.EOF):
                    break  # EOF is seen again by the next read
                parts.append(more)
                total += len(more)
            data = b"".join(parts)
        self.bytes += len(data)
        if self.log is not None:
            self.log.write(data)  # unbuffered: on disk as it arrives
        self._text(self.decoder.decode(data))
        return True

    def _text(self, text: str) -> None:
        if not text:
            return
        if self.watchdog is not None:
            self.watchdog.feed(text, time.monotonic())
        if self.prompts:
            window = self.tail + text
            for rx, answer in self.prompts:
                if rx.search(window):
                    # A callable answers each time anew (batch inference types the next image path at every
                    # "Enter Image Path:"); None from it ends the child's input (EOF), as Ctrl-D would.
                    reply = answer() if callable(answer) else answer
                    try:
                        if reply is None:
                            self.child.sendeof()
                        else:
                            self.child.sendline(reply)
                    except OSError:
                        pass
                    self.answered.append("<EOF>" if reply is None else reply)
                    window = ""  # answered: do not answer the same prompt twice
                    break
            self.tail = window[-_TAIL:]
        if self.on_text is not None:
            self.on_text(text)

    def drain(self, seconds: float) -> None:
        """Keep reading until EOF or `seconds` pass (so a dying child's last words reach the log)."""
        end = time.monotonic() + seconds
        while not self.eof and time.monotonic() < end:
            self.read(min(0.05, max(0.0, end - time.monotonic())))


def _wait_gone(child: pexpect.spawn, stream: _Stream, seconds: float) -> bool:
    """Drain output while waiting up to `seconds` for the child to exit; True if it did."""
    end = time.monotonic() + seconds
    while True:
        if not child.isalive():
            return True
        if time.monotonic() >= end:
            return False
        if not stream.read(0.05):
            time.sleep(0.01 if stream.eof else 0)


def _stop(child: pexpect.spawn, stream: _Stream, pgid: int, steps: Sequence[tuple[int, float]]) -> None:
    """Send each signal of `steps` to the group and wait its grace period; stop as soon as the child is gone."""
    for sig, grace in steps:
        if not child.isalive():
            break
        _killpg(pgid, sig)
        try:
            if _wait_gone(child, stream, grace):
                break
        except KeyboardInterrupt:  # a second Ctrl-C: no more patience
            _killpg(pgid, _signal.SIGKILL)
            _wait_gone(child, stream, 5.0)
            break


def _spawn(argv: list[str], cwd: Path, env: Optional[dict], dimensions: tuple[int, int],
           log: Optional[_LogFile]) -> pexpect.spawn:
    """Start `argv` on a pty; the log is closed when it cannot start (a missing program is FileNotFoundError)."""
    try:
        return pexpect.spawn(argv[0], argv[1:], cwd=str(cwd), env=env, encoding=None,
                             dimensions=dimensions, echo=True, timeout=None)
    except pexpect.ExceptionPexpect as exc:
        if log is not None:
            log.close()
        if "executable" in str(exc).lower() or "not found" in str(exc).lower():
            raise FileNotFoundError(argv[0]) from exc
        raise
    except BaseException:
        if log is not None:
            log.close()
        raise


@dataclass(frozen=True)
class _Stops:
    """What may end a run before the child does: the watchdog, a log that cannot be written, the caller."""

    watchdog: Optional[Watchdog]
    log: Optional[_LogFile]
    should_stop: Optional[Callable[[], Optional[str]]]
    interrupt_steps: Sequence[tuple[int, float]]


@dataclass
class _Ending:
    """Why `_pump` stopped the child, if it did: the watchdog's reason or the caller's (or the log's)."""

    watchdog: Optional[str] = None
    stopped: Optional[str] = None


def _pump(child: pexpect.spawn, stream: _Stream, pgid: int, poll: float, stops: _Stops, ending: _Ending) -> None:
    """Read the child until it ends or something in `stops` ends it; `ending` says which (filled as it happens,
    so that a KeyboardInterrupt mid-loop keeps what was found)."""
    while True:
        if not stream.read(poll):
            if stream.eof:
                return
            if not child.isalive():  # gone, but the pty is still held (e.g. by a grandchild)
                stream.drain(0.2)
                return
        if stops.watchdog is not None:
            ending.watchdog = stops.watchdog.check(time.monotonic())
            if ending.watchdog:
                _stop(child, stream, pgid, ((_signal.SIGTERM, 2.0), (_signal.SIGKILL, 5.0)))
                return
        if stops.log is not None and stops.log.error is not None:
            ending.stopped = f"the log cannot be written: {stops.log.error}"
            _stop(child, stream, pgid, stops.interrupt_steps)
            return
        if stops.should_stop is not None:
            ending.stopped = stops.should_stop()
            if ending.stopped:
                _stop(child, stream, pgid, stops.interrupt_steps)
                return


def _kill_leftovers(child: pexpect.spawn, pgid: int) -> None:
    """SIGKILL whatever of the child's group still lives (e.g. a grandchild that ignored SIGINT/SIGTERM), wait up
    to 5 s for it to go, and close the pty."""
    if child.isalive() or group_alive(pgid):
        _killpg(pgid, _signal.SIGKILL)
        end = time.monotonic() + 5.0
        while (child.isalive() or group_alive(pgid)) and time.monotonic() < end:
            time.sleep(0.02)
    child.close(force=True)


def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    log_path: Optional[Path] = None,
    on_text: Optional[Callable[[str], None]] = None,
    prompts: Sequence[tuple[str, Any]] = DEFAULT_PROMPTS,
    watchdog: Optional[Watchdog] = None,
    env: Optional[dict] = None,
    dimensions: tuple[int, int] = (50, 200),
    poll: float = 0.1,
    should_stop: Optional[Callable[[], Optional[str]]] = None,
    interrupt_grace: tuple[float, float] = (5.0, 3.0),
    chunk: int = 65536,
    on_spawn: Optional[Callable[[int], None]] = None,
) -> ProcessResult:
    """Run `argv` on a pty in `cwd` until it ends; see the module docstring.

    Args:
        argv: program and arguments (no shell is involved).
        cwd: working folder of the child.
        log_path: appended with every byte the child writes (created with its folder); None for no log.
        on_text: called with each decoded chunk (chunks split lines anywhere).
        prompts: ``(regex, answer)`` pairs; when the output matches, `answer` + newline is typed. `answer` may be
            a callable, called at each match: its string is typed, None sends EOF.
        watchdog: ends a child that hangs (see `Watchdog`); None for no watchdog.
        env: the child's environment (default: ours).
        poll: longest time one read waits, which bounds how late the watchdog and `should_stop` react.
        should_stop: called after each read; a non-empty string stops the child (SIGINT, TERM, KILL) and
            is reported as `stopped_by_caller` (training uses it to stop at the first NaN).
        interrupt_grace: seconds to wait after SIGINT and after SIGTERM before the next signal.
        on_spawn: called with the child's pid (also its process group) once it runs (the keeper records it).

    Returns:
        The `ProcessResult`.

    Raises:
        RunInterrupted: on KeyboardInterrupt, after the child's group is gone; `.result` says how it ended.
        FileNotFoundError: the program does not exist.
    """
    argv = [str(a) for a in argv]
    log = _LogFile(Path(log_path)) if log_path is not None else None
    start = time.monotonic()
    child = _spawn(argv, cwd, env, dimensions, log)
    pgid = child.pid  # pty.fork() made the child a session (and process group) leader
    stream = _Stream(child, log, on_text, prompts, watchdog, chunk)
    stops = _Stops(watchdog, log, should_stop, interrupt_steps=(
        (_signal.SIGINT, interrupt_grace[0]), (_signal.SIGTERM, interrupt_grace[1]), (_signal.SIGKILL, 5.0)))
    ending = _Ending()
    try:
        interrupted = _supervise(child, stream, pgid, poll, stops, ending, on_spawn)
    finally:
        _kill_leftovers(child, pgid)
        if log is not None:
            log.close()
    result = _process_result(child, stream, log, ending, interrupted=interrupted,
                             seconds=time.monotonic() - start, pid=pgid)
    if interrupted:
        raise RunInterrupted(result)
    return result


def _supervise(child: pexpect.spawn, stream: _Stream, pgid: int, poll: float, stops: _Stops, ending: _Ending,
               on_spawn: Callable[[int], None] | None) -> bool:
    """Pump the child's output until it ends, stop it on Ctrl-C, and reap it; whether the user interrupted.

    A second Ctrl-C while the child is being stopped ends the waiting: `run` then kills what is left.
    """
    interrupted = False
    try:
        if on_spawn is not None:
            on_spawn(pgid)
        if stops.watchdog is not None:
            stops.watchdog.start(time.monotonic())
        try:
            _pump(child, stream, pgid, poll, stops, ending)
        except KeyboardInterrupt:
            interrupted = True
            _stop(child, stream, pgid, stops.interrupt_steps)
        # Reap the child (it has exited or closed the pty) and leave nothing of its group behind.
        _wait_gone(child, stream, 2.0) or _stop(child, stream, pgid, ((_signal.SIGKILL, 5.0),))
        stream.drain(0.1)
    except KeyboardInterrupt:  # a second Ctrl-C while we were stopping it: no more patience
        interrupted = True
    return interrupted


def _process_result(child: pexpect.spawn, stream: _Stream, log: _LogFile | None, ending: _Ending, *,
                    interrupted: bool, seconds: float, pid: int) -> ProcessResult:
    """How the run ended, from the reaped child, what was read and the log's troubles."""
    return ProcessResult(
        returncode=child.exitstatus, signal=child.signalstatus, interrupted=interrupted,
        killed_by_watchdog=ending.watchdog, seconds=seconds, pid=pid,
        answered=tuple(stream.answered), stopped_by_caller=ending.stopped, bytes_read=stream.bytes,
        log_error=log.error if log is not None else None, notices=tuple(log.notices) if log is not None else (),
    )
