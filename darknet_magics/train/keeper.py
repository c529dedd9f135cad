"""The keeper: the small process that holds a background run's darknet, so that the run outlives the kernel.

A pty closes when the process holding its master end dies, and the kernel then sends SIGHUP to darknet: a darknet
run on a pty of the kernel dies with the kernel (Colab's "Restart session", a crash, Jupyter's restart). A
background run is therefore started as::

    python -m darknet_magics.train.keeper --run-dir RUN --log RUN/train.log --cwd CWD [--detach] -- darknet detector ...

The kernel starts it in a new session (``start_new_session``); with ``--detach`` it forks once more and the first
process exits, so the keeper is no child of the kernel (ipykernel terminates its children at shutdown) and no
session leader. The keeper runs darknet through `runner.run`, the same runner a foreground run uses: darknet on a
pty of the keeper (line-buffered, in its own session and process group), every byte appended to the log and flushed
as it arrives (`runner._LogFile`: a deleted log is made again, a full disk stops darknet and says so), hank-ai's
prompt answered, the training watchdog. What the kernel needs to find it again is in ``RUN/keeper.json``, written
atomically: the boot id, the keeper's and darknet's pids with their start times (a pid is reused; a pid and its
start time on the same boot is one process), and, once darknet has ended, how it ended (the `ProcessResult`).

Stopping: the kernel writes ``RUN/stop-request`` (its text is the reason); the keeper sees it within the runner's
poll (0.1 s) and stops darknet as the runner does (SIGINT, TERM, KILL to its group). SIGINT or SIGTERM to the keeper
do the same. The keeper ignores SIGHUP; darknet does not (it dies when its keeper does).
"""
from __future__ import annotations

import argparse
import dataclasses
import enum
import errno
import json
import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from ..run import runner
from ..fileio import atomic_write_text
from ..jsonread import Fields, RecordError, load_json

__all__ = ["STATE_NAME", "STOP_NAME", "STOP_REASON", "KeeperState", "StopReason", "boot_id", "process_start",
           "same_process", "read_state", "request_stop", "save_json", "training_watchdog", "Keeper", "main"]

STATE_NAME = "keeper.json"
STOP_NAME = "stop-request"


class KeeperState(str, enum.Enum):
    """Where a keeper stands, as keeper.json says."""

    STARTING = "starting"  # darknet not spawned yet
    RUNNING = "running"
    ENDED = "ended"        # darknet ended; `result` says how
    FAILED = "failed"      # darknet could not start; `error` says why

    @property
    def done(self) -> bool:
        return _DONE[self]


_DONE = {KeeperState.STARTING: False, KeeperState.RUNNING: False, KeeperState.ENDED: True, KeeperState.FAILED: True}
assert set(_DONE) == set(KeeperState), "every KeeperState needs an entry in _DONE"


class StopReason(str, enum.Enum):
    """Why darknet was asked to stop (the stop-request file holds the word; darknet's result the sentence)."""

    REQUEST = "request"        # %yolo stop, run.stop()
    NAN = "nan"                # the first nan loss (stop_on_nan)
    UNWRITABLE = "unwritable"  # the run folder cannot be written (a full disk, a read-only folder)
    BUDGET = "budget"          # guard.py: the time budget (time=, until=) is spent
    PATIENCE = "patience"      # guard.py: mAP has not improved for patience= evaluations

    def describe(self, detail: Optional[str] = None) -> str:
        """The sentence a result and a verdict show."""
        return _SENTENCES[self].format(detail or "?")


_SENTENCES = {StopReason.REQUEST: "stopped on request (%yolo stop)",
              StopReason.NAN: "loss became nan at iteration {}",
              StopReason.UNWRITABLE: "the run folder cannot be written: {}",
              StopReason.BUDGET: "time budget reached (stop by {})",
              StopReason.PATIENCE: "stopped early: {}"}
assert set(_SENTENCES) == set(StopReason), "every StopReason needs a sentence"
STOP_REASON = StopReason.REQUEST.describe()


def training_watchdog() -> runner.Watchdog:
    """The watchdog for training: a fatal banner then 30 s of silence, a finished run that hangs for 2 min,
    or silence 30x longer than the longest gap so far (at least 30 min: AlexeyAB's mAP pass is quiet). Here, not
    in training.py, so that the keeper imports only the runner."""
    return runner.Watchdog(after_fatal_s=30.0, done=(r"Saving weights to \S*_final\.weights",),
                           after_done_s=120.0, silence_factor=30.0, min_silence_s=1800.0)


def save_json(path: Path, value: Any) -> None:
    """Write `value` as JSON atomically; on a full disk (no room for the temporary copy) rewrite the file in place
    when the blocks it already has hold the new text, so that a run's record still says how the run ended."""
    data = (json.dumps(value, indent=2) + "\n").encode("utf-8")
    try:
        atomic_write_text(path, data.decode("utf-8"))
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        try:
            room = os.stat(path).st_blocks * 512
        except OSError:
            raise exc from None
        if room < len(data):
            raise
    with open(path, "r+b") as handle:  # no new block is needed: this cannot fail for want of space
        handle.write(data)
        handle.truncate(len(data))
        handle.flush()
        os.fsync(handle.fileno())
ERR_NAME = "keeper.err"  # the keeper's own stderr: a traceback of ours lands here, not in the log
FOLLOWER_NAME = "follower.json"  # the kernel that follows the log now (two kernels must not both write history)
_PROC = Path("/proc/self/stat").exists()


def boot_id() -> Optional[str]:
    """This boot's id (Linux), or None: a pid recorded on another boot names nothing now."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


def process_start(pid: Optional[int]) -> Optional[int]:
    """When process `pid` started (clock ticks since boot, /proc/PID/stat field 22), or None when there is no
    such live process (a zombie is not alive: it has ended and waits to be reaped)."""
    if not pid:
        return None
    if not _PROC:  # no /proc (macOS): alive or not is all we can tell; 0 stands for "some start time"
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return 0
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()  # comm may hold spaces and parentheses
    if len(fields) < 20 or fields[0] in (b"Z", b"X"):
        return None
    return int(fields[19])


def same_process(pid: Optional[int], start: Optional[int], boot: Optional[str]) -> bool:
    """True when `pid` is alive and is the process recorded with `start` on boot `boot` (not a reused pid)."""
    if not pid or start is None or boot != boot_id():
        return False
    return process_start(pid) == start


def read_state(run_dir: Path) -> Optional[dict]:
    """RUN/keeper.json, validated, or None when there is none or it is damaged (`check_state` says how)."""
    try:
        return check_state(run_dir)
    except (OSError, RecordError):
        return None


_RESULT_KEYS = {f.name for f in dataclasses.fields(runner.ProcessResult)}


def check_state(run_dir: Path) -> dict:
    """RUN/keeper.json with every value of the type the keeper writes; RecordError (file, line) when it is not,
    OSError when it cannot be read. Pids are what `same_process` is given: a wrong type must not reach os.kill."""
    value, text = load_json(Path(run_dir) / STATE_NAME)
    f = Fields(value, Path(run_dir) / STATE_NAME, "keeper.json", text)
    f.unknown({"version", "state", "boot_id", "keeper_pid", "keeper_start", "darknet_pid", "darknet_pgid",
               "darknet_start", "started", "ended", "argv", "log", "result", "error", "name", "stop_reason"})
    word = f.str_("state") or KeeperState.STARTING.value
    try:
        state = KeeperState(word)
    except ValueError:
        raise f.fail("state", f"{word!r:.40} is no keeper state") from None
    out: dict[str, Any] = {
        "version": f.int_("version"), "state": state.value, "boot_id": f.str_("boot_id"),
        "started": f.str_("started"), "ended": f.str_("ended"), "argv": list(f.strs("argv", lines=True)), "log": f.str_("log"),
        "error": f.str_("error", lines=True), "name": f.str_("name"), "stop_reason": _stop_word(f)}
    for key in ("keeper_pid", "darknet_pid", "darknet_pgid"):
        out[key] = f.int_(key, low=2)  # never 0 or 1: killpg(0) is our own group, 1 is init
    for key in ("keeper_start", "darknet_start"):
        out[key] = f.int_(key)
    result = f.obj_("result")
    out["result"] = _result_values(result) if result is not None else None
    return out


def _stop_word(f: Fields) -> Optional[str]:
    word = f.str_("stop_reason")
    if word is not None and word not in {r.value for r in StopReason}:
        raise f.fail("stop_reason", f"{word!r:.40} is no stop reason")
    return word


def _result_values(f: Fields) -> dict:
    """A recorded ProcessResult's fields, typed."""
    f.unknown(_RESULT_KEYS)
    return {"returncode": f.int_("returncode", low=-(1 << 31)), "signal": f.int_("signal", low=1),
            "interrupted": f.bool_("interrupted"), "killed_by_watchdog": f.str_("killed_by_watchdog", lines=True),
            "seconds": f.number("seconds", 0.0), "pid": f.int_("pid", 0), "answered": list(f.strs("answered", lines=True)),
            "stopped_by_caller": f.str_("stopped_by_caller", lines=True), "bytes_read": f.int_("bytes_read", 0),
            "log_error": f.str_("log_error", lines=True), "notices": list(f.strs("notices", lines=True))}


def request_stop(run_dir: Path, reason: StopReason = StopReason.REQUEST, detail: Optional[str] = None) -> None:
    """Ask the keeper of `run_dir` to stop darknet (it looks every 0.1 s): the file holds the reason's word, then
    its detail."""
    atomic_write_text(Path(run_dir) / STOP_NAME, reason.value + ("\n" + detail if detail else ""))


def read_stop(text: str) -> tuple[StopReason, Optional[str]]:
    """A stop-request's (reason, detail); an unknown word (a file written by hand) is a plain request."""
    word, _, detail = text.strip().partition("\n")
    try:
        return StopReason(word.strip()), (detail.strip()[:200] or None)
    except ValueError:
        return StopReason.REQUEST, None


class Keeper:
    """The kernel's handle on the keeper of one run folder (its keeper.json, re-read on `refresh`)."""

    def __init__(self, run_dir: Path, state: Optional[dict] = None) -> None:
        self.run_dir = Path(run_dir)
        self.state: dict = state or read_state(self.run_dir) or {}
        self._stopper: Optional[threading.Thread] = None

    def refresh(self) -> dict:
        self.state = read_state(self.run_dir) or self.state
        return self.state

    @property
    def keeper_state(self) -> Optional[KeeperState]:
        word = self.state.get("state")
        return KeeperState(word) if word else None  # read_state validated the word

    @property
    def ended(self) -> bool:
        """The keeper has written how darknet ended (or that it could not start it)."""
        state = self.keeper_state
        return state is not None and state.done

    @property
    def stop_reason(self) -> Optional[StopReason]:
        word = self.state.get("stop_reason")
        return StopReason(word) if word else None

    @property
    def keeper_alive(self) -> bool:
        s = self.state
        return same_process(s.get("keeper_pid"), s.get("keeper_start"), s.get("boot_id"))

    @property
    def darknet_alive(self) -> bool:
        s = self.state
        return same_process(s.get("darknet_pid"), s.get("darknet_start"), s.get("boot_id"))

    @property
    def alive(self) -> bool:
        return self.keeper_alive or self.darknet_alive

    def result(self) -> Optional[runner.ProcessResult]:
        """How darknet ended, as the keeper's runner saw it; None while it runs (or if no one saw it end)."""
        data = self.state.get("result")
        if not data:
            return None
        names = {f.name for f in dataclasses.fields(runner.ProcessResult)}
        values = {k: v for k, v in data.items() if k in names}
        for key in ("answered", "notices"):
            values[key] = tuple(values.get(key) or ())
        return runner.ProcessResult(**values)

    def stop(self, reason: StopReason = StopReason.REQUEST, detail: Optional[str] = None) -> None:
        """Ask the keeper to stop darknet; if the keeper is gone but darknet is not, stop darknet's group here
        (SIGINT, TERM, KILL with the runner's waits, in a thread: the caller waits with `run.wait()`)."""
        try:
            request_stop(self.run_dir, reason, detail)
        except OSError:  # a full disk or a read-only folder: SIGINT to the keeper stops darknet as a request does
            if self.keeper_alive:
                try:
                    os.kill(int(self.state["keeper_pid"]), signal.SIGINT)
                except OSError:
                    pass
        self.refresh()
        if not self.keeper_alive and self.darknet_alive and self._stopper is None:
            self._stopper = threading.Thread(target=self._signal_group, name="stop darknet", daemon=True)
            self._stopper.start()

    def _signal_group(self) -> None:
        pgid = self.state.get("darknet_pgid")
        for sig, grace in ((signal.SIGINT, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 5.0)):
            if not self.darknet_alive:
                return
            try:
                os.killpg(int(pgid), sig)
            except (ProcessLookupError, PermissionError, TypeError, ValueError):
                return
            end = time.monotonic() + grace
            while self.darknet_alive and time.monotonic() < end:
                time.sleep(0.05)

    def describe(self) -> str:
        s = self.state
        who = f"darknet pid {s.get('darknet_pid')}" if self.darknet_alive else "darknet"
        return f"{who} under keeper pid {s.get('keeper_pid')}, started {s.get('started')}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _Keeper:
    def __init__(self, run_dir: Path, log: Path, cwd: Path, argv: Sequence[str], name: Optional[str] = None) -> None:
        self.run_dir, self.log, self.cwd, self.argv = run_dir, log, cwd, list(argv)
        self.stop_path = run_dir / STOP_NAME
        self.state: dict[str, Any] = {
            "version": 1, "state": KeeperState.STARTING.value, "boot_id": boot_id(), "keeper_pid": os.getpid(),
            "keeper_start": process_start(os.getpid()), "darknet_pid": None, "darknet_pgid": None,
            "darknet_start": None, "started": _now(), "ended": None, "argv": self.argv, "log": str(log),
            "result": None, "error": None, "name": name, "stop_reason": None,
        }
        self.unsaved: Optional[str] = None
        self.guard: Any = None  # guard.Guard when the run folder has a guard.json

    def save(self) -> None:
        """keeper.json; a keeper that cannot write it (a full disk, a deleted folder) keeps darknet's log going and
        tries again at the next change: it must not die, or nobody learns how darknet ended."""
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)  # a deleted run folder is made again, as the log is
            save_json(self.run_dir / STATE_NAME, self.state)
            self.unsaved = None
        except OSError as exc:
            self.unsaved = f"{exc.strerror or exc} ({self.run_dir / STATE_NAME})"
            print(f"keeper: cannot write {STATE_NAME}: {self.unsaved}", file=sys.stderr, flush=True)

    def spawned(self, pid: int) -> None:
        # pexpect's pty.fork made darknet a session leader: its pgid is its pid
        self.state.update(state=KeeperState.RUNNING.value, darknet_pid=pid, darknet_pgid=pid,
                          darknet_start=process_start(pid))
        self.save()

    def should_stop(self) -> Optional[str]:
        try:
            text = self.stop_path.read_text(encoding="utf-8", errors="replace")[:1000]
        except FileNotFoundError:
            return None
        except OSError:
            text = ""
        reason, detail = read_stop(text)
        self.state["stop_reason"] = reason.value
        return reason.describe(detail)

    def _noted(self, reason: StopReason) -> None:
        self.state["stop_reason"] = reason.value

    def run(self) -> int:
        self.save()
        from .guard import open_guard  # issue 24 hook: the drive mirror, checkpoints, budget, patience

        self.guard = open_guard(self.run_dir)
        on_text, should_stop = guarded_callbacks(self.guard, None, self.should_stop, self._noted)
        try:
            result = runner.run(self.argv, cwd=self.cwd, log_path=self.log, watchdog=training_watchdog(),
                                should_stop=should_stop, on_spawn=self.spawned, on_text=on_text)
        except runner.RunInterrupted as exc:  # SIGINT/SIGTERM to the keeper: darknet was stopped as runner does
            result = exc.result
        except (FileNotFoundError, OSError) as exc:
            self.state.update(state=KeeperState.FAILED.value, ended=_now(), error=f"cannot start darknet: {exc}")
            self.save()
            return 1
        if self.guard is not None:  # the last weights reach the drive before the kernel is told darknet ended
            self.guard.finish()
        self.state.update(state=KeeperState.ENDED.value, ended=_now(), result=dataclasses.asdict(result))
        self.save()
        return 0 if self.unsaved is None else 3


def guarded_callbacks(guard: Any, on_text: Optional[Callable[[str], None]], should_stop: Callable[[], Optional[str]],
                      noted: Callable[[StopReason], None] = lambda reason: None
                      ) -> tuple[Optional[Callable[[str], None]], Callable[[], Optional[str]]]:
    """The runner's callbacks with a run's guard (train/guard.py: the drive mirror, checkpoints, time budget,
    patience) in them: it reads darknet's output after `on_text`, and is asked after `should_stop`."""
    if guard is None:
        return on_text, should_stop

    def text(chunk: str) -> None:
        if on_text is not None:
            on_text(chunk)
        guard.feed(chunk)

    def stop() -> Optional[str]:
        asked = should_stop()
        if asked is not None:
            return asked
        word = guard.should_stop()
        if word is None:
            return None
        reason = StopReason(word[0])
        noted(reason)
        return reason.describe(word[1])

    return text, stop


def _ignore(signum: int, frame: Any) -> None:
    pass


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _detach() -> None:
    """Fork once more; the parent exits: the keeper is reparented away from the kernel and leads no session."""
    if os.fork() > 0:
        os._exit(0)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m darknet_magics.train.keeper --run-dir RUN --log LOG --cwd CWD [--detach] -- COMMAND...``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--" not in args:
        print("usage: python -m darknet_magics.train.keeper --run-dir RUN --log LOG --cwd CWD [--detach] -- COMMAND...",
              file=sys.stderr)
        return 2
    split = args.index("--")
    parser = argparse.ArgumentParser(prog="python -m darknet_magics.train.keeper")
    parser.add_argument("--run-dir", required=True, type=Path)
    parser.add_argument("--log", required=True, type=Path)
    parser.add_argument("--cwd", required=True, type=Path)
    parser.add_argument("--detach", action="store_true")
    parser.add_argument("--name", default=None)
    options = parser.parse_args(args[:split])
    command = args[split + 1:]
    if not command:
        parser.error("no command after --")
    if options.detach:
        _detach()
    # Not SIG_IGN: an ignored signal stays ignored across exec, and darknet must still die of SIGHUP when its pty
    # closes (a keeper killed with -9), not train on unlogged; a handler is reset to the default by exec.
    signal.signal(signal.SIGHUP, _ignore)
    signal.signal(signal.SIGINT, _raise_interrupt)  # even if the kernel's shell started us with SIGINT ignored
    signal.signal(signal.SIGTERM, _raise_interrupt)
    name = options.name if options.name and options.name.isidentifier() else None
    keeper = _Keeper(options.run_dir, options.log, options.cwd, command, name)
    try:
        return keeper.run()
    except KeyboardInterrupt:  # before darknet started
        keeper.state.update(state=KeeperState.FAILED.value, ended=_now(), error="stopped before darknet started")
        keeper.save()
        return 1


if __name__ == "__main__":
    sys.exit(main())
