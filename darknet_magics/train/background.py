"""Background training: darknet under a keeper that outlives the kernel; the kernel follows the run's log.

`start` writes the run folder (training's `start_session`), launches ``python -m darknet_magics.train.keeper`` (keeper.py: it
holds darknet's pty and appends every byte to ``train.log``) and follows the log in a thread with the same sinks as
a foreground run (`watch.make_watch`: parser, history, the caller's view), so the chart and the dataframes are the same;
when the keeper says darknet has ended, the run is judged as a foreground run is (`training.finish_session`).

After a kernel restart, `find_live` lists the run folders whose keeper (or darknet) is still alive on this boot and
`reattach` follows one again: the log so far is parsed, then followed. A run whose darknet ended while no kernel
watched is judged from its log and the keeper's record of how darknet ended. `Keeper.stop` asks the keeper to stop
darknet (SIGINT, TERM, KILL to its group, as the runner does); when the keeper itself is gone and darknet is not,
the kernel sends those signals itself.
"""
from __future__ import annotations

import codecs
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Optional

from . import guard
from . import keeper as _keeper
from .drivesync import read_manifest
from ..run import runner
from ..errors import DarknetMagicsError, StepError
from ..fileio import atomic_write_text, remove_if_exists
from ..jsonread import RecordError, load_json
from .keeper import Keeper, KeeperState, StopReason
from .record import RunRecord, RunStatus, read_record
from ..output.logs import read_log
from ..report import Reporter
from .plan import TrainPlan, refuse_shared_backup, starting
from .runs import TrainingRun, history_class
from .training import finish_session, start_session
from .watch import ViewMaker, Watch, make_watch, no_view

__all__ = ["Keeper", "start", "find_live", "live_run", "reattach", "LiveRun"]

_POLL_S = 0.25       # how often the follower looks for new output when there was none
_START_WAIT_S = 30.0  # how long the kernel waits for the keeper to say darknet runs


def _launch(argv: list[str], run_dir: Path, log: Path, cwd: Path, env: Optional[dict] = None,
            name: Optional[str] = None) -> Keeper:
    """Start the keeper detached from the kernel and wait until it says darknet runs (or could not start)."""
    remove_if_exists(run_dir / _keeper.STOP_NAME)   # a request left from an earlier session is not for this one
    remove_if_exists(run_dir / _keeper.STATE_NAME)  # neither is the earlier session's record
    command = [sys.executable, "-m", "darknet_magics.train.keeper", f"--run-dir={run_dir}", f"--log={log}",
               f"--cwd={cwd}", "--detach"] + ([f"--name={name}"] if name else []) + ["--", *argv]
    # `=`: a path that starts with "-" stays a value
    env = dict(os.environ if env is None else env)
    here = str(Path(__file__).resolve().parents[2])  # the keeper imports this very package, installed or not
    env["PYTHONPATH"] = here + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with open(run_dir / _keeper.ERR_NAME, "ab") as err:
        # a new session: the kernel's process group (signalled by Jupyter's interrupt and restart) is not ours
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=err, stderr=err, cwd=str(cwd), env=env,
                                start_new_session=True, close_fds=True)
    try:
        proc.wait(_START_WAIT_S)  # the first process forks the keeper and exits at once
    except subprocess.TimeoutExpired:
        proc.kill()
    keeper = Keeper(run_dir, {})
    end = time.monotonic() + _START_WAIT_S
    while time.monotonic() < end:
        keeper.refresh()
        if keeper.keeper_state not in (None, KeeperState.STARTING):
            return keeper
        state = keeper.state
        if state and not keeper.keeper_alive:
            break
        time.sleep(0.05)
    problem = _tail(run_dir / _keeper.ERR_NAME) or "it wrote nothing"
    raise StepError(f"the keeper of the background run did not start darknet within {_START_WAIT_S:.0f} s: "
                    f"{problem}", fix=f"see {run_dir / _keeper.ERR_NAME}; train in the foreground (without "
                                      f"`background`) meanwhile")


def _tail(path: Path, n: int = 2000) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-n:].strip()
    except OSError:
        return ""


class _LogTail:
    """Reads what is appended to a log. The keeper makes a deleted or moved log again at its path with everything
    written so far (runner._LogFile), so a file with another inode is reopened at the same offset."""

    CHECK_EVERY_S = 1.0

    def __init__(self, path: Path, offset: int) -> None:
        self.path = Path(path)
        self.offset = offset
        self.handle = None
        self._checked = 0.0

    def read(self, size: int = 1 << 20) -> bytes:
        now = time.monotonic()
        if self.handle is None or now - self._checked >= self.CHECK_EVERY_S:
            self._checked = now
            self._reopen_if_replaced()
        if self.handle is None:
            return b""
        data = os.pread(self.handle.fileno(), size, self.offset)
        self.offset += len(data)
        return data

    def _reopen_if_replaced(self) -> None:
        try:
            inode = os.stat(self.path).st_ino
        except FileNotFoundError:
            return  # gone for now: the keeper makes it again within a second
        if self.handle is not None and os.fstat(self.handle.fileno()).st_ino == inode:
            return
        if self.handle is not None:
            self.handle.close()
        self.handle = open(self.path, "rb")

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()
            self.handle = None


class _Follower:
    """Feeds a run's log from `offset` to its watch until the keeper says darknet has ended and the log is read to
    its end; asks the keeper to stop darknet when the watch says so (a stop request, the first nan)."""

    def __init__(self, run: TrainingRun, keeper: Keeper, watch: Watch, offset: int) -> None:
        self.run, self.keeper, self.watch = run, keeper, watch
        self.tail = _LogTail(run.log_path, offset)
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self.requested: Optional[str] = None
        self.started = time.monotonic()

    def _feed(self, data: bytes) -> None:
        self.watch.on_text(self.decoder.decode(data))
        reason = self.watch.stop_reason()
        if reason is not None and self.requested is None and reason is not StopReason.REQUEST:  # run.stop() asked
            self.requested = reason
            detail = self.watch.should_stop() or ""
            self.keeper.stop(reason, detail.rpartition(": ")[2] if reason is StopReason.UNWRITABLE else
                             str(self.watch.nan_iteration))

    def catch_up(self) -> None:
        """Parse what the log holds now (a re-attach: the run so far, before the chart is first shown). The view is
        not drawn meanwhile: its first frame would time the rate (it/s, ETA) from parsing, not from training."""
        self.watch.drawing = False
        try:
            while True:
                data = self.tail.read(16 << 20)
                if not data:
                    return
                self._feed(data)
        finally:
            self.watch.drawing = True

    def follow(self) -> runner.ProcessResult:
        """Follow to the end; how darknet ended (as the keeper recorded it, else as far as we know)."""
        try:
            while True:
                data = self.tail.read()
                if data:
                    self._feed(data)
                    continue
                self.keeper.refresh()
                if self.keeper.ended:  # the keeper closed the log before it wrote its record: read the rest
                    self.catch_up()
                    break
                if not self.keeper.alive:
                    time.sleep(0.2)  # its last bytes: the log is written before the process is gone
                    if self._drained():
                        break
                    continue
                time.sleep(_POLL_S)
        finally:
            self.tail.close()
        rest = self.decoder.decode(b"", final=True)
        if rest:
            self.watch.on_text(rest)
        return self._result()

    def _drained(self) -> bool:
        data = self.tail.read()
        if data:
            self._feed(data)
            return False
        return True

    def _result(self) -> runner.ProcessResult:
        keeper = self.keeper
        result = keeper.result()
        if result is not None:
            return result
        error = keeper.state.get("error")
        if error:
            raise StepError(error, fix="check the binary path (bin=PATH)")
        stopped = keeper._stopper is not None  # we stopped its darknet ourselves
        unwritable = _unwritable(self.run.run_dir)
        if keeper.state.get("boot_id") not in (None, _keeper.boot_id()):
            why = "the machine was restarted (a VM reset) while darknet ran"
        else:
            why = f"darknet's keeper (pid {keeper.state.get('keeper_pid')}) ended before darknet did"
        return runner.ProcessResult(
            returncode=None, signal=None, interrupted=False, killed_by_watchdog=None,
            seconds=time.monotonic() - self.started, pid=int(keeper.state.get("darknet_pid") or 0),
            stopped_by_caller=StopReason.REQUEST.describe() if stopped else None, log_error=unwritable,
            notices=(f"{why}, and nothing recorded how darknet ended: the run is judged from its log alone",))


def _unwritable(run_dir: Path) -> Optional[str]:
    """Why a keeper that left no record could not write one, when the run folder tells: a full disk, a folder that
    is gone; else None."""
    if not run_dir.is_dir():
        return f"No such file or directory ({run_dir})"
    try:
        stats = os.statvfs(run_dir)
    except OSError:
        return None
    if stats.f_bavail * stats.f_frsize < (64 << 10):
        return f"No space left on device ({stats.f_bavail * stats.f_frsize:,} bytes free in {run_dir})"
    return None


def _work(follower: _Follower, session_info: dict, max_batches: Optional[int], reporter: Reporter) -> None:
    """The follower thread: follow, then judge (a failure's diagnosis goes to `run.error`: no one to raise to)."""
    run, watch = follower.run, follower.watch
    try:
        result = follower.follow()
        asked = follower.keeper.stop_reason is StopReason.REQUEST or follower.keeper._stopper is not None
        if result.stopped_by_caller and asked:  # asked by %yolo stop, maybe from another kernel
            run.stop_requested.set()
        try:
            watch.close()
        except Exception as exc:  # the log is complete whatever went wrong in our reading of it
            watch.error = watch.error or exc
        # finish_session needs only the plan's max_batches (a re-attached run has no plan, only its run.json)
        plan = SimpleNamespace(max_batches=max_batches)
        try:
            finish_session(plan, run, watch, result, None, session_info, reporter)  # type: ignore[arg-type]
        finally:
            guard.after_verdict(run.run_dir, reporter)  # issue 24 hook: the verdict reaches the drive
    except BaseException as exc:
        run.error = exc


def start(*, plan: TrainPlan, reporter: Reporter, previous: Optional[TrainingRun] = None,
          view: ViewMaker = no_view, env: Optional[dict] = None, name: Optional[str] = None) -> TrainingRun:
    """Start training under a keeper and return at once; a thread follows the log (the chart keeps updating in the
    cell that started it, through `reporter`). `run.wait()`, `run.stop()`, `run.running`; how it ended is
    `run.status` (and `run.error` for a failure's diagnosis). Interrupting a cell, or restarting the kernel, does
    not stop it: only `run.stop()` / `%yolo stop` does. `name` (the variable it is bound to) goes into keeper.json,
    so that `%yolo stop NAME` finds the keeper even when run.json is damaged."""
    with starting(plan):  # the check and this session's run.json, one kernel at a time
        refuse_shared_backup(plan, previous)
        run, session_info = start_session(plan, previous, reporter)
    offset = int(session_info.get("log_offset") or 0)
    try:
        keeper = _launch(list(plan.argv), run.run_dir, run.log_path, plan.cwd, env, name)
    except StepError as exc:
        _record_failure(run, session_info, exc.message)
        raise
    if keeper.keeper_state is KeeperState.FAILED:
        message = keeper.state.get("error") or "darknet did not start"
        _record_failure(run, session_info, message)
        raise StepError(message, fix="check the binary path (bin=PATH)")
    session_info["keeper"] = {k: keeper.state.get(k) for k in ("keeper_pid", "darknet_pid", "boot_id")}
    run.save()
    run.keeper = keeper
    _claim(run.run_dir)
    watch = make_watch(run, data_arg=plan.data_arg, max_batches=plan.max_batches, resumed=previous is not None,
                       view=view)
    reporter.info(("resuming" if previous is not None else "training") + f" in the background: {' '.join(plan.argv)}")
    reporter.info(f"log: {run.log_path}")
    watch.live.update(run.history, force=True)
    follower = _Follower(run, keeper, watch, offset)
    run.thread = threading.Thread(target=_work, name=f"darknet {run.name}", daemon=True,
                                  args=(follower, session_info, plan.max_batches, reporter))
    run.thread.start()
    return run


def _record_failure(run: TrainingRun, session_info: dict, message: str) -> None:
    run.status, run.message = RunStatus.FAILED, message
    session_info.update({"status": run.status.value, "message": message})
    try:
        run.save()
    except OSError:
        pass


@dataclasses.dataclass(frozen=True)
class LiveRun:
    """A run folder left running by a kernel that is gone: its keeper's record, and whether it is still alive.
    `damaged` says why its run.json cannot be read (the keeper's own record still finds and stops darknet)."""

    run_dir: Path
    keeper: Keeper
    alive: bool
    follower: Optional[int] = None  # the pid of another live kernel that follows it now
    damaged: Optional[str] = None
    name: Optional[str] = None      # the variable it was bound to (keeper.json keeps it, run.json too)


def _claim(run_dir: Path) -> None:
    """Record this kernel as the run's follower (atomically; a failure to write it only loses the guard)."""
    me = os.getpid()
    try:
        atomic_write_text(Path(run_dir) / _keeper.FOLLOWER_NAME, json.dumps(
            {"pid": me, "start": _keeper.process_start(me), "boot_id": _keeper.boot_id()}) + "\n")
    except OSError:
        pass


def _other_follower(run_dir: Path) -> Optional[int]:
    """The pid of another live kernel following `run_dir`, or None."""
    try:
        f, _ = load_json(Path(run_dir) / _keeper.FOLLOWER_NAME)
    except (OSError, RecordError):
        return None
    if not isinstance(f, dict):
        return None
    pid, start, boot = f.get("pid"), f.get("start"), f.get("boot_id")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid < 2 or pid == os.getpid():
        return None
    if not isinstance(start, int) or not isinstance(boot, str) or not _keeper.same_process(pid, start, boot):
        return None
    return pid


def live_run(folder: Path) -> Optional[LiveRun]:
    """`folder` as a run a gone kernel left (see `find_live`), or None (no keeper, or judged already). A folder
    whose run.json is damaged or gone, but whose keeper still runs darknet, is one too (`damaged` says why)."""
    folder = Path(folder)
    try:  # issue 24 hook: a run mirrored to the drive lives in its local twin, or ended with its VM (None here)
        manifest = read_manifest(folder)
    except DarknetMagicsError:
        manifest = None
    if manifest is not None and manifest.local != folder:
        if not (manifest.local / "run.json").is_file():
            return None  # its VM is gone: `%yolo status` lists it from the drive, `%yolo resume` continues it
        folder = manifest.local
    state = _keeper.read_state(folder)
    if not state:
        return None
    try:
        record: Optional[RunRecord] = read_record(folder)
    except DarknetMagicsError as exc:  # damaged or gone: the keeper's own record still finds darknet
        keeper = Keeper(folder, state)
        if not keeper.alive:
            return None  # nothing runs: `%yolo status`/`compare` report the damage as any other folder's
        return LiveRun(folder, keeper, True, _other_follower(folder), damaged=str(exc).splitlines()[0],
                       name=state.get("name"))
    assert record is not None
    if record.status is not RunStatus.RUNNING:
        return None  # judged already
    if not record.sessions or not record.sessions[-1].get("keeper"):
        return None  # its last session runs in the foreground of some kernel (keeper.json is an earlier session's)
    keeper = Keeper(folder, state)
    return LiveRun(folder, keeper, keeper.alive, _other_follower(folder), name=record.name)


def find_live(root: Path) -> list[LiveRun]:
    """The run folders under `root` whose run.json still says ``running`` and that ran under a keeper: those whose
    keeper or darknet is alive on this boot, and those that ended while no kernel watched (not yet judged)."""
    if not Path(root).is_dir():
        return []
    found = []
    for folder in sorted(Path(root).iterdir()):
        try:
            left = live_run(folder) if folder.is_dir() else None
        except OSError:  # a folder that cannot be read is no run of ours
            left = None
        if left is not None:
            found.append(left)
    return found


def stop_left(left: LiveRun) -> str:
    """Stop darknet of a run whose run.json is damaged (no run object can be made): through its keeper, else its
    process group; one line saying what was done."""
    left.keeper.stop()
    end = time.monotonic() + 60
    while left.keeper.alive and time.monotonic() < end:
        time.sleep(0.1)
        left.keeper.refresh()
    how = "stopped" if not left.keeper.alive else "stop requested (darknet still ends)"
    return (f"{left.name or left.run_dir.name}: {how} (its run.json is damaged: {left.damaged}); the log is kept: "
            f"{left.run_dir / 'train.log'}")


def _history_before(run: TrainingRun) -> "object":
    """The history of the run's earlier sessions, from the log (history.jsonl may hold a part of the current
    session, written by the kernel that followed it and died)."""
    history = history_class()()
    offsets = [int(s.get("log_offset") or 0) for s in run.sessions]
    for begin, end in zip(offsets[:-1], offsets[1:]):  # each earlier session on its own (the one whole-log reader)
        part = read_log(run.log_path, flavor=run.args.flavor, start=begin, stop=max(begin, end)).history
        if len(history):
            history.extend(part)
        else:
            history = part
    return history


def reattach(live: LiveRun, reporter: Reporter, *, view: ViewMaker = no_view) -> tuple[TrainingRun, str]:
    """Follow a run a gone kernel left: parse its log so far, then follow it (a thread) while darknet runs; a run
    whose darknet has ended is judged here. Returns the run and one line saying what was found."""
    if live.follower is not None:
        raise StepError(f"{live.run_dir.name} is followed by another kernel (pid {live.follower})",
                        fix="watch it there, or stop that kernel first; its log is "
                            f"{live.run_dir / 'train.log'}")
    _claim(live.run_dir)
    run = TrainingRun.load(live.run_dir, history=False)  # rebuilt below from the log
    run.status = RunStatus.RUNNING  # load() reads a "running" run.json as interrupted; it may well run
    session_info = run.sessions[-1] if run.sessions else {}
    offset = int(session_info.get("log_offset") or 0)
    run.history = _history_before(run)
    run.history.save(run.history_path)  # the current session's rows come again from the log below
    keeper = live.keeper
    run.keeper = keeper
    data_arg = run.args.data_arg(run.run_dir) or Path(".")
    watch = make_watch(run, data_arg=data_arg, max_batches=run.max_batches, resumed=len(run.sessions) > 1,
                       view=view, key=":reattached")
    follower = _Follower(run, keeper, watch, offset)
    if live.alive:
        follower.catch_up()
        watch.live.update(run.history, force=True)
        run.thread = threading.Thread(target=_work, name=f"darknet {run.name}", daemon=True,
                                      args=(follower, session_info, run.max_batches, reporter))
        run.thread.start()
        at = run.last_iteration
        where = f"iteration {at:,}" + (f"/{run.max_batches:,}" if run.max_batches else "") if at else "no iteration yet"
        return run, (f"re-attached to {run.name} ({keeper.describe()}): still training, {where}; "
                     f"following {run.log_path}")
    follower.catch_up()
    _work(follower, session_info, run.max_batches, reporter)
    return run, (f"{run.name} ended while no kernel watched: {run.message or run.status} (judged from its log; "
                 f"run.json updated)")
