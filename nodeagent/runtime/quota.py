"""Writable-layer size limits: XFS and ext4 project quotas.

Role: a container's overlay ``upper`` and ``work`` dirs get a project id of
their own, with PROJINHERIT so that everything written under them inherits
it, and a block hard limit for that project. The filesystem then refuses the
write that would pass it (EDQUOT on ext4, ENOSPC on XFS), as Docker's
overlay2 does for ``--storage-opt size``. :func:`detect` says whether a
directory's filesystem enforces project quotas at all, and if not, why.

Invariants:
- A limit is only set where the filesystem *enforces* project quotas, asked
  of the kernel each time (quotactl), not assumed from mount options: a
  container that asks for a limit never runs without one.
- ``upper`` and ``work`` carry the same project id: overlayfs creates files
  in ``work`` and renames them into ``upper``, and both filesystems refuse
  (EXDEV) a rename into a PROJINHERIT dir of another project.
- A project id is in use while any inode carries it (the quota's inode
  count). Ids are derived from the container id and probed, so no table is
  kept: a removed container's id is free again once its files are deleted,
  even if the supervisor died before it could clear the limit. The dirs'
  own project id is the only record of which id a container has.
- Only the writable dirs are in the project, never the bundle dir: the
  supervisor's own writes there (record, log) do not count against the
  container.

Errors: :class:`QuotaError` (what failed and why, for the user).

Kernel interfaces, by header:
- ``<linux/fs.h>``: ``struct fsxattr``, ``FS_IOC_FSGETXATTR``,
  ``FS_IOC_FSSETXATTR``, ``FS_XFLAG_PROJINHERIT``;
- ``<linux/quota.h>``: ``PRJQUOTA``, ``QCMD``, ``Q_GETQUOTA``,
  ``Q_SETQUOTA``, ``struct if_dqblk``, ``QIF_BLIMITS``, ``QIF_DQBLKSIZE``;
- ``<linux/dqblk_xfs.h>``: ``Q_XGETQSTAT``, ``struct fs_quota_stat``,
  ``FS_QUOTA_PDQ_ACCT``, ``FS_QUOTA_PDQ_ENFD``;
- ``<asm-generic/unistd.h>``: ``__NR_quotactl_fd`` (Linux 5.14; before it,
  ``quotactl(2)`` on the filesystem's block device).
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import stat
import struct
from collections.abc import Sequence
from dataclasses import dataclass

# <linux/fs.h>: struct fsxattr { __u32 fsx_xflags, fsx_extsize, fsx_nextents,
# fsx_projid, fsx_cowextsize; unsigned char fsx_pad[8]; } (28 bytes)
FSXATTR = struct.Struct("=5I8s")
FS_IOC_FSGETXATTR = 0x801C581F  # _IOR('X', 31, struct fsxattr)
FS_IOC_FSSETXATTR = 0x401C5820  # _IOW('X', 32, struct fsxattr)
FS_XFLAG_PROJINHERIT = 0x00000200

# <linux/quota.h>
PRJQUOTA = 2
Q_GETQUOTA = 0x800007
Q_SETQUOTA = 0x800008
Q_SYNC = 0x800001
QIF_BLIMITS = 1
QIF_DQBLKSIZE = 1024  # block limits are in these units

# <linux/dqblk_xfs.h>: also answered by ext4 (through the VFS) since Linux 4.1
Q_XGETQSTAT = (ord("X") << 8) + 5
FS_QUOTA_PDQ_ACCT = 1 << 4
FS_QUOTA_PDQ_ENFD = 1 << 5
# struct fs_quota_stat is 80 bytes; qs_flags (__u16) follows the __s8 qs_version.
FS_QUOTA_STAT_SIZE = 80
FS_QUOTA_STAT_FLAGS = struct.Struct("=H")
FS_QUOTA_STAT_FLAGS_OFFSET = 2

NR_QUOTACTL_FD = 443  # the same number on every architecture

# Ids below this are left to the host's own /etc/projid; the kernel takes
# 32-bit ids, and ids up to 2**31 stay clear of tools that read them as signed.
ID_BASE = 1 << 20
ID_SPAN = (1 << 31) - ID_BASE
ALLOCATE_TRIES = 64

FIX = ("put the state dir's containers/ on xfs mounted with -o pquota, or on ext4 made with "
       "-O project,quota and mounted with -o prjquota, on a kernel with quota support")


def QCMD(cmd: int, qtype: int) -> int:  # the kernel macro, by its name
    return (cmd << 8) | (qtype & 0xFF)


class IfDqblk(ctypes.Structure):
    """``struct if_dqblk`` (<linux/quota.h>): limits in QIF_DQBLKSIZE blocks,
    ``dqb_curspace`` in bytes; ``dqb_valid`` says which fields a set uses."""

    _fields_ = [
        ("dqb_bhardlimit", ctypes.c_uint64),
        ("dqb_bsoftlimit", ctypes.c_uint64),
        ("dqb_curspace", ctypes.c_uint64),
        ("dqb_ihardlimit", ctypes.c_uint64),
        ("dqb_isoftlimit", ctypes.c_uint64),
        ("dqb_curinodes", ctypes.c_uint64),
        ("dqb_btime", ctypes.c_uint64),
        ("dqb_itime", ctypes.c_uint64),
        ("dqb_valid", ctypes.c_uint32),
    ]


class QuotaError(Exception):
    """A limit could not be set, read or cleared; the message says why, and
    ``errno`` is the failed call's error number (0: no call failed)."""

    def __init__(self, message: str, err: int | None = 0) -> None:
        super().__init__(message)
        self.errno = err or 0


# ---- where a directory lives: /proc/self/mountinfo ---------------------------------------

@dataclass(frozen=True)
class Mount:
    """One line of /proc/self/mountinfo (proc(5))."""

    dev: tuple[int, int]
    root: str
    mount_point: str
    mount_options: str
    fstype: str
    source: str
    super_options: str

    @property
    def options(self) -> frozenset[str]:
        """Per-mount and superblock options, names only (``logbsize=32k`` -> ``logbsize``)."""
        words = f"{self.mount_options},{self.super_options}".split(",")
        return frozenset(w.partition("=")[0] for w in words if w)

    def describe(self) -> str:
        return f"{self.fstype} ({self.source} at {self.mount_point})"


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text: str) -> list[Mount]:
    """Every well-formed line, in the file's order (later mounts lie on top).

    A line: ``id parent major:minor root mount_point options [optional...] -
    fstype source super_options``."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
            major, minor = fields[2].split(":")
            fstype, source, super_options = fields[sep + 1:sep + 4]
            mounts.append(Mount(dev=(int(major), int(minor)), root=_unescape(fields[3]),
                                mount_point=_unescape(fields[4]), mount_options=fields[5],
                                fstype=fstype, source=_unescape(source),
                                super_options=super_options))
        except ValueError:
            continue
    return mounts


def find_mount(path: str, dev: tuple[int, int], mounts: Sequence[Mount]) -> Mount | None:
    """The mount that holds ``path`` (absolute, symlinks resolved), whose
    filesystem is ``dev``: the longest mount point above it, the last one of
    equal length (mounted over the others). Failing that (a path outside this
    namespace's view), any mount of ``dev``."""
    best: Mount | None = None
    for m in mounts:
        if m.dev != dev:
            continue
        mp = m.mount_point.rstrip("/")
        above = path == mp or path.startswith(mp + "/") or mp == ""
        if above and (best is None or len(mp) >= len(best.mount_point.rstrip("/"))):
            best = m
    if best is not None:
        return best
    return next((m for m in reversed(mounts) if m.dev == dev), None)


def option_problem(mount: Mount) -> str | None:
    """Why ``mount``'s type and options cannot enforce project quotas, or
    None if they can (the kernel still has its say: see :func:`detect`).

    XFS shows ``prjquota`` when project quotas are enforced and
    ``pqnoenforce`` when they are only counted; ext4 shows ``prjquota``."""
    opts = mount.options
    if mount.fstype == "xfs":
        if opts & {"prjquota", "pquota"}:
            return None
        if "pqnoenforce" in opts:
            return "mounted with pqnoenforce (project quotas counted, not enforced)"
        return "mounted without pquota"
    if mount.fstype == "ext4":
        return None if "prjquota" in opts else "mounted without prjquota"
    return "which has no project quotas (xfs or ext4 needed)"


# ---- whether it enforces them -------------------------------------------------------------

@dataclass(frozen=True)
class Support:
    """What :func:`detect` found for ``path``: ``problems`` is empty where
    project quota limits are enforced."""

    path: str
    mount: Mount | None
    problems: tuple[str, ...]

    @property
    def enforced(self) -> bool:
        return not self.problems

    def reason(self) -> str:
        where = self.path if self.mount is None else f"{self.path} is on {self.mount.describe()}"
        return ", ".join([where, "; ".join(self.problems)]) if self.problems else where

    def describe(self) -> str:
        """The node's answer to "how is a storage size limit enforced here?"."""
        if self.enforced and self.mount is not None:
            return f"{self.mount.fstype} project quota on {self.mount.source} at {self.mount.mount_point}"
        return f"not enforced: {self.reason()}"

    def refusal(self, size_bytes: int) -> str:
        """The error for a container that asks for a limit this node cannot keep."""
        return (f"storage size limit ({size_bytes} bytes) cannot be enforced on this node: "
                f"{self.reason()}. To enable it, {FIX}")


def detect(path: str) -> Support:
    """Whether writes under ``path`` can be limited with a project quota.

    ``path`` need not exist yet: its nearest existing parent is asked."""
    path = os.path.realpath(path)
    existing = _existing(path)
    st = os.stat(existing)
    dev = (os.major(st.st_dev), os.minor(st.st_dev))
    with open("/proc/self/mountinfo") as f:
        mount = find_mount(existing, dev, parse_mountinfo(f.read()))
    if mount is None:
        return Support(path, None, ("its mount is not in /proc/self/mountinfo",))
    problem = option_problem(mount)
    if mount.fstype not in ("xfs", "ext4"):
        return Support(path, mount, (problem or "",))
    problems = [problem] if problem else []
    if not syscalls()[1]:
        problems.append(NO_KERNEL_SUPPORT)
    if problems:  # what the kernel would say adds nothing to these
        return Support(path, mount, tuple(problems))
    try:
        flags = quota_state(existing)
    except QuotaError as err:
        return Support(path, mount, (str(err),))
    if not flags & FS_QUOTA_PDQ_ENFD:
        state = "counted, not enforced" if flags & FS_QUOTA_PDQ_ACCT else "off"
        return Support(path, mount, (f"the kernel reports its project quotas {state}",))
    return Support(path, mount, ())


def _existing(path: str) -> str:
    while not os.path.exists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def quota_state(path: str) -> int:
    """``FS_QUOTA_*`` flags of ``path``'s filesystem (``Q_XGETQSTAT``)."""
    buf = ctypes.create_string_buffer(FS_QUOTA_STAT_SIZE)
    fd = _open_dir(path)
    try:
        _quotactl(fd, QCMD(Q_XGETQSTAT, PRJQUOTA), 0, buf, "Q_XGETQSTAT")
    finally:
        os.close(fd)
    (flags,) = FS_QUOTA_STAT_FLAGS.unpack_from(buf.raw, FS_QUOTA_STAT_FLAGS_OFFSET)
    return int(flags)


# ---- a container's limit ------------------------------------------------------------------

def candidate_ids(seed: str, count: int = ALLOCATE_TRIES) -> list[int]:
    """The project ids to try for a container, in order: from its id (hex
    digits, so containers spread over the whole range), then the next ones."""
    try:
        start = int(seed[:8], 16) % ID_SPAN
    except ValueError:
        start = 0
    return [ID_BASE + (start + i) % ID_SPAN for i in range(count)]


def apply_limit(dirs: Sequence[str], size_bytes: int, seed: str) -> int:
    """Put ``dirs`` (upper, work) in one project and limit it to
    ``size_bytes``; returns the project id. The dirs keep a project id they
    already have (a restarted container), so this is idempotent. Raises
    :class:`QuotaError` where the limit cannot be enforced."""
    if size_bytes <= 0:
        raise QuotaError(f"invalid size limit {size_bytes}: must be positive")
    support = detect(dirs[0])
    if not support.enforced:
        raise QuotaError(f"not enforced: {support.reason()}")
    fd = _open_dir(dirs[0])
    try:
        projid = get_project(dirs[0]) or _allocate(fd, seed)
        for path in dirs:
            set_project(path, projid)
        dq = IfDqblk(dqb_bhardlimit=-(-size_bytes // QIF_DQBLKSIZE), dqb_valid=QIF_BLIMITS)
        _quotactl(fd, QCMD(Q_SETQUOTA, PRJQUOTA), projid, ctypes.byref(dq), "Q_SETQUOTA")
    finally:
        os.close(fd)
    return projid


def usage(path: str) -> tuple[int, int]:
    """(bytes used, limit in bytes; 0 = none) of ``path``'s project."""
    projid = get_project(path)
    return project_usage(path, projid) if projid else (0, 0)


def project_usage(path: str, projid: int) -> tuple[int, int]:
    """(bytes used, limit in bytes; 0 = none) of project ``projid`` on
    ``path``'s filesystem."""
    try:
        dq = _get_quota(path, projid)
    except QuotaError as err:
        if err.errno == errno.ENOENT:  # XFS: no entry, so no use and no limit
            return 0, 0
        raise
    return int(dq.dqb_curspace), int(dq.dqb_bhardlimit) * QIF_DQBLKSIZE


def clear_limit(path: str) -> int:
    """Drop the limit of ``path``'s project; returns its id (0: ``path`` is
    gone or in no project, nothing to do). The dirs keep the id, which is
    free again once they are deleted."""
    try:
        projid = get_project(path)
    except FileNotFoundError:
        return 0
    if not projid:
        return 0
    fd = _open_dir(path)
    try:
        dq = IfDqblk(dqb_valid=QIF_BLIMITS)
        _quotactl(fd, QCMD(Q_SETQUOTA, PRJQUOTA), projid, ctypes.byref(dq), "Q_SETQUOTA")
    finally:
        os.close(fd)
    return projid


def _allocate(fd: int, seed: str) -> int:
    for projid in candidate_ids(seed):
        try:
            dq = _get_quota_fd(fd, projid)
        except QuotaError as err:
            if err.errno == errno.ENOENT:
                return projid  # XFS has no entry for an id nothing ever used
            raise
        if not dq.dqb_curinodes and not dq.dqb_curspace:
            return projid
    raise QuotaError(f"no free project id among {ALLOCATE_TRIES} tried from "
                     f"{candidate_ids(seed, 1)[0]}")


def _get_quota(path: str, projid: int) -> IfDqblk:
    fd = _open_dir(path)
    try:
        return _get_quota_fd(fd, projid)
    finally:
        os.close(fd)


def _get_quota_fd(fd: int, projid: int) -> IfDqblk:
    dq = IfDqblk()
    _quotactl(fd, QCMD(Q_GETQUOTA, PRJQUOTA), projid, ctypes.byref(dq), "Q_GETQUOTA")
    return dq


# ---- project ids on directories -----------------------------------------------------------

def get_project(path: str) -> int:
    """The project id of ``path``, a file or directory (0: none)."""
    return _fsxattr(path)[3]


def set_project(path: str, projid: int) -> None:
    """Give the directory ``path`` project ``projid``, inherited by whatever
    is created under it from now on."""
    fd = _open_dir(path)
    try:
        xflags, extsize, nextents, old, cowextsize, pad = _get_fsxattr(fd, path)
        if old == projid and xflags & FS_XFLAG_PROJINHERIT:
            return
        value = FSXATTR.pack(xflags | FS_XFLAG_PROJINHERIT, extsize, nextents, projid, cowextsize, pad)
        try:
            fcntl.ioctl(fd, FS_IOC_FSSETXATTR, value)
        except OSError as err:
            raise QuotaError(f"FS_IOC_FSSETXATTR({path}, projid={projid}): "
                             f"{err.strerror}", err.errno) from err
    finally:
        os.close(fd)


def _fsxattr(path: str) -> tuple[int, int, int, int, int, bytes]:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return _get_fsxattr(fd, path)
    finally:
        os.close(fd)


def _get_fsxattr(fd: int, path: str) -> tuple[int, int, int, int, int, bytes]:
    buf = bytearray(FSXATTR.size)
    try:
        fcntl.ioctl(fd, FS_IOC_FSGETXATTR, buf, True)
    except OSError as err:
        raise QuotaError(f"FS_IOC_FSGETXATTR({path}): {err.strerror}", err.errno) from err
    return FSXATTR.unpack(buf)  # type: ignore[return-value]


def _open_dir(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


# ---- quotactl -----------------------------------------------------------------------------

NO_KERNEL_SUPPORT = "this kernel has no quota support (quotactl: Function not implemented)"

_libc: ctypes.CDLL | None = None
_syscalls: tuple[bool, bool] | None = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        from nodeagent.runtime._libc import _load_libc

        _libc = _load_libc()
    return _libc


def syscalls() -> tuple[bool, bool]:
    """Whether this kernel has (``quotactl_fd``, ``quotactl``). Asked with
    calls that cannot act: an fd of -1 (EBADF where the call exists) and a
    Q_SYNC of no device. A kernel built without CONFIG_QUOTACTL answers
    ENOSYS to both. ENOSYS is no proof otherwise: a filesystem with no quota
    on answers it too, which is why the calls themselves are probed."""
    global _syscalls
    if _syscalls is None:
        libc = _c()
        res = libc.syscall(ctypes.c_long(NR_QUOTACTL_FD), ctypes.c_int(-1),
                           ctypes.c_uint(QCMD(Q_XGETQSTAT, PRJQUOTA)), ctypes.c_uint(0), None)
        has_fd = res == 0 or ctypes.get_errno() != errno.ENOSYS
        res = libc.quotactl(ctypes.c_int(QCMD(Q_SYNC, PRJQUOTA)), None, ctypes.c_int(0), None)
        has_quotactl = has_fd or res == 0 or ctypes.get_errno() != errno.ENOSYS
        _syscalls = (has_fd, has_quotactl)
    return _syscalls


def _quotactl(fd: int, cmd: int, qid: int, addr: object, name: str) -> None:
    """quotactl on the filesystem of the open file ``fd``: ``quotactl_fd``,
    or, on a kernel older than 5.14, ``quotactl`` on its block device."""
    has_fd, has_quotactl = syscalls()
    if not has_quotactl:
        raise QuotaError(NO_KERNEL_SUPPORT, errno.ENOSYS)
    libc = _c()
    if has_fd:
        res = libc.syscall(ctypes.c_long(NR_QUOTACTL_FD), ctypes.c_int(fd), ctypes.c_uint(cmd),
                           ctypes.c_uint(qid), addr)
    else:
        device = _block_device(fd)
        if device is None:
            st_dev = os.fstat(fd).st_dev
            raise QuotaError(f"no quotactl_fd (Linux 5.14), and no block device node for "
                             f"{os.major(st_dev)}:{os.minor(st_dev)} to call quotactl on")
        res = libc.quotactl(ctypes.c_int(cmd), os.fsencode(device), ctypes.c_int(qid), addr)
    if res < 0:
        err = ctypes.get_errno()
        what = f"quotactl({name}, project {qid})" if qid else f"quotactl({name})"
        raise QuotaError(f"{what}: {_explain(err)}", err)


def _explain(err: int) -> str:
    if err == errno.ENOSYS:
        return "no quota is on for this filesystem"
    if err == errno.ESRCH:
        return "project quotas are off on this filesystem"
    return os.strerror(err)


def _block_device(fd: int) -> str | None:
    """A device node for ``fd``'s filesystem: the mount's source, or udev's
    /dev/block link, if either is that device."""
    st_dev = os.fstat(fd).st_dev
    dev = (os.major(st_dev), os.minor(st_dev))
    try:
        with open("/proc/self/mountinfo") as f:
            sources = [m.source for m in parse_mountinfo(f.read()) if m.dev == dev]
    except OSError:
        sources = []
    for candidate in [*sources, f"/dev/block/{dev[0]}:{dev[1]}"]:
        try:
            st = os.stat(candidate)
        except OSError:
            continue
        if stat.S_ISBLK(st.st_mode) and st.st_rdev == st_dev:
            return candidate
    return None


__all__ = ["FIX", "NO_KERNEL_SUPPORT", "Mount", "QuotaError", "Support", "apply_limit",
           "candidate_ids", "clear_limit", "detect", "find_mount", "get_project", "option_problem",
           "parse_mountinfo", "project_usage", "quota_state", "set_project", "syscalls", "usage"]
