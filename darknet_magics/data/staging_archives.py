"""Staging an archive or a URL: downloaded onto the drive, unpacked once per VM by one `tar -x` (or Python's
zipfile), vetted member by member beside the unpack.
"""
from __future__ import annotations

import lzma
import os
import re
import shutil
import tarfile
import tempfile
import time
import zipfile
import zlib
from functools import partial
from pathlib import Path
from typing import Optional, Sequence

from ..errors import DarknetMagicsError
from ..fileio import remove_if_exists
from ..report import Reporter, TransferProgress
from ..run.native import io_count
from .archives import _Member, _bad_zip, _list_zip
from .staging_files import _CHUNK, _complete, _local_sizes, _replace_tree, _run_with_listing
from .staging_plan import StagePlan, StageResult, _archive_plan, _check_space, _ensure_folder, _full_disk, _manifest_path, _os_error, _read_manifest, _write_manifest, gdrive_file_id


def _fetch_url(plan: StagePlan, reporter: Reporter) -> bool:
    """Download the plan's URL to `plan.src` (kept for the next VM); False when it was there already."""
    assert plan.url is not None
    if plan.src.is_file():
        reporter.info(f"{plan.src} was downloaded before: using it")
        return False
    _ensure_folder(plan.src.parent, "the download folder")
    fid = gdrive_file_id(plan.url)
    if fid:
        _download_gdrive(fid, plan.src, reporter)
        return True
    from .weights import download_file

    download_file(plan.url, plan.src, reporter)
    return True


def _download_gdrive(file_id: str, dest: Path, reporter: Reporter) -> None:
    try:
        import gdown  # optional: handles Drive's confirm page for large files and its cookies
    except ImportError:
        raise DarknetMagicsError("a Google Drive link needs the gdown package",
                                 fix="pip install gdown (or copy the file into your drive and stage it from {drive})") from None
    part = dest.with_name(dest.name + ".part")
    reporter.info(f"downloading Google Drive file {file_id} with gdown into {dest}")
    out = gdown.download(id=file_id, output=str(part), quiet=False, resume=True)
    if not out or not part.is_file():
        raise DarknetMagicsError(f"gdown could not download the Google Drive file {file_id}",
                                 fix="share the file with 'anyone with the link', then run the same line again")
    os.replace(part, dest)


def _tar_failure(err: str, original: Path, plan: StagePlan, needed: int) -> DarknetMagicsError:
    if "No space left" in err or "Disk quota" in err:
        return _full_disk(plan, needed)
    if "Read-only" in err or "Permission denied" in err:
        return DarknetMagicsError(f"cannot write into {plan.into}: {err.strip().splitlines()[-1]}",
                                  fix="stage into a writable folder (into=...)")
    member = None
    for line in err.splitlines():
        m = re.match(r"tar: (.+?): (?:Cannot|Error|Unexpected|Skipping)", line)
        if m and not m.group(1).startswith(("/", "Exiting", "Error")):
            member = m.group(1)
            break
    what = f" at member {member!r}" if member else ""
    return DarknetMagicsError(f"{original.name} is truncated or corrupt{what}: {err.strip()[-400:]}",
                              fix="copy or download the archive again; check it with `tar -tvf FILE`")


def _stage_archive(plan: StagePlan, reporter: Reporter) -> StageResult:
    """Unpack the archive of `plan` (members not yet vetted) into its dataset folder, or skip it when an earlier
    unpack of this same archive is complete."""
    start = time.monotonic()
    src = plan.src
    st = src.stat()
    key = [st.st_size, st.st_mtime_ns]
    source = str(src.resolve())
    done = _earlier_unpack(plan.into, source, key)
    if done is not None:
        dest, files = done
        return StageResult(dest, "skipped", len(files), sum(f[1] for f in files), time.monotonic() - start, src)
    # Unpack beside the target (same disk, so the final rename is atomic); a half-unpacked folder is hidden and
    # removed, never left at the dataset's name. It is named after the archive: the dataset's own name (its one
    # top folder) is known once the members are vetted.
    _remove_stale_work(plan.into, plan.target.name)
    work = Path(tempfile.mkdtemp(prefix=f".{plan.target.name}.unpack-{os.getpid()}-", dir=plan.into))
    try:
        # Reading an archive member by member over a network mount is slow: copy the one file first.
        local = _local_copy(plan, work / "archive", st.st_size, reporter) if plan.high_latency else src
        out = work / "out"
        out.mkdir()
        plan = _unpack(local, plan, out, reporter)
        if plan.note:
            reporter.info(plan.note)
        dest, manifest_path, listing = _put_in_place(plan, out, source, reporter)
    except OSError as err:
        raise _os_error(err, plan) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _write_manifest(manifest_path, ({"kind": "archive", "archive": key, "source": source,
                                                 "path": str(dest), "files": listing}))
    return StageResult(dest, "unpacked", len(listing), sum(f[1] for f in listing), time.monotonic() - start, src)


def _local_copy(plan: StagePlan, local: Path, size: int, reporter: Reporter) -> Path:
    """Copy the archive to `local` (in the unpack's work folder) with progress, once the space is there."""
    _check_space(plan, size)
    progress = TransferProgress(reporter, f"copying {plan.src.name}", 1, size)
    with open(plan.src, "rb") as fin, open(local, "wb") as fout:
        while True:
            data = fin.read(_CHUNK)
            if not data:
                break
            fout.write(data)
            progress.add(0, len(data))
    progress.add(1, 0)
    progress.done()
    return local


def _put_in_place(plan: StagePlan, out: Path, source: str, reporter: Reporter) -> tuple[Path, Path, list]:
    """Move the unpacked tree from `out` to the dataset's folder, keeping files the user added to an earlier
    unpack of the same archive. Returns the folder, its manifest's path (removed: the caller writes it once
    all is in place) and the listing of ``[name, size]`` the manifest will hold."""
    dest = plan.target
    if dest.exists() and not dest.is_dir():
        raise DarknetMagicsError(f"{dest} is a file, so the dataset folder cannot go there",
                                 fix=f"remove the file {dest}, or give into= another folder")
    manifest_path = _manifest_path(plan)
    manifest = _read_manifest(manifest_path)
    if manifest and manifest.get("source") not in (None, source) and dest.is_dir():
        reporter.warn(f"{dest} held the dataset of {manifest.get('source')}: replacing it with {plan.src}")
        manifest = None
    prefix = plan.top + "/" if plan.top else ""
    root = out / plan.top if plan.top else out
    os.chmod(root, 0o777 & ~_umask())  # mkdtemp's 0700 must not become the dataset's mode
    listing = [[m.name[len(prefix):], m.size] for m in plan.members if not m.is_dir]
    # From here on the old copy is not complete until the new manifest is written.
    remove_if_exists(manifest_path)
    if dest.is_dir() and manifest:
        _keep_local_additions(dest, root, {f[0] for f in manifest.get("files", [])})
    _replace_tree(dest, root)
    return dest, manifest_path, listing


def _earlier_unpack(into: Path, source: str, key: list[int]) -> Optional[tuple[Path, list]]:
    """(dataset folder, files) of a complete earlier unpack of this very archive (same path, size and mtime) into
    `into`, found by its manifest, or None. Found without reading the archive: a re-run costs a walk of the
    local copy, not a listing of 20,000 members."""
    try:
        entries = os.listdir(into)
    except OSError:
        return None
    for entry in entries:
        if not (entry.startswith(".") and entry.endswith(".stage.json")):
            continue
        manifest = _read_manifest(into / entry)
        if not manifest or manifest.get("kind") != "archive" or manifest.get("archive") != key \
                or manifest.get("source") != source:
            continue
        dest = into / entry[1: -len(".stage.json")]
        files = manifest.get("files", [])
        if _complete(dest, files):
            return dest, files
    return None


def _remove_stale_work(into: Path, name: str) -> None:
    """Hidden unpack folders left by a killed stage (its process is gone) are deleted; a live one is left alone."""
    prefix = f".{name}.unpack-"
    for entry in os.listdir(into):
        if not entry.startswith(prefix):
            continue
        pid = entry[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and int(pid) != os.getpid() and Path(f"/proc/{pid}").exists():
            continue
        shutil.rmtree(into / entry, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _keep_local_additions(old: Path, new: Path, staged: set[str]) -> None:
    """Files the user made in the old local copy (not from the archive), e.g. converted labels, move to the new one."""
    for rel in _local_sizes(old):
        if rel not in staged and not (new / rel).exists():
            (new / rel).parent.mkdir(parents=True, exist_ok=True)
            os.replace(old / rel, new / rel)


def _unpack(local: Path, plan: StagePlan, out: Path, reporter: Reporter) -> StagePlan:
    """Unpack the archive `local` (a copy of `plan.src`, or it) into `out`; the plan with its members vetted
    (`_archive_plan`). Errors name the archive and the member; nothing is left in `out` that was not vetted, since
    the caller removes `out` on any error.

    GNU tar starts at once and the members are vetted in a thread meanwhile (listing 20,000 members took a fifth
    of tar's own time before tar started): tar itself refuses absolute and '..' names and writes links that leave
    the folder only at its end, into the hidden `out` that nobody reads until both are done. A bad member or too
    little space kills tar. A zip (Python unpacks it member by member from the listing) and tarfile's fallback
    where no tar is installed vet first.
    """
    original = plan.src
    tar_bin = shutil.which("tar") if plan.archive_type != "zip" else None
    if tar_bin is None:
        plan = _archive_plan(plan)
        n_files, total = _member_sizes(plan)
        _check_space(plan, total)
        progress = TransferProgress(reporter, f"unpacking {original.name}", n_files, total)
        if plan.archive_type == "zip":
            _unzip(local, original, out, progress)
        else:
            _untar_in_python(local, original, out, plan.members, progress)
        progress.done()
        return plan
    to_read = local.stat().st_size
    # Until the listing is in, the archive's own bytes are the measure (for a plain tar, about the content).
    progress = TransferProgress(reporter, f"unpacking {original.name}", 0, to_read)

    def read(pid: int, _total: int) -> float:  # the share of the archive tar has read
        return min(1.0, (io_count(pid, b"rchar:") or 0) / to_read) if to_read else 0.0

    code, err, plan = _run_with_listing(
        [tar_bin, "-x", "-f", str(local), "-C", str(out), "--no-same-owner", "--no-same-permissions"],
        partial(_archive_plan, plan), _member_sizes, plan, progress, read)
    n_files, total = _member_sizes(plan)
    if code != 0:
        raise _tar_failure(err, original, plan, total)
    # tar's exit status covers a truncated or corrupt archive, and the listing checked every header and that every
    # member's data lies inside the file: no second walk over the unpacked files.
    progress.total_files = progress.files = n_files
    progress.total_bytes = progress.bytes = total
    progress.done()
    return plan


def _member_sizes(plan: StagePlan) -> tuple[int, int]:
    """(files, bytes) of a vetted plan's members."""
    return sum(1 for m in plan.members if not m.is_dir), sum(m.size for m in plan.members)


def _unzip(local: Path, original: Path, out: Path, progress: TransferProgress) -> None:
    try:
        zf = zipfile.ZipFile(local)
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise _bad_zip(original, err) from None
    with zf:
        for info, m in _list_zip(zf, original):
            target = out / m.name
            if m.is_dir:
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as fin, open(target, "wb") as fout:
                    shutil.copyfileobj(fin, fout, _CHUNK)
            except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError, RuntimeError) as err:
                raise DarknetMagicsError(f"{original.name}: member {info.filename!r} is corrupt ({err})",
                                         fix="copy or download the archive again; check it with `unzip -t FILE`") from None
            mtime = time.mktime(info.date_time + (0, 0, -1))
            os.utime(target, (mtime, mtime))
            progress.add(1, m.size)


def _untar_in_python(local: Path, original: Path, out: Path, members: Sequence[_Member],
                     progress: TransferProgress) -> None:
    """tarfile's unpack, where no tar is installed (10x slower than GNU tar on small files)."""
    try:
        with tarfile.open(local, "r:*") as tar:
            for info in tar:
                tar.extract(info, out, filter="data")
                if info.isfile():
                    progress.add(1, info.size)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError) as err:
        raise DarknetMagicsError(f"{original.name} is truncated or corrupt ({err})",
                                 fix="copy or download the archive again") from None
    # What landed must be what was listed (a damaged header in the middle can make tar stop early).
    landed = _local_sizes(out)
    for m in members:
        if not m.is_dir and landed.get(m.name) != m.size:
            raise DarknetMagicsError(f"{original.name}: member {m.name!r} did not unpack whole "
                                     f"({landed.get(m.name, 0):,} of {m.size:,} bytes)",
                                     fix="copy or download the archive again; check it with `tar -tvf FILE`")
