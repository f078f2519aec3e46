"""``bundle.spread_subdirs``: the filesystem's top-dir hint on the containers dir."""

from __future__ import annotations

import fcntl
import os
import subprocess
from pathlib import Path

from nodeagent.runtime.bundle import FS_IOC_GETFLAGS, FS_TOPDIR_FL, spread_subdirs


def _flags(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        buf = bytearray(8)
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, buf, True)
        return int.from_bytes(buf, "little")
    finally:
        os.close(fd)


def test_the_hint_is_set_where_the_filesystem_has_it(tmp_path: Path) -> None:
    target = tmp_path / "containers"
    target.mkdir()
    fstype = subprocess.run(["stat", "-f", "-c", "%T", str(target)], capture_output=True,
                            text=True).stdout.strip()
    applied = spread_subdirs(str(target))
    if fstype.startswith("ext"):
        assert applied
    if applied:
        assert _flags(target) & FS_TOPDIR_FL
        assert spread_subdirs(str(target))  # idempotent


def test_no_hint_on_tmpfs_or_a_missing_dir(tmp_path: Path) -> None:
    assert not spread_subdirs("/dev/shm")
    assert not spread_subdirs(str(tmp_path / "missing"))
