"""staging.py: plan_stage and stage keep the local copy equal to its source (real files, real tar/cp, a real local
HTTP server). The malformed-input and full-disk cases are in tests/test_faults.py."""
from __future__ import annotations

import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from faults import archives as A
from faults.fs import leftovers
from faults.httpsite import Site, serve

from darknet_magics.data import staging
from darknet_magics.errors import DarknetMagicsError
from darknet_magics.report import RecordingReporter
from darknet_magics.synth import make_dataset

ODD = "my data; 'set' \"1\" -x"  # spaces, quotes, ';' and a '-' in one folder name


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------------------------------------------- plan


def test_plan_reads_the_archive_type_from_content_and_applies_the_one_top_folder_rule(tmp_path: Path) -> None:
    one_top = A.write(tmp_path / "d" / "helmets.zip", A.tar_bytes({"obj/a.jpg": b"1", "obj/a.txt": b"2"}, "w:gz"))
    plan = staging.plan_stage(one_top, tmp_path / "local")
    assert (plan.kind, plan.archive_type, plan.top, plan.target) == ("archive", "tar.gz", "obj", tmp_path / "local" / "obj")
    assert "content is a tar.gz" in plan.note
    flat = A.write(tmp_path / "d" / "flat.tar", A.tar_bytes({"a.jpg": b"1", "b/c.jpg": b"2"}))
    plan = staging.plan_stage(flat, tmp_path / "local")
    assert (plan.archive_type, plan.top, plan.target) == ("tar", None, tmp_path / "local" / "flat")
    folder = tmp_path / "d" / ODD
    folder.mkdir()
    assert staging.plan_stage(folder, tmp_path / "local").target == tmp_path / "local" / ODD
    missing = staging.plan_stage(tmp_path / "nope.zip", tmp_path / "local")
    assert missing.kind == "missing" and missing.target == tmp_path / "local" / "nope"
    url = staging.plan_stage("https://example.com/data/boxes.tar.gz?x=1", tmp_path / "local", downloads=tmp_path / "dl")
    assert url.kind == "url" and url.src == tmp_path / "dl" / "boxes.tar.gz" and url.target == tmp_path / "local" / "boxes"
    assert not (tmp_path / "local").exists() and not (tmp_path / "dl").exists()  # the plan writes nothing


def test_stage_lands_where_the_plan_said(tmp_path: Path) -> None:
    for name, data in [("a.tar", A.tar_bytes({"x/1.jpg": b"1"})), ("b.zip", A.zip_bytes({"1.jpg": b"1", "2.jpg": b"2"}))]:
        src = A.write(tmp_path / "d" / name, data)
        assert staging.stage(src, tmp_path / "l").path == staging.plan_stage(src, tmp_path / "l").target


def test_gdrive_file_id() -> None:
    fid = "1AbCdEfGhIjKlMnOpQrStUvWxYz012345"
    assert staging.gdrive_file_id(f"https://drive.google.com/file/d/{fid}/view?usp=sharing") == fid
    assert staging.gdrive_file_id(f"https://drive.google.com/open?id={fid}") == fid
    assert staging.gdrive_file_id(f"https://drive.google.com/uc?export=download&id={fid}") == fid
    assert staging.gdrive_file_id("https://example.com/file/d/x") is None


# ---------------------------------------------------------------------------------------------------- equal to the source


def test_folder_copy_skip_update_and_deletions_follow_the_source(tmp_path: Path) -> None:
    src = tmp_path / "drive" / ODD
    make_dataset(src, images=6)
    (src / "sub").mkdir()
    (src / "sub" / "deep.txt").write_text("x")
    rep = RecordingReporter()
    first = staging.stage(src, tmp_path / "local", reporter=rep)
    assert first.action == "copied" and tree(first.path) == tree(src)
    assert staging.stage(src, tmp_path / "local").action == "skipped"
    # Deleted at the source: gone locally. Made locally (converted labels): kept.
    (src / "sub" / "deep.txt").unlink()
    (src / "sub").rmdir()
    (src / "img_000.txt").write_text("0 0.5 0.5 0.2 0.2\n")
    (first.path / "mine.txt").write_text("made locally")
    again = staging.stage(src, tmp_path / "local")
    assert again.action == "copied" and again.removed == 1
    local = tree(again.path)
    assert local.pop("mine.txt") == b"made locally" and local == tree(src)
    assert not (again.path / "sub").exists()


def test_archive_update_drops_deleted_members_keeps_local_files(tmp_path: Path) -> None:
    src = tmp_path / "drive" / "boxes.tar"
    A.write(src, A.tar_bytes({"boxes/a.jpg": b"a", "boxes/b.jpg": b"b"}))
    first = staging.stage(src, tmp_path / "local")
    (first.path / "a.txt").write_text("label made locally")
    A.write(src, A.tar_bytes({"boxes/a.jpg": b"A"}))
    os.utime(src, ns=(1, 1))
    again = staging.stage(src, tmp_path / "local")
    assert again.action == "unpacked" and tree(again.path) == {"a.jpg": b"A", "a.txt": b"label made locally"}
    assert leftovers(tmp_path / "local") == []


def test_two_archives_with_the_same_top_folder_never_share_a_dataset(tmp_path: Path) -> None:
    one = A.write(tmp_path / "drive" / "train.zip", A.zip_bytes({"obj/a.jpg": b"train"}))
    two = A.write(tmp_path / "drive" / "test.zip", A.zip_bytes({"obj/b.jpg": b"test"}))
    rep = RecordingReporter()
    r1 = staging.stage(one, tmp_path / "local")
    r2 = staging.stage(two, tmp_path / "local", reporter=rep)
    assert r1.path == tmp_path / "local" / "obj" and r2.path == tmp_path / "local" / "test"
    assert tree(r1.path) == {"a.jpg": b"train"} and tree(r2.path) == {"b.jpg": b"test"}
    assert staging.stage(one, tmp_path / "local").action == "skipped"
    assert staging.stage(two, tmp_path / "local").action == "skipped"


def test_pack_on_writes_one_archive_and_stages_it(tmp_path: Path) -> None:
    src = tmp_path / "drive" / "boxes"
    make_dataset(src, images=3)
    first = staging.stage(src, tmp_path / "vm1", pack=True)
    assert first.packed and (tmp_path / "drive" / "boxes.tar").is_file() and tree(first.path) == tree(src)
    second = staging.stage(src, tmp_path / "vm2", pack=True)
    assert not second.packed and second.action == "unpacked"


# ---------------------------------------------------------------------------------------------------- speed paths


def test_threaded_copy_equals_cp_copy(tmp_path: Path) -> None:
    src = tmp_path / "drive" / "many"
    for i in range(40):
        A.write(src / f"d{i % 3}" / f"{i}.jpg", os.urandom(100 + i))
    by_cp = staging.stage(src, tmp_path / "cp")
    by_threads = staging.stage(src, tmp_path / "threads", threads=8)
    assert tree(by_cp.path) == tree(by_threads.path) == tree(src)
    for rel in tree(src):
        assert (by_threads.path / rel).stat().st_mtime_ns == (src / rel).stat().st_mtime_ns


def test_a_first_copy_lists_while_cp_copies_and_links_become_files(tmp_path: Path) -> None:
    """The first copy runs `cp -r` while the source is walked (staging_folders._first_copy). A symlink found by the walk
    (here the last of 3,000 entries, so cp is well under way) means cp would have copied a link: the copy is
    redone file by file, following it, and the manifest lists what was copied."""
    src = tmp_path / "drive" / ODD
    for i in range(3000):
        A.write(src / f"d{i // 1000}" / f"{i:05d}.jpg", bytes([i % 251]) * (500 + i % 7))
    A.write(tmp_path / "drive" / "elsewhere" / "extra.txt", b"0 0.5 0.5 0.1 0.1\n")
    os.symlink(tmp_path / "drive" / "elsewhere", src / "zz-linked")
    rep = RecordingReporter()
    result = staging.stage(src, tmp_path / "local", reporter=rep)
    assert result.action == "copied" and result.files == 3001
    copied = tree(result.path)
    assert copied == {**tree(src), "zz-linked/extra.txt": b"0 0.5 0.5 0.1 0.1\n"}
    assert not any(p.is_symlink() for p in result.path.rglob("*")), "links are copied as files"
    assert leftovers(tmp_path / "local") == []
    assert staging.stage(src, tmp_path / "local").action == "skipped"
    # without links, the same copy is one cp -r, and as exact (mtimes too)
    os.unlink(src / "zz-linked")
    plain = staging.stage(src, tmp_path / "plain", reporter=rep)
    assert plain.action == "copied" and tree(plain.path) == tree(src)
    assert all((plain.path / r).stat().st_mtime_ns == (src / r).stat().st_mtime_ns for r in tree(src))
    assert any(k == "progress" and t.startswith(f"copying {ODD}: 3,000/3,000 files") for k, t in rep.events), rep.events


@pytest.mark.timeout(30)
def test_is_high_latency_reads_the_mount_table(monkeypatch: pytest.MonkeyPatch) -> None:
    # The table staging reads is the kernel's (run/mounts.py, tested on more tables in test_mounts.py); here it is a
    # Colab VM's, with Google Drive mounted: FUSE, so a folder there is copied with threads.
    from darknet_magics.run import mounts

    colab = Path(__file__).resolve().parent / "fixtures" / "mountinfo" / "colab.mountinfo"
    monkeypatch.setattr(mounts, "MOUNTINFO", colab)
    assert staging.is_high_latency(Path("/content/drive/MyDrive/datasets/boxes")) is True
    assert staging.is_high_latency(Path("/content/datasets/boxes")) is False
    assert staging.is_high_latency(Path("/proc")) is False


# ---------------------------------------------------------------------------------------------------- URL


def test_stage_url_downloads_once_with_progress_and_keeps_the_archive(tmp_path: Path) -> None:
    data = A.tar_bytes({"boxes/a.jpg": os.urandom(200_000), "boxes/a.txt": b"0 0.5 0.5 0.1 0.1\n"}, "w:gz")
    site = Site()
    site.files["/boxes.tgz"] = data
    rep = RecordingReporter()
    with serve(site):
        first = staging.stage(f"{site.url}/boxes.tgz", tmp_path / "vm1", downloads=tmp_path / "drive", reporter=rep)
        assert first.downloaded and first.path == tmp_path / "vm1" / "boxes"
        assert any(k == "progress" and text.startswith("downloading boxes.tgz") for k, text in rep.events)
        # The next VM finds the archive on the drive: no request at all.
        n = len(site.requests)
        second = staging.stage(f"{site.url}/boxes.tgz", tmp_path / "vm2", downloads=tmp_path / "drive")
        assert not second.downloaded and len(site.requests) == n and tree(second.path) == tree(first.path)


def test_stage_url_restarts_when_the_server_ignores_range(tmp_path: Path) -> None:
    site = Site()
    site.files["/z.zip"] = A.zip_bytes({"z/a.jpg": os.urandom(100_000)}, zipfile.ZIP_STORED)
    site.cut_first_after["/z.zip"] = 30_000
    site.ignore_range = True
    with serve(site):
        result = staging.stage(f"{site.url}/z.zip", tmp_path / "local", downloads=tmp_path / "drive")
    assert result.action == "unpacked" and (tmp_path / "drive" / "z.zip").read_bytes() == site.files["/z.zip"]


def test_gdrive_link_without_gdown_says_how(tmp_path: Path) -> None:
    try:
        import gdown  # noqa: F401
        pytest.skip("gdown is installed: no network here to try a real Drive download")
    except ImportError:
        pass
    with pytest.raises(DarknetMagicsError, match="gdown"):
        staging.stage("https://drive.google.com/file/d/1AbCdEfGhIjKlMnOpQrStUvWxYz012345/view",
                      tmp_path / "local", downloads=tmp_path / "drive")
