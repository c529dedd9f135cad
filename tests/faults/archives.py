"""Crafted archives: truncated, empty, mislabelled, corrupt in the middle, conflicting names."""
from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path


def files(n: int = 6, size: int = 3000) -> dict[str, bytes]:
    """`n` image-like files of `size` bytes under one top folder 'set/' (distinct content each)."""
    return {f"set/img_{i:03d}.jpg": bytes((i * 7 + j) % 251 for j in range(size)) for i in range(n)}


def tar_bytes(members: dict[str, bytes], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode, format=tarfile.GNU_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tar_with(members: dict[str, bytes], *extra: tarfile.TarInfo) -> bytes:
    """A tar of `members` followed by `extra` entries (links, fifos, devices: no data of their own)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
        for info in extra:
            tf.addfile(info, io.BytesIO(b"\0" * info.size) if info.size else None)
    return buf.getvalue()


def entry(name: str, kind: bytes, link: str = "", size: int = 0) -> tarfile.TarInfo:
    """One tar entry of type `kind` (tarfile.SYMTYPE, FIFOTYPE, CHRTYPE, REGTYPE...)."""
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.size, info.mtime = kind, link, size, 1_700_000_000
    if kind == tarfile.CHRTYPE:
        info.devmajor, info.devminor = 1, 3  # /dev/null's numbers
    return info


def zip_bytes(members: dict[str, bytes], compress: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compress) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def flip(data: bytes, at: int) -> bytes:
    """`data` with the byte at `at` inverted (a bad sector, a bad download)."""
    b = bytearray(data)
    b[at] ^= 0xFF
    return bytes(b)


def zip_member_offset(data: bytes, name: str) -> int:
    """Where member `name`'s compressed data starts inside zip `data`."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        info = zf.getinfo(name)
    header = info.header_offset
    name_len = int.from_bytes(data[header + 26: header + 28], "little")
    extra_len = int.from_bytes(data[header + 28: header + 30], "little")
    return header + 30 + name_len + extra_len


def tar_header_offset(data: bytes, index: int) -> int:
    """Offset of the `index`-th member's header in an uncompressed tar."""
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return tf.getmembers()[index].offset
