"""run/mounts.py: the kernel's mount table read, and which mounts are high latency (network, FUSE).

Fixtures (tests/fixtures/mountinfo/): `dev-vm.mountinfo`, this project's development VM's own table;
`colab.mountinfo`, a Colab VM's layout with Google Drive mounted (``fuse.drive`` on /content/drive);
`network.mountinfo`, NFS, CIFS, sshfs, WSL's 9p, gcsfuse and rclone mounts beside local FUSE ones, in the
kernel's format (proc(5)), with an escaped space, stacked and nested mounts.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from darknet_magics.errors import DarknetMagicsError
from darknet_magics.run import mounts

pytestmark = pytest.mark.timeout(30)

MOUNTINFO = Path(__file__).resolve().parent / "fixtures" / "mountinfo"


def table(name: str) -> str:
    return (MOUNTINFO / f"{name}.mountinfo").read_text(encoding="utf-8")


@pytest.mark.parametrize("name,path,high", [
    ("colab", "/content/drive/MyDrive/datasets/boxes.tar", True),  # Google Drive: FUSE
    ("colab", "/content/drive", True),
    ("colab", "/content/drive_local/x", False),  # a sibling whose name starts the same is not under the mount
    ("colab", "/content/datasets/boxes", False),  # the VM's disk
    ("colab", "/opt/google/drive/drive", False),
    ("colab", "/", False),
    ("network", "/mnt/nfs/data/a.jpg", True),  # nfs4
    ("network", "/mnt/nfs/scratch/a.jpg", False),  # a tmpfs mounted inside the NFS share
    ("network", "/mnt/share/x", True),  # cifs
    ("network", "/home/u/remote/x", True),  # fuse.sshfs
    ("network", "/mnt/c/Users/u/data", True),  # WSL's Windows drive: 9p
    ("network", "/mnt/bucket/x", True),  # fuse.gcsfuse
    ("network", "/mnt/my drive/x", True),  # \040 in the table: fuse.rclone
    ("network", "/mnt/stack/x", True),  # nfs mounted over a tmpfs: the later one is what a path reaches
    ("network", "/proc/cpuinfo", False),  # lxcfs: local FUSE
    ("network", "/var/lib/containers/overlay/x", False),  # fuse-overlayfs
    ("network", "/media/usb/x", False),  # fuseblk (ntfs-3g on a USB disk)
    ("network", "/home/u/local", False),
    ("dev-vm", "/proc", False),
    ("dev-vm", "/tmp/x", False),
    ("dev-vm", "/dev/shm/x", False),
])
def test_high_latency_by_the_mount_table(name: str, path: str, high: bool) -> None:
    m = mounts.mount_of(path, mounts.parse_mountinfo(table(name)))
    assert m is not None and mounts.is_remote(m) is high
    assert mounts.is_high_latency(path, table(name)) is high


def test_colab_drive_line_is_read_field_by_field() -> None:
    drive = [m for m in mounts.parse_mountinfo(table("colab")) if m.point == "/content/drive"]
    assert drive == [mounts.Mount("/content/drive", "fuse.drive", "drive", "0:295")]


def test_escaped_mount_points_are_unescaped() -> None:
    points = [m.point for m in mounts.parse_mountinfo(table("network"))]
    assert "/mnt/my drive" in points and not any("\\" in p for p in points)


def test_the_real_table_names_the_device_each_path_is_on(tmp_path: Path) -> None:
    """This process's own table against the kernel's other answer: a path's `st_dev` is its mount's MAJ:MIN."""
    text = mounts.MOUNTINFO.read_text(encoding="utf-8", errors="surrogateescape")
    table_ = mounts.parse_mountinfo(text)
    for path in ("/", "/proc", "/dev", str(tmp_path), str(Path.cwd())):
        st = os.stat(path)
        m = mounts.mount_of(os.path.realpath(path), table_)
        assert m is not None and m.device == f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}", (path, m)
        assert mounts.is_high_latency(path) is mounts.is_remote(m)


@pytest.mark.parametrize("line", [
    "malformed",
    "22 27 0:21 / /proc rw,relatime proc proc rw",  # no " - " separator
    "22 27 0:21 / proc rw,relatime - proc proc rw",  # a mount point that is not absolute
    "22 27 0:21 / /proc rw,relatime - proc",  # no source
])
def test_a_broken_table_is_our_error_with_file_and_line(line: str) -> None:
    text = table("colab").splitlines()
    text.insert(3, line)
    with pytest.raises(DarknetMagicsError, match=r"mountinfo:4: not a mountinfo line") as e:
        mounts.parse_mountinfo("\n".join(text))
    assert e.value.fix
