"""Property: whatever bytes or names a user's files hold, every reader and dataset directive ends in a result or
in our own error (`DarknetMagicsError`; in the shell: IPython's UsageError or our StepError), never a traceback.

Random input is of two kinds: random bytes (which mostly stop at decoding or parsing), and a real fixture with
one value swapped for something hostile (nan, 1e999, a list, a line break, a path out of the folder...), which
reaches the code after the parsing. Example counts are modest so the module runs in seconds.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import unicodedata
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import run_cell
from darknet_magics.data.cfg import make_cfg_changes
from darknet_magics.data.cfg_weights import check_weights, layer_weights
from darknet_magics.data.cfg_checks import check_cfg
from darknet_magics.data.checks import check_dataset
from darknet_magics.data.datasets import plan_dataset
from darknet_magics.errors import DarknetMagicsError, StepError
from darknet_magics.data.formats import read_dataset
from darknet_magics.data.labels import parse_line
from darknet_magics.data.objdata import read_data_file
from darknet_magics.synth import make_dataset
from darknet_magics.untrusted import parse_names

pytestmark = pytest.mark.timeout(240)

FIXTURES = Path(__file__).parent / "fixtures" / "datasets"
FEW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])

# Values that broke readers before issue 19, as text, as they would appear in a file.
HOSTILE = ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999", "1e7", "-5", "0", "", " ", "abc", "12px",
           "0x10", "1_0", "null", "true", "[]", "{}", '"x"', "[1, 2]", "\u2028", "a\nb", "../../../etc/hosts",
           "/etc/hosts", "9" * 5000, "\x00", "\xff", "<", "&amp;", "]]>", "1,2", ";", "-"]
hostile = st.sampled_from(HOSTILE) | st.text(max_size=12)

# A fixture's annotation file per reader (the one a random value is put into).
TARGETS = {
    "yolo": ("roboflow_darknet", "train/train0_png.rf.0000.txt"),
    "yolo-names": ("roboflow_darknet", "test/_darknet.labels"),
    "ultralytics": ("ultralytics", "train/labels/utrain0.txt"),
    "ultralytics-yaml": ("ultralytics", "data.yaml"),
    "voc": ("voc", "a.xml"),
    "coco": ("coco", "train/_annotations.coco.json"),
    "labelme": ("labelme", "p1.json"),
    "cvat": ("cvat", "annotations.xml"),
    "openimages": ("openimages", "train/oidv6-train-annotations-bbox.csv"),
    "openimages-classes": ("openimages", "class-descriptions-boxable.csv"),
}
FORMAT = {"yolo": "yolo", "yolo-names": "yolo", "ultralytics": "ultralytics", "ultralytics-yaml": "ultralytics",
          "voc": "voc", "coco": "coco", "labelme": "labelme", "cvat": "cvat", "openimages": "openimages",
          "openimages-classes": "openimages"}
# The tokens of a text file a swap may hit: numbers, words, quoted strings, xml text.
_TOKEN = re.compile(r'-?\d+(?:\.\d+)?(?:e-?\d+)?|"[^"\n]*"|>[^<>\n]+<|[A-Za-z_][\w.-]*')


def _read(target: str, data: bytes) -> None:
    """Put `data` into the target's file of a fresh copy of its fixture and read it (both ways: told the format
    and detecting it); only a dataset or our error may come out."""
    fixture, _ = TARGETS[target]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "set" / fixture
        shutil.copytree(FIXTURES / fixture, root)
        (Path(tmp) / "set" / "secret.jpg").write_bytes((FIXTURES / "voc" / "a.jpg").read_bytes())  # a target for ../
        _read_in(root, target, data, (FORMAT[target], None))


def _read_in(root: Path, target: str, data: bytes, formats) -> None:
    (root / TARGETS[target][1]).write_bytes(data)
    for fmt in formats:
        try:
            ds = read_dataset(root, fmt)
        except DarknetMagicsError:
            continue
        assert ds.images and all(str(im.path).startswith(str(root)) for im in ds.images)
        for im in ds.images:
            for b in im.boxes:
                assert all(abs(v) < 1e6 for v in b[1:5]), b  # finite, and no absurd pixel values


def _swap(text: str, index: int, value: str) -> str:
    tokens = list(_TOKEN.finditer(text))
    if not tokens:
        return text + value
    m = tokens[index % len(tokens)]
    old = m.group(0)
    if old.startswith(">"):
        new = ">" + value.replace("&", "&amp;").replace("<", "&lt;") + "<"
    elif old.startswith('"'):
        new = json.dumps(value)
    else:
        new = value
    return text[:m.start()] + new + text[m.end():]


@pytest.mark.parametrize("target", sorted(TARGETS))
@FEW
@given(data=st.binary(max_size=400))
def test_random_bytes_into_each_reader(target: str, data: bytes) -> None:
    _read(target, data)


@pytest.mark.parametrize("target", sorted(TARGETS))
@FEW
@given(index=st.integers(0, 10_000), value=hostile, second=st.tuples(st.integers(0, 10_000), hostile))
def test_a_hostile_value_in_a_real_annotation_file(target: str, index: int, value: str, second) -> None:
    fixture, name = TARGETS[target]
    text = (FIXTURES / fixture / name).read_text(encoding="utf-8")
    text = _swap(_swap(text, index, value), *second)
    _read(target, text.encode("utf-8", "surrogatepass"))


_json_value = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                          max_size=3), max_leaves=8)


def _json_paths(node, path=()):
    yield path
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _json_paths(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _json_paths(v, path + (i,))


@pytest.mark.parametrize("target", ["coco", "labelme"])
@settings(FEW, max_examples=60)
@given(index=st.integers(0, 10_000), value=_json_value, delete=st.booleans())
def test_any_json_value_anywhere_in_coco_and_labelme(target: str, index: int, value, delete: bool) -> None:
    """One node of the real file replaced by any json value, or deleted (a missing key, a shorter list)."""
    fixture, name = TARGETS[target]
    doc = json.loads((FIXTURES / fixture / name).read_text(encoding="utf-8"))
    paths = [p for p in _json_paths(doc) if p]
    path = paths[index % len(paths)]
    node = doc
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    _read(target, json.dumps(doc).encode())  # NaN/Infinity included: json.dumps writes them


_SWAPS = [..., None, "x", "\n", [], {}, -1, True, 1e300, 2 ** 70]  # ...: delete the node


@pytest.mark.parametrize("target", ["coco", "labelme"])
def test_every_json_node_deleted_or_swapped(target: str) -> None:
    """Exhaustive, not random: every node of the real file deleted, and replaced by each of `_SWAPS`."""
    fixture, name = TARGETS[target]
    text = (FIXTURES / fixture / name).read_text(encoding="utf-8")
    paths = [p for p in _json_paths(json.loads(text)) if p]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / fixture
        shutil.copytree(FIXTURES / fixture, root)
        for path in paths:
            for swap in _SWAPS:
                doc = json.loads(text)
                node = doc
                for key in path[:-1]:
                    node = node[key]
                if swap is ...:
                    del node[path[-1]]
                else:
                    node[path[-1]] = swap
                _read_in(root, target, json.dumps(doc).encode(), (FORMAT[target],))


@FEW
@given(names=st.lists(st.text(max_size=10), min_size=1, max_size=4))
def test_random_class_names(names: list[str], tmp_path_factory) -> None:
    folder = tmp_path_factory.getbasetemp() / "names-ds"
    if not folder.exists():
        make_dataset(folder, images=3, classes=1)
    for given_names in (names, ",".join(names)):
        try:
            plan = plan_dataset(folder.parent / "x.data", images=folder, names=given_names)
        except DarknetMagicsError:
            continue
        assert all(n and n == n.strip() and not any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in n)
                   for n in plan.names), plan.names
    try:
        parsed = parse_names("\n".join(names), "x.names")
    except DarknetMagicsError:
        return
    assert all("\n" not in n and "\r" not in n and n for n in parsed)


@FEW
@given(line=st.text(max_size=40) | st.lists(hostile, min_size=1, max_size=7).map(" ".join))
def test_random_label_lines(line: str) -> None:
    try:
        box = parse_line(line, "x.txt:1", polygons=True)
    except DarknetMagicsError:
        return
    assert box is None or all(abs(v) <= 1000 for v in box[1:])


_CFG = "/usr/share/darknet/cfg/yolov3-tiny.cfg"


@FEW
@given(data=st.binary(max_size=300), index=st.integers(0, 10_000), value=hostile)
def test_random_cfg_text(data: bytes, index: int, value: str, tmp_path_factory) -> None:
    texts = [data.decode("utf-8", "replace")]
    if Path(_CFG).is_file():
        texts.append(_swap(Path(_CFG).read_text(), index, value))
    weights = tmp_path_factory.getbasetemp() / "random.weights"
    weights.write_bytes(b"\0" * 4096)
    for text in texts:
        assert isinstance(check_cfg(text, 2), list)  # problems, never an exception
        for call in (lambda: layer_weights(text), lambda: make_cfg_changes(text, 2, width=416),
                     lambda: check_weights(text, weights)):
            try:
                call()
            except DarknetMagicsError:
                pass


@FEW
@given(data=st.binary(max_size=300), names=st.binary(max_size=60), label=st.binary(max_size=60),
       listed=st.binary(max_size=80))
def test_random_obj_data_names_labels_and_lists_for_check(data: bytes, names: bytes, label: bytes, listed: bytes,
                                                          tmp_path_factory) -> None:
    base = Path(tempfile.mkdtemp(dir=tmp_path_factory.getbasetemp()))
    make_dataset(base / "ds", images=3)
    (base / "ds" / "img_002.txt").write_bytes(label)
    (base / "obj.names").write_bytes(names)
    (base / "list.txt").write_bytes("".join(f"{p}\n" for p in sorted((base / "ds").glob("*.png"))).encode() + listed)
    (base / "obj.data").write_bytes(b"classes=1\ntrain=" + str(base / "list.txt").encode() + b"\nnames="
                                    + str(base / "obj.names").encode() + b"\n" + data)
    for path in (base / "obj.data",):
        check_dataset(path)  # problems, never an exception
        try:
            read_data_file(path)
        except DarknetMagicsError:
            pass


# -- the directives in a real IPython shell


def _ours(result) -> bool:
    """The cell ended in a result or our own error (shown without a traceback)."""
    return result.error_in_exec is None or isinstance(result.error_in_exec, (UsageError, StepError))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
@given(label=st.binary(max_size=80) | st.lists(hostile, max_size=6).map(lambda v: " ".join(v).encode()),
       names=st.lists(st.text(max_size=6), min_size=1, max_size=3), cfg=st.binary(max_size=200),
       data=st.binary(max_size=120))
def test_dataset_directives_in_a_shell(ip, tmp_path: Path, label: bytes, names: list[str], cfg: bytes,
                                       data: bytes) -> None:
    base = Path(tempfile.mkdtemp(dir=tmp_path))
    make_dataset(base / "ds", images=6)
    (base / "ds" / "img_004.txt").write_bytes(label)
    ip.user_ns["random_names"] = ",".join(names)
    lines = [f'%yolo data "{base}/obj.data" images="{base}/ds" backup="{base}/b"',
             f'%yolo data "{base}/named.data" images="{base}/ds" names={{random_names}} backup="{base}/b"',
             f'%yolo check "{base}/obj.data" "{base}/random.cfg"',
             f'%yolo anchors "{base}/obj.data" clusters=2',
             f'%yolo cfg "{base}/random.cfg" "{base}/out.cfg" classes=2',
             f'%yolo check "{base}/random.data"']
    (base / "random.cfg").write_bytes(cfg)
    (base / "random.data").write_bytes(data)
    for line in lines:
        result = run_cell(ip, line)
        assert _ours(result), (line, repr(result.error_in_exec))
