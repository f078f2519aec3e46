"""The default seccomp profile as classic BPF, built once per process.

Default action ALLOW; the calls that reach across the container boundary
(mounts, module loading, keyrings, namespaces, kexec, bpf, ...) fail with
EPERM. The program is built in the runtime so a container's setup
(``orch-init/process.c``) only pays for one ``prctl(PR_SET_SECCOMP)``.

For the architectures in :data:`SYSCALL_NUMBERS` the program is written here,
in the shape libseccomp gives this profile: check the audit arch (anything
else is killed), on x86_64 kill x32-ABI numbers, then one compare per denied
call. Loading libseccomp's Python binding instead cost the supervisor 1.2 MiB
(it loads ``ctypes.util`` and with it subprocess, shutil, lzma, ...). The
tests check
these programs against libseccomp's for every syscall number; other
architectures still compile through libseccomp.
"""

from __future__ import annotations

import errno
import os
import struct

DENIED_SYSCALLS: tuple[str, ...] = (
    "mount", "umount2", "pivot_root", "reboot", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "keyctl", "add_key", "request_key",
    "swapon", "swapoff", "acct", "unshare", "setns", "bpf", "perf_event_open",
    "open_by_handle_at", "name_to_handle_at", "quotactl", "syslog", "fsopen", "fsconfig",
    "fsmount", "move_mount", "open_tree", "fspick", "mount_setattr", "userfaultfd",
    "lookup_dcookie", "uselib", "settimeofday", "clock_settime", "stime", "vhangup",
    "iopl", "ioperm", "create_module", "get_kernel_syms", "query_module", "nfsservctl",
)

# The denied calls' numbers (the kernel's syscall tables); a call an
# architecture lacks (stime on both, iopl on aarch64, ...) is absent.
SYSCALL_NUMBERS: dict[str, dict[str, int]] = {
    "x86_64": {
        "mount": 165, "umount2": 166, "pivot_root": 155, "reboot": 169, "kexec_load": 246,
        "kexec_file_load": 320, "init_module": 175, "finit_module": 313, "delete_module": 176,
        "keyctl": 250, "add_key": 248, "request_key": 249, "swapon": 167, "swapoff": 168,
        "acct": 163, "unshare": 272, "setns": 308, "bpf": 321, "perf_event_open": 298,
        "open_by_handle_at": 304, "name_to_handle_at": 303, "quotactl": 179, "syslog": 103,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "move_mount": 429, "open_tree": 428,
        "fspick": 433, "mount_setattr": 442, "userfaultfd": 323, "lookup_dcookie": 212,
        "uselib": 134, "settimeofday": 164, "clock_settime": 227, "vhangup": 153, "iopl": 172,
        "ioperm": 173, "create_module": 174, "get_kernel_syms": 177, "query_module": 178,
        "nfsservctl": 180,
    },
    "aarch64": {
        "mount": 40, "umount2": 39, "pivot_root": 41, "reboot": 142, "kexec_load": 104,
        "kexec_file_load": 294, "init_module": 105, "finit_module": 273, "delete_module": 106,
        "keyctl": 219, "add_key": 217, "request_key": 218, "swapon": 224, "swapoff": 225,
        "acct": 89, "unshare": 97, "setns": 268, "bpf": 280, "perf_event_open": 241,
        "open_by_handle_at": 265, "name_to_handle_at": 264, "quotactl": 60, "syslog": 116,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "move_mount": 429, "open_tree": 428,
        "fspick": 433, "mount_setattr": 442, "userfaultfd": 282, "lookup_dcookie": 18,
        "settimeofday": 170, "clock_settime": 112, "vhangup": 58, "nfsservctl": 42,
    },
}
AUDIT_ARCH: dict[str, int] = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000  # x86_64 only: the x32 ABI's numbers

# Classic BPF (linux/filter.h) and seccomp (linux/seccomp.h).
BPF_LD_W_ABS = 0x20
BPF_JEQ_K = 0x15
BPF_JGE_K = 0x35
BPF_RET_K = 0x06
OFFSET_NR = 0  # struct seccomp_data.nr
OFFSET_ARCH = 4  # struct seccomp_data.arch
RET_KILL_THREAD = 0x00000000
RET_ERRNO = 0x00050000
RET_ALLOW = 0x7FFF0000

_cached: bytes | None = None


def build(arch: str, denied: tuple[str, ...] = DENIED_SYSCALLS) -> bytes:
    """The program for ``arch`` (a key of :data:`SYSCALL_NUMBERS`)."""
    table = SYSCALL_NUMBERS[arch]
    numbers = sorted({table[name] for name in denied if name in table})
    insns: list[tuple[int, int, int, int]] = []
    header = 5 if arch == "x86_64" else 3
    allow = header + len(numbers)
    deny, kill = allow + 1, allow + 2
    if kill > 255:
        raise ValueError(f"{len(numbers)} denied calls do not fit one jump")

    def jump(frm: int, to: int) -> int:
        return to - frm - 1

    insns.append((BPF_LD_W_ABS, 0, 0, OFFSET_ARCH))
    insns.append((BPF_JEQ_K, 0, jump(1, kill), AUDIT_ARCH[arch]))
    insns.append((BPF_LD_W_ABS, 0, 0, OFFSET_NR))
    if arch == "x86_64":
        # nr >= the x32 bit: kill, unless it is -1 (which the kernel rejects).
        insns.append((BPF_JGE_K, 0, 1, X32_SYSCALL_BIT))
        insns.append((BPF_JEQ_K, 0, jump(4, kill), 0xFFFFFFFF))
    for nr in numbers:
        insns.append((BPF_JEQ_K, jump(len(insns), deny), 0, nr))
    insns.append((BPF_RET_K, 0, 0, RET_ALLOW))
    insns.append((BPF_RET_K, 0, 0, RET_ERRNO | errno.EPERM))
    insns.append((BPF_RET_K, 0, 0, RET_KILL_THREAD))
    return b"".join(struct.pack("=HBBI", *insn) for insn in insns)


def compile_with_libseccomp(arch: int | None = None,
                            denied: tuple[str, ...] = DENIED_SYSCALLS) -> bytes:
    """The same profile compiled by libseccomp (for ``arch``, an audit arch
    value, or the native one): for other architectures, and the tests."""
    import tempfile

    import pyseccomp

    filt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    if arch is not None and arch != pyseccomp.system_arch():
        filt.add_arch(arch)
        filt.remove_arch(pyseccomp.system_arch())
    for name in denied:
        try:
            filt.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
        except OSError:
            continue  # unknown to this libseccomp / arch: nothing to deny
    with tempfile.TemporaryFile() as f:
        filt.export_bpf(f)
        f.seek(0)
        return f.read()


def default_program() -> bytes:
    """The compiled default profile (built on first use, then reused)."""
    global _cached
    if _cached is None:
        arch = os.uname().machine
        _cached = build(arch) if arch in SYSCALL_NUMBERS else compile_with_libseccomp()
    return _cached


__all__ = ["DENIED_SYSCALLS", "SYSCALL_NUMBERS", "build", "compile_with_libseccomp",
           "default_program"]
