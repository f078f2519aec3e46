"""The runtime's only door to the kernel calls Python's ``os`` lacks (3.11).

Every wrapper raises :class:`SyscallError` (an ``OSError``) naming the call and
its arguments, so a failing container setup step can say exactly what it
tried. Functions are safe to call in a freshly forked child: nothing here
imports, allocates threads or takes locks.
"""

from __future__ import annotations

import ctypes
import gc
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
# Name of each namespace under /proc/<pid>/ns/.
NAMESPACE_PROC_NAMES: dict[str, str] = {
    "mount": "mnt",
    "uts": "uts",
    "ipc": "ipc",
    "net": "net",
    "pid": "pid",
    "cgroup": "cgroup",
}

# <sys/mount.h>
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# <sys/prctl.h>
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2

_SYS_PIVOT_ROOT = 155  # x86_64
_SYS_CLONE = 56  # x86_64
_SYS_CLOSE_RANGE = 436
SIGCHLD = 17
CLOSE_RANGE_CLOEXEC = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


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


# Called with the GIL held (PyDLL), so nothing else runs between the hooks
# and the clone, exactly as in os.fork().
_pyapi = ctypes.pythonapi
_held_syscall = ctypes.PyDLL(None, use_errno=True).syscall
_held_syscall.restype = ctypes.c_long


def clone_process(flags: int) -> int:
    """fork() into new namespaces: ``clone(flags | SIGCHLD)`` with Python's
    fork hooks run in the parent. Returns 0 in the child and its pid in the
    parent.

    One call replaces unshare-then-fork (whose intermediate child costs a
    second copy of the caller's address space). The caller must be
    single-threaded, as for os.fork().

    The child is a copy for a short life: it makes calls, then execs or
    ``_exit``s. It skips Python's after-fork work (``PyOS_AfterFork_Child``):
    with one thread there is no lock to reset, and the hooks modules register
    (threading's bookkeeping, random's reseed, ...) prepare a child that goes
    on running Python. Running them cost the child ~100 copy-on-write faults
    and ~15% of its CPU. So the child must not start threads, import, or rely
    on a hook; a signal that arrived just before the clone may still run its
    (inherited) handler in the child.
    """
    _pyapi.PyOS_BeforeFork()
    pid = _held_syscall(ctypes.c_long(_SYS_CLONE), ctypes.c_ulong(flags | SIGCHLD),
                        ctypes.c_void_p(0), ctypes.c_void_p(0), ctypes.c_void_p(0),
                        ctypes.c_ulong(0))
    if pid == 0:
        # A collection would walk (and copy-on-write fault) the whole
        # inherited heap for nothing.
        gc.disable()
        return 0
    err = ctypes.get_errno()
    _pyapi.PyOS_AfterFork_Parent()
    if pid < 0:
        raise SyscallError(err, "clone", (hex(flags),))
    return int(pid)


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


def pivot_root(new_root: str | bytes, put_old: str | bytes) -> None:
    res = _libc.syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old))
    _check(res, "pivot_root", new_root, put_old)


def unshare(flags: int) -> None:
    _check(_libc.unshare(flags), "unshare", hex(flags))


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(fd, nstype), "setns", fd, hex(nstype))


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, len(raw)), "sethostname", name)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    res = _libc.prctl(
        option, ctypes.c_ulong(arg2), ctypes.c_ulong(arg3), ctypes.c_ulong(arg4),
        ctypes.c_ulong(arg5),
    )
    return _check(res, "prctl", option, arg2, arg3, arg4, arg5)


def close_range_cloexec(first: int) -> None:
    """Mark every fd >= ``first`` close-on-exec: nothing leaks into the container."""
    res = _libc.syscall(_SYS_CLOSE_RANGE, ctypes.c_uint(first), ctypes.c_uint(0xFFFFFFFF),
                        ctypes.c_uint(CLOSE_RANGE_CLOEXEC))
    _check(res, "close_range", first, "~0", "CLOSE_RANGE_CLOEXEC")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the calling thread's capability sets (64-bit masks)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    res = _libc.capset(ctypes.byref(header), data)
    _check(res, "capset", hex(effective), hex(permitted), hex(inheritable))


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class SeccompProgram:
    """A compiled classic-BPF seccomp filter, loadable with one prctl."""

    def __init__(self, bpf: bytes) -> None:
        if len(bpf) % 8:
            raise ValueError(f"seccomp program of {len(bpf)} bytes is not whole instructions")
        self._buf = ctypes.create_string_buffer(bpf, len(bpf))
        self._prog = _SockFprog(len(bpf) // 8, ctypes.cast(self._buf, ctypes.c_void_p))

    def load(self) -> None:
        res = _libc.prctl(
            PR_SET_SECCOMP, ctypes.c_ulong(SECCOMP_MODE_FILTER), ctypes.byref(self._prog),
            ctypes.c_ulong(0), ctypes.c_ulong(0),
        )
        _check(res, "prctl", "PR_SET_SECCOMP", "SECCOMP_MODE_FILTER", f"<{self._prog.len} insns>")
