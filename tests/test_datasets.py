"""datasets.py, staging.py, weights.py: staging, obj.data, weights downloads from a local HTTP server, partial weights vs darknet."""
from __future__ import annotations

import http.server
import io
import os
import re
import subprocess
import tarfile
import threading
import zipfile
from pathlib import Path
from typing import Iterator

import pytest

from darknet_magics.data.cfg import make_cfg
from darknet_magics.data.datasets import find_images, write_data
from darknet_magics.data.staging import stage
from darknet_magics.data.weights import KNOWN_WEIGHTS, fetch_weights, make_partial
from darknet_magics.errors import DarknetMagicsError
from darknet_magics.report import RecordingReporter
from darknet_magics.synth import make_dataset

ODD = "my data; 'set' \"1\""  # spaces, quotes and ';' in one folder name
DARKNET = "/usr/bin/darknet"
STOCK = Path("/usr/share/darknet/cfg")


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- stage ---------------------------------------------------------------------------------------------------


def test_stage_folder_copies_then_skips_then_recopies_changes(tmp_path: Path) -> None:
    src = tmp_path / "drive" / ODD
    make_dataset(src, images=6)
    (src / "sub").mkdir()
    (src / "sub" / "deep.txt").write_text("x")
    rep = RecordingReporter()
    first = stage(src, tmp_path / "local", reporter=rep)
    assert first.action == "copied" and first.path == tmp_path / "local" / ODD
    assert tree(first.path) == tree(src) and first.files == len(tree(src))
    assert any("files" in t and "MB/s" in t for k, t in rep.events if k == "progress")
    assert stage(src, tmp_path / "local").action == "skipped"
    (src / "img_000.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    again = stage(src, tmp_path / "local")
    assert again.action == "copied" and tree(again.path) == tree(src)
    # A local file removed behind our back is noticed too.
    (again.path / "sub" / "deep.txt").unlink()
    assert stage(src, tmp_path / "local").action == "copied"


@pytest.mark.parametrize("kind", ["tar", "tar.gz", "tgz", "zip"])
def test_stage_archive_unpacks_once(tmp_path: Path, kind: str) -> None:
    data = tmp_path / "data"
    make_dataset(data / "obj", images=4)
    archive = tmp_path / "drive" / f"set 1.{kind}"
    archive.parent.mkdir()
    if kind == "zip":
        with zipfile.ZipFile(archive, "w") as zf:
            for p in sorted((data / "obj").iterdir()):
                zf.write(p, f"obj/{p.name}")
    else:
        with tarfile.open(archive, "w:gz" if kind != "tar" else "w") as tf:
            tf.add(data / "obj", "obj")
    result = stage(archive, tmp_path / "local")
    assert result.action == "unpacked" and result.path == tmp_path / "local" / "obj"
    assert tree(result.path) == tree(data / "obj")
    assert stage(archive, tmp_path / "local").action == "skipped"
    assert not list((tmp_path / "local").glob("*.part"))


def test_stage_archive_without_top_folder_goes_to_stem(tmp_path: Path) -> None:
    archive = tmp_path / "flat.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.jpg", b"1")
        zf.writestr("a.txt", b"0 0.5 0.5 0.2 0.2\n")
    result = stage(archive, tmp_path / "local")
    assert result.path == tmp_path / "local" / "flat" and sorted(tree(result.path)) == ["a.jpg", "a.txt"]


@pytest.mark.parametrize("name", ["../evil.txt", "/tmp/evil-abs.txt", "obj/../../evil.txt"])
def test_stage_refuses_path_traversal(tmp_path: Path, name: str) -> None:
    for kind in ("zip", "tar"):
        archive = tmp_path / f"bad.{kind}"
        if kind == "zip":
            with zipfile.ZipFile(archive, "w") as zf:
                zf.writestr(name, b"pwned")
        else:
            with tarfile.open(archive, "w") as tf:
                info = tarfile.TarInfo(name)
                info.size = 5
                tf.addfile(info, io.BytesIO(b"pwned"))
        with pytest.raises(DarknetMagicsError, match="outside"):
            stage(archive, tmp_path / "local" / "x")
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "local" / "evil.txt").exists()


def test_stage_refuses_symlink_out(tmp_path: Path) -> None:
    archive = tmp_path / "link.tar"
    with tarfile.open(archive, "w") as tf:
        info = tarfile.TarInfo("obj/escape")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../../etc/passwd"
        tf.addfile(info)
    with pytest.raises(DarknetMagicsError, match="outside"):
        stage(archive, tmp_path / "local")


def test_stage_pack_writes_archive_once(tmp_path: Path) -> None:
    src = tmp_path / "drive" / ODD
    make_dataset(src, images=5)
    first = stage(src, tmp_path / "vm1", pack=True)
    archive = src.parent / f"{ODD}.tar"
    assert first.packed and first.action == "unpacked" and archive.is_file()
    assert tree(first.path) == tree(src)
    # A fresh VM: no repacking, one file copied and unpacked.
    mtime = archive.stat().st_mtime_ns
    second = stage(src, tmp_path / "vm2", pack=True)
    assert not second.packed and second.action == "unpacked" and archive.stat().st_mtime_ns == mtime
    assert stage(src, tmp_path / "vm2", pack=True).action == "skipped"
    assert [p.name for p in src.parent.iterdir() if p.name.startswith(".")] == []  # no temp files


def test_stage_missing_source(tmp_path: Path) -> None:
    with pytest.raises(DarknetMagicsError, match="nothing to stage"):
        stage(tmp_path / "nope", tmp_path / "local")


# -- write_data ----------------------------------------------------------------------------------------------


def test_write_data_split_is_seeded_and_complete(tmp_path: Path) -> None:
    ds = make_dataset(tmp_path / "ds" / "sub", images=20)
    out = tmp_path / "work" / "obj.data"
    r1 = write_data(out, classes=1, names="red_box", images=tmp_path / "ds", split=0.2, seed=3,
                    backup=tmp_path / "backup")
    train1, valid1 = r1.train_path.read_text(), r1.valid_path.read_text()
    assert (r1.n_train, r1.n_valid) == (16, 4)
    assert sorted((train1 + valid1).split()) == sorted(str(p) for p in ds.images)
    r2 = write_data(out, classes=1, names="red_box", images=tmp_path / "ds", split=0.2, seed=3,
                    backup=tmp_path / "backup")
    assert (r2.train_path.read_text(), r2.valid_path.read_text()) == (train1, valid1)
    r3 = write_data(out, classes=1, names="red_box", images=tmp_path / "ds", split=0.2, seed=4,
                    backup=tmp_path / "backup")
    assert r3.valid_path.read_text() != valid1
    text = out.read_text()
    assert re.search(r"^classes = 1$", text, re.M) and f"backup = {tmp_path / 'backup'}" in text
    assert r1.names_path.read_text() == "red_box\n" and (tmp_path / "backup").is_dir()


def test_write_data_names_file_and_mismatch(tmp_path: Path) -> None:
    names = tmp_path / "obj.names"
    names.write_text("cat\ndog\n\n")
    make_dataset(tmp_path / "ds", images=3)
    r = write_data(tmp_path / "obj.data", classes=2, names=str(names), images=tmp_path / "ds", backup=tmp_path / "b")
    assert r.names == ["cat", "dog"] and r.names_path == names
    with pytest.raises(DarknetMagicsError, match="3 names") as err:
        write_data(tmp_path / "obj.data", classes=2, names="a,b,c", images=tmp_path / "ds", backup=tmp_path / "b")
    assert "classes=3" in err.value.fix
    with pytest.raises(DarknetMagicsError, match="not found"):
        write_data(tmp_path / "obj.data", classes=2, names="missing.names", images=tmp_path / "ds", backup=tmp_path / "b")
    with pytest.raises(DarknetMagicsError, match="no training images"):
        write_data(tmp_path / "obj.data", classes=2, names="a,b", backup=tmp_path / "b")


def test_write_data_train_lists(tmp_path: Path) -> None:
    (tmp_path / "t.txt").write_text("/x/a.jpg\n\n/x/b.jpg\n")
    r = write_data(tmp_path / "obj.data", classes=1, names="a", train=tmp_path / "t.txt", backup=tmp_path / "b")
    assert (r.n_train, r.n_valid, r.valid_path) == (2, 2, r.train_path)


def test_find_images_recursive_any_case(tmp_path: Path) -> None:
    for name in ["a.JPG", "b/c.png", "b/d.jpeg", "e.bmp", "f.txt", "g.gif"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)] == ["a.JPG", "b/c.png", "b/d.jpeg", "e.bmp"]


@pytest.mark.slow
@pytest.mark.skipif(not Path(DARKNET).exists() or not STOCK.is_dir(), reason="darknet not installed")
def test_write_data_spaces_are_linked_and_darknet_reads_them(tmp_path: Path) -> None:
    drive = tmp_path / "My Drive" / ODD
    make_dataset(drive / "obj", images=6)
    out = drive / "obj.data"
    r = write_data(out, classes=1, names="red_box", images=drive / "obj", split=0.2, backup=drive / "backup dir")
    text = out.read_text()
    for line in text.splitlines():
        if line.startswith("#"):  # our marker comment (darknet skips # lines)
            continue
        assert " " not in line.split("=", 1)[1].strip(), line
    assert r.links and all(p.is_symlink() for p in r.links)
    assert all(" " not in line for line in r.train_path.read_text().splitlines())
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(make_cfg((STOCK / "yolov3-tiny.cfg").read_text(), 1, width=64, height=64, batch=2,
                            subdivisions=1, max_batches=2, random=0))
    proc = subprocess.run([DARKNET, "detector", "train", str(out), str(cfg)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)
    assert "Couldn't open" not in proc.stdout + proc.stderr
    assert (drive / "backup dir" / "tiny_final.weights").is_file()


# -- weights ---------------------------------------------------------------------------------------------------


class _Handler(http.server.BaseHTTPRequestHandler):
    payload = b""
    honour_range = True
    cut_after: int | None = None  # close the connection after this many bytes (once)
    requests: list[str | None] = []

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:
        cls = type(self)
        cls.requests.append(self.headers.get("Range"))
        data, start = cls.payload, 0
        m = re.match(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m and cls.honour_range:
            start = int(m.group(1))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if cls.cut_after is not None:
            n, cls.cut_after = cls.cut_after, None
            self.wfile.write(body[:n])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture()
def server() -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("H", (_Handler,), {"payload": os.urandom(300_000), "requests": []})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def test_fetch_downloads_then_caches(server, tmp_path: Path) -> None:
    url, h = server
    into = tmp_path / "drive weights; 'x'"
    rep = RecordingReporter()
    r = fetch_weights(f"{url}/files/my.weights", into, rep, expected_size=len(h.payload))
    assert r.action == "downloaded" and r.path.read_bytes() == h.payload
    assert any("downloading my.weights" in t for k, t in rep.events if k == "progress")
    assert fetch_weights(f"{url}/files/my.weights", into, expected_size=len(h.payload)).action == "cached"
    assert len(h.requests) == 1


def test_fetch_resumes_a_broken_download(server, tmp_path: Path) -> None:
    url, h = server
    h.cut_after = 100_000
    r = fetch_weights(f"{url}/w.weights", tmp_path, expected_size=len(h.payload))
    assert r.action == "resumed" and r.path.read_bytes() == h.payload
    assert h.requests == [None, "bytes=100000-"]


def test_fetch_resumes_part_left_by_earlier_run_and_restarts_without_range(server, tmp_path: Path) -> None:
    url, h = server
    (tmp_path / "w.weights.part").write_bytes(h.payload[:5000])
    assert fetch_weights(f"{url}/w.weights", tmp_path).action == "resumed"
    (tmp_path / "v.weights.part").write_bytes(b"garbage that must not survive")
    h.honour_range = False
    r = fetch_weights(f"{url}/v.weights", tmp_path)
    assert r.action == "downloaded" and r.path.read_bytes() == h.payload


def test_fetch_size_mismatch_is_an_error(server, tmp_path: Path) -> None:
    url, h = server
    with pytest.raises(DarknetMagicsError, match="expected"):
        fetch_weights(f"{url}/w.weights", tmp_path, expected_size=len(h.payload) + 1)
    assert not (tmp_path / "w.weights").exists()


def test_fetch_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(DarknetMagicsError) as err:
        fetch_weights("yolov9.weights", tmp_path)
    assert "yolov4-tiny.conv.29" in err.value.fix


def test_known_weights_table() -> None:
    for name in ("yolov4-tiny.conv.29", "yolov4.conv.137", "darknet53.conv.74", "yolov3-tiny.conv.15",
                 "yolov4-tiny.weights", "yolov4.weights", "yolov3.weights"):
        assert name in KNOWN_WEIGHTS
    assert KNOWN_WEIGHTS["yolov3-tiny.conv.15"].url is None and "partial" in KNOWN_WEIGHTS["yolov3-tiny.conv.15"].about
    assert all(k.url.startswith("https://") for k in KNOWN_WEIGHTS.values() if k.url)


@pytest.mark.slow
@pytest.mark.skipif(not Path(DARKNET).exists() or not STOCK.is_dir(), reason="darknet not installed")
def test_make_partial_matches_darknet_partial(tmp_path: Path) -> None:
    cfg_text = make_cfg((STOCK / "yolov3-tiny.cfg").read_text(), 1, width=64, height=64, batch=2, subdivisions=1,
                        max_batches=2, random=0)
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(cfg_text)
    ds = make_dataset(tmp_path / "ds", images=4)
    (tmp_path / "train.txt").write_text("".join(f"{p}\n" for p in ds.images))
    (tmp_path / "backup").mkdir()
    (tmp_path / "obj.data").write_text(f"classes=1\ntrain={tmp_path}/train.txt\nnames={ds.folder}/obj.names\n"
                                       f"backup={tmp_path}/backup\n")
    subprocess.run([DARKNET, "detector", "train", "obj.data", "tiny.cfg"], cwd=tmp_path, capture_output=True, timeout=300)
    weights = tmp_path / "backup" / "tiny_final.weights"
    subprocess.run([DARKNET, "partial", "tiny.cfg", str(weights), "theirs.conv.15", "15"], cwd=tmp_path,
                   capture_output=True, timeout=120)
    ours = make_partial(cfg_text, weights, tmp_path / "ours.conv.15", 15)
    assert ours.read_bytes() == (tmp_path / "theirs.conv.15").read_bytes()


def test_unpack_progress_counts_files_not_folder_entries(tmp_path: Path) -> None:
    make_dataset(tmp_path / "src" / "boxes", images=3, size=32)
    archive = tmp_path / "boxes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(tmp_path / "src" / "boxes", "boxes/")  # a folder entry, as `zip -r` writes one
        for f in sorted((tmp_path / "src" / "boxes").iterdir()):
            zf.write(f, f"boxes/{f.name}")
    rep = RecordingReporter()
    result = stage(archive, tmp_path / "local", reporter=rep)
    assert result.files == 7  # 3 images, 3 labels, obj.names
    unpack = [text for kind, text in rep.events if kind == "progress" and text.startswith("unpacking")]
    assert unpack and "7/7 files" in unpack[-1]
