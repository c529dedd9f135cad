"""Background training that outlives its kernel (issue 13): darknet runs under a keeper process, a restarted
kernel's `%yolo status` re-attaches to it, `%yolo stop` stops it, a darknet that died unwatched is judged from its
log. Real Jupyter kernels (jupyter_client), real darknet (Debian's pjreddie build), real files."""
from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from darknet_magics.train import keeper
from darknet_magics.train.background import Keeper, _LogTail, find_live
from darknet_magics.synth import make_dataset

DARKNET = Path("/usr/bin/darknet")
ITERATION_LINE = re.compile(rb"^\s*(\d+): [\d.na-]+, [\d.na-]+ avg", re.M)
PLOTLY_MIME = "application/vnd.plotly.v1+json"

needs_darknet = pytest.mark.skipif(not DARKNET.is_file(), reason="needs Debian's darknet (/usr/bin/darknet)")
# real kernels, keepers and darknet processes: run once (issue 21), in the environment conftest's ONCE_IN_SECOND names
pytestmark = pytest.mark.once


class Kernel:
    """A real ipykernel driven as a front end drives it: every IOPub message is read and kept."""

    def __init__(self, cwd: Path) -> None:
        pytest.importorskip("ipykernel")
        from jupyter_client.manager import start_new_kernel

        self.km, self.kc = start_new_kernel(kernel_name="python3", cwd=str(cwd))
        self.msgs: list[dict] = []

    def run(self, code: str, timeout: float = 120) -> tuple[str, str]:
        """Execute `code`; (msg_id, what it printed). A cell that raises fails the test with its traceback."""
        msg_id = self.kc.execute(code)
        end = time.monotonic() + timeout
        text, error = [], None
        while True:
            msg = self.kc.get_iopub_msg(timeout=max(1.0, end - time.monotonic()))
            self.msgs.append(msg)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            if msg["msg_type"] == "stream":
                text.append(msg["content"]["text"])
            elif msg["msg_type"] == "error":
                error = "\n".join(msg["content"]["traceback"])
            elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        assert error is None, "".join(text) + error
        reply = self.kc.get_shell_msg(timeout=10)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=10)
        assert reply["content"]["status"] == "ok", "".join(text)  # a UsageError is printed, then reported here
        return msg_id, "".join(text)

    def drain(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.msgs.append(self.kc.get_iopub_msg(timeout=0.5))
            except queue.Empty:
                pass

    def restart(self, *, now: bool) -> None:
        """Jupyter's "Restart kernel" (now=False: a shutdown request, then a new kernel; now=True: killed)."""
        self.km.restart_kernel(now=now)
        self.kc.wait_for_ready(timeout=60)
        self.msgs.clear()

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def _setup_cell(ws: Path) -> str:
    """The %%darknet cell: a "drive" whose path has a space (darknet gets the space-free alias) and the dataset
    staged from it, as in Colab."""
    return f'%%darknet\ndrive "{ws}"\nstage {{drive}}/datasets/boxes\n'


def _start_in_background(kernel: Kernel, ws: Path, max_batches: int) -> Path:
    """A fresh kernel trains in the background until darknet has logged two iterations; the run folder."""
    make_dataset(ws / "datasets" / "boxes", images=8, size=64, seed=5)
    kernel.run("%load_ext darknet_magics")
    kernel.run(_setup_cell(ws))
    kernel.run("%yolo data {workspace}/boxes.data classes=1 names={dataset}/obj.names images={dataset}")
    kernel.run("%yolo cfg yolov3-tiny {workspace}/tiny.cfg classes=1 width=64 height=64 batch=4 subdivisions=1 "
               f"max_batches={max_batches} random=0")
    _, out = kernel.run("%yolo train {workspace}/boxes.data {workspace}/tiny.cfg background as bg")
    assert "training in the background" in out, out
    kernel.run("import time\nend = time.monotonic() + 90\n"
               "while (bg.last_iteration or 0) < 2 and time.monotonic() < end:\n    time.sleep(0.2)\n"
               "assert (bg.last_iteration or 0) >= 2, bg.summary()")
    _, out = kernel.run("print(bg.run_dir)")
    return Path(out.strip())


def _reload(kernel: Kernel, ws: Path) -> None:
    """What a user runs first in the new kernel: the extension and the setup cell."""
    kernel.run("%load_ext darknet_magics")
    kernel.run(_setup_cell(ws))


def _stop_leftovers(ws: Path) -> None:
    """A failed test must not leave darknet training for half an hour: kill what a keeper still holds."""
    for record in ws.rglob(keeper.STATE_NAME):  # {workspace}/runs/*, and {drive}/darknet/runs/* with `drive`
        state = keeper.read_state(record.parent) or {}
        for pid_key, start_key, group in (("darknet_pid", "darknet_start", True),
                                          ("keeper_pid", "keeper_start", False)):
            if keeper.same_process(state.get(pid_key), state.get(start_key), state.get("boot_id")):
                try:
                    (os.killpg if group else os.kill)(state[pid_key], signal.SIGKILL)
                except OSError:
                    pass


def _darknet_state(run_dir: Path) -> dict:
    state = keeper.read_state(run_dir)
    assert state and state["state"] == "running", state
    return state


def _wait_for(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


def _iterations(log: Path) -> list[int]:
    return [int(n) for n in ITERATION_LINE.findall(log.read_bytes())]


def _meta(run_dir: Path) -> dict:
    return json.loads((run_dir / "run.json").read_text())


@pytest.mark.slow
@pytest.mark.timeout(300)
@needs_darknet
def test_darknet_survives_a_kernel_restart_and_status_reattaches_to_it(tmp_path) -> None:
    ws = tmp_path / "My Drive" / "ws"
    ws.mkdir(parents=True)
    kernel = Kernel(ws)
    try:
        max_batches = 30
        run_dir = _start_in_background(kernel, ws, max_batches)
        state = _darknet_state(run_dir)
        # A shutdown request first (ipykernel ends its child processes at shutdown), then a new kernel.
        kernel.restart(now=False)
        assert keeper.same_process(state["darknet_pid"], state["darknet_start"], state["boot_id"])
        before = (run_dir / "train.log").stat().st_size
        _wait_for(lambda: (run_dir / "train.log").stat().st_size > before, 30, "the log to grow after the restart")

        _reload(kernel, ws)
        status_id, out = kernel.run("%yolo status")
        assert f"re-attached to bg (darknet pid {state['darknet_pid']}" in out and "(bound to `bg`)" in out, out
        assert "still training" in out and f"/{max_batches}" in out
        _, out = kernel.run("bg.wait(240)\nprint(bg.status, bg.last_iteration, "
                            "list(bg.iterations['iteration']) == list(range(1, bg.last_iteration + 1)), bg.error)",
                            timeout=260)
        assert out.split() == ["finished", str(max_batches), "True", "None"], out
        kernel.drain(1.0)
    finally:
        kernel.close()
        _stop_leftovers(ws)
    # the log is complete: every iteration once, across the restart; the run is judged and recorded
    assert _iterations(run_dir / "train.log") == list(range(1, max_batches + 1))
    assert _meta(run_dir)["status"] == "finished"
    assert (run_dir / "backup" / "tiny_final.weights").stat().st_size > 0
    assert keeper.read_state(run_dir)["result"]["returncode"] == 0
    assert not keeper.same_process(state["keeper_pid"], state["keeper_start"], state["boot_id"])
    # the chart in the status cell kept updating from the follower thread after that cell had ended: its feed (the
    # small message the chart is redrawn from in place, view/renderer.py) is replaced again and again
    charts = [i for i, m in enumerate(kernel.msgs) if m["msg_type"] in ("display_data", "update_display_data")
              and m["parent_header"].get("msg_id") == status_id
              and "window.__dmFeed&&window.__dmFeed(" in m["content"]["data"].get("text/html", "")]
    idle = next(i for i, m in enumerate(kernel.msgs) if m["parent_header"].get("msg_id") == status_id
                and m["msg_type"] == "status" and m["content"]["execution_state"] == "idle")
    assert len(charts) >= 3 and kernel.msgs[charts[0]]["msg_type"] == "display_data"
    assert sum(i > idle for i in charts) >= 2  # sent by the follower thread while other cells ran
    assert len({kernel.msgs[i]["content"]["transient"]["display_id"] for i in charts}) == 1


@pytest.mark.slow
@pytest.mark.timeout(300)
@needs_darknet
def test_a_resumed_run_reattached_after_a_restart_keeps_its_stitched_history(tmp_path) -> None:
    """Session 1 in the foreground, session 2 resumed in the background, the kernel restarted: the re-attached
    run has the history of both sessions, each iteration once (the earlier session's rows come from the log)."""
    ws = tmp_path / "My Drive"
    make_dataset(ws / "datasets" / "boxes", images=8, size=64, seed=5)
    kernel = Kernel(tmp_path)
    try:
        kernel.run("%load_ext darknet_magics")
        kernel.run(_setup_cell(ws))
        kernel.run("%yolo data {workspace}/boxes.data classes=1 names={dataset}/obj.names images={dataset}")
        kernel.run("%yolo cfg yolov3-tiny {workspace}/tiny.cfg classes=1 width=64 height=64 batch=4 subdivisions=1 "
                   "max_batches=4 random=0")
        kernel.run("%yolo train {workspace}/boxes.data {workspace}/tiny.cfg as r", timeout=120)
        _, out = kernel.run("%yolo resume r max_batches=20 background as r")
        assert "resumed in the background" in out, out
        kernel.run("import time\nend = time.monotonic() + 90\n"
                   "while (r.last_iteration or 0) < 6 and time.monotonic() < end:\n    time.sleep(0.2)\n"
                   "assert r.running and r.last_iteration >= 6, r.summary()")
        _, out = kernel.run("print(r.run_dir)")
        run_dir = Path(out.strip())
        kernel.restart(now=True)
        _reload(kernel, ws)
        _, out = kernel.run("%yolo status")
        assert "re-attached to r " in out and "(bound to `r`)" in out, out
        _, out = kernel.run("r.wait(200)\nprint(r.status, list(r.iterations['iteration']) == list(range(1, 21)), "
                            "len(r.sessions))", timeout=220)
        assert out.split() == ["finished", "True", "2"], out
    finally:
        kernel.close()
        _stop_leftovers(ws)
    assert _iterations(run_dir / "train.log") == list(range(1, 21))
    from darknet_magics.output.history import History

    saved = History.load(run_dir / "history.jsonl")  # rewritten at the re-attach, appended since
    assert list(saved.iterations["iteration"]) == list(range(1, 21))


@pytest.mark.slow
@pytest.mark.timeout(240)
@needs_darknet
def test_darknet_killed_while_no_kernel_watched_is_judged_from_its_log(tmp_path) -> None:
    ws = tmp_path / "My Drive"
    kernel = Kernel(tmp_path)
    try:
        run_dir = _start_in_background(kernel, ws, 2000)
        state = _darknet_state(run_dir)
        kernel.restart(now=True)  # the kernel is killed, as a crash would
        assert keeper.same_process(state["darknet_pid"], state["darknet_start"], state["boot_id"])
        os.kill(state["darknet_pid"], signal.SIGKILL)
        _wait_for(lambda: (keeper.read_state(run_dir) or {}).get("state") == "ended", 30, "the keeper's record")
        assert _meta(run_dir)["status"] == "running"  # nobody has judged it yet
        last = _iterations(run_dir / "train.log")[-1]

        _reload(kernel, ws)
        _, out = kernel.run("%yolo status")
        line = out.splitlines()[0]
        assert line.startswith("bg ended while no kernel watched: darknet was killed by SIGKILL at iteration "
                               f"{last}") and "judged from its log" in line, out
        _, out = kernel.run("print(bg.status, bg.running)")
        assert out.split() == ["failed", "False"]
        _, again = kernel.run("%yolo status")  # judged once: now it is an ordinary failed run
        assert "ended while no kernel watched" not in again and "bg: failed" in again
    finally:
        kernel.close()
        _stop_leftovers(ws)
    meta = _meta(run_dir)
    assert meta["status"] == "failed" and meta["sessions"][-1]["signal"] == signal.SIGKILL
    assert "killed by SIGKILL" in meta["message"]


@pytest.mark.slow
@pytest.mark.timeout(240)
@needs_darknet
@pytest.mark.parametrize("damaged", [False, True], ids=["run.json", "damaged run.json"])
def test_stop_in_a_new_kernel_stops_the_run_a_restarted_kernel_left(tmp_path, damaged) -> None:
    """`%yolo stop NAME` in a new kernel; with run.json cut short (issue 19) the keeper's own record (keeper.json:
    pids, start times, boot id, the name) still finds darknet, and `%yolo status` says so in one line."""
    ws = tmp_path / "My Drive"
    kernel = Kernel(tmp_path)
    try:
        run_dir = _start_in_background(kernel, ws, 2000)
        state = _darknet_state(run_dir)
        kernel.restart(now=True)
        if damaged:
            (run_dir / "run.json").write_bytes((run_dir / "run.json").read_bytes()[:100])
        _reload(kernel, ws)
        if damaged:
            _, out = kernel.run("%yolo status")
            assert f"{run_dir.name}: darknet still trains (keeper pid {state['keeper_pid']}), but " \
                   f"{run_dir / 'run.json'}:" in out and f"`%yolo stop {run_dir}` stops it" in out, out
        _, out = kernel.run("%yolo stop bg", timeout=90)  # no %yolo status first: the name is found on the drive
        last = out.strip().splitlines()[-1]
        if damaged:
            assert last.startswith("bg: stopped (its run.json is damaged: ") and "the log is kept" in last, out
        else:
            assert last.startswith("bg: interrupted at iteration ") and f"kept: {run_dir / 'train.log'}" in last
            assert "`%yolo resume bg` continues it" in last
    finally:
        kernel.close()
        _stop_leftovers(ws)
    assert not keeper.same_process(state["darknet_pid"], state["darknet_start"], state["boot_id"])
    assert not keeper.same_process(state["keeper_pid"], state["keeper_start"], state["boot_id"])
    result = keeper.read_state(run_dir)["result"]
    assert result["stopped_by_caller"] == keeper.STOP_REASON and result["signal"] == signal.SIGINT
    if damaged:
        return
    meta = _meta(run_dir)
    assert meta["status"] == "interrupted" and "stopped on request" in meta["message"]
    assert find_live(run_dir.parent) == []


# ------------------------------------------------------------------------------------ the keeper on its own


@pytest.mark.timeout(60)
def test_keeper_records_a_darknet_that_cannot_start(tmp_path) -> None:
    run_dir = tmp_path / "run; -x 'q'"
    run_dir.mkdir()
    proc = subprocess.run([sys.executable, "-m", "darknet_magics.train.keeper", "--run-dir", str(run_dir), "--log",
                           str(run_dir / "train.log"), "--cwd", str(tmp_path), "--", str(tmp_path / "no-darknet")],
                          capture_output=True, text=True, timeout=50)
    state = keeper.read_state(run_dir)
    assert proc.returncode == 1 and state["state"] == "failed" and "no-darknet" in state["error"], proc.stderr


@pytest.mark.timeout(60)
def test_keeper_keeps_a_child_and_its_log_and_stops_it_on_request(tmp_path) -> None:
    """A detached keeper runs a child that prints a line a second: the record names both processes, the log
    grows, a stop request ends the child with SIGINT, and the record says how."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    script = "import time\nfor i in range(600):\n    print(i, flush=True)\n    time.sleep(0.1)\n"
    subprocess.run([sys.executable, "-m", "darknet_magics.train.keeper", "--run-dir", str(run_dir), "--log",
                    str(run_dir / "train.log"), "--cwd", str(tmp_path), "--detach", "--", sys.executable, "-c",
                    script], timeout=30, check=True, start_new_session=True)
    _wait_for(lambda: (keeper.read_state(run_dir) or {}).get("state") == "running", 20, "the child to start")
    handle = Keeper(run_dir)
    assert handle.keeper_alive and handle.darknet_alive and not handle.ended
    assert handle.state["darknet_pgid"] == handle.state["darknet_pid"] != handle.state["keeper_pid"]
    # a reused pid is not the process recorded: another start time names another process
    assert not keeper.same_process(handle.state["darknet_pid"], handle.state["darknet_start"] + 1,
                                   handle.state["boot_id"])
    _wait_for(lambda: (run_dir / "train.log").stat().st_size > 20, 20, "output in the log")
    handle.stop()
    _wait_for(lambda: Keeper(run_dir).ended, 20, "the keeper's record of the end")
    handle.refresh()
    result = handle.result()
    assert result.stopped_by_caller == keeper.STOP_REASON and result.signal == signal.SIGINT
    lines = (run_dir / "train.log").read_text().split()
    assert lines[:3] == ["0", "1", "2"]
    _wait_for(lambda: not handle.alive, 10, "the keeper to exit")


@pytest.mark.timeout(30)
def test_log_tail_follows_a_log_the_keeper_made_again(tmp_path) -> None:
    """The keeper's _LogFile makes a deleted log again with everything so far; the follower reopens it at the
    same offset and reads on, nothing twice, nothing lost."""
    log = tmp_path / "train.log"
    log.write_bytes(b"one\n")
    tail = _LogTail(log, 0)
    assert tail.read() == b"one\n"
    log.unlink()
    log.write_bytes(b"one\ntwo\n")  # the copy of what was written, then the new bytes
    tail._checked = 0.0
    assert tail.read() == b"two\n"
    tail.close()


@pytest.mark.slow
@pytest.mark.timeout(180)
@needs_darknet
def test_a_keeper_killed_while_the_kernel_follows_is_judged_from_the_log(ip, tmp_path, capsys) -> None:
    """kill -9 of the keeper closes darknet's pty (darknet gets SIGHUP): nobody saw how darknet ended, and the run
    says so instead of inventing an exit status."""
    from conftest import run_cell

    ws = tmp_path / "ws"
    make_dataset(ws / "boxes", images=8, size=64, seed=5)
    for line in (f"%%darknet\nworkspace {ws}\n",
                 f"%yolo data {ws}/boxes.data classes=1 names={ws}/boxes/obj.names images={ws}/boxes",
                 f"%yolo cfg yolov3-tiny {ws}/tiny.cfg classes=1 width=64 height=64 batch=4 subdivisions=1 "
                 "max_batches=2000 random=0",
                 f"%yolo train {ws}/boxes.data {ws}/tiny.cfg background as bg"):
        assert run_cell(ip, line).error_in_exec is None, capsys.readouterr()
    bg = ip.user_ns["bg"]
    try:
        _wait_for(lambda: (bg.last_iteration or 0) >= 1, 90, "the first iteration")
        state = _darknet_state(bg.run_dir)
        os.kill(state["keeper_pid"], signal.SIGKILL)
        bg.wait(60)
    finally:
        _stop_leftovers(ws)
    assert not bg.running and bg.status == "failed", bg.summary()
    assert "exit status unknown" in bg.message and bg.last_iteration >= 1
    captured = capsys.readouterr()
    assert "keeper (pid {}) ended before darknet did".format(state["keeper_pid"]) in captured.out + captured.err
    assert not keeper.same_process(state["darknet_pid"], state["darknet_start"], state["boot_id"])
    assert _meta(bg.run_dir)["status"] == "failed"


@pytest.mark.timeout(30)
def test_only_a_run_whose_last_session_ran_under_a_keeper_is_left_to_reattach(tmp_path) -> None:
    """A foreground resume of an earlier background run says "running" in run.json and still has the earlier
    session's keeper.json: another kernel's `%yolo status` must not judge it as ended unwatched."""
    from darknet_magics.train.background import live_run

    folder = tmp_path / "runs" / "tiny-20261202-010000"
    folder.mkdir(parents=True)
    ended = {"state": "ended", "boot_id": keeper.boot_id(), "keeper_pid": None, "keeper_start": None,
             "result": {"returncode": 0, "signal": None, "interrupted": False, "killed_by_watchdog": None,
                        "seconds": 1.0}}
    (folder / keeper.STATE_NAME).write_text(json.dumps(ended))
    background_session = {"log_offset": 0, "keeper": {"keeper_pid": 1}}
    meta = {"name": "bg", "status": "running", "sessions": [background_session, {"log_offset": 10}]}
    (folder / "run.json").write_text(json.dumps(meta))
    assert live_run(folder) is None and find_live(folder.parent) == []
    meta["sessions"] = [background_session]
    (folder / "run.json").write_text(json.dumps(meta))
    found = live_run(folder)
    assert found is not None and not found.alive and found.keeper.result().returncode == 0
    meta["status"] = "finished"
    (folder / "run.json").write_text(json.dumps(meta))
    assert live_run(folder) is None


@pytest.mark.timeout(60)
def test_a_run_left_running_on_another_boot_is_judged_from_its_log(tmp_path) -> None:
    """A VM reset: keeper.json names pids of another boot (they name nothing now). The run is judged from its
    (real, pjreddie) log, and the verdict says that nothing recorded how darknet ended."""
    from darknet_magics.train.background import live_run, reattach
    from darknet_magics.report import RecordingReporter

    folder = tmp_path / "runs" / "tiny-20261202-010000"
    folder.mkdir(parents=True)
    log = Path(__file__).parent / "fixtures" / "darknet-logs" / "pjreddie" / "sigint-train.pty.log"
    (folder / "train.log").write_bytes(log.read_bytes())
    argv = [str(DARKNET), "detector", "train", str(folder / "obj.data"), str(folder / "tiny.cfg")]
    meta = {"name": "bg", "status": "running", "argv": argv, "log": str(folder / "train.log"),
            "args": {"cfg": str(folder / "tiny.cfg"), "data": str(folder / "obj.data"), "flavor": "pjreddie"},
            "sessions": [{"argv": argv, "log_offset": 0, "keeper": {"keeper_pid": os.getpid()}}]}
    (folder / "run.json").write_text(json.dumps(meta))
    me = os.getpid()  # alive here, but on "another boot": not the process recorded
    (folder / keeper.STATE_NAME).write_text(json.dumps({
        "state": "running", "boot_id": "another-boot", "keeper_pid": me, "keeper_start": keeper.process_start(me),
        "darknet_pid": me, "darknet_pgid": me, "darknet_start": keeper.process_start(me)}))
    left = live_run(folder)
    assert left is not None and not left.alive
    rec = RecordingReporter()
    run, line = reattach(left, rec)
    last = _iterations(folder / "train.log")[-1]
    assert line.startswith(f"bg ended while no kernel watched: darknet stopped before finishing (exit status "
                           f"unknown) at iteration {last}"), line
    assert "the machine was restarted (a VM reset) while darknet ran" in rec.text()
    assert list(run.iterations["iteration"]) == _iterations(folder / "train.log")
    assert _meta(folder)["status"] == "failed" and live_run(folder) is None
