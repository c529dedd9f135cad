"""The magics in a real IPython shell: loading, dry-run plans, errors without tracebacks, help, placeholders."""
from __future__ import annotations


from IPython.core.error import UsageError

from conftest import run_cell


def test_load_reload_unload(ip):
    assert "darknet" in ip.magics_manager.magics["cell"]
    assert "yolo" in ip.magics_manager.magics["line"]
    ip.run_line_magic("reload_ext", "darknet_magics")
    assert "darknet" in ip.magics_manager.magics["cell"]
    ip.run_line_magic("unload_ext", "darknet_magics")
    assert "darknet" not in ip.magics_manager.magics["cell"]
    assert "yolo" not in ip.magics_manager.magics["line"]
    ip.run_line_magic("load_ext", "darknet_magics")
    assert "yolo" in ip.magics_manager.magics["line"]


def test_dry_run_prints_the_plan_and_runs_nothing(ip, tmp_path, capsys):
    drive = tmp_path / "My Drive"
    cell = f"""
drive "{drive}"
workspace {{drive}}/yolo
clone https://github.com/AlexeyAB/darknet ref=abc1234 into={{local}}/dn
make GPU=1 CUDNN=1 OPENCV=0 ARCH=75 jobs=2
stage {{drive}}/data/helmets.zip
weights yolov4-tiny.conv.29
set cfgname=yolo-obj
"""
    result = run_cell(ip, "%%darknet --dry-run\n" + cell)
    assert result.error_in_exec is None, result.error_in_exec
    out = capsys.readouterr().out
    assert "[1/7] drive" in out and "[7/7] set cfgname=yolo-obj" in out
    assert "git clone" in out and "abc1234" in out
    assert "make -j2" in out and "GPU=1, CUDNN=1, OPENCV=0" in out
    assert f"{drive}/yolo/weights/yolov4-tiny.conv.29" in out  # placeholders resolved through simulated steps
    assert "dry run: nothing was run" in out
    assert not drive.exists() and not (tmp_path / "dn").exists()


def test_an_invalid_line_stops_the_whole_cell_before_anything_runs(ip, tmp_path, capsys):
    target = tmp_path / "ws"
    result = run_cell(ip, f"%%darknet\nworkspace {target}\nmkae GPU=1\n")
    assert isinstance(result.error_in_exec, UsageError)
    captured = capsys.readouterr()
    assert "line 2" in str(result.error_in_exec) and "did you mean `make`" in str(result.error_in_exec)
    assert "Traceback" not in captured.out + captured.err
    assert not target.exists()


def test_workspace_and_set_run_and_persist_across_cells(ip, tmp_path, capsys):
    target = tmp_path / "ws; 'quoted'"
    result = run_cell(ip, f"%%darknet\nworkspace \"{target}\"\nset name=helmets\n")
    assert result.error_in_exec is None
    assert target.is_dir()
    out = capsys.readouterr().out
    assert "[1/2] workspace" in out and "done in" in out
    # a later cell sees {workspace} and {name}
    result = run_cell(ip, "%%darknet --dry-run\nstage {workspace}/{name}.zip\n")
    assert result.error_in_exec is None
    assert f"{target}/helmets.zip" in capsys.readouterr().out


def test_python_variables_fill_placeholders(ip, tmp_path, capsys):
    ip.user_ns["data_root"] = str(tmp_path / "data")
    result = run_cell(ip, "%%darknet --dry-run\nstage {data_root}/set1\n")
    assert result.error_in_exec is None
    assert f"{tmp_path}/data/set1" in capsys.readouterr().out


def test_yolo_help_and_subcommand_help(ip, capsys):
    ip.run_line_magic("yolo", "--help")
    out = capsys.readouterr().out
    for sub in ("train", "resume", "log", "map", "test", "anchors", "cfg", "data", "check", "status"):
        assert f"%yolo {sub}" in out
    ip.run_line_magic("yolo", "train --help")
    out = capsys.readouterr().out
    assert out.startswith("usage: %yolo train DATA CFG [WEIGHTS]") and "stop_on_nan=" in out


def test_help_reads_in_the_order_of_the_loop_and_names_yolo_run(ip, capsys):
    from darknet_magics.directives import GRAMMAR

    ip.run_line_magic("yolo", "--help")
    out = capsys.readouterr().out
    stages = [out.index(f" {stage}:\n") for stage in ("data", "training", "model out")]
    assert stages == sorted(stages)
    assert out.index("%yolo check") < out.index("%yolo train") < out.index("%yolo map") < out.index("%yolo export")
    assert "yolo_run.iterations" in out and "yolo_run.maps" in out and "yolo_run.class_ap" in out
    assert all(f"%yolo {name}" in out for name in GRAMMAR.yolo)  # every subcommand, each once
    cell_doc = ip.find_cell_magic("darknet").__doc__
    assert cell_doc.index(" set-up:\n") < cell_doc.index("  make [") < cell_doc.index("  stage SRC")
    assert all(cell_doc.count(f"\n  {name}") == 1 for name in GRAMMAR.darknet)


def test_question_mark_help_shows_the_directive_reference(ip):
    cell_doc = ip.find_cell_magic("darknet").__doc__
    assert "--dry-run" in cell_doc and "make [GPU=0|1]" in cell_doc and "{workspace}" in cell_doc
    assert "%yolo train DATA CFG" in ip.find_line_magic("yolo").__doc__


def test_yolo_usage_error_without_traceback(ip, capsys):
    result = run_cell(ip, "%yolo train only_data.data")
    assert isinstance(result.error_in_exec, UsageError)
    assert "missing CFG" in str(result.error_in_exec)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.out + captured.err


def test_magic_line_option_errors_are_usage_errors(ip):
    result = run_cell(ip, "%%darknet --no-such-flag\nruntime\n")
    assert isinstance(result.error_in_exec, UsageError)


def test_step_failure_is_shown_as_a_diagnosis_not_a_traceback(ip, capsys):
    # `make` with no source folder is a step that fails with a fix, not a Python traceback
    result = run_cell(ip, "%%darknet\nmake GPU=0 cache=off\n")
    assert result.error_in_exec is not None
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "no darknet source folder" in text and "run `clone` first" in text
    assert "Traceback" not in text


def test_help_as_users_ask_for_it(ip, capsys):
    ip.run_cell("%%darknet?", store_history=False)
    text = capsys.readouterr().out
    assert "%%darknet [--dry-run]" in text and "::" not in text and "\n%darknet" not in text
    run_cell(ip, "%%darknet --help\n")
    assert "Directives:" in capsys.readouterr().out
    run_cell(ip, "%%darknet\n")  # an empty cell shows the help instead of doing nothing
    assert "Directives:" in capsys.readouterr().out
    ip.run_line_magic("yolo", "help train")
    text = capsys.readouterr().out
    assert text.startswith("usage: %yolo train") and "force" in text
    ip.run_cell("%yolo?", store_history=False)
    text = capsys.readouterr().out
    assert "%yolo SUBCOMMAND" in text and ":param" not in text and "\n.. " not in text


def test_a_file_where_the_folder_of_an_output_goes_is_a_clear_error(ip, tmp_path, capsys):
    blocker = tmp_path / "not a folder"
    blocker.write_text("x")
    result = run_cell(ip, f'%yolo cfg yolov3-tiny "{blocker}/out.cfg" classes=1')
    captured = capsys.readouterr()
    assert result.error_in_exec is not None and "is a file, not a folder" in str(result.error_in_exec)
    assert "Traceback" not in captured.out + captured.err
