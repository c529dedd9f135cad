"""Issue 19: nothing from outside runs. The name rule (safenames) and every place a path or a word reaches darknet:
image names typed at darknet's prompt and written to lists, args= flags that write the user's files, weights URLs,
with real darknet (Debian's pjreddie; AlexeyAB's build where present) and a canary file that a command named in a
file name would make.

Debian's darknet runs ``system("echo PATH >> bad.list")`` for an image it cannot load (image_opencv.cpp:105):
`test_debian_darknet_runs_a_command_named_in_an_image_path` shows that it does, so that the other tests' absent
canary means something.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import run_cell
from darknet_magics.model import detect as detection
from darknet_magics.model import inputs
from darknet_magics.run import runner
from darknet_magics.setup.binary import check_darknet_args
from darknet_magics.errors import DarknetMagicsError, StepError
from darknet_magics.report import RecordingReporter
from darknet_magics.safenames import (SHELL_METACHARACTERS, Reach, check_darknet_path, check_darknet_words,
                                      link_unsafe, safe_file_name, safe_link, unsafe_reason)
from darknet_magics.data.weights import weights_target

sys.path.insert(0, str(Path(__file__).parent))
from builds import alexeyab, flavor_binary  # noqa: E402,F401 (alexeyab: fixture)
from test_inference_batch import DARKNET, TEMPLATE, model, synthetic_weights  # noqa: E402,F401 (model: fixture)

needs_darknet = pytest.mark.skipif(not DARKNET.exists() or not TEMPLATE.exists(),
                                   reason="needs Debian's darknet (apt-get install darknet)")
# Names that split darknet's prompt line or run through its `echo NAME >> bad.list`.
HOSTILE = ["x\n$(touch CANARY).png", "u\x15v.png", "$(touch CANARY).png", "a`touch CANARY`.png",
           "b;touch CANARY;.png", "c|touch CANARY.png", "d&&touch CANARY.png", "e>CANARY.png", "f\rg.png",
           "h\x7fi.png", "j\x85k.png", "l\u2028m.png", "q'\"r.png"]


# ---------------------------------------------------------------------------------------------------------------
# The rule, pure


@pytest.mark.timeout(30)
@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_names_break_the_rule_with_a_reason(name: str) -> None:
    reason = unsafe_reason("/data/" + name)
    assert reason is not None
    with pytest.raises(DarknetMagicsError) as info:
        check_darknet_path("/data/" + name, what="image", source="list.txt line 3")
    assert "list.txt line 3" in str(info.value) and "rename" in info.value.fix


@pytest.mark.timeout(30)
def test_plain_names_pass_and_argv_files_may_hold_shell_characters() -> None:
    for ok in ("/content/drive/MyDrive/data set/img_001.JPG", "/d/ü-ñ/ø,@%+=!^.png", "rel/x.png"):
        assert unsafe_reason(ok) is None, ok
    # a cfg darknet only opens: "(1)" from a browser's second download is fine there, not a newline or a '-'
    assert unsafe_reason("/d/yolov4 (1).cfg", Reach.ARGV) is None
    assert unsafe_reason("/d/yolov4 (1).cfg") is not None
    assert "flag" in unsafe_reason("-x.cfg", Reach.ARGV) and "^J" in unsafe_reason("/d/a\nb.cfg", Reach.ARGV)
    assert "UTF-8" in unsafe_reason(os.fsdecode(b"/d/\xff.png"))


@pytest.mark.timeout(60)
@settings(max_examples=400, deadline=None)
@given(st.text(max_size=40))
def test_the_rule_is_total_and_exact(text: str) -> None:
    """Property: any text gets a reason or None, never an exception, and None only for text free of control
    characters, shell metacharacters, lone surrogates and a leading '-'."""
    reason = unsafe_reason(text)
    import unicodedata

    clean = (text and not text.startswith("-")
             and not any(unicodedata.category(c) in ("Cc", "Cs") or c in SHELL_METACHARACTERS or c in "\u2028\u2029"
                         for c in text))
    assert (reason is None) == bool(clean)


@pytest.mark.timeout(30)
def test_safe_links_point_at_the_file_and_its_label(tmp_path: Path) -> None:
    src = tmp_path / "in"
    src.mkdir()
    image = src / "x\n$(touch CANARY).png"
    image.write_bytes(b"png")
    image.with_suffix(".txt").write_text("0 0.5 0.5 0.1 0.1\n")
    link = safe_link(image, tmp_path / "links", 7, with_label=True)
    assert unsafe_reason(str(link)) is None and link.name.startswith("00007-") and link.suffix == ".png"
    assert link.resolve() == image.resolve() and link.with_suffix(".txt").read_text().startswith("0 0.5")
    assert safe_link(image, tmp_path / "links", 7) == link  # the same name again: the mapping is stable
    listed = link_unsafe([str(image), str(tmp_path / "ok.png")], tmp_path / "links")
    assert listed[1] == str(tmp_path / "ok.png") and unsafe_reason(listed[0]) is None
    with pytest.raises(DarknetMagicsError):
        safe_link(image, tmp_path / "bad;folder", 0)


# ---------------------------------------------------------------------------------------------------------------
# args= flags and weights URLs


@pytest.mark.timeout(30)
@pytest.mark.parametrize("flavor, words", [
    ("alexeyab", ["-save_labels"]), ("hank-ai", ["--SaveLabels"]), ("hank-ai", ["-save-labels"]),
    ("pjreddie", ["-save_labels"]), (None, ["-save_labels"]), ("alexeyab", ["-out", "/data/result.json"]),
    ("alexeyab", ["-prefix", "frames/f"]), ("alexeyab", ["-json_file_output", "x.json"]),
    ("alexeyab", ["-chart", "/data/chart.png"]), ("hank-ai", ["-log", "/data/labels.txt"]),
    ("pjreddie", ["-prefix", "x"]), ("alexeyab", ["-thresh", "0.5\n-save_labels"]),
])
def test_flags_that_write_the_users_files_are_refused(flavor, words) -> None:
    errors = check_darknet_args(flavor, "test", words)
    assert errors and ("refused" in errors[0] or "control character" in errors[0]), errors
    assert check_darknet_words(flavor, ["-points", "0"]) == []


@pytest.mark.timeout(30)
@pytest.mark.parametrize("url", ["http://h/x/%2e%2e", "http://h/x/%2E%2E", "http://h/.", "http://h/a%0Ab.weights",
                                 "http://h/%24%28touch%20CANARY%29.weights", "http://h/%2D%2Dx.weights"])
def test_weights_urls_whose_name_decodes_to_a_way_out_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(DarknetMagicsError) as info:
        weights_target(url, tmp_path)
    assert info.value.fix
    assert weights_target("http://h/a%2F..%2F..%2Fyolov4.weights", tmp_path) == tmp_path / "yolov4.weights"
    assert safe_file_name("yolov4.weights", what="weights") == "yolov4.weights"


@pytest.mark.timeout(120)
def test_weights_url_with_dotdot_in_a_real_shell(ip, tmp_path: Path, capsys) -> None:
    res = run_cell(ip, f"%%darknet\nweights http://127.0.0.1:9/x/%2e%2e into={tmp_path / 'w'}")
    text = "".join(capsys.readouterr())
    assert res.error_in_exec is not None and "Traceback" not in text and "'..'" in text, text
    assert not (tmp_path / "w").exists() or not any((tmp_path / "w").iterdir())


# ---------------------------------------------------------------------------------------------------------------
# Real darknet


def truncated(image: Path, target: Path) -> Path:
    """A PNG with its header (our check passes it) cut short: darknet cannot load it and runs its `echo`."""
    target.write_bytes(image.read_bytes()[:100])
    return target


@pytest.mark.slow
@needs_darknet
@pytest.mark.timeout(120)
def test_debian_darknet_runs_a_command_named_in_an_image_path(model, tmp_path: Path) -> None:
    """The threat, shown once: darknet itself, given the path unguarded, runs the command in it."""
    ws, cfg, weights, ds = model
    bad = truncated(ds.images[0], tmp_path / "x$(touch CANARY).png")
    result = runner.run([str(DARKNET), "detector", "test", str(ws / "obj.data"), str(cfg), str(weights), str(bad),
                         "-out", str(tmp_path / "pred")], cwd=tmp_path, log_path=None,
                        watchdog=runner.Watchdog(silence_s=60.0))
    assert result.returncode == 0 and (tmp_path / "CANARY").exists()


@pytest.mark.slow
@needs_darknet
@pytest.mark.timeout(300)
@pytest.mark.parametrize("flavor", ["pjreddie", pytest.param("alexeyab", marks=pytest.mark.once),
                                    pytest.param("hank-ai", marks=pytest.mark.once)])
def test_yolo_test_on_a_folder_of_hostile_names_runs_nothing(model, tmp_path: Path, flavor: str) -> None:
    """Each image whose name breaks the rule is typed as a safe link (pjreddie, AlexeyAB) or copied in under a
    safe name (hank-ai's tool); rows and pictures carry the real names."""
    ws, cfg, weights, ds = model
    binary = DARKNET if flavor == "pjreddie" else flavor_binary(flavor)
    cwd = binary.parent if flavor == "alexeyab" else tmp_path  # AlexeyAB reads data/labels from its clone
    folder = tmp_path / "imgs"
    folder.mkdir()
    names = ["x\n$(touch CANARY).png", "u\x15v.png", "b;touch CANARY;.png", "plain.png"]
    for name in names:
        (folder / name).write_bytes(ds.images[0].read_bytes())
    out = tmp_path / "out"
    result = detection.detect(darknet=binary, data=ws / "obj.data", cfg=cfg, weights=weights, image=folder,
                              thresh=0.5, cwd=cwd, out=out, reporter=RecordingReporter())
    assert not list(tmp_path.rglob("CANARY")) and not (cwd / "CANARY").exists()
    assert set(result.detections["image"]) == {str((folder / n).resolve()) for n in names}
    assert len(result.annotated) == 4 and all(unsafe_reason(str(p)) is None for p in result.annotated)
    assert not [p for p in out.iterdir() if p.name.startswith(".detect-links-")]  # the links are gone


@pytest.mark.slow
@needs_darknet
@pytest.mark.timeout(180)
def test_yolo_test_on_a_truncated_hostile_image_runs_nothing(ip, model, tmp_path: Path, capsys) -> None:
    """darknet cannot load it and echoes its name to bad.list: the safe link's name, never the command."""
    ws, cfg, weights, ds = model
    folder = tmp_path / "imgs"
    folder.mkdir()
    bad = truncated(ds.images[0], folder / "$(touch CANARY).png")
    res = run_cell(ip, f"%yolo test {ws / 'obj.data'} {cfg} {weights} {folder} out={tmp_path / 'out'} "
                       f"bin={DARKNET}")
    text = "".join(capsys.readouterr())
    assert res.error_in_exec is not None and "Traceback" not in text
    assert "bad-image" in text and str(bad) in text, text[-2000:]  # reported under its real name
    assert not list(tmp_path.rglob("CANARY")) and not (Path.cwd() / "CANARY").exists()
    bad_list = Path.cwd() / "bad.list"  # darknet's own, in its working folder: a link's name, no command
    assert not bad_list.exists() or "touch" not in bad_list.read_text()


@pytest.mark.timeout(120)
def test_save_labels_is_refused_and_the_labels_stay(ip, tmp_path: Path, capsys) -> None:
    """`args="-save_labels"` would write predictions over each image's NAME.txt: refused before darknet starts,
    for every flavor binary at hand (Debian's pjreddie; AlexeyAB's where built)."""
    from darknet_magics.data.cfg import make_cfg
    from darknet_magics.synth import make_dataset

    if not DARKNET.exists() or not TEMPLATE.exists():
        pytest.skip("needs Debian's darknet (apt-get install darknet)")
    ds = make_dataset(tmp_path / "ds", images=2, size=64)
    labels = {p: p.read_bytes() for p in ds.folder.rglob("*.txt")}
    assert labels
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(make_cfg(TEMPLATE.read_text(), 1, width=64, height=64, batch=1, subdivisions=1, random=0))
    weights = tmp_path / "tiny.weights"
    weights.write_bytes(synthetic_weights(cfg.read_text()))
    data = tmp_path / "obj.data"
    data.write_text(f"classes = 1\nnames = {ds.folder / 'obj.names'}\n")
    # the other flavors where built (DARKNET_ALEXEYAB / DARKNET_HANKAI, as tests/builds.py reads them); no build here
    binaries = [DARKNET] + [Path(b) for b in (os.environ.get("DARKNET_ALEXEYAB"), os.environ.get("DARKNET_HANKAI"))
                            if b and Path(b).is_file()]
    for binary in binaries:
        for words in ("-save_labels", "-letter_box -SaVe_LaBeLs", "-out /tmp/x.json"):
            res = run_cell(ip, f'%yolo test {data} {cfg} {weights} {ds.folder} args="{words}" bin={binary}')
            text = "".join(capsys.readouterr())
            assert res.error_in_exec is not None and "Traceback" not in text, text
            assert "refused" in text or "has no flag" in text, text
    assert {p: p.read_bytes() for p in ds.folder.rglob("*.txt")} == labels


@pytest.mark.slow
@needs_darknet
@pytest.mark.timeout(240)
@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(names=st.lists(st.one_of(st.text(min_size=1, max_size=12),
                                st.sampled_from(["$(touch CANARY)", "`touch CANARY`", ";touch CANARY;", "\n", "\x15",
                                                 "\r", "-", "..", "a b"])),
                      min_size=1, max_size=3))
def test_property_random_names_give_a_result_or_our_error(model, tmp_path_factory, names) -> None:
    """Property, with real darknet: any file names in a folder given to `%yolo test` end in detections under
    those names or in our error, never a traceback and never a command run."""
    ws, cfg, weights, ds = model
    tmp = tmp_path_factory.mktemp("prop")
    folder = tmp / "imgs"
    folder.mkdir()
    made = set()
    for k, raw in enumerate(names):
        name = "".join(ch for ch in raw if ch not in "/\x00") + f"{k}.png"
        try:
            path = folder / name
            path.write_bytes(ds.images[0].read_bytes())
            made.add(str(path.resolve()))
        except (OSError, UnicodeEncodeError):
            continue  # a name this file system refuses is no input
    if not made:
        return
    try:
        result = detection.detect(darknet=DARKNET, data=ws / "obj.data", cfg=cfg, weights=weights, image=folder,
                                  thresh=0.5, cwd=tmp, out=tmp / "out", reporter=RecordingReporter())
        assert set(result.detections["image"]) == made
    except (DarknetMagicsError, StepError) as exc:
        assert str(exc)
    assert not list(tmp.rglob("CANARY")) and not (Path.cwd() / "CANARY").exists()


# ---------------------------------------------------------------------------------------------------------------
# Names in lists: the lists %yolo data writes link them; a user's own list is refused before training


def _hostile_dataset(folder: Path, image: Path) -> Path:
    """A YOLO folder holding one cut-short image named `$(touch CANARY).png` with its label: darknet cannot load
    it, so every batch runs its `echo NAME >> bad.list`."""
    folder.mkdir(parents=True)
    bad = truncated(image, folder / "$(touch CANARY).png")
    bad.with_suffix(".txt").write_text("0 0.5 0.5 0.4 0.4\n")
    (folder / "obj.names").write_text("red_box\n")
    return bad


@pytest.mark.slow
@needs_darknet
@pytest.mark.timeout(240)
def test_yolo_data_links_hostile_names_and_training_runs_nothing(ip, model, tmp_path: Path, capsys) -> None:
    ws, cfg, weights, ds = model
    _hostile_dataset(tmp_path / "set", ds.images[0])
    res = run_cell(ip, f"%yolo data {tmp_path / 'out' / 'obj.data'} images={tmp_path / 'set'} split=0")
    text = "".join(capsys.readouterr())
    assert res.error_in_exec is None, text[-2000:]
    listed = (tmp_path / "out" / "obj.train.txt").read_text().splitlines()
    assert len(listed) == 1 and unsafe_reason(listed[0]) is None and Path(listed[0]).with_suffix(".txt").is_file()
    assert Path(listed[0]).resolve() == (tmp_path / "set" / "$(touch CANARY).png").resolve()
    from darknet_magics.data.cfg import make_cfg

    short = tmp_path / "short.cfg"
    short.write_text(make_cfg(TEMPLATE.read_text(), 1, width=64, height=64, batch=1, subdivisions=1, random=0,
                              max_batches=2))
    run_cell(ip, f"%yolo train {tmp_path / 'out' / 'obj.data'} {short} force bin={DARKNET}")
    text = "".join(capsys.readouterr())
    assert "Traceback" not in text
    assert not list(tmp_path.rglob("CANARY")) and not (Path.cwd() / "CANARY").exists()
    bad_list = Path.cwd() / "bad.list"
    assert bad_list.exists() and "touch" not in bad_list.read_text(), text[-2000:]  # darknet ran: the link's name


@pytest.mark.timeout(120)
def test_train_refuses_a_users_list_with_a_hostile_name_even_with_force(ip, model, tmp_path: Path,
                                                                        capsys) -> None:
    ws, cfg, weights, ds = model
    bad = _hostile_dataset(tmp_path / "set", ds.images[0])
    (tmp_path / "train.txt").write_text(f"{ds.images[1]}\n{bad}\n")
    data = tmp_path / "obj.data"
    data.write_text(f"classes = 1\ntrain = {tmp_path / 'train.txt'}\nvalid = {tmp_path / 'train.txt'}\n"
                    f"names = {tmp_path / 'set' / 'obj.names'}\nbackup = {tmp_path / 'backup'}\n")
    res = run_cell(ip, f"%yolo train {data} {cfg} force bin={DARKNET}")
    text = "".join(capsys.readouterr())
    assert res.error_in_exec is not None and "Traceback" not in text
    assert "unsafe-name" in text and f"{tmp_path / 'train.txt'}:2" in text and "%yolo data" in text, text
    assert not list(tmp_path.rglob("CANARY")) and not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------------------------------
# The smaller cases


@pytest.mark.timeout(60)
def test_a_bad_line_of_an_image_list_names_the_list_and_the_line(model, tmp_path: Path) -> None:
    ws, cfg, weights, ds = model
    cases = {b"%s\n\n/nowhere/x.png\n" % bytes(ds.images[0]): ("line 3", "does not exist"),
             b"%s\n\xff\xfe.png\n" % bytes(ds.images[0]): ("line 2", "not UTF-8"),
             b"# c\n%s\x15x.png\n" % bytes(ds.images[0]): ("line 2", "^U"),
             b"%s\r\n%s\n" % (bytes(ds.images[0]), bytes(ws / "obj.data")): ("line 2", "not an image")}
    for k, (content, (line, what)) in enumerate(cases.items()):
        listed = tmp_path / f"list{k}.txt"
        listed.write_bytes(content)
        with pytest.raises(StepError) as info:
            inputs.resolve_images(listed)
        assert f"{listed} {line}" in str(info.value) and what in str(info.value), str(info.value)
    ok = tmp_path / "ok.txt"
    ok.write_bytes(b"%s\r\n" % bytes(ds.images[0]))  # a CRLF list reads as darknet (AlexeyAB) reads it
    assert inputs.resolve_images(ok) == [ds.images[0].resolve()]


@pytest.mark.timeout(60)
def test_stage_of_a_missing_source_makes_no_folder(ip, tmp_path: Path, capsys) -> None:
    into = tmp_path / "local" / "data"
    res = run_cell(ip, f"%%darknet\nstage {tmp_path / 'missing'} into={into}")
    text = "".join(capsys.readouterr())
    assert res.error_in_exec is not None and "Traceback" not in text and "nothing to stage" in text, text
    assert not (tmp_path / "local").exists()


@pytest.mark.timeout(60)
def test_split_with_train_or_valid_is_a_conflict(ip, model, tmp_path: Path, capsys) -> None:
    ws, cfg, weights, ds = model
    out = tmp_path / "o" / "obj.data"
    for extra in (f"valid={ds.folder}", ""):
        res = run_cell(ip, f"%yolo data {out} train={ds.folder} {extra} split=0.2")
        text = "".join(capsys.readouterr())
        assert res.error_in_exec is not None and "Traceback" not in text, text
        assert "split= conflicts with train=" in text and "drop split=" in text, text
    assert not out.exists()


@needs_darknet
@pytest.mark.timeout(120)
def test_a_crlf_cfg_is_an_error_for_pjreddie(ip, model, tmp_path: Path, capsys) -> None:
    ws, cfg, weights, ds = model
    crlf = tmp_path / "crlf.cfg"
    crlf.write_bytes(cfg.read_bytes().replace(b"\n", b"\r\n"))
    res = run_cell(ip, f"%yolo test {ws / 'obj.data'} {crlf} {weights} {ds.images[0]} bin={DARKNET}")
    text = "".join(capsys.readouterr())
    assert res.error_in_exec is not None and "Traceback" not in text, text
    assert "CRLF" in text and "sed -i" in text and str(crlf) in text, text
    from darknet_magics.data.checks import check

    problems = check(ws / "obj.data", crlf, flavor="pjreddie")
    assert any(p.code == "line-endings" and p.severity == "error" for p in problems)


@pytest.mark.slow
@pytest.mark.once
@pytest.mark.timeout(300)
def test_alexeyab_echoes_a_bad_labels_path_only_as_a_safe_link(model, tmp_path: Path, alexeyab: Path) -> None:
    """AlexeyAB's fill_truth_detection runs `echo LABELPATH "Wrong annotation ..." >> bad_label.list` (data.c:405):
    shown with the path unguarded, then through the list `%yolo data` writes (the link's name reaches the echo)."""
    from darknet_magics.data.cfg import make_cfg
    from darknet_magics.data.datasets import prepare_dataset

    ws, cfg, weights, ds = model
    short = tmp_path / "short.cfg"
    short.write_text(make_cfg(TEMPLATE.read_text(), 1, width=64, height=64, batch=2, subdivisions=1, random=0,
                              max_batches=1))  # AlexeyAB refuses batch=1 for training
    for guarded in (False, True):
        run = tmp_path / ("guarded" if guarded else "raw")
        folder = run / "set"
        folder.mkdir(parents=True)
        image = folder / "$(touch CANARY).png"
        image.write_bytes(ds.images[0].read_bytes())
        image.with_suffix(".txt").write_text("5 0.5 0.5 0.4 0.4\n")  # class 5 of 1: a wrong annotation
        (folder / "obj.names").write_text("red_box\n")
        if guarded:
            data = prepare_dataset(run / "obj.data", images=folder, split=0, backup=run / "backup").data_path
        else:
            (run / "train.txt").write_text(f"{image}\n")
            data = run / "obj.data"
            data.write_text(f"classes = 1\ntrain = {run / 'train.txt'}\nvalid = {run / 'train.txt'}\n"
                            f"names = {folder / 'obj.names'}\nbackup = {run}\n")
        result = runner.run([str(alexeyab), "detector", "train", str(data), str(short), "-dont_show"], cwd=run,
                            log_path=None, watchdog=runner.Watchdog(silence_s=120.0))
        assert (run / "bad_label.list").exists(), result.describe()
        assert (run / "CANARY").exists() is not guarded


@pytest.mark.timeout(60)
def test_data_refuses_an_obj_data_path_with_a_control_character_before_writing(model, tmp_path: Path) -> None:
    """obj.data holds one path a line: a newline in OUT's folder or in backup= would split it."""
    from darknet_magics.data.datasets import prepare_dataset

    ws, cfg, weights, ds = model
    for out, backup in ((tmp_path / "a\nb" / "obj.data", tmp_path / "backup"),
                        (tmp_path / "o" / "obj.data", tmp_path / "back\x1bup")):
        with pytest.raises(DarknetMagicsError) as info:
            prepare_dataset(out, images=ds.folder, split=0, backup=backup)
        assert "control character" in str(info.value) and info.value.fix
    assert sorted(p.name for p in tmp_path.iterdir()) == []
