"""Issue 14, "nothing lost under faults": a fault-injection suite with real files, mounts, sockets and shells.

Each case injects one fault and checks that it ends in a DarknetMagicsError that names what is wrong (the
archive and the member, the folder, the fix) instead of a raw traceback, and that nothing half-written is left
looking complete. The training-run faults at the end stop a running darknet: a full disk, a deleted log, a
weights folder turned read-only mid-run.

Full-disk and read-only cases use real tmpfs mounts (root only; they skip with the reason elsewhere). Root
bypasses chmod, so read-only means a read-only mount.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from conftest import run_cell
from faults import archives as A
from faults.fs import can_mount, leftovers, tmpfs
from faults.httpsite import Site, serve

from darknet_magics.data import staging
from darknet_magics.errors import DarknetMagicsError
from darknet_magics.report import RecordingReporter
from darknet_magics.setup.clone import clone, clone_commands
from darknet_magics.setup.drive import mount_drive

REPO = Path(__file__).resolve().parents[1]
needs_mount = pytest.mark.skipif(not can_mount(), reason="needs root to mount a tmpfs (full/read-only disk)")


def _stage_fails(src: Path, into: Path, *words: str) -> DarknetMagicsError:
    """stage(src, into) must raise a DarknetMagicsError holding `words`, and leave no dataset and no work files."""
    before = set(os.listdir(into)) if into.is_dir() else set()
    with pytest.raises(DarknetMagicsError) as info:
        staging.stage(src, into)
    text = str(info.value)
    for w in words:
        assert w in text, text
    assert info.value.fix, "every diagnosis says what to do"
    assert leftovers(into) == [], "a failed stage leaves no hidden work folder"
    after = set(os.listdir(into)) if into.is_dir() else set()
    assert not {n for n in after - before if not n.startswith(".")}, "no dataset folder appears"
    return info.value


# ---------------------------------------------------------------------------------------------- archives

MEMBERS = A.files()
TAR = A.tar_bytes(MEMBERS)
TGZ = A.tar_bytes(MEMBERS, "w:gz")
ZIP = A.zip_bytes(MEMBERS)


@pytest.mark.parametrize("name,data,words", [
    ("cut.tar", TAR[: len(TAR) // 2], ["cut.tar", "truncated", "set/img_"]),
    ("cut.tar.gz", TGZ[: len(TGZ) // 2], ["cut.tar.gz", "truncated"]),
    ("cut.zip", ZIP[: len(ZIP) // 2], ["cut.zip", "truncated or damaged zip"]),
    ("empty.zip", b"", ["empty.zip", "empty (0 bytes)"]),
    ("empty.tar", b"", ["empty.tar", "empty (0 bytes)"]),
    ("empty.tar.gz", b"", ["empty.tar.gz", "empty (0 bytes)"]),
    ("nothing.zip", A.zip_bytes({}), ["nothing.zip", "holds no files"]),
    ("zeros.tar", b"\0" * 10240, ["zeros.tar", "neither a folder nor"]),
    ("notes.zip", b"just some text, not an archive\n" * 40, ["notes.zip", "neither a folder nor"]),
    ("page.zip", b"<!DOCTYPE html><html><body>Google Drive - Virus scan warning</body></html>",
     ["page.zip", "HTML page"]),
    ("badcrc.zip", A.flip(ZIP, A.zip_member_offset(ZIP, "set/img_003.jpg") + 10),
     ["badcrc.zip", "set/img_003.jpg", "corrupt"]),
    ("badheader.tar", A.flip(TAR, A.tar_header_offset(TAR, 3) + 5), ["badheader.tar", "set/img_002.jpg", "corrupt"]),
    ("badbyte.tar.gz", A.flip(TGZ, len(TGZ) // 2), ["badbyte.tar.gz", "corrupt"]),
    ("conflict.zip", A.zip_bytes({"a/x": b"file", "a/x/y": b"under it"}), ["conflict.zip", "'a/x'", "'a/x/y'"]),
    ("dots.tar", A.tar_bytes({"../evil.txt": b"x"}), ["dots.tar", "'../evil.txt'", "outside"]),
])
def test_malformed_archive_is_diagnosed_naming_archive_and_member(tmp_path: Path, name, data, words) -> None:
    src = A.write(tmp_path / "drive" / name, data)
    _stage_fails(src, tmp_path / "local", *words)
    assert not (tmp_path / "evil.txt").exists()


# Bad members AFTER thousands of good ones: tar is already unpacking them into the hidden folder while the
# members are vetted (staging_archives._unpack); the vetting's error must still win, kill tar and leave nothing behind.
MANY = {f"set/f{i:05d}.jpg": bytes(1500) for i in range(3000)}


@pytest.mark.parametrize("name,extra,words", [
    ("late-dots.tar", [A.entry("set/../../evil.txt", tarfile.REGTYPE, size=4)], ["'set/../../evil.txt'", "outside"]),
    ("fifo.tar", [A.entry("set/pipe", tarfile.FIFOTYPE)], ["'set/pipe'", "device or fifo"]),
    ("device.tar", [A.entry("set/null", tarfile.CHRTYPE)], ["'set/null'", "device or fifo"]),
    # the classic tar slip: a link to a folder outside, then a file written "into" the link
    ("slip.tar", [A.entry("set/out", tarfile.SYMTYPE, link="OUTSIDE"),
                  A.entry("set/out/evil.txt", tarfile.REGTYPE, size=4)], ["slip.tar", "outside the dataset folder"]),
])
def test_a_bad_member_after_many_good_ones_stops_the_unpack(tmp_path: Path, name, extra, words) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    for e in extra:
        e.linkname = e.linkname.replace("OUTSIDE", str(outside))
    src = A.write(tmp_path / "drive" / name, A.tar_with(MANY, *extra))
    _stage_fails(src, tmp_path / "local", name, *words)
    assert os.listdir(outside) == [] and not (tmp_path / "evil.txt").exists()
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*")), "nothing was written through the link"


@pytest.mark.parametrize("name,data", [("really-a-zip.tar.gz", ZIP), ("really-a-tgz.zip", TGZ),
                                       ("really-a-tar.tgz", TAR), ("noext", TAR)])
def test_mislabelled_archive_is_read_by_its_content(tmp_path: Path, name, data) -> None:
    src = A.write(tmp_path / "drive" / name, data)
    rep = RecordingReporter()
    result = staging.stage(src, tmp_path / "local", reporter=rep)
    assert result.action == "unpacked" and result.path == tmp_path / "local" / "set"
    assert {f"set/{p.name}": p.read_bytes() for p in result.path.iterdir()} == MEMBERS
    if "." in name:
        assert any("content is a" in text for kind, text in rep.events), rep.events


def test_symlink_loop_in_a_folder_is_diagnosed(tmp_path: Path) -> None:
    src = tmp_path / "drive" / "loop"
    (src / "sub").mkdir(parents=True)
    (src / "a.jpg").write_bytes(b"x")
    os.symlink("..", src / "sub" / "up")  # sub/up -> loop: endless when followed
    _stage_fails(src, tmp_path / "local", "sub/up", "symlink loop")


def test_self_link_eloop_is_diagnosed(tmp_path: Path) -> None:
    src = tmp_path / "drive" / "selfloop"
    src.mkdir(parents=True)
    (src / "a.jpg").write_bytes(b"x")
    os.symlink("me", src / "me")  # stat() raises ELOOP
    _stage_fails(src, tmp_path / "local", "me is a symlink loop")


def test_killed_unpack_never_looks_complete_and_the_rerun_finishes(tmp_path: Path) -> None:
    """SIGKILL a real `stage` process mid-unpack: no dataset folder appears; the next stage completes it."""
    big = {f"set/f{i:05d}.jpg": os.urandom(2048) for i in range(6000)}
    src = A.write(tmp_path / "drive" / "big.tar", A.tar_bytes(big))
    into = tmp_path / "local"
    into.mkdir()
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); from darknet_magics.data.staging import stage; "
            f"stage({str(src)!r}, {str(into)!r})")
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(".unpack-" in n for n in os.listdir(into)):
        time.sleep(0.01)
    time.sleep(0.15)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (into / "set").exists() or (into / ".set.stage.json").exists()
    assert staging.stage(src, into).action == "unpacked"
    assert len(list((into / "set").iterdir())) == 6000 and leftovers(into) == []
    assert staging.stage(src, into).action == "skipped"


# ---------------------------------------------------------------------------------------------- full / read-only disks


@needs_mount
def test_full_disk_while_unpacking_leaves_nothing(tmp_path: Path) -> None:
    big = {f"set/f{i}.jpg": os.urandom(300_000) for i in range(10)}  # 3 MB, random: gzip cannot shrink it
    src = A.write(tmp_path / "drive" / "big.tar.gz", A.tar_bytes(big, "w:gz"))
    with tmpfs(tmp_path / "small", "2m") as small:
        err = _stage_fails(src, small, "no space left", "big.tar.gz", "MB free")
        assert "bigger disk" in (err.fix or "")
        assert os.listdir(small) == []


@needs_mount
def test_full_disk_mid_copy_leaves_nothing_looking_complete(tmp_path: Path) -> None:
    """Tiny files: their listed bytes fit, but each takes a 4 KiB page on tmpfs, so the disk fills mid-copy."""
    src = tmp_path / "drive" / "many"
    src.mkdir(parents=True)
    for i in range(1500):
        (src / f"{i:05d}.txt").write_text("0 0.5 0.5 0.1 0.1\n")
    with tmpfs(tmp_path / "small", "2m") as small:
        _stage_fails(src, small, "no space left", "many")
        assert not (small / "many").exists() and not (small / ".many.stage.json").exists()


@needs_mount
def test_full_disk_mid_unpack_of_a_zip(tmp_path: Path) -> None:
    many = {f"set/{i:05d}.txt": b"0 0.5 0.5 0.1 0.1\n" for i in range(1500)}
    src = A.write(tmp_path / "drive" / "many.zip", A.zip_bytes(many))
    with tmpfs(tmp_path / "small", "2m") as small:
        _stage_fails(src, small, "no space left", "many.zip")
        assert not (small / "set").exists()


@needs_mount
def test_read_only_stage_folder(tmp_path: Path) -> None:
    src = A.write(tmp_path / "drive" / "ok.tar", TAR)
    with tmpfs(tmp_path / "ro", "1m", readonly=True) as ro:
        with pytest.raises(DarknetMagicsError, match="writable|Read-only") as info:
            staging.stage(src, ro / "data")
        assert "Traceback" not in str(info.value)


# ---------------------------------------------------------------------------------------------- a file where a folder is meant


def test_stage_into_an_existing_file(tmp_path: Path) -> None:
    src = A.write(tmp_path / "drive" / "ok.tar", TAR)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DarknetMagicsError, match="is a file, not a folder"):
        staging.stage(src, tmp_path / "afile")
    with pytest.raises(DarknetMagicsError, match="is a file, not a folder"):
        staging.stage(src, tmp_path / "afile" / "deeper")


def test_stage_where_the_dataset_name_is_a_file(tmp_path: Path) -> None:
    src = A.write(tmp_path / "drive" / "ok.tar", TAR)
    A.write(tmp_path / "local" / "set", b"a file named like the dataset")
    with pytest.raises(DarknetMagicsError, match="is a file"):
        staging.stage(src, tmp_path / "local")


def test_stage_into_a_file_through_the_magic_is_a_clean_error(ip, tmp_path: Path, capsys) -> None:
    A.write(tmp_path / "drive" / "ok.tar", TAR)
    (tmp_path / "afile").write_text("x")
    result = run_cell(ip, f"%%darknet\nstage \"{tmp_path}/drive/ok.tar\" into=\"{tmp_path}/afile\"\n")
    out = capsys.readouterr()
    assert result.error_in_exec is not None
    assert "is a file, not a folder" in out.out + out.err + str(result.error_in_exec)
    assert "Traceback" not in out.out + out.err


def test_clone_into_an_existing_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DarknetMagicsError, match="is a file, not a folder"):
        clone(str(tmp_path / "repo"), None, tmp_path / "afile" / "darknet", RecordingReporter())
    with pytest.raises(DarknetMagicsError, match="is a file, not a folder"):
        clone_commands(None, None, tmp_path / "afile")


def test_drive_path_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    for path in (tmp_path / "afile", tmp_path / "afile" / "below"):
        with pytest.raises(DarknetMagicsError, match="is a file|a file, not a folder"):
            mount_drive(str(path), RecordingReporter())


# ---------------------------------------------------------------------------------------------- argv: values as options


def _git_repo(path: Path) -> Path:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}
    path.mkdir(parents=True)
    (path / "Makefile").write_text("all:\n")
    for args in (["init", "-q", "-b", "master"], ["add", "-A"], ["commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=path, env=env, check=True, capture_output=True)
    return path


@pytest.mark.parametrize("url", ["--upload-pack=touch PWNED", "-u touch PWNED", "--config=core.sshCommand=touch PWNED"])
def test_clone_url_starting_with_dash_is_refused(tmp_path: Path, monkeypatch, url: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DarknetMagicsError, match="starts with '-'"):
        clone(url.replace("PWNED", str(tmp_path / "PWNED")), None, tmp_path / "dk", RecordingReporter())
    with pytest.raises(DarknetMagicsError, match="starts with '-'"):
        clone_commands(url, None, tmp_path / "dk")
    assert not (tmp_path / "PWNED").exists()


def test_clone_ref_starting_with_dash_is_refused(tmp_path: Path) -> None:
    repo = _git_repo(tmp_path / "repo")
    with pytest.raises(DarknetMagicsError, match="ref="):
        clone(str(repo), "--orphan=x", tmp_path / "dk", RecordingReporter())


def test_clone_from_a_path_named_like_an_option_works_after_double_dash(tmp_path: Path, monkeypatch) -> None:
    _git_repo(tmp_path / "-repo")
    monkeypatch.chdir(tmp_path)
    res = clone("./-repo", None, tmp_path / "-dk", RecordingReporter())
    assert res.action == "cloned" and (tmp_path / "-dk" / "Makefile").exists()
    assert all("--" in argv for argv in clone_commands("./-repo", None, tmp_path / "-other")[:1])


# ---------------------------------------------------------------------------------------------- drive links


def test_drive_link_lives_in_one_documented_place_and_is_the_same_on_a_new_vm(tmp_path: Path, monkeypatch) -> None:
    if Path("/content").is_dir():
        pytest.skip("a Colab-like machine: links go to /content")
    real = tmp_path / "My Drive"
    monkeypatch.delenv("DARKNET_MAGICS_LINKS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    first = mount_drive(str(real), RecordingReporter())
    assert first.alias is not None and first.alias.parent == tmp_path / "cache" / "darknet_magics" / "links"
    # "A new VM": the link is gone; the next `drive` puts the same link at the same path.
    first.alias.unlink()
    again = mount_drive(str(real), RecordingReporter())
    assert again.alias == first.alias and os.path.realpath(again.alias) == str(real)
    monkeypatch.setenv("DARKNET_MAGICS_LINKS", str(tmp_path / "links"))
    chosen = mount_drive(str(real), RecordingReporter())
    assert chosen.alias is not None and chosen.alias.parent == tmp_path / "links"


@needs_mount
def test_drive_link_falls_back_to_a_per_user_tmp_folder_when_the_cache_is_read_only(tmp_path: Path,
                                                                                      monkeypatch) -> None:
    if Path("/content").is_dir():
        pytest.skip("a Colab-like machine: links go to /content")
    monkeypatch.delenv("DARKNET_MAGICS_LINKS", raising=False)
    with tmpfs(tmp_path / "rocache", "1m", readonly=True) as ro:
        monkeypatch.setenv("XDG_CACHE_HOME", str(ro))
        rep = RecordingReporter()
        info = mount_drive(str(tmp_path / "My Drive"), rep)
        assert info.alias is not None and f"darknet_magics-{os.getuid()}" in str(info.alias)
        assert any("DARKNET_MAGICS_LINKS" in text for _, text in rep.events)


# ---------------------------------------------------------------------------------------------- stage URL


def test_url_download_resumes_after_a_dropped_connection(tmp_path: Path) -> None:
    site = Site()
    site.files["/d/boxes.tar.gz"] = TGZ
    site.cut_first_after["/d/boxes.tar.gz"] = len(TGZ) // 3
    with serve(site):
        result = staging.stage(f"{site.url}/d/boxes.tar.gz", tmp_path / "local", downloads=tmp_path / "drive")
    assert result.action == "unpacked" and result.downloaded
    assert (tmp_path / "drive" / "boxes.tar.gz").read_bytes() == TGZ
    assert any(rng.startswith("bytes=") for _, rng in site.requests), site.requests  # resumed with Range


def test_url_serving_a_web_page_or_404_is_diagnosed(tmp_path: Path) -> None:
    site = Site()
    site.files["/x.zip"] = b"<html><body>Sign in</body></html>"
    with serve(site):
        with pytest.raises(DarknetMagicsError, match="HTML page"):
            staging.stage(f"{site.url}/x.zip", tmp_path / "local", downloads=tmp_path / "drive")
        with pytest.raises(DarknetMagicsError, match="404"):
            staging.stage(f"{site.url}/missing.zip", tmp_path / "local", downloads=tmp_path / "drive")
    assert not (tmp_path / "drive" / "missing.zip").exists()


# ---------------------------------------------------------------------------------------------- training runs (lead's)

DARKNET = Path("/usr/bin/darknet")
TEMPLATE = Path("/usr/share/darknet/cfg/yolov3-tiny.cfg")
needs_darknet = pytest.mark.skipif(not DARKNET.exists() or not TEMPLATE.exists(), reason="needs Debian's darknet")


def _train_setup(ws: Path, iterations: int, *, backup: bool = True) -> str:
    from darknet_magics.data import objdata
    from darknet_magics.data.cfg import make_cfg
    from darknet_magics.synth import make_dataset

    ds = make_dataset(ws / "ds", images=12, size=64)
    (ws / "train.txt").write_text("".join(f"{p}\n" for p in ds.images))
    # backup=False: an obj.data as `%yolo data` writes it (its marker line): each run keeps its own weights folder
    (ws / "obj.data").write_text(("" if backup else f"{objdata.MARKER}\n")
                                 + f"classes = 1\ntrain = {ws}/train.txt\nvalid = {ws}/train.txt\n"
                                 f"names = {ds.folder}/obj.names\nbackup = {ws}/backup\n")
    (ws / "backup").mkdir()
    (ws / "tiny.cfg").write_text(make_cfg(TEMPLATE.read_text(), 1, width=64, height=64, batch=2, subdivisions=1,
                                          max_batches=iterations, random=0))
    return f"%%darknet\nworkspace {ws}\n"


def _two_kernels_train(ws: Path) -> list[subprocess.Popen]:
    """Two real IPython kernels (ipython processes) starting `%yolo train` in one workspace at the same second."""
    script = ws / "train.ipy"
    script.write_text(f"get_ipython().run_line_magic('load_ext', 'darknet_magics')\n"
                      f"get_ipython().run_cell_magic('darknet', '', 'workspace {ws}')\n"
                      f"get_ipython().run_line_magic('yolo', 'train {ws}/obj.data {ws}/tiny.cfg')\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return [subprocess.Popen([sys.executable, "-m", "IPython", "--no-banner", str(script)], cwd=ws, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]


@pytest.mark.once
@pytest.mark.slow
@needs_darknet
@pytest.mark.parametrize("shared_backup", [False, True], ids=["own-backups", "users-backup"])
def test_two_trainings_in_one_workspace_never_share_a_run_folder(tmp_path: Path, shared_backup: bool) -> None:
    """Two kernels start `%yolo train` in one workspace at the same second: each gets its own run folder, and when
    the user's obj.data names one backup= for both, the second is refused (both would write <cfg>_last.weights)
    and leaves no folder behind; the start is serialised, so the two never both see no other run."""
    ws = tmp_path / "ws"
    ws.mkdir()
    _train_setup(ws, 4, backup=shared_backup)
    procs = _two_kernels_train(ws)
    outputs = [p.communicate(timeout=600)[0].decode(errors="replace") for p in procs]
    runs = sorted(p for p in (ws / "runs").iterdir() if p.is_dir())
    for run in runs:
        assert (run / "run.json").exists() and (run / "train.log").exists()
    refused = [out for out in outputs if "is in use by the run" in out]
    if shared_backup:
        assert len(runs) == 1 and len(refused) == 1, outputs
        assert "backup=PATH" in refused[0] and "Traceback" not in refused[0]
    else:
        assert len(runs) == 2 and not refused, outputs


@pytest.mark.once
@pytest.mark.slow
@needs_darknet
def test_train_log_deleted_mid_run_is_noticed_and_kept(ip, tmp_path: Path, capsys) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    cell = _train_setup(ws, 30)
    run_cell(ip, cell)
    import threading

    def delete_log() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            logs = list((ws / "runs").glob("*/train.log")) if (ws / "runs").is_dir() else []
            if logs and logs[0].stat().st_size > 2000:
                logs[0].unlink()
                return
            time.sleep(0.05)

    t = threading.Thread(target=delete_log)
    t.start()
    run_cell(ip, f"%yolo train {ws}/obj.data {ws}/tiny.cfg")
    t.join()
    out = capsys.readouterr().out
    logs = list((ws / "runs").glob("*/train.log*"))
    assert logs and "train.log" in out and ("deleted" in out or "moved" in out)


@pytest.mark.once
@pytest.mark.slow
@needs_darknet
@needs_mount
def test_full_disk_mid_run_records_the_run_as_failed(ip, tmp_path: Path, capsys) -> None:
    import json

    ws = tmp_path / "ws"
    ws.mkdir()
    cell = _train_setup(ws, 40)
    with tmpfs(tmp_path / "runs", "300k") as runs:
        run_cell(ip, cell + f"set runs={runs}\n")
        result = run_cell(ip, f"%yolo train {ws}/obj.data {ws}/tiny.cfg backup={runs}")
        out = capsys.readouterr()
        assert "Traceback" not in out.out + out.err
        metas = list(Path(runs).glob("**/run.json")) + list((ws / "runs").glob("*/run.json"))
        assert metas and all(json.loads(m.read_text()).get("status") != "running" for m in metas)
        assert result.error_in_exec is not None and "space" in str(result.error_in_exec)


@pytest.mark.once
@pytest.mark.slow
@needs_darknet
@needs_mount
def test_read_only_weights_folder_mid_run(ip, tmp_path: Path, capsys) -> None:
    # The weights folder turns read-only under a running darknet: a read-only tmpfs mounted over it once darknet is
    # training (a remount of a folder darknet holds files open in is refused by the kernel: EBUSY). darknet does
    # not check its fopen for the final weights; the run must be reported failed, read-only named, not finished.
    import json
    import subprocess
    import threading

    ws = tmp_path / "ws"
    ws.mkdir()
    cell = _train_setup(ws, 40)
    backup = ws / "backup"
    mounted = threading.Event()

    def go_read_only() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if list((ws / "runs").glob("*/train.log")):
                p = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(backup)],
                                   capture_output=True)
                if p.returncode == 0:
                    mounted.set()
                return
            time.sleep(0.02)

    run_cell(ip, cell)
    t = threading.Thread(target=go_read_only)
    t.start()
    try:
        result = run_cell(ip, f"%yolo train {ws}/obj.data {ws}/tiny.cfg")
    finally:
        t.join()
        subprocess.run(["umount", "-l", str(backup)], capture_output=True)
    if not mounted.is_set():
        pytest.skip("could not mount a read-only tmpfs over the weights folder here")
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert result.error_in_exec is not None and "read-only" in str(result.error_in_exec).lower()
    metas = list((ws / "runs").glob("*/run.json"))
    assert metas and all(json.loads(m.read_text()).get("status") == "failed" for m in metas)
