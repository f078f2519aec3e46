"""A real filesystem in a file, loop-mounted for a test, for the storage
limit tests: ``loop_filesystem`` makes it, mounts it and, whatever happens in
the test, unmounts it, detaches the loop device and deletes the file."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

# mkfs.xfs refuses filesystems under 300 MiB; the file is sparse.
SIZES = {"xfs": 320 << 20, "ext4": 64 << 20}
MKFS = {"xfs": ["mkfs.xfs", "-q"], "ext4": ["mkfs.ext4", "-q"]}


class MountFailed(Exception):
    """The kernel refused the mount (the message says how)."""


@contextlib.contextmanager
def loop_filesystem(workdir: Path, fstype: str, mkfs_args: tuple[str, ...] = (),
                    options: str = "") -> Iterator[Path]:
    """A fresh ``fstype`` filesystem mounted on ``workdir/mnt``; raises
    MountFailed (having undone everything) if the kernel refuses it."""
    if shutil.which(MKFS[fstype][0]) is None:
        raise MountFailed(f"{MKFS[fstype][0]} is not installed (scripts/setup installs it)")
    image, mnt = workdir / f"{fstype}.img", workdir / "mnt"
    mnt.mkdir(parents=True, exist_ok=True)
    with open(image, "wb") as f:
        f.truncate(SIZES[fstype])
    device = ""
    mounted = False
    try:
        subprocess.run([*MKFS[fstype], *mkfs_args, str(image)], check=True, capture_output=True)
        device = subprocess.run(["losetup", "--find", "--show", str(image)], check=True,
                                capture_output=True, text=True).stdout.strip()
        mount = subprocess.run(["mount", "-t", fstype, *(["-o", options] if options else []),
                                device, str(mnt)], capture_output=True, text=True)
        if mount.returncode != 0:
            why = _kernel_says(fstype) or mount.stderr.strip()
            raise MountFailed(f"mount -t {fstype} -o {options or 'defaults'}: {why}")
        mounted = True
        yield mnt
    finally:
        if mounted:
            _umount(mnt)
        if device:
            subprocess.run(["losetup", "-d", device], check=False, capture_output=True)
        image.unlink(missing_ok=True)


# Filesystems that enforce project quotas, tried in this order.
PROJECT_QUOTA_FILESYSTEMS = (("ext4", ("-O", "quota,project")), ("xfs", ()))


@contextlib.contextmanager
def project_quota_filesystem(workdir: Path) -> Iterator[Path]:
    """A filesystem mounted with prjquota: ext4 with the project and quota
    features, or else XFS. MountFailed, with the kernel's reasons, where the
    kernel can do neither."""
    reasons = []
    for fstype, mkfs_args in PROJECT_QUOTA_FILESYSTEMS:
        stack = contextlib.ExitStack()
        try:
            mnt = stack.enter_context(loop_filesystem(workdir / fstype, fstype, mkfs_args,
                                                      "prjquota"))
        except MountFailed as err:
            reasons.append(str(err))
            continue
        with stack:
            yield mnt
        return
    raise MountFailed("this kernel enforces no project quotas: " + "; ".join(reasons))


def _umount(mnt: Path, timeout: float = 30.0) -> None:
    """Processes that used the filesystem may take a moment to exit
    (a stopped agent's supervisor): retry until it is free."""
    deadline = time.monotonic() + timeout
    while True:
        p = subprocess.run(["umount", str(mnt)], capture_output=True, text=True)
        if p.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"cannot unmount {mnt}: {p.stderr.strip()}")
        time.sleep(0.1)


def _kernel_says(fstype: str) -> str:
    """The kernel's own reason, from its log, when it can be read."""
    p = subprocess.run(["dmesg"], capture_output=True, text=True, check=False)
    tag = {"xfs": "XFS", "ext4": "EXT4-fs"}[fstype]
    lines = [line for line in p.stdout.splitlines() if tag in line]
    return lines[-1].split("] ", 1)[-1] if lines else ""


def mounted_on(path: Path) -> bool:
    return any(line.split()[4] == str(path)
               for line in Path("/proc/self/mountinfo").read_text().splitlines())


def is_root() -> bool:
    return os.geteuid() == 0
