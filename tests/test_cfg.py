"""cfg.py against Debian's stock cfgs and real /usr/bin/darknet."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from darknet_magics.data.cfg import (Cfg, make_cfg, make_cfg_changes, resolve_template, set_anchors_text,
                                     write_cfg)
from darknet_magics.data.cfg_weights import check_weights, layer_weights, read_weights_header
from darknet_magics.errors import DarknetMagicsError
from darknet_magics.synth import make_dataset

STOCK = Path("/usr/share/darknet/cfg")
DARKNET = shutil.which("darknet") or "/usr/bin/darknet"
needs_stock = pytest.mark.skipif(not STOCK.is_dir(), reason="Debian's darknet cfgs not installed")
needs_darknet = pytest.mark.skipif(not Path(DARKNET).exists(), reason="darknet not installed")


def stock(name: str) -> str:
    return (STOCK / f"{name}.cfg").read_text()


@needs_stock
@pytest.mark.parametrize("name", ["yolov3", "yolov3-tiny", "yolov2", "yolov2-tiny", "yolov3-spp", "tiny"])
def test_parse_render_is_byte_identical(name: str) -> None:
    text = stock(name)
    assert Cfg.parse(text).render() == text


def test_parse_keeps_crlf_comments_and_reads_like_darknet() -> None:
    text = "[net]\r\n# comment\r\nbatch = 1\r\n; other comment\r\n\r\n[yolo]\r\nmask = 0, 1\r\nclasses=80"
    cfg = Cfg.parse(text)
    assert cfg.render() == text
    assert [s.name for s in cfg.sections] == ["net", "yolo"]
    assert cfg.get("yolo", "mask") == "0,1"  # darknet drops all whitespace
    assert cfg.net.option("batch").line == 3
    cfg.set("yolo", "classes", 2)
    cfg.set("yolo", "random", 0)  # added after the last option, which had no newline
    assert cfg.render().endswith("classes=2\r\nrandom=0\r\n")
    cfg.set("net", "batch", 64)
    assert "batch = 64\r\n" in cfg.render()  # spacing style kept


@needs_stock
def test_make_cfg_yolov3_tiny_edits() -> None:
    text, changes = make_cfg_changes(stock("yolov3-tiny"), 2, width=320, height=256, max_batches=5000)
    cfg = Cfg.parse(text)
    heads = cfg.find("yolo")
    assert [h.get("classes") for h in heads] == ["2", "2"]
    for head in heads:
        assert cfg.sections[head.index - 1].get("filters") == str((2 + 5) * 3)
    assert cfg.net.get("width") == "320" and cfg.net.get("height") == "256"
    assert cfg.net.get("max_batches") == "5000" and cfg.net.get("steps") == "4000,4500"
    assert cfg.net.get("batch") == "64" and cfg.net.get("subdivisions") == "16"  # testing mode -> training
    assert "[yolo] line 177: classes 80 -> 2" in changes
    assert "[convolutional] line 171: filters 255 -> 21" in changes
    # Minimal edits: every line not named in `changes` is as it was.
    old, new = stock("yolov3-tiny").splitlines(), text.splitlines()
    assert len(old) == len(new)
    changed = [i + 1 for i, (a, b) in enumerate(zip(old, new)) if a != b]
    assert len(changed) == len(changes)


@needs_stock
def test_make_cfg_defaults_and_head_keys() -> None:
    text = make_cfg(stock("yolov3"), 3, random=0, ignore_thresh=0.5, learning_rate=0.0005, mosaic=1)
    cfg = Cfg.parse(text)
    assert cfg.net.get("max_batches") == "6000" and cfg.net.get("steps") == "4800,5400"
    assert all(h.get("random") == "0" and h.get("ignore_thresh") == "0.5" for h in cfg.find("yolo"))
    assert cfg.net.get("learning_rate") == "0.0005" and cfg.net.get("mosaic") == "1"
    assert make_cfg(stock("yolov3"), 4).count("max_batches = 8000") == 1
    auto = Cfg.parse(make_cfg(stock("yolov3"), 1, max_batches="auto", dataset_size=9000))
    assert auto.net.get("max_batches") == "9000"
    small = Cfg.parse(make_cfg(stock("yolov3-tiny"), 1, max_batches=100, anchors="3,4, 5,6, 7,8, 9,10"))
    assert small.net.get("burn_in") == "10"  # burn_in=1000 would outlast the run
    heads = small.find("yolo")
    assert [h.get("mask") for h in heads] == ["2,3", "0,1"]
    assert all(small.sections[h.index - 1].get("filters") == "12" for h in heads)


@needs_stock
def test_make_cfg_region_head() -> None:
    cfg = Cfg.parse(make_cfg(stock("yolov2-tiny"), 3))
    region = cfg.find("region")[0]
    assert region.get("classes") == "3"
    assert cfg.sections[region.index - 1].get("filters") == str((3 + 5) * 5)


@needs_stock
@pytest.mark.parametrize("options, words", [
    (dict(width=100), "multiple of 32"),
    (dict(height=0), "at least"),
    (dict(batch=64, subdivisions=5), "divisible"),
    (dict(max_batches="auto"), "dataset size"),
    (dict(steps="900,100"), "increase"),
    (dict(**{"bad key": 1}), "not a cfg key"),
])
def test_make_cfg_rejects_bad_values(options: dict, words: str) -> None:
    with pytest.raises(DarknetMagicsError) as err:
        make_cfg(stock("yolov3-tiny"), 1, **options)
    assert words in str(err.value) and err.value.fix


@needs_stock
def test_make_cfg_rejects_zero_classes_and_non_detector() -> None:
    with pytest.raises(DarknetMagicsError):
        make_cfg(stock("yolov3-tiny"), 0)
    with pytest.raises(DarknetMagicsError, match="not a detector"):
        make_cfg(stock("darknet53"), 1)


@needs_stock
def test_set_anchors_redistributes_masks() -> None:
    text = set_anchors_text(stock("yolov3-tiny"), [(5, 6), (7, 8), (9, 10), (11, 12)], classes=1)
    cfg = Cfg.parse(text)
    heads = cfg.find("yolo")
    # The head that had mask 3,4,5 (larger anchors) gets the larger half.
    assert [h.get("mask") for h in heads] == ["2,3", "0,1"]
    assert all(h.get("num") == "4" for h in heads)
    assert all(cfg.sections[h.index - 1].get("filters") == "12" for h in heads)


def test_resolve_template(tmp_path: Path) -> None:
    (tmp_path / "yolov4-tiny-custom.cfg").write_text("[net]\n")
    assert resolve_template("yolov4-tiny-custom", [tmp_path]) == tmp_path / "yolov4-tiny-custom.cfg"
    own = tmp_path / "my dir; 'x'" / "mine.cfg"
    own.parent.mkdir()
    own.write_text("[net]\n")
    assert resolve_template(str(own)) == own
    if STOCK.is_dir():
        assert resolve_template("yolov3-tiny") == STOCK / "yolov3-tiny.cfg"
    with pytest.raises(DarknetMagicsError) as err:
        resolve_template("yolov9-huge", [tmp_path])
    assert "yolov4-tiny-custom" in str(err.value.fix)


@needs_stock
def test_write_cfg_atomic_and_reports(tmp_path: Path) -> None:
    out = tmp_path / "out dir" / "my 'tiny'.cfg"
    result = write_cfg("yolov3-tiny", out, 1, {"width": 64, "height": 64})
    assert result.path == out and out.read_text().count("classes=1") == 2
    assert result.template == STOCK / "yolov3-tiny.cfg"
    assert any("filters 255 -> 18" in c for c in result.changes)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temp files left


@needs_stock
def test_known_weight_sizes_match_stock_cfgs() -> None:
    """Sizes in KNOWN_WEIGHTS agree with what the layer table computes (header 20 bytes)."""
    def prefix(name: str, n: int) -> int:
        return 20 + sum(layer.nbytes for layer in layer_weights(stock(name))[:n])
    assert prefix("yolov3", 10 ** 6) == 248007048
    assert prefix("yolov3", 74) == 162482580
    assert prefix("yolov3-tiny", 10 ** 6) == 35434956
    assert prefix("yolov3-tiny", 15) == 30973396


def test_layer_weights_grouped_route() -> None:
    # yolov4-tiny's CSP block: a grouped route halves the channels the next convolution sees.
    text = ("[net]\nwidth=64\nheight=64\nchannels=3\n[convolutional]\nbatch_normalize=1\nfilters=8\nsize=3\npad=1\n"
            "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n[convolutional]\nfilters=4\nsize=1\n[route]\nlayers=-1,-3\n"
            "[maxpool]\nsize=2\nstride=2\n[upsample]\nstride=2\n[convolutional]\nfilters=2\nsize=1\n")
    layers = layer_weights(text)
    assert [l.nbytes for l in layers] == [4 * (8 * 4 + 8 * 3 * 9), 0, 4 * (4 + 4 * 4), 0, 0, 0, 4 * (2 + 2 * 12)]
    assert layers[3].out_shape == (64, 64, 12)
    assert layers[4].out_shape == (32, 32, 12) and layers[5].out_shape == (64, 64, 12)


def test_read_weights_header_versions() -> None:
    import struct
    assert read_weights_header(struct.pack("<3iq", 0, 2, 0, 960)).seen == 960
    old = read_weights_header(struct.pack("<3ii", 0, 1, 0, 7))
    assert old.size == 16 and old.seen == 7
    assert read_weights_header(b"\0" * 8) is None


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny yolov3-tiny trained by the real darknet for 12 iterations on a generated dataset."""
    if not (Path(DARKNET).exists() and STOCK.is_dir()):
        pytest.skip("darknet not installed")
    root = tmp_path_factory.mktemp("train")
    ds = make_dataset(root / "ds", images=8)
    cfg_text = make_cfg(stock("yolov3-tiny"), 1, width=64, height=64, batch=4, subdivisions=1, max_batches=12, random=0)
    (root / "tiny.cfg").write_text(cfg_text)
    (root / "train.txt").write_text("".join(f"{p}\n" for p in ds.images))
    (root / "backup").mkdir()
    (root / "obj.data").write_text(f"classes=1\ntrain={root}/train.txt\nvalid={root}/train.txt\n"
                                   f"names={ds.folder}/obj.names\nbackup={root}/backup\n")
    proc = subprocess.run([DARKNET, "detector", "train", "obj.data", "tiny.cfg"], cwd=root, capture_output=True,
                          text=True, timeout=300)
    weights = root / "backup" / "tiny_final.weights"
    assert weights.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    return root / "tiny.cfg", weights


@pytest.mark.slow
@needs_darknet
def test_make_cfg_trains_and_check_weights(trained, tmp_path: Path) -> None:
    cfg_path, weights = trained
    cfg_text = cfg_path.read_text()
    assert check_weights(cfg_text, weights) is None
    data = weights.read_bytes()
    boundary = 20 + sum(l.nbytes for l in layer_weights(cfg_text)[:15])
    clean = tmp_path / "tiny.conv.15"
    clean.write_bytes(data[:boundary])
    assert check_weights(cfg_text, clean) is None
    cut = tmp_path / "cut weights.weights"
    cut.write_bytes(data[:100000])  # what the capture in darknet-logs did: darknet loads it silently
    problem = check_weights(cfg_text, cut)
    assert problem is not None and problem.code == "truncated-weights" and "layer" in problem.message
    cut.write_bytes(data[:12])
    assert check_weights(cfg_text, cut).code == "truncated-weights"
    big = tmp_path / "big.weights"
    big.write_bytes(data + b"\0" * 40)
    assert check_weights(cfg_text, big).code == "weights-size-mismatch"
    # The same weights read against a 2-class cfg end mid-layer.
    two = make_cfg(stock("yolov3-tiny"), 2, width=64, height=64, batch=4, subdivisions=1, max_batches=12)
    assert check_weights(two, weights).code in ("truncated-weights", "weights-size-mismatch")
