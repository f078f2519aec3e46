"""The default seccomp profile, compiled once per process to classic BPF.

Default action ALLOW; the calls that reach across the container boundary
(mounts, module loading, keyrings, namespaces, kexec, bpf, ...) fail with
EPERM. The program is built in the parent so a container's setup only pays
for one ``prctl(PR_SET_SECCOMP)``.
"""

from __future__ import annotations

import errno
import tempfile

import pyseccomp

from nodeagent.runtime._libc import SeccompProgram

DENIED_SYSCALLS: tuple[str, ...] = (
    "mount", "umount2", "pivot_root", "reboot", "kexec_load", "kexec_file_load",
    "init_module", "finit_module", "delete_module", "keyctl", "add_key", "request_key",
    "swapon", "swapoff", "acct", "unshare", "setns", "bpf", "perf_event_open",
    "open_by_handle_at", "name_to_handle_at", "quotactl", "syslog", "fsopen", "fsconfig",
    "fsmount", "move_mount", "open_tree", "fspick", "mount_setattr", "userfaultfd",
    "lookup_dcookie", "uselib", "settimeofday", "clock_settime", "stime", "vhangup",
    "iopl", "ioperm", "create_module", "get_kernel_syms", "query_module", "nfsservctl",
)

_cached: SeccompProgram | None = None


def _compile() -> bytes:
    filt = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
    for name in DENIED_SYSCALLS:
        try:
            filt.add_rule(pyseccomp.ERRNO(errno.EPERM), name)
        except OSError:
            continue  # unknown to this libseccomp / arch: nothing to deny
    with tempfile.TemporaryFile() as f:
        filt.export_bpf(f)
        f.seek(0)
        return f.read()


def default_program() -> SeccompProgram:
    """The compiled default profile (built on first use, then reused)."""
    global _cached
    if _cached is None:
        _cached = SeccompProgram(_compile())
    return _cached


__all__ = ["DENIED_SYSCALLS", "default_program"]
