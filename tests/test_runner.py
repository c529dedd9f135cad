"""runner.run with real children on a real pty (tests/fakes/fake_darknet.py): streaming, log, prompts,
watchdog, interrupt escalation, a child killed from outside."""
from __future__ import annotations

import _thread
import os
import re
import signal
import sys
import threading
from pathlib import Path

import pytest

from darknet_magics.run.runner import ProcessResult, RunInterrupted, Watchdog, group_alive, processes, run

FAKE = Path(__file__).parent / "fakes" / "fake_darknet.py"


def fake(*args: str) -> list[str]:
    return [sys.executable, str(FAKE), *args]


def assert_group_gone(pgid: int) -> None:
    """No live process is left in the group (a killed grandchild may linger as a zombie until init reaps it)."""
    assert not group_alive(pgid)
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return
    # killpg still finds the group: only zombies may be left
    states = [state for _, _, state, _, group in processes() if group == pgid]
    assert all(s in (b"Z", b"X") for s in states), states


@pytest.fixture
def logdir(tmp_path: Path) -> Path:
    d = tmp_path / "log dir with spaces"
    return d


def test_streams_in_order_and_the_log_has_every_byte(logdir: Path) -> None:
    chunks: list[str] = []
    log = logdir / "train.log"
    result = run(fake("--iterations", "200", "--garbage"), cwd=logdir.parent, log_path=log, on_text=chunks.append)
    assert isinstance(result, ProcessResult)
    assert result.returncode == 0 and result.signal is None and not result.interrupted
    text = "".join(chunks)
    raw = log.read_bytes()
    assert len(raw) == result.bytes_read
    assert raw.decode("utf-8", errors="replace") == text
    assert b"\xff\xfe\x80" in raw  # the log keeps the bytes as they came; the text has replacement chars
    assert "\ufffd" in text
    iterations = [int(m) for m in re.findall(r"(?m)^(\d+): [\d.]+, [\d.]+ avg", text.replace("\r", ""))]
    assert iterations == list(range(1, 201))
    assert text.rstrip().endswith("Saving weights to backup/tiny_final.weights")
    assert_group_gone(result.pid)


def test_log_is_appended_not_overwritten(logdir: Path) -> None:
    log = logdir / "train.log"
    run(fake("--iterations", "2"), cwd=logdir.parent, log_path=log, on_text=None)
    first = log.read_bytes()
    run(fake("--iterations", "3"), cwd=logdir.parent, log_path=log, on_text=None)
    assert log.read_bytes().startswith(first)
    assert log.read_bytes().count(b"tiny_final.weights") == 2


@pytest.mark.timeout(60)  # a hung interrupt/prompt must fail, not stall the suite
def test_hank_prompt_is_answered(tmp_path: Path) -> None:
    chunks: list[str] = []
    result = run(fake("--prompt"), cwd=tmp_path, log_path=tmp_path / "l.log", on_text=chunks.append)
    assert result.answered == ("yes",)
    assert result.returncode == 0
    text = "".join(chunks)
    assert "starting" in text and "5: " in text


def test_a_child_waiting_on_stdin_is_ended_by_the_silence_watchdog(tmp_path: Path) -> None:
    result = run(fake("--prompt"), cwd=tmp_path, log_path=None, on_text=None, prompts=(),
                 watchdog=Watchdog(silence_s=1.0))
    assert result.killed_by_watchdog == "silent"
    assert result.answered == ()
    assert_group_gone(result.pid)


def test_watchdog_ends_a_child_that_hangs_after_its_fatal_banner(tmp_path: Path) -> None:
    chunks: list[str] = []
    result = run(fake("--banner-then-hang", "--ignore-sigterm"), cwd=tmp_path, log_path=tmp_path / "l.log",
                 on_text=chunks.append, watchdog=Watchdog(after_fatal_s=1.0))
    assert result.killed_by_watchdog == "fatal-then-silent"
    assert result.signal == signal.SIGKILL  # it ignores SIGTERM, as hank-ai's deadlocked handler does
    assert "fatal error handler" in "".join(chunks)
    assert "signal handler invoked" in (tmp_path / "l.log").read_text()
    assert_group_gone(result.pid)


def test_watchdog_ends_a_child_that_hangs_after_its_work_is_done(tmp_path: Path) -> None:
    result = run(fake("--forever"), cwd=tmp_path, log_path=None, on_text=None,
                 watchdog=Watchdog(done=(r"Saving weights to \S*_final\.weights",), after_done_s=0.5))
    assert result.killed_by_watchdog == "done-then-hung"
    assert result.signal == signal.SIGTERM
    assert_group_gone(result.pid)


def test_watchdog_logic_unit() -> None:
    w = Watchdog(silence_factor=10, min_silence_s=5)
    w.start(0.0)
    w.feed("1: 1.0, 1.0 avg\n", 1.0)
    w.feed("2: 1.0, 1.0 avg\n", 3.0)  # longest gap 2 s -> limit max(5, 20) = 20 s
    assert w.check(22.0) is None
    assert w.check(23.5) == "silent"
    w2 = Watchdog(after_fatal_s=2)
    w2.start(0.0)
    w2.feed("...double free or cor", 1.0)
    w2.feed("ruption (out)\n", 1.1)  # a pattern split across two reads is still found
    assert w2.check(2.0) is None and w2.check(3.2) == "fatal-then-silent" and "double free" in w2.fatal_seen
    w3 = Watchdog(after_fatal_s=1)
    w3.start(0.0)
    w3.feed("Segmentation fault\n", 1.0)
    w3.feed("1: 1.0, 1.0 avg\n" * 10, 1.5)  # it printed on after the line: not hung yet
    assert w3.check(2.0) is None


@pytest.mark.timeout(60)  # a hung interrupt/prompt must fail, not stall the suite
def test_interrupt_escalates_to_kill_and_leaves_no_process_in_the_group(tmp_path: Path) -> None:
    """The child ignores SIGINT and SIGTERM and has a grandchild that does too: only SIGKILL ends them."""
    seen = threading.Event()

    def on_text(text: str) -> None:
        if "3: " in text:
            seen.set()

    def interrupter() -> None:
        if seen.wait(20):
            _thread.interrupt_main()  # what a kernel interrupt does to the main thread

    threading.Thread(target=interrupter, daemon=True).start()
    log = tmp_path / "l.log"
    with pytest.raises(KeyboardInterrupt) as info:
        run(fake("--ignore-sigint", "--ignore-sigterm", "--grandchild", "--forever", "--iterations", "5",
                 "--sleep", "0.05"), cwd=tmp_path, log_path=log, on_text=on_text, interrupt_grace=(0.5, 0.5))
    assert isinstance(info.value, RunInterrupted)
    result = info.value.result
    assert result.interrupted and result.signal == signal.SIGKILL
    assert_group_gone(result.pid)
    assert "3: " in log.read_text()


@pytest.mark.timeout(60)  # a hung interrupt/prompt must fail, not stall the suite
def test_interrupt_of_a_child_that_obeys_sigint(tmp_path: Path) -> None:
    threading.Timer(1.0, _thread.interrupt_main).start()
    with pytest.raises(RunInterrupted) as info:
        run(fake("--forever"), cwd=tmp_path, log_path=tmp_path / "l.log", on_text=None)
    assert info.value.result.signal == signal.SIGINT
    assert info.value.result.interrupted
    assert_group_gone(info.value.result.pid)


@pytest.mark.timeout(60)  # a hung interrupt/prompt must fail, not stall the suite
def test_a_child_killed_from_outside_is_reported(tmp_path: Path) -> None:
    pid: list[int] = []
    buf: list[str] = []

    def on_text(text: str) -> None:
        buf.append(text)
        m = re.search(r"pid=(\d+)", "".join(buf))
        if m and not pid and "Saving weights" in "".join(buf):
            pid.append(int(m.group(1)))
            os.kill(pid[0], signal.SIGKILL)

    result = run(fake("--print-pid", "--forever"), cwd=tmp_path, log_path=None, on_text=on_text)
    assert result.signal == signal.SIGKILL and result.returncode is None
    assert not result.interrupted and result.killed_by_watchdog is None
    assert "killed by SIGKILL" in result.describe()
    assert not group_alive(result.pid)


@pytest.mark.timeout(60)  # a hung interrupt/prompt must fail, not stall the suite
def test_should_stop_ends_the_child(tmp_path: Path) -> None:
    seen: list[str] = []
    result = run(fake("--iterations", "1000", "--sleep", "0.01"), cwd=tmp_path, log_path=None,
                 on_text=seen.append, should_stop=lambda: "enough" if "10: " in "".join(seen[-5:]) else None)
    assert result.stopped_by_caller == "enough"
    assert result.signal == signal.SIGINT
    assert "1000: " not in "".join(seen)
    assert_group_gone(result.pid)


def test_a_missing_program_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        run([str(tmp_path / "no such darknet")], cwd=tmp_path, log_path=None, on_text=None)


def test_nonzero_exit_status(tmp_path: Path) -> None:
    result = run(fake("--iterations", "1", "--exit", "3"), cwd=tmp_path, log_path=None, on_text=None)
    assert result.returncode == 3 and result.signal is None
    assert result.describe() == "exit status 3"
    assert result.seconds > 0
