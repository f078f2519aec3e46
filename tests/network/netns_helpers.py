"""Helpers for entering network namespaces from tests (fork + setns, nsenter)."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
from collections.abc import Callable

from nodeagent.runtime.spec import NetworkConfig

PYTHON = sys.executable
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def setns_net(pid: int) -> None:
    fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns(/proc/{pid}/ns/net): {os.strerror(err)}")
    finally:
        os.close(fd)


def run_in_ns(pid: int, fn: Callable[[], None]) -> None:
    """Run ``fn`` in a forked child that joined pid's net ns; raise if it failed."""
    r, w = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(r)
        code = 0
        try:
            setns_net(pid)
            fn()
        except BaseException as exc:
            os.write(w, repr(exc).encode())
            code = 1
        os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        err = f.read().decode()
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, err


def nsexec(pid: int, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["nsenter", f"--net=/proc/{pid}/ns/net", *cmd], capture_output=True, text=True, check=check
    )


def configure_container_side(pid: int, cfg: NetworkConfig) -> None:
    """What a container's init does to its side of the network, done with
    ip(8) for the stand-in containers here (the init's own set-up is tested
    through the runtime, in tests/runtime): lo up; eth0 without IPv6, with
    its address, up; the default route via the gateway."""
    nsexec(pid, "ip", "link", "set", "lo", "up")
    nsexec(pid, "sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1")
    nsexec(pid, "ip", "addr", "add", f"{cfg.address}/{cfg.prefixlen}", "dev", "eth0")
    nsexec(pid, "ip", "link", "set", "eth0", "up")
    nsexec(pid, "ip", "route", "add", "default", "via", cfg.gateway)
