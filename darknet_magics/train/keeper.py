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
import json
import os
import signal
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional, Sequence

from ..run import runner
from ..fileio import atomic_write_text

__all__ = ["STATE_NAME", "STOP_NAME", "STOP_REASON", "boot_id", "process_start", "same_process", "read_state",
           "request_stop", "main"]

STATE_NAME = "keeper.json"
STOP_NAME = "stop-request"
STOP_REASON = "stopped on request (%yolo stop)"
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
    """RUN/keeper.json, or None when there is none (or it cannot be read)."""
    try:
        return json.loads((Path(run_dir) / STATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def request_stop(run_dir: Path, reason: str = STOP_REASON) -> None:
    """Ask the keeper of `run_dir` to stop darknet (it looks every 0.1 s)."""
    atomic_write_text(Path(run_dir) / STOP_NAME, reason)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _Keeper:
    def __init__(self, run_dir: Path, log: Path, cwd: Path, argv: Sequence[str]) -> None:
        self.run_dir, self.log, self.cwd, self.argv = run_dir, log, cwd, list(argv)
        self.stop_path = run_dir / STOP_NAME
        self.state: dict[str, Any] = {
            "version": 1, "state": "starting", "boot_id": boot_id(), "keeper_pid": os.getpid(),
            "keeper_start": process_start(os.getpid()), "darknet_pid": None, "darknet_pgid": None,
            "darknet_start": None, "started": _now(), "ended": None, "argv": self.argv, "log": str(log),
            "result": None, "error": None,
        }

    def save(self) -> None:
        atomic_write_text(self.run_dir / STATE_NAME, json.dumps(self.state, indent=2) + "\n")

    def spawned(self, pid: int) -> None:
        # pexpect's pty.fork made darknet a session leader: its pgid is its pid
        self.state.update(state="running", darknet_pid=pid, darknet_pgid=pid, darknet_start=process_start(pid))
        self.save()

    def should_stop(self) -> Optional[str]:
        try:
            return self.stop_path.read_text(encoding="utf-8").strip() or STOP_REASON
        except FileNotFoundError:
            return None
        except OSError:
            return STOP_REASON

    def run(self) -> int:
        from .training import training_watchdog  # the same watchdog as a foreground run

        self.save()
        try:
            result = runner.run(self.argv, cwd=self.cwd, log_path=self.log, watchdog=training_watchdog(),
                                should_stop=self.should_stop, on_spawn=self.spawned)
        except runner.RunInterrupted as exc:  # SIGINT/SIGTERM to the keeper: darknet was stopped as runner does
            result = exc.result
        except (FileNotFoundError, OSError) as exc:
            self.state.update(state="failed", ended=_now(), error=f"cannot start darknet: {exc}")
            self.save()
            return 1
        self.state.update(state="ended", ended=_now(), result=dataclasses.asdict(result))
        self.save()
        return 0


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
    keeper = _Keeper(options.run_dir, options.log, options.cwd, command)
    try:
        return keeper.run()
    except KeyboardInterrupt:  # before darknet started
        keeper.state.update(state="failed", ended=_now(), error="stopped before darknet started")
        keeper.save()
        return 1


if __name__ == "__main__":
    sys.exit(main())
