"""AlexeyAB's and hank-ai's darknet, built from their real sources by our own `clone` and `make`, in the real loop.

The sources come from ../shared/darknet-sources (through ../shared/tools/darknet-repo); on a machine without them
these tests skip, saying so. The git repositories made from them and the build cache live in .cache/live-flavors/
of the checkout, so that CI's second environment restores both builds from the cache instead of building again
(hank-ai's CMake build takes minutes on two cores). hank-ai needs OpenCV's headers (libopencv-dev).
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from builds import CCACHE_DIR, build_lock
from conftest import SHARED, run_cell

from darknet_magics import magics
from darknet_magics.setup.runtime import opencv_headers_present
from darknet_magics.synth import make_dataset

ROOT = Path(__file__).resolve().parents[1]
TOOL = SHARED / "tools" / "darknet-repo"
CACHE = ROOT / ".cache" / "live-flavors"

pytestmark = [pytest.mark.slow, pytest.mark.once, pytest.mark.timeout(1500),
              pytest.mark.skipif(not TOOL.exists(), reason=f"{TOOL} not found: the darknet sources of "
                                 "../shared are not beside this checkout")]


def make_line(flavor: str) -> str:
    """The `make` directive of these builds (tests/builds.py makes the same, so CI builds each flavor once): AlexeyAB
    with OpenCV (video), as the Colab tutorials build it; hank-ai always has OpenCV, and ONNX where protobuf is.
    Through ccache where it is installed (its cache is builds.CCACHE_DIR, outside the checkout)."""
    return ("make jobs=2" + (" OPENCV=1" if flavor == "alexeyab" else "")
            + (" ccache=on" if shutil.which("ccache") else ""))


def source_repo(flavor: str) -> Path:
    """The flavor's source as a git repository, made once per machine (the same commit for both environments)."""
    repo = CACHE / f"src-{flavor}"
    if not (repo / ".git").is_dir():
        shutil.rmtree(repo, ignore_errors=True)
        repo.parent.mkdir(parents=True, exist_ok=True)
        made = subprocess.run([str(TOOL), flavor, str(repo)], capture_output=True, text=True)
        if made.returncode != 0:
            pytest.skip(f"darknet-repo {flavor} failed: {made.stderr.strip()[-300:]}")
    return repo


def _ok(ip, text, capsys) -> str:
    result = run_cell(ip, text)
    captured = capsys.readouterr()
    assert result.error_in_exec is None, (captured.out + captured.err)[-4000:]
    return captured.out + captured.err


@pytest.fixture(params=["alexeyab", "hank-ai"])
def flavor(request):
    if request.param == "hank-ai" and not opencv_headers_present():
        pytest.skip("hank-ai's darknet needs OpenCV's headers: apt-get install -y libopencv-dev")
    return request.param


def test_the_loop_with_a_real_build(flavor, ip, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CCACHE_DIR", str(CCACHE_DIR))
    ws, local = tmp_path / "drive" / "ws", tmp_path / "local"
    make_dataset(tmp_path / "drive" / "boxes", images=16, size=64, seed=4)
    # The cache is kept in the checkout (not the test's folder), so that the next environment restores it; when
    # scripts/test's background build (tests/builds.py) is building this flavor, the lock waits for it: restored.
    with build_lock(flavor):
        source = source_repo(flavor)
        out = _ok(ip, f"%%darknet\nworkspace {CACHE}\nclone {source} into={local}/darknet\n{make_line(flavor)}\n"
                      f"workspace {ws}\nstage {tmp_path}/drive/boxes into={local}/data\n", capsys)
    binary = ip.magics_manager.registry["DarknetMagics"].session.binary
    assert binary.is_file(), out
    assert "built" in out or "restored" in out, out[-2000:]
    if flavor == "hank-ai":
        # the next VM: the same source in a new folder restores the build from the cache, hank-ai's tools with it
        again = _ok(ip, f"%%darknet\nworkspace {CACHE}\nclone {source} into={local}/again\n{make_line(flavor)}\n"
                        f"workspace {ws}\n", capsys)
        assert "restored" in again, again[-2000:]
        tools = {p.name for p in (local / "again" / "build").glob("src-*/darknet_*")}
        assert {"darknet_01_inference_images", "darknet_04_process_videos"} <= tools, tools
        if shutil.which("protoc"):
            assert "darknet_onnx_export" in tools, tools

    _ok(ip, "%yolo data {workspace}/boxes.data classes=1 names={dataset}/obj.names images={dataset} split=0.25",
        capsys)
    _ok(ip, "%yolo cfg yolov4-tiny {workspace}/boxes.cfg classes=1 width=64 height=64 batch=4 subdivisions=1 "
            "max_batches=12 steps=8,10 burn_in=2 learning_rate=0.0005 random=0", capsys)
    out = _ok(ip, "%yolo train {workspace}/boxes.data {workspace}/boxes.cfg map stop_on_nan=off as run", capsys)
    run = ip.user_ns["run"]
    assert run.args.flavor == flavor
    assert run.status.ok, out[-3000:]
    assert run.last_iteration == 12
    assert len(run.maps) >= 1 and len(run.class_ap) >= 1  # -map: the mAP at max_batches, with its class AP
    assert not [p for p in run.problems_found if p.severity == "error"]
    final = run.backup_dir / "boxes_final.weights"
    assert final.is_file()

    image = next((local / "data" / "boxes").glob("img_00*.png"))
    out = _ok(ip, f"%yolo test {{workspace}}/boxes.data {{workspace}}/boxes.cfg {final} {image} thresh=0.01 as t",
              capsys)
    assert ip.user_ns["t"].image_path is not None and ip.user_ns["t"].image_path.is_file()
    out = _ok(ip, f"%yolo map {{workspace}}/boxes.data {{workspace}}/boxes.cfg {final} as m", capsys)
    assert ip.user_ns["m"].map50 is not None

    out = _ok(ip, "%yolo resume run max_batches=14 as more", capsys)
    more = ip.user_ns["more"]
    assert more.status.ok and more.last_iteration == 14
    assert list(more.iterations["iteration"]) == list(range(1, 15))  # stitched

    out = _ok(ip, f"%yolo train {{workspace}}/boxes.data {{workspace}}/boxes.cfg "
                  f"{more.backup_dir / 'boxes_final.weights'} as again", capsys)
    assert "already-trained" in out
    magics.forget(ip)
