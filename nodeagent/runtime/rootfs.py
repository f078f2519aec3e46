"""The container's filesystem, built inside its own mount namespace.

Runs in the container's PID 1 before pivot_root. ``/`` is made rprivate
first; then a small *staging* tmpfs goes on ``bundle/rootfs``::

    staging/init/{proc,sys,dev,etc/hosts,etc/hostname,etc/resolv.conf}
                          empty mountpoints: the overlay's topmost lower layer
    staging/{hosts,hostname,resolv.conf}
                          the generated files, bound over the mountpoints
    staging/root          where the overlay is mounted, and pivoted into

then the overlay (init layer over the image's layers, writable ``upper``),
/proc, /sys, /dev, the /etc binds, pivot_root, masked and read-only paths.

Why staging: the mountpoints and generated files are the same kind of thing
every time, and making them on the container's disk (copying up ``/etc`` to
create ``/etc/hosts``, writing three files beside it, and removing all of it
again) was a dozen metadata operations per container on the disk's slow
path. In the staging tmpfs they cost microseconds, and they vanish with the
mount namespace: nothing to clean up. The init layer plays the part of
Docker's per-container ``-init`` layer.

Invariant: none of these mounts is visible on (or propagates to) the host,
and they all vanish with the namespace when the container's last process
exits.
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
MOUNTPOINT_DIRS: tuple[str, ...] = ("proc", "sys", "dev", "etc")


@dataclass
class RootfsPlan:
    staging: str  # host path of the staging tmpfs's mountpoint, bundle/rootfs
    overlay_data: str  # from overlay_options(staging, ...)
    readonly: bool
    hostname: str
    etc_files: dict[str, str]  # name in ETC_FILES -> content
    masked_paths: tuple[str, ...]
    readonly_paths: tuple[str, ...]

    @property
    def rootfs(self) -> str:
        """Where the container's root is assembled (the overlay's mountpoint)."""
        return os.path.join(self.staging, "root")


def overlay_options(staging: str, lower_dirs: list[str], writable: tuple[str, str] | None,
                    volatile: bool = False) -> str:
    """Mount options for the container's overlay: the staging init layer on
    top of the image's layers. ``writable`` is the (upper, work) pair;
    without it (a read-only rootfs) the overlay has no writable layer at all,
    so it needs nothing on disk.
    ``volatile`` skips every sync of the upper layer, including the one at
    unmount that makes a container's exit and cleanup wait on the disk."""
    opts = "lowerdir=" + ":".join([os.path.join(staging, "init"), *lower_dirs])
    if writable is None:
        return opts
    opts += f",upperdir={writable[0]},workdir={writable[1]}"
    return opts + ",volatile" if volatile else opts


def make_root_private(plan: RootfsPlan) -> None:
    _libc.mount(None, "/", None, MS_REC | MS_PRIVATE)


def mount_staging(plan: RootfsPlan) -> None:
    """The staging tmpfs: init layer, generated files, overlay mountpoint."""
    _libc.mount("tmpfs", plan.staging, "tmpfs", MS_NOSUID | MS_NODEV, "mode=755,size=1m")
    init = os.path.join(plan.staging, "init")
    for path in (plan.rootfs, init, *(os.path.join(init, d) for d in MOUNTPOINT_DIRS)):
        os.mkdir(path, 0o755)
    for name in ETC_FILES:
        os.close(os.open(os.path.join(init, "etc", name), os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC,
                         0o644))
        fd = os.open(os.path.join(plan.staging, name), os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC,
                     0o644)
        try:
            os.write(fd, plan.etc_files.get(name, "").encode())
        finally:
            os.close(fd)


def mount_overlay(plan: RootfsPlan) -> None:
    _libc.mount("overlay", plan.rootfs, "overlay", 0, plan.overlay_data)


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
        _libc.mount(os.path.join(plan.staging, name), os.path.join(plan.rootfs, "etc", name),
                    None, MS_BIND)


def set_hostname(plan: RootfsPlan) -> None:
    _libc.sethostname(plan.hostname)


def pivot(plan: RootfsPlan) -> None:
    # pivot_root(".", ".") stacks the old root on the new one; detaching it
    # leaves only the container's tree (the staging tmpfs goes with the old
    # root; the overlay and the binds keep what they use of it): the host is
    # unreachable from here.
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

