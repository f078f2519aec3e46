"""The container's filesystem, built inside its own mount namespace.

Runs in the container's PID 1 before pivot_root: overlay at ``bundle/rootfs``,
then /proc, /sys, /dev, the generated /etc files, pivot_root, masked and
read-only paths. Invariant: ``/`` is made rprivate first, so none of these
mounts is visible on (or propagates to) the host, and they all vanish with
the namespace when the container's last process exits.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass

from nodeagent.runtime import _libc
from nodeagent.runtime._libc import (
    MNT_DETACH,
    MS_BIND,
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    MS_PRIVATE,
    MS_RDONLY,
    MS_REC,
    MS_REMOUNT,
    MS_STRICTATIME,
)

# (name, major, minor) — the OCI default devices, mode 0666.
DEVICES: tuple[tuple[str, int, int], ...] = (
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
)
DEV_SYMLINKS: tuple[tuple[str, str], ...] = (
    ("pts/ptmx", "ptmx"),
    ("/proc/self/fd", "fd"),
    ("/proc/self/fd/0", "stdin"),
    ("/proc/self/fd/1", "stdout"),
    ("/proc/self/fd/2", "stderr"),
)
ETC_FILES: tuple[str, ...] = ("hosts", "hostname", "resolv.conf")


@dataclass
class RootfsPlan:
    rootfs: str  # host path of the mountpoint, bundle/rootfs
    overlay_data: str
    readonly: bool
    bundle_dir: str
    hostname: str
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]


def overlay_options(lower_dirs: list[str], upper: str, work: str, volatile: bool = False) -> str:
    """Mount options for the container's overlay. ``volatile`` skips every
    sync of the upper layer, including the one at unmount that makes a
    container's exit and cleanup wait on the disk."""
    opts = f"lowerdir={':'.join(lower_dirs)},upperdir={upper},workdir={work}"
    return opts + ",volatile" if volatile else opts


def make_root_private(plan: RootfsPlan) -> None:
    _libc.mount(None, "/", None, MS_REC | MS_PRIVATE)


def mount_overlay(plan: RootfsPlan) -> None:
    _libc.mount("overlay", plan.rootfs, "overlay", 0, plan.overlay_data)


def make_mountpoints(plan: RootfsPlan) -> None:
    for name in ("proc", "sys", "dev", "etc"):
        _mkdir(os.path.join(plan.rootfs, name), 0o755)
    for name in ETC_FILES:
        _ensure_file(os.path.join(plan.rootfs, "etc", name))


def mount_proc(plan: RootfsPlan) -> None:
    target = os.path.join(plan.rootfs, "proc")
    _libc.mount("proc", target, "proc", MS_NOSUID | MS_NOEXEC | MS_NODEV)


def mount_sysfs(plan: RootfsPlan) -> None:
    target = os.path.join(plan.rootfs, "sys")
    _libc.mount("sysfs", target, "sysfs", MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY)


def mount_dev(plan: RootfsPlan) -> None:
    dev = os.path.join(plan.rootfs, "dev")
    _libc.mount("tmpfs", dev, "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k")
    old = os.umask(0)
    try:
        for name, major, minor in DEVICES:
            os.mknod(os.path.join(dev, name), 0o666 | stat.S_IFCHR, os.makedev(major, minor))
        os.mkdir(os.path.join(dev, "pts"), 0o755)
        os.mkdir(os.path.join(dev, "shm"), 0o1777)
    finally:
        os.umask(old)
    _libc.mount("devpts", os.path.join(dev, "pts"), "devpts", MS_NOSUID | MS_NOEXEC,
                "newinstance,ptmxmode=0666,mode=0620,gid=5")
    _libc.mount("shm", os.path.join(dev, "shm"), "tmpfs", MS_NOSUID | MS_NOEXEC | MS_NODEV,
                "mode=1777,size=65536k")
    for target, name in DEV_SYMLINKS:
        os.symlink(target, os.path.join(dev, name))


def bind_etc_files(plan: RootfsPlan) -> None:
    for name in ETC_FILES:
        _libc.mount(os.path.join(plan.bundle_dir, name), os.path.join(plan.rootfs, "etc", name),
                    None, MS_BIND)


def set_hostname(plan: RootfsPlan) -> None:
    _libc.sethostname(plan.hostname)


def pivot(plan: RootfsPlan) -> None:
    # pivot_root(".", ".") stacks the old root on the new one; detaching it
    # leaves only the container's tree: the host is unreachable from here.
    os.chdir(plan.rootfs)
    _libc.pivot_root(".", ".")
    _libc.umount2(".", MNT_DETACH)
    os.chdir("/")


def mask_paths(plan: RootfsPlan) -> None:
    for path in plan.masked_paths:
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError):
            continue
        if stat.S_ISDIR(st.st_mode):
            _libc.mount("tmpfs", path, "tmpfs", MS_RDONLY, "size=0")
        else:
            _libc.mount("/dev/null", path, None, MS_BIND)


def readonly_paths(plan: RootfsPlan) -> None:
    for path in plan.readonly_paths:
        try:
            _libc.mount(path, path, None, MS_BIND | MS_REC)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                continue
            raise
        _libc.mount(path, path, None, MS_BIND | MS_REC | MS_REMOUNT | MS_RDONLY)


def readonly_rootfs(plan: RootfsPlan) -> None:
    if plan.readonly:
        _libc.mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY)


def _mkdir(path: str, mode: int) -> None:
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        pass


def _ensure_file(path: str) -> None:
    try:
        os.stat(path)
        return
    except FileNotFoundError:
        pass
    try:  # a dangling symlink (e.g. resolv.conf -> ../run/...) cannot be bound over
        os.unlink(path)
    except FileNotFoundError:
        pass
    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
