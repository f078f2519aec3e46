"""The few kernel calls Python's ``os`` lacks (3.11) that orch's Python
makes itself: the container set-up makes its own in ``orch-init/``.

Every wrapper raises :class:`SyscallError` (an ``OSError``) naming the call and
its arguments.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any


def _load_libc() -> ctypes.CDLL:
    # By soname first: ctypes.util.find_library runs ldconfig and costs ~2 MB
    # of RSS in every process that imports the runtime.
    try:
        return ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        from ctypes import util

        return ctypes.CDLL(util.find_library("c") or "libc.so.6", use_errno=True)


_libc = _load_libc()

# <sched.h>
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

NAMESPACE_FLAGS: dict[str, int] = {
    "mount": CLONE_NEWNS,
    "uts": CLONE_NEWUTS,
    "ipc": CLONE_NEWIPC,
    "net": CLONE_NEWNET,
    "pid": CLONE_NEWPID,
    "cgroup": CLONE_NEWCGROUP,
}

# <sys/mount.h>
MS_RDONLY = 1
MNT_DETACH = 2


class SyscallError(OSError):
    """A failed call, with the call's name and arguments kept for reports."""

    def __init__(self, err: int, call: str, args: tuple[Any, ...]) -> None:
        super().__init__(err, f"{call}{_fmt_args(args)}: {os.strerror(err)}")
        self.call = call
        self.call_args = args


def _fmt_args(args: tuple[Any, ...]) -> str:
    return "(" + ", ".join(a.decode() if isinstance(a, bytes) else repr(a) for a in args) + ")"


def _check(result: int, call: str, *args: Any) -> int:
    if result < 0:
        raise SyscallError(ctypes.get_errno(), call, args)
    return result


def _b(path: str | bytes | None) -> bytes | None:
    if path is None or isinstance(path, bytes):
        return path
    return os.fsencode(path)


def malloc_trim() -> None:
    """Hand freed heap back to the OS (glibc keeps a process's peak otherwise)."""
    _libc.malloc_trim(0)


def mount(
    source: str | bytes | None,
    target: str | bytes,
    fstype: str | bytes | None,
    flags: int = 0,
    data: str | bytes | None = None,
) -> None:
    res = _libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data))
    _check(res, "mount", source, target, fstype, flags, data)


def umount2(target: str | bytes, flags: int = 0) -> None:
    _check(_libc.umount2(_b(target), flags), "umount2", target, flags)


def setns(fd: int, nstype: int) -> None:
    """Move the calling thread into the namespace ``fd`` refers to."""
    _check(_libc.setns(fd, nstype), "setns", fd, hex(nstype))
