"""Issue 19 (part 2) and issue 21: a run folder is data, never code.

run.json is a typed, versioned record (`train/record.py`) validated on every read; old run folders (real ones,
written by darknet_magics before the record: tests/fixtures/runs) still load; a damaged run.json, history.jsonl or
keeper.json is one clean line in `%yolo compare/status/resume/stop/log` and never hides the other runs; the darknet
a run.json names is not run unconfirmed. Real IPython shell, real files; the real-darknet cases are marked slow.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from conftest import FIXTURES, run_cell
from test_background import _iterations, _stop_leftovers
from darknet_magics.errors import StepError
from darknet_magics.jsonread import RecordError
from darknet_magics.output.history import History
from darknet_magics.setup.flavor import Flavor
from darknet_magics.train import keeper
from darknet_magics.train.record import (SCHEMA, RunArgs, RunStatus, check_train_argv, read_record,
                                         record_from_json)
from darknet_magics.train.runs import TrainingRun

OLD_RUNS = FIXTURES / "runs"
BACKGROUND_RUN = "tiny-20261206-124023"  # schema 1, a background run bound to `bg`, 3 iterations, finished
FOREGROUND_RUN = "tiny-20261206-124031"  # schema 1, a foreground run
DARKNET = Path("/usr/bin/darknet")


def _copy_runs(root: Path) -> dict[str, Path]:
    """The real old run folders under `root` (their run.json name their old place: /tmp/s5old/ws/runs)."""
    root.mkdir(parents=True, exist_ok=True)
    return {name: Path(shutil.copytree(OLD_RUNS / name, root / name)) for name in (BACKGROUND_RUN, FOREGROUND_RUN)}


def _meta(folder: Path) -> dict:
    return json.loads((folder / "run.json").read_text())


def _write_meta(folder: Path, meta: dict) -> None:
    (folder / "run.json").write_text(json.dumps(meta, indent=2))


# ------------------------------------------------------------------------------------- old and new records


@pytest.mark.timeout(60)
def test_old_run_folders_load_and_round_trip_through_the_new_schema(tmp_path) -> None:
    runs = _copy_runs(tmp_path / "runs")
    bg = TrainingRun.load(runs[BACKGROUND_RUN])
    assert bg.name == "bg" and bg.status is RunStatus.FINISHED and bg.args.flavor is Flavor.PJREDDIE
    assert list(bg.iterations["iteration"]) == [1, 2, 3] and bg.max_batches == 3
    assert bg.args.cfg == Path("/tmp/s5old/ws/tiny.cfg") and bg.args.darknet == DARKNET
    assert bg.backup_dir == runs[BACKGROUND_RUN] / "backup"  # its own weights folder follows the copied folder
    assert bg.log_path == runs[BACKGROUND_RUN] / "train.log"
    old = read_record(runs[BACKGROUND_RUN])
    assert old.schema == 1 and old.sessions[0]["keeper"]["keeper_pid"] == 29446
    bg.save()  # schema 2 now
    new = read_record(runs[BACKGROUND_RUN])
    assert _meta(runs[BACKGROUND_RUN])["schema"] == SCHEMA and _meta(runs[BACKGROUND_RUN])["log"] == "train.log"
    assert (new.name, new.status, new.argv, new.args, new.max_batches, new.message) == \
           (old.name, old.status, old.argv, old.args, old.max_batches, old.message)
    assert new.sessions[0]["returncode"] == 0 and new.sessions[0]["last_iteration"] == 3
    again = record_from_json(new.to_json(), runs[BACKGROUND_RUN], runs[BACKGROUND_RUN] / "run.json")
    assert again == new
    fg = TrainingRun.load(runs[FOREGROUND_RUN])
    assert fg.status is RunStatus.FINISHED and fg.args.stop_on_nan and fg.args.extra_args == ()


@pytest.mark.timeout(30)
def test_flavor_run_status_keeper_state_and_stop_reason_are_exhaustive_enums() -> None:
    from darknet_magics.train.keeper import KeeperState, StopReason

    assert {f.value for f in Flavor} == {"pjreddie", "alexeyab", "hank-ai"}
    assert [f.knows_dont_show for f in Flavor] == [False, True, True]
    assert RunStatus.FINISHED.ok and not RunStatus.DIVERGED.ok and str(RunStatus.FAILED) == "failed"
    assert [s.done for s in KeeperState] == [False, False, True, True]
    assert StopReason.NAN.describe("7") == "loss became nan at iteration 7"
    assert keeper.read_stop("nan\n7") == (StopReason.NAN, "7") and keeper.read_stop("rm -rf /")[0] is StopReason.REQUEST


def _set(path: tuple, value) -> Callable[[dict], None]:
    def change(meta: dict) -> None:
        target = meta
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
    return change


# (what is wrong, how run.json is damaged: a change of its JSON or of its bytes, what the error says)
DAMAGED_RUN_JSON = [
    ("truncated", lambda b: b[: len(b) // 2], "not JSON"),
    ("empty", lambda b: b"", "not JSON"),
    ("broken UTF-8", lambda b: b.replace(b'"bg"', b'"b\xff\xfeg"'), "not UTF-8"),
    ("a JSON list", lambda b: b"[1, 2]", "not an object"),
    ("NaN", lambda b: b.replace(b'"max_batches": 3', b'"max_batches": NaN'), "NaN"),
    ("1e999", lambda b: b.replace(b'"seconds": 7.593', b'"seconds": 1e999'), "finite"),
    ("deep JSON", lambda b: b.replace(b'"message": "finished"\n}', b'"message": ' + b"[" * 5000 + b"]" * 5000
                                      + b"\n}"), "nested deeper"),
    ("status a number", _set(("status",), 5), "status"),
    ("status unknown", _set(("status",), "owned"), "no run status"),
    ("max_batches a string", _set(("max_batches",), "3"), "max_batches"),
    ("sessions an object", _set(("sessions",), {"a": 1}), "sessions"),
    ("map a string", _set(("args", "map"), "yes"), "map"),
    ("flavor unknown", _set(("args", "flavor"), "evil"), "unknown darknet flavor"),
    ("an unknown key", _set(("args", "shell"), "sh -c id"), "does not write"),
    ("schema from the future", _set(("schema",), 99), "newer version"),
    ("a control character in the name", _set(("name",), "bg\x1b[31m"), "control character"),
    ("a newline in the cfg", _set(("args", "cfg"), "/x/tiny.cfg\n-clear"), "line break"),
    ("a log outside the folder", _set(("log",), "/etc/passwd"), "never leaves its folder"),
    ("a run_dir with a newline", _set(("run_dir",), "/x\ny"), "line break"),
    ("extra argv words", lambda m: m["argv"].extend(["-x", ";rm -rf ~"]), "never writes"),
    ("a shell as the command", _set(("argv",), ["/bin/sh", "-c", "touch /tmp/x", "a", "b"]), "detector train"),
    ("argv darknet not the run's", lambda m: m["argv"].__setitem__(0, "/tmp/evil.sh"), "not the run's"),
    ("a session's argv with a shell word", lambda m: m["sessions"][0]["argv"].append("|id"), "session's argv"),
    ("gpus not ids", _set(("args", "gpus"), "0;id"), "GPU ids"),
    ("args= flags this flavor lacks", lambda m: (m["args"].__setitem__("extra_args", ["-evil"]),
                                                 m["argv"].append("-evil")), "args="),
    ("a keeper pid as text", _set(("sessions", 0, "keeper", "keeper_pid"), "1; kill"), "keeper_pid"),
]


def _damage(folder: Path, change) -> None:
    path = folder / "run.json"
    try:
        out = change(path.read_bytes())
    except TypeError:  # a change of the JSON value, not of the bytes
        meta = json.loads(path.read_text())
        change(meta)
        out = json.dumps(meta, indent=2).encode()
    path.write_bytes(out)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("what,change,says", DAMAGED_RUN_JSON, ids=[c[0] for c in DAMAGED_RUN_JSON])
def test_a_damaged_run_json_is_refused_with_its_file_and_line(tmp_path, what, change, says) -> None:
    folder = _copy_runs(tmp_path / "runs")[BACKGROUND_RUN]
    _damage(folder, change)
    with pytest.raises(RecordError) as caught:
        TrainingRun.load(folder)
    error = caught.value
    assert error.file == str(folder / "run.json") and says in str(error), str(error)
    assert error.problem.code == "run-record-damaged" and "fix:" in str(error)
    if what not in ("deep JSON", "a JSON list", "NaN", "an unknown key", "a control character in the name"):
        assert error.line is not None, str(error)


@pytest.mark.timeout(30)
def test_the_planners_own_argv_passes_the_check_and_nothing_else_does(tmp_path) -> None:
    args = RunArgs(darknet=DARKNET, data=Path("/d/obj.data"), cfg=Path("/d/t.cfg"), flavor=Flavor.PJREDDIE,
                   extra_args=("-thresh", "0.3"))
    run_dir = tmp_path / "t-1"
    good = [str(DARKNET), "detector", "train", str(run_dir / "obj.data"), "/d/t.cfg", "/d/w.weights", "-gpus", "0",
            "-clear", "-thresh", "0.3"]
    assert check_train_argv(good, args, run_dir) is None
    assert "never writes" in check_train_argv(good[:6] + ["-o", "x"] + good[6:], args, run_dir)
    assert "obj.data" in check_train_argv(good[:3] + ["/etc/obj.data"] + good[4:], args, run_dir)


def _binaries() -> list:
    from builds import PREBUILT

    return [pytest.param(DARKNET, id="pjreddie")] + [pytest.param(path, id=name) for name, path in PREBUILT.items()]


@pytest.mark.timeout(30)
@pytest.mark.parametrize("binary", _binaries())
def test_each_flavors_planned_argv_round_trips_through_run_json(tmp_path, binary) -> None:
    """What `plan_train` writes for a real binary of each flavor (-dont_show, -map, -gpus, args=) is what the
    reader accepts, and reads back equal."""
    from darknet_magics.output.history import History as _History
    from darknet_magics.train.plan import plan_train

    if not Path(binary).is_file():
        pytest.skip(f"no {binary} (set DARKNET_ALEXEYAB / DARKNET_HANKAI)")
    (tmp_path / "o.data").write_text(f"classes=1\ntrain=/x\nvalid=/x\nnames=/x\nbackup={tmp_path}/b\n")
    (tmp_path / "t.cfg").write_text("[net]\nbatch=4\nmax_batches=5\n")
    plan = plan_train(darknet=binary, data=tmp_path / "o.data", cfg=tmp_path / "t.cfg", map=True, gpus="0",
                      run_dir=tmp_path / "run", extra_args=("-points", "0") if "alexeyab" in str(binary) else ())
    run = TrainingRun(run_dir=plan.run_dir, history=_History(), args=plan.args, argv=plan.argv,
                      max_batches=plan.max_batches)
    back = record_from_json(run.record().to_json(), plan.run_dir, plan.run_dir / "run.json")
    assert back.args == plan.args and back.argv == plan.argv and isinstance(back.args.flavor, Flavor)
    assert ("-dont_show" in plan.argv) == plan.flavor.knows_dont_show


# ------------------------------------------------------------------------------------- history.jsonl, keeper.json


@pytest.mark.timeout(60)
def test_a_damaged_history_is_refused_by_line_and_made_again_from_the_log(tmp_path) -> None:
    folder = _copy_runs(tmp_path / "runs")[BACKGROUND_RUN]
    history = folder / "history.jsonl"
    lines = history.read_bytes().splitlines(keepends=True)
    torn = b"".join(lines) + b'{"kind":"iteration","itera'
    history.write_bytes(torn)
    assert list(History.load(history).iterations["iteration"]) == [1, 2, 3]  # a crash's torn last line is skipped
    for bad in (b"\xff\xfe\n", b'{"kind":"iteration","iteration":1e999}\n', b'{"kind":"shell","cmd":"id"}\n',
                b"[1]\n", b'{"kind":"iteration","iteration":[1]}\n', b'{"kind":"iteration","loss":NaN}\n'):
        history.write_bytes(lines[0] + bad + b"".join(lines[1:]))
        with pytest.raises(RecordError) as caught:
            History.load(history)
        assert caught.value.line == 2 and str(history) in str(caught.value), bad
        run = TrainingRun.load(folder)  # the log has every byte: the history is parsed from it again
        assert list(run.iterations["iteration"]) == [1, 2, 3]


@pytest.mark.timeout(30)
def test_a_damaged_keeper_json_names_no_process(tmp_path) -> None:
    folder = _copy_runs(tmp_path / "runs")[BACKGROUND_RUN]
    assert keeper.read_state(folder)["state"] == "ended"
    good = json.loads((folder / "keeper.json").read_text())
    for key, value in (("keeper_pid", "1"), ("darknet_pgid", 1), ("darknet_pgid", 0), ("state", "pwned"),
                       ("boot_id", ["x"]), ("result", {"returncode": "0"}), ("stop_reason", "rm")):
        (folder / "keeper.json").write_text(json.dumps({**good, key: value}))
        with pytest.raises(RecordError):
            keeper.check_state(folder)
        assert keeper.read_state(folder) is None, (key, value)


# ------------------------------------------------------------------------------------- the directives, in IPython


def _shell(ip, ws: Path, capsys) -> None:
    assert run_cell(ip, f"%%darknet\nworkspace {ws}\n").error_in_exec is None
    capsys.readouterr()


def _clean(ip, capsys, line: str):
    """Run a %yolo line: its result (None when it raised our error) and what it printed; never a traceback."""
    result = run_cell(ip, line)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "Traceback" not in text, text
    error = result.error_in_exec
    # our errors: a UsageError, or a StepError that IPython renders as its one diagnosis (no frames)
    assert error is None or isinstance(error, UsageError) or (
        isinstance(error, StepError) and hasattr(error, "_render_traceback_")), repr(error)
    return error, text + (str(error) if error else "")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("what,change,says", DAMAGED_RUN_JSON[::3], ids=[c[0] for c in DAMAGED_RUN_JSON[::3]])
def test_a_damaged_folder_is_one_line_in_compare_status_resume_stop(ip, tmp_path, capsys, what, change, says):
    ws = tmp_path / "ws"
    runs = _copy_runs(ws / "runs")
    bad = Path(shutil.copytree(runs[BACKGROUND_RUN], ws / "runs" / "tiny-20261206-130000"))
    _damage(bad, change)
    os.utime(bad / "run.json", (time.time() + 60, time.time() + 60))  # the newest folder: status meets it first
    _shell(ip, ws, capsys)
    error, text = _clean(ip, capsys, "%yolo compare {workspace}/runs/* as table")
    assert error is None and len(ip.user_ns["table"]) == 2, text
    assert text.count(f"skipped {bad.name}: {bad / 'run.json'}") == 1 and says in text, text
    error, text = _clean(ip, capsys, "%yolo status")
    assert error is None and "skipped tiny-20261206-130000" in text and f"{FOREGROUND_RUN}: finished" in text, text
    for line in (f"%yolo resume {bad}", f"%yolo stop {bad}"):
        error, text = _clean(ip, capsys, line)
        assert error is not None and str(bad / "run.json") in text and "fix:" in text, text


@pytest.mark.timeout(60)
def test_log_of_a_folder_says_it_is_a_folder(ip, tmp_path, capsys) -> None:
    _shell(ip, tmp_path, capsys)
    error, text = _clean(ip, capsys, f"%yolo log {tmp_path}")
    assert error is not None and "is a folder, not a file" in text and "train.log" in text, text


@pytest.mark.timeout(60)
def test_resume_runs_no_program_a_copied_run_json_names(ip, tmp_path, capsys) -> None:
    """run.json names a script as its darknet: resume refuses it unless this session's darknet (here Debian's, on
    PATH) is of the flavor it claims (then that one runs, and says so) or the user names the binary."""
    ws = tmp_path / "ws"
    folder = _copy_runs(ws / "runs")[FOREGROUND_RUN]
    marker = tmp_path / "owned"
    evil = tmp_path / "darknet"
    evil.write_text(f"#!/bin/sh\ntouch {marker}\n")
    evil.chmod(0o755)
    meta = _meta(folder)
    meta["args"].update(darknet=str(evil), flavor="alexeyab")
    for argv in [meta["argv"]] + [s["argv"] for s in meta["sessions"]]:
        argv[0] = str(evil)
    _write_meta(folder, meta)
    _shell(ip, ws, capsys)
    error, text = _clean(ip, capsys, f"%yolo resume {folder}")
    assert error is not None and f"run.json names the darknet {evil}" in text and "bin=PATH" in text, text
    meta["args"]["flavor"] = "pjreddie"  # the flavor of this session's darknet: that one is used, never the script
    _write_meta(folder, meta)
    error, text = _clean(ip, capsys, f"%yolo resume {folder}")
    assert f"using this session's {DARKNET}" in text, text
    # the user's own bin= is what runs, without a word about run.json's
    error, text = _clean(ip, capsys, f"%yolo resume {folder} bin={DARKNET}")
    assert "run.json names the darknet" not in text, text
    assert not marker.exists()


# ------------------------------------------------------------------------------------- random bytes (hypothesis)


def _json_mutations() -> st.SearchStrategy[bytes]:
    """A real run.json with one value replaced by random JSON (deeper than random bytes get)."""
    meta = json.loads((OLD_RUNS / BACKGROUND_RUN / "run.json").read_text())
    leaves = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                          lambda kids: (st.lists(kids, min_size=1, max_size=3)
                                        | st.dictionaries(st.text(max_size=5), kids, min_size=1, max_size=3)),
                          max_leaves=8)

    def mutate(args: tuple) -> bytes:
        key, value = args
        changed = json.loads(json.dumps(meta))
        where = changed["args"] if key in changed["args"] else changed
        where[key] = value
        return json.dumps(changed).encode()

    keys = sorted(set(meta) | set(meta["args"]))
    return st.tuples(st.sampled_from(keys), leaves).map(mutate)


FILES = ("run.json", "history.jsonl", "keeper.json")


@pytest.mark.timeout(280)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(name=st.sampled_from(FILES), data=st.binary(max_size=300) | _json_mutations())
def test_random_bytes_in_a_run_folder_give_a_result_or_our_error(ip, tmp_path, capsys, name, data) -> None:
    ws = tmp_path / "ws"
    shutil.rmtree(ws, ignore_errors=True)
    runs = _copy_runs(ws / "runs")
    folder = runs[BACKGROUND_RUN]
    (folder / name).write_bytes(data)
    _shell(ip, ws, capsys)
    for line in ("%yolo status", "%yolo compare {workspace}/runs/*", f"%yolo resume {folder}", f"%yolo stop {folder}",
                 f"%yolo log {folder / 'train.log'}", f"%yolo log {folder}"):
        _clean(ip, capsys, line)  # a result or our error, never a traceback


# ------------------------------------------------------------------------------------- real darknet, background

needs_darknet = pytest.mark.skipif(not DARKNET.is_file(), reason="needs Debian's darknet (/usr/bin/darknet)")


def _ok(ip, capsys, line: str) -> str:
    result = run_cell(ip, line)
    captured = capsys.readouterr()
    assert result.error_in_exec is None, captured.out + captured.err
    return captured.out + captured.err


def _setup(ip, capsys, ws: Path, *cfgs: tuple[str, int]) -> None:
    """A workspace, a tiny dataset, its obj.data and a 64 px yolov3-tiny cfg per (name, max_batches)."""
    from darknet_magics.synth import make_dataset

    make_dataset(ws / "boxes", images=8, size=64, seed=5)
    _ok(ip, capsys, f"%%darknet\nworkspace {ws}\n")
    _ok(ip, capsys, f"%yolo data {ws}/boxes.data classes=1 names={ws}/boxes/obj.names images={ws}/boxes")
    for name, max_batches in cfgs:
        _ok(ip, capsys, f"%yolo cfg yolov3-tiny {ws}/{name}.cfg classes=1 width=64 height=64 batch=4 subdivisions=1 "
                        f"max_batches={max_batches} random=0")


def _until(predicate, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.1)


def live(test):
    """A test that trains with real darknet in the background (slow, bounded)."""
    return pytest.mark.slow(pytest.mark.timeout(240)(needs_darknet(test)))


@live
def test_a_second_live_run_into_the_users_backup_is_refused(ip, tmp_path, capsys) -> None:
    ws = tmp_path / "ws"
    _setup(ip, capsys, ws, ("long", 2000), ("short", 2))
    ours = (ws / "boxes.data").read_text().splitlines()[1:]  # the user's own obj.data: no marker, its own backup=
    (ws / "mine.data").write_text("\n".join(l for l in ours if not l.startswith("backup")) + f"\nbackup={ws}/shared\n")
    try:
        _ok(ip, capsys, f"%yolo train {ws}/mine.data {ws}/long.cfg background as a")
        a = ip.user_ns["a"]
        _until(lambda: (a.last_iteration or 0) >= 1, 90, "the first iteration")
        for line in (f"%yolo train {ws}/mine.data {ws}/short.cfg as b",
                     f"%yolo train {ws}/mine.data {ws}/long.cfg background as c"):
            error, text = _clean(ip, capsys, line)
            assert error is not None and f"the weights folder {ws}/shared is in use by the run {a.run_dir.name}" \
                in text and "backup=PATH" in text, text
        assert len(list((ws / "runs").iterdir())) == 1  # the refused runs made no folder
        assert "a: interrupted" in _ok(ip, capsys, "%yolo stop a")
        _ok(ip, capsys, f"%yolo train {ws}/mine.data {ws}/short.cfg as d")  # the folder is free again
        assert ip.user_ns["d"].status == "finished" and (ws / "shared" / "short_final.weights").is_file()
    finally:
        _stop_leftovers(ws)


@live
@pytest.mark.once  # a keeper, darknet and a folder deleted under them
def test_a_background_runs_deleted_folder_is_made_again_and_the_run_finishes(ip, tmp_path, capsys) -> None:
    ws = tmp_path / "ws"
    _setup(ip, capsys, ws, ("tiny", 30))
    try:
        _ok(ip, capsys, f"%yolo train {ws}/boxes.data {ws}/tiny.cfg background as bg")
        bg = ip.user_ns["bg"]
        _until(lambda: (bg.last_iteration or 0) >= 3, 90, "three iterations")
        shutil.rmtree(bg.run_dir)
        bg.wait(180)
    finally:
        _stop_leftovers(ws)
    text = capsys.readouterr()
    text = text.out + text.err
    assert bg.status == "finished" and bg.error is None, (bg.summary(), text)
    assert f"the run folder {bg.run_dir} was deleted while darknet ran: made it again" in text
    assert "deleted or moved while darknet ran: made it again" in text  # the keeper's log, with what it held
    assert _iterations(bg.run_dir / "train.log") == list(range(1, 31))  # every byte, once
    assert list(History.load(bg.run_dir / "history.jsonl").iterations["iteration"]) == list(range(1, 31))
    assert read_record(bg.run_dir).status is RunStatus.FINISHED
    assert (bg.run_dir / "backup" / "tiny_final.weights").stat().st_size > 0


@live
def test_a_background_run_on_a_full_disk_is_judged_a_full_disk_and_recorded(ip, tmp_path, capsys) -> None:
    from faults.fs import can_mount, tmpfs

    if not can_mount():
        pytest.skip("needs root to mount a tmpfs (a full disk)")
    ws = tmp_path / "ws"
    _setup(ip, capsys, ws, ("tiny", 2000))
    with tmpfs(ws / "runs", "2m") as runs:
        try:
            _ok(ip, capsys, f"%yolo train {ws}/boxes.data {ws}/tiny.cfg background as bg")
            bg = ip.user_ns["bg"]
            _until(lambda: (bg.last_iteration or 0) >= 2, 90, "two iterations")
            with open(runs / "filler", "wb") as filler:  # the disk fills up under the running darknet
                try:
                    while True:
                        filler.write(b"\0" * 65536)
                        filler.flush()
                except OSError:
                    pass
            bg.wait(120)
            state = keeper.read_state(bg.run_dir)
            meta = read_record(bg.run_dir)
        finally:
            _stop_leftovers(ws)
    text = capsys.readouterr()
    assert not bg.running and bg.status == "failed" and "the disk is full" in bg.message, (bg.summary(), text)
    assert "exit status unknown" not in bg.message
    assert state["state"] == "ended" and "No space left on device" in state["result"]["log_error"]
    assert meta.status is RunStatus.FAILED and "the disk is full" in meta.message  # run.json says how it ended
    assert bg.problems_found[0].code == "disk-full"
