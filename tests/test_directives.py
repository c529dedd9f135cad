"""The directive language: every directive and subcommand, every error class, quoting, placeholders, fuzz."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from darknet_magics import language
from darknet_magics.directives import GRAMMAR
from darknet_magics.language import CellError, expand, tokenize

DARKNET_SPECS, YOLO_SPECS = GRAMMAR.darknet, GRAMMAR.yolo


def parse_cell(text, **kw):
    return language.parse_cell(text, GRAMMAR, **kw)


def parse_yolo(text, **kw):
    return language.parse_yolo(text, GRAMMAR, **kw)
from darknet_magics.errors import DarknetMagicsError, DirectiveError

EVERY_DIRECTIVE = """
# a whole Colab session in one cell
runtime
drive /content/drive
workspace {drive}/yolo
cudnn "{drive}/cudnn-linux-x86_64-8.9.7.29_cuda12-archive.tar.xz" cuda=/usr/local/cuda
clone https://github.com/AlexeyAB/darknet ref=master into={local}/darknet
make GPU=1 CUDNN=1 CUDNN_HALF=1 OPENCV=1 AVX=0 OPENMP=0 LIBSO=1 ARCH=auto jobs=4 cache=on
stage "{drive}/datasets/my set.zip" into=/content/data pack=off
weights yolov4-tiny.conv.29 into={workspace}/weights
set name=helmets classes=2
"""


def test_every_directive_parses_into_its_step():
    plan = parse_cell(EVERY_DIRECTIVE)
    assert [s.name for s in plan] == list(DARKNET_SPECS)
    by_name = {s.name: s for s in plan}
    assert by_name["drive"].args == {"PATH": "/content/drive"}
    assert by_name["cudnn"].args["TARBALL"] == "{drive}/cudnn-linux-x86_64-8.9.7.29_cuda12-archive.tar.xz"
    assert by_name["clone"].options == {"ref": "master", "into": "{local}/darknet"}
    make = by_name["make"].resolve({})
    assert make.options == {"GPU": 1, "CUDNN": 1, "CUDNN_HALF": 1, "OPENCV": 1, "AVX": 0, "OPENMP": 0, "LIBSO": 1,
                            "ARCH": "auto", "jobs": 4, "cache": True}
    assert by_name["stage"].args["SRC"] == "{drive}/datasets/my set.zip"
    assert by_name["set"].options == {"name": "helmets", "classes": "2"}
    assert by_name["make"].lineno == 8  # line numbers count the blank first line and comments


@pytest.mark.parametrize("line, name, args, options, flags, as_name", [
    ("train obj.data yolo.cfg yolov4-tiny.conv.29 map gpus=0,1 backup=/b clear as run1", "train",
     {"DATA": "obj.data", "CFG": "yolo.cfg", "WEIGHTS": "yolov4-tiny.conv.29"}, {"gpus": "0,1", "backup": "/b"},
     {"map", "clear"}, "run1"),
    ("train obj.data yolo.cfg bin=./darknet force", "train", {"DATA": "obj.data", "CFG": "yolo.cfg"},
     {"bin": "./darknet"}, {"force"}, None),
    ("resume", "resume", {}, {}, set(), None),
    ("resume run1", "resume", {"NAME": "run1"}, {}, set(), None),
    ("log train.log as old", "log", {"PATH": "train.log"}, {}, set(), "old"),
    ("map obj.data y.cfg y.weights", "map", {"DATA": "obj.data", "CFG": "y.cfg", "WEIGHTS": "y.weights"}, {}, set(), None),
    ("test obj.data y.cfg y.weights dog.jpg thresh=0.3", "test",
     {"DATA": "obj.data", "CFG": "y.cfg", "WEIGHTS": "y.weights", "SOURCE": "dog.jpg"}, {"thresh": "0.3"}, set(), None),
    ('test obj.data y.cfg y.weights images/ out=preds args="-letter_box" as det', "test",
     {"DATA": "obj.data", "CFG": "y.cfg", "WEIGHTS": "y.weights", "SOURCE": "images/"},
     {"out": "preds", "args": "-letter_box"}, set(), "det"),
    ("map obj.data y.cfg backup/ points=11 iou_thresh=0.75", "map",
     {"DATA": "obj.data", "CFG": "y.cfg", "WEIGHTS": "backup/"}, {"points": "11", "iou_thresh": "0.75"}, set(), None),
    ("video obj.data y.cfg y.weights street.mp4 out=v", "video",
     {"DATA": "obj.data", "CFG": "y.cfg", "WEIGHTS": "y.weights", "IN": "street.mp4"}, {"out": "v"}, set(), None),
    ("export y.cfg y.weights out=m.onnx", "export", {"CFG": "y.cfg", "WEIGHTS": "y.weights"}, {"out": "m.onnx"},
     set(), None),
    ("show dog.jpg download=on", "show", {"PATH": "dog.jpg"}, {"download": "on"}, set(), None),
    ("anchors obj.data clusters=6 width=96 height=96", "anchors", {"DATA": "obj.data"},
     {"clusters": "6", "width": "96", "height": "96"}, set(), None),
    ("cfg yolov4-tiny y.cfg classes=2 width=416 height=416 batch=64 subdivisions=16 max_batches=6000 random=0", "cfg",
     {"TEMPLATE": "yolov4-tiny", "OUT": "y.cfg"},
     {"classes": "2", "width": "416", "height": "416", "batch": "64", "subdivisions": "16", "max_batches": "6000",
      "random": "0"}, set(), None),
    ("data obj.data classes=2 names=a,b images=/data split=0.2", "data", {"OUT": "obj.data"},
     {"classes": "2", "names": "a,b", "images": "/data", "split": "0.2"}, set(), None),
    ("data obj.data classes=1 names=obj.names train=t.txt valid=v.txt backup=/b", "data", {"OUT": "obj.data"},
     {"classes": "1", "names": "obj.names", "train": "t.txt", "valid": "v.txt", "backup": "/b"}, set(), None),
    ("check obj.data y.cfg", "check", {"DATA": "obj.data", "CFG": "y.cfg"}, {}, set(), None),
    ("status", "status", {}, {}, set(), None),
])
def test_every_yolo_subcommand(line, name, args, options, flags, as_name):
    step = parse_yolo(line)
    assert (step.name, step.args, step.options, set(step.flags), step.as_name) == (name, args, options, flags, as_name)


def test_every_yolo_subcommand_is_covered():
    assert set(YOLO_SPECS) == {"train", "resume", "log", "map", "test", "anchors", "cfg", "data", "check", "status",
                               "video", "export", "show", "compare", "stop", "eval"}


def test_quoting_spaces_quotes_and_semicolons():
    step = parse_cell("""stage "/content/drive/My Drive/it's; data" into='/tmp/a "b"' """).steps[0]
    assert step.args["SRC"] == "/content/drive/My Drive/it's; data"
    assert step.options["into"] == '/tmp/a "b"'
    step = parse_cell(r"stage /content/My\ Drive/x\;y").steps[0]
    assert step.args["SRC"] == "/content/My Drive/x;y"


def test_quoted_key_value_is_a_plain_argument_and_quoted_flag_is_a_path():
    step = parse_yolo('train "a=b.data" y.cfg "map"')
    assert step.args == {"DATA": "a=b.data", "CFG": "y.cfg", "WEIGHTS": "map"}
    assert not step.flags


def test_comments_blank_lines_and_empty_cells():
    assert len(parse_cell("")) == 0
    assert len(parse_cell("\n   \n# only a comment\n")) == 0
    plan = parse_cell("runtime   # check the GPU\n  \n")
    assert [s.name for s in plan] == ["runtime"]
    assert parse_cell("stage '/a#b'").steps[0].args["SRC"] == "/a#b"  # a quoted # is not a comment


def test_placeholders_from_set_and_from_earlier_directives():
    plan = parse_cell("drive /d\nset name=x\nstage {drive}/{name}.zip into={workspace}/{{literal}}")
    stage = plan.steps[2].resolve({"drive": "/d", "name": "x", "workspace": "/d/darknet"})
    assert stage.args["SRC"] == "/d/x.zip"
    assert stage.options["into"] == "/d/darknet/{literal}"


def test_known_placeholders_from_the_session_are_accepted():
    plan = parse_cell("stage {drive}/x", known={"drive"})
    assert plan.steps[0].args["SRC"] == "{drive}/x"


def test_cli_script_mixes_both_languages():
    plan = parse_cell("%%darknet\ndrive /d\n%yolo data {workspace}/obj.data classes=1 names=a images=/i\n"
                      "yolo status")
    assert [(s.language, s.name) for s in plan] == [("darknet", "drive"), ("yolo", "data"), ("yolo", "status")]


# ------------------------------------------------------------------------------------------------- errors

def error_of(text: str, language: str = "darknet") -> DirectiveError:
    with pytest.raises(DirectiveError) as info:
        if language == "darknet":
            parse_cell(text)
        else:
            parse_yolo(text)
    return info.value


def test_unknown_directive_suggests_the_nearest():
    err = error_of("runtime\nmkae GPU=1")
    assert err.lineno == 2 and err.directive == "mkae"
    assert "did you mean `make`" in str(err)


def test_yolo_subcommand_in_a_darknet_cell_says_where_it_belongs():
    err = error_of("train obj.data y.cfg")
    assert "%yolo train obj.data y.cfg" in err.fix


def test_unknown_yolo_subcommand():
    err = error_of("trian a b", "yolo")
    assert "did you mean `train`" in str(err)


def test_missing_required_argument_is_named():
    err = error_of("runtime\n\nstage")
    assert err.lineno == 3 and "missing SRC" in str(err)
    assert "missing CFG" in str(error_of("train obj.data", "yolo"))


def test_unknown_option_lists_the_valid_ones():
    err = error_of("make GPU=1 OPENVC=1")
    assert "unknown option OPENVC=" in str(err)
    assert "did you mean OPENCV=" in str(err)
    assert "CUDNN_HALF=" in str(err)  # the list of valid options
    assert err.column == len("make GPU=1 ")


def test_option_given_to_a_directive_without_options():
    assert "takes no options" in str(error_of("runtime fast=1"))


def test_bad_values_say_what_is_accepted():
    assert "0 or 1" in str(error_of("make GPU=yes"))
    assert "on or off" in str(error_of("make cache=maybe"))
    assert "compute capabilities" in str(error_of("make ARCH=turing"))
    assert "whole number" in str(error_of("make jobs=two"))
    assert "a number" in str(error_of("test d c w i thresh=high", "yolo"))
    assert "comma-separated" in str(error_of("train d c gpus=first", "yolo"))


def test_arch_forms_are_normalised():
    for text, caps in [("75", "75"), ("7.5,8.6", "75,86"), ("sm_89", "89"), ("AUTO", "auto")]:
        assert parse_cell(f"make ARCH={text}").steps[0].resolve({}).options["ARCH"] == caps
    # lower-case flag names are accepted and canonicalised
    assert parse_cell("make gpu=1").steps[0].options == {"GPU": "1"}


def test_unterminated_quote_gives_the_column():
    err = error_of('stage "/content/drive/My Drive')
    assert err.column == len("stage ") and "unterminated" in str(err)
    assert "^" in str(err)


def test_extra_argument():
    err = error_of("clone url1 url2")
    assert "unexpected argument 'url2'" in str(err)
    assert "quote paths with spaces" in str(err)


def test_misspelled_flag_is_suggested():
    err = error_of("train d c w mapp", "yolo")
    assert "did you mean the flag `map`" in str(err)


def test_unset_placeholder_names_the_directive_that_sets_it():
    err = error_of("stage {dataset_dir}/x")
    assert "{dataset_dir}" in str(err)
    err = error_of("workspace {drive}/x")
    assert "run a `drive` line before this one" in str(err)


def test_duplicate_option_and_bad_as_name():
    assert "given twice" in str(error_of("clone ref=a ref=b"))
    assert "not a valid Python variable" in str(error_of("log x as 1run", "yolo"))
    assert "not accepted here" in str(error_of("cfg yolov4-tiny c.cfg classes=1 as x", "yolo"))


def test_data_rules():
    assert "either train=/valid= or images=" in str(error_of("data o classes=1 names=a images=i train=t valid=v", "yolo"))
    # issue 11: train= alone is fine (a folder or a list), valid=/test= need train=, classes/names come from the data
    assert "missing train=" in str(error_of("data o valid=v", "yolo"))
    assert "no images" in str(error_of("data o classes=1 names=a", "yolo"))
    assert "split=" in str(error_of("data o classes=1 names=a images=i split=1.5", "yolo"))


def test_cfg_rules():
    assert "missing classes=" in str(error_of("cfg yolov4-tiny out.cfg", "yolo"))
    assert "at least 1" in str(error_of("cfg yolov4-tiny out.cfg classes=0", "yolo"))


def test_every_bad_line_is_reported_and_nothing_is_planned():
    with pytest.raises(CellError) as info:
        parse_cell("runtime\nmkae\nstage\nclone a b")
    assert [e.lineno for e in info.value.errors] == [2, 3, 4]
    assert "3 lines have errors" in str(info.value)


def test_expand_reports_missing_values_at_run_time():
    with pytest.raises(DirectiveError) as info:
        expand("{drive}/x", {}, lineno=4, directive="stage")
    assert info.value.lineno == 4


def test_help_text_is_generated_for_every_spec():
    for spec in list(DARKNET_SPECS.values()) + list(YOLO_SPECS.values()):
        text = spec.help()
        assert text.startswith("usage: ") and spec.summary in text and "example:" in text


def test_tokenize_keeps_columns():
    toks = tokenize('make  GPU=1 "a b"')
    assert [(t.text, t.column, t.key) for t in toks] == [("make", 0, None), ("1", 6, "GPU"), ("a b", 12, None)]


# ------------------------------------------------------------------------------------------------- fuzz

_alphabet = st.sampled_from(list("abz019 _-=./{}'\"\\#;:\t\n") + ["make ", "stage ", "set ", "GPU=", "{drive}",
                                                                    "train ", "as ", "map", "ARCH="])


@settings(max_examples=400, deadline=None)
@given(st.lists(_alphabet, max_size=40).map("".join))
def test_any_cell_gives_a_consistent_plan_or_an_error_naming_its_line(text):
    """A plan's steps are known directives on real lines, in order, and resolve to text without placeholders;
    an error names a line of the cell."""
    lines = text.splitlines()
    try:
        plan = parse_cell(text)
    except CellError as err:
        assert len(err.errors) >= 2 and all(1 <= e.lineno <= len(lines) for e in err.errors)
        return
    except DirectiveError as err:
        assert err.lineno is not None and 1 <= err.lineno <= len(lines)
        return
    numbers = [s.lineno for s in plan]
    assert numbers == sorted(set(numbers)) and all(1 <= n <= len(lines) for n in numbers)
    for step in plan:
        assert GRAMMAR.specs(step.language)[step.name] is step.spec
        assert lines[step.lineno - 1].strip().startswith(("%yolo", "yolo", step.name))
        values = {"drive": "/d", "workspace": "/w", "local": "/l", "cwd": "/c", "home": "/h", "darknet": "/s",
                  "bin": "/b", "dataset": "/ds", "weights": "/wt"}
        values.update({k: "v" for st_ in plan if st_.name == "set" for k in st_.options})
        try:
            resolved = step.resolve(values, GRAMMAR)
        except DirectiveError as err:
            assert err.lineno == step.lineno
            continue
        for value in list(resolved.args.values()) + [v for v in resolved.options.values() if isinstance(v, str)]:
            assert not language.placeholders(value)


_word = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\n\r"), min_size=1,
                max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(_word, min_size=1, max_size=6))
def test_shell_quoted_words_tokenize_back_to_themselves(words):
    """What shlex.quote makes of any words (spaces, quotes, `;`, `#`, backslashes) tokenizes back to them."""
    import shlex

    line = " ".join(shlex.quote(w) for w in words)
    assert [t.text for t in tokenize(line)] == words


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_yolo_line_gives_a_known_subcommand_or_an_error_on_line_1(text):
    try:
        step = parse_yolo(text)
    except DirectiveError as err:
        assert err.lineno == 1 and str(err)
        return
    if step is None:
        assert not tokenize(text)
    else:
        assert step.name in YOLO_SPECS and tokenize(text)[0].text == step.name


# ------------------------------------------------------------------------------------------------- hostile input

def test_a_python_keyword_is_no_binding_name():
    assert "not a valid Python variable" in str(error_of("log x as class", "yolo"))


def test_a_lone_brace_is_an_error_not_a_folder_name():
    err = error_of("workspace {local/x")
    assert "lone '{'" in str(err) and "{{" in err.fix
    assert parse_cell("workspace {{local}}/x").steps[0].resolve({}).args["PATH"] == "{local}/x"


def test_a_huge_line_is_quoted_short_in_its_error():
    line = "stage " + "a" * 200_000 + " extra"
    text = str(error_of(line))
    assert len(text) < 1_000 and "unexpected argument" in text


def test_a_10000_digit_number_is_a_clear_error():
    assert "whole number" in str(error_of("make jobs=" + "9" * 10_000))


def test_placeholder_values_with_control_characters_are_refused():
    step = parse_yolo("cfg yolov4-tiny out.cfg classes=1 burn_in={v}", known={"v"})
    with pytest.raises(DirectiveError) as info:
        step.resolve({"v": "0\n[convolutional]"})
    assert "control character" in str(info.value)


def test_set_cannot_redefine_what_the_session_owns():
    for name in ("bin", "workspace", "drive", "local"):
        err = error_of(f"set {name}=/somewhere")
        assert "session owns it" in str(err), name
    assert parse_cell("set my_bin=/x").steps[0].options == {"my_bin": "/x"}
