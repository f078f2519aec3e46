"""Helpers shared by the image tests (a small rootfs tree, tarballs of it)."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

MTIME = 1_600_000_000


def make_rootfs(root: Path) -> Path:
    """bin/app (setuid), etc/conf (owned 1000:1000), a symlink, a hardlink, a fifo."""
    (root / "bin").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "empty").mkdir(mode=0o750)
    app = root / "bin" / "app"
    app.write_bytes(b"#!/bin/sh\necho hi\n" * 100)
    os.chmod(app, 0o4755)
    conf = root / "etc" / "conf"
    conf.write_text("key=value\n")
    os.chown(conf, 1000, 1000)
    os.chmod(conf, 0o640)
    os.symlink("app", root / "bin" / "sh")
    os.link(app, root / "bin" / "app-hardlink")
    os.mkfifo(root / "etc" / "fifo", 0o600)
    os.chmod(root / "empty", 0o750)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), (MTIME, MTIME), follow_symlinks=False)
    os.utime(root, (MTIME, MTIME))
    return root


def tar_of(path: Path, out: Path, mode: str = "w:gz") -> Path:
    with tarfile.open(out, mode) as tf:  # type: ignore[call-overload]
        for name in sorted(os.listdir(path)):
            tf.add(path / name, arcname=name)
    return out
