"""The registry of directives, and each directive's dry run held against its real run.

Every directive is one module with its Spec, run and preview; the grammar is made from them, so a Spec without a
handler (or a handler without a Spec) cannot exist. Each example parses and previews; the dry run of a whole cell
establishes the same placeholders (the same paths) as the real run of that cell, and `%yolo train`'s dry run
prints the argv the real run gives darknet.
"""
from __future__ import annotations

import shutil
import types
from pathlib import Path

import pytest

from darknet_magics import directives, language
from darknet_magics.directives import GRAMMAR, REGISTRY, directive_for
from darknet_magics.executor import Executor, StepStatus
from darknet_magics.report import RecordingReporter
from darknet_magics.session import Session
from darknet_magics.synth import make_dataset

DARKNET = Path("/usr/bin/darknet")
TEMPLATES = Path("/usr/share/darknet/cfg")
needs_darknet = pytest.mark.skipif(not DARKNET.exists() or not TEMPLATES.is_dir(),
                                   reason="needs Debian's darknet (apt-get install darknet)")


def test_every_spec_has_its_handlers_and_every_module_a_spec():
    assert set(GRAMMAR.darknet) == {n for (lang, n) in REGISTRY if lang == "darknet"}
    assert set(GRAMMAR.yolo) == {n for (lang, n) in REGISTRY if lang == "yolo"}
    for (lang, name), d in REGISTRY.items():
        assert d.spec.language == lang and d.spec.name == name
        assert callable(d.run) and callable(d.preview)
        assert d.spec.example, f"{d.module} has no example"
    module = types.ModuleType("darknet_magics.directives.half")
    module.SPEC = language.Spec("half", "yolo", "a directive without its run")
    module.preview = lambda step, ctx: []
    with pytest.raises(ImportError, match="lacks run"):
        directives._load(module)


@pytest.mark.parametrize("key", list(REGISTRY), ids=lambda k: f"{k[0]}-{k[1]}")
def test_every_example_parses_to_its_directive(key):
    spec = REGISTRY[key].spec
    text = spec.example.removeprefix("%yolo ")
    known = set(GRAMMAR.reserved())
    step = (language.parse_yolo(text, GRAMMAR, known=known) if spec.language == "yolo"
            else language.parse_cell(text, GRAMMAR, known=known).steps[0])
    assert directive_for(step) is REGISTRY[key]


def _cell(drive: Path, images: Path) -> str:
    return (f'drive "{drive}"\nworkspace {{drive}}/project\nset name=boxes\n'
            f'stage "{images}" into={{local}}/data\n')


def test_dry_run_and_real_run_establish_the_same_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    drive = tmp_path / "My Drive; it's"
    source = tmp_path / "src" / "boxes"
    make_dataset(source, images=4, size=32)
    plan = language.parse_cell(_cell(drive, source), GRAMMAR)
    dry = Executor(Session(), RecordingReporter())
    outcomes = dry.preview(plan)
    assert [o.status for o in outcomes] == [StepStatus.PLANNED] * 4
    assert not drive.exists() and not (tmp_path / "data").exists()  # nothing was made
    real = Executor(Session(), RecordingReporter())
    real.run_plan(plan)
    simulated, established = dry.simulated.established(), real.session.established()
    assert simulated.keys() == established.keys() == {"drive", "workspace", "dataset"}
    # the real {drive} is the space-free link to the drive; the dry run names the folder itself
    assert Path(established["drive"]).resolve() == Path(simulated["drive"]).resolve()
    for key in ("workspace", "dataset"):
        assert Path(established[key]).resolve() == Path(simulated[key]).resolve(), key
    assert (Path(established["dataset"]) / "img_000.png").is_file()


def test_dry_run_of_an_archive_names_the_folder_the_real_unpack_makes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    make_dataset(tmp_path / "pack" / "inner name", images=3, size=32)
    archive = shutil.make_archive(str(tmp_path / "release-v2"), "zip", tmp_path / "pack")
    plan = language.parse_cell(f"stage {archive} into={tmp_path}/local", GRAMMAR)
    dry = Executor(Session(), RecordingReporter())
    dry.preview(plan)
    real = Executor(Session(), RecordingReporter())
    real.run_plan(plan)
    # one top folder in the archive: the dataset is that folder, not the archive's stem
    assert real.session.dataset == dry.simulated.dataset == tmp_path / "local" / "inner name"


@needs_darknet
@pytest.mark.slow
def test_train_dry_run_prints_the_argv_the_real_run_gives_darknet(tmp_path, monkeypatch):
    from darknet_magics.data.cfg import make_cfg
    from darknet_magics.data.datasets import write_data

    monkeypatch.chdir(tmp_path)
    ws = tmp_path / "ws"
    make_dataset(ws / "ds", images=8, size=64)
    write_data(ws / "obj.data", classes=1, names="red_box", images=ws / "ds", split=0.25, backup=ws / "backup")
    (ws / "tiny.cfg").write_text(make_cfg((TEMPLATES / "yolov3-tiny.cfg").read_text(), 1, width=64, height=64,
                                          batch=4, subdivisions=1, max_batches=2, random=0))
    plan = language.parse_cell(f"workspace {ws}\n%yolo train {ws}/obj.data {ws}/tiny.cfg as r", GRAMMAR)
    dry = Executor(Session(), RecordingReporter())
    previewed = dry.preview(plan)[1].summary
    namespace: dict = {}
    Executor(Session(), RecordingReporter(), namespace).run_plan(plan)
    run = namespace["r"]
    real = " ".join(run.argv)
    placeholder = str(ws / "runs" / "tiny-YYYYmmdd-HHMMSS")
    assert real.replace(str(run.run_dir), placeholder) in previewed
    assert (run.run_dir / "backup" / "tiny_final.weights").is_file()  # the run's own weights folder
