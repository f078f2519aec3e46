"""The process a container runs: its plan, built and checked in the runtime.

Shared by a container's PID 1 and by ``exec``. :func:`build_plan` runs in
the runtime and precomputes everything (masks, rlimit numbers, the seccomp
program); :func:`entries` hands it to ``orch-init`` (``orch-init/process.c``), whose
process checklist makes only the calls: rlimits, resolve_user, cwd,
console (a tty process's pty), stdio (with a tty: a new session, the pty as
its controlling terminal, owned by the user), drop_bounding_caps,
no_new_privs, seccomp, setgroups, setuid, capset, close_fds, then exec.
Those names are the steps a SetupError reports.

Order matters in that checklist: the bounding set is dropped and seccomp
loaded while the child still has CAP_SYS_ADMIN (loading without
no_new_privs needs it); groups and gid before uid; PR_SET_KEEPCAPS around
setuid so capset can restore the permitted set for root and non-root alike
(execve then clears a non-root user's capabilities, as in Docker).
"""

from __future__ import annotations

import resource
from collections.abc import Iterator
from dataclasses import dataclass

from common.errors import InvalidArgument
from nodeagent.runtime import capabilities, seccomp
from nodeagent.runtime.api import Stdio
from nodeagent.runtime.native import Entry
from nodeagent.runtime.spec import ProcessSpec

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass
class ProcessPlan:
    args: list[str]
    env: dict[str, str]
    cwd: str
    user: str
    cap_mask: int
    cap_drop: list[int]
    no_new_privs: bool
    seccomp: bytes | None  # a classic-BPF program
    rlimits: list[tuple[int, int, int]]
    stdio: tuple[int | None, int | None, int | None]
    report_fd: int
    console_fd: int | None = None  # tty: the socket the pty's master goes over
    console_size: tuple[int, int] = (0, 0)


def build_plan(process: ProcessSpec, stdio: Stdio, hostname: str, report_fd: int) -> ProcessPlan:
    if not process.args:
        raise InvalidArgument("process.args is empty: nothing to run")
    env: dict[str, str] = {}
    for item in process.env:
        key, sep, value = item.partition("=")
        if not key or not sep:
            raise InvalidArgument(f"process.env entry {item!r} is not KEY=value")
        env[key] = value
    env.setdefault("PATH", DEFAULT_PATH)
    env.setdefault("HOSTNAME", hostname)
    rlimits = []
    for rl in process.rlimits:
        number = getattr(resource, rl.name, None)
        if not isinstance(number, int):
            raise InvalidArgument(f"unknown rlimit {rl.name!r}")
        rlimits.append(_fit_rlimit(number, rl.soft, rl.hard))
    mask = capabilities.to_mask(process.capabilities)
    # With a tty, the process's stdio is the pty's slave, and stdin is the
    # unix socket its master is sent over (see ProcessSpec.tty).
    if process.tty and stdio.stdin is None:
        raise InvalidArgument("a tty process needs a console socket (as its Stdio.stdin)")
    rows, cols = (int(n) for n in process.console_size)
    return ProcessPlan(
        args=list(process.args), env=env, cwd=process.cwd or "/", user=process.user,
        cap_mask=mask, cap_drop=capabilities.to_drop(mask, _LAST_CAP),
        no_new_privs=process.no_new_privileges,
        seccomp=seccomp.default_program() if process.seccomp else None,
        rlimits=rlimits,
        stdio=(None, None, None) if process.tty else (stdio.stdin, stdio.stdout, stdio.stderr),
        report_fd=report_fd,
        console_fd=stdio.stdin if process.tty else None, console_size=(rows, cols),
    )


_LAST_CAP = capabilities.last_cap()
_CAP_SYS_RESOURCE = 24


def _has_cap_sys_resource() -> bool:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) & (1 << _CAP_SYS_RESOURCE))
    except OSError:
        pass
    return True


_MAY_RAISE_RLIMITS = _has_cap_sys_resource()


def _fit_rlimit(number: int, soft: int, hard: int) -> tuple[int, int, int]:
    """Without CAP_SYS_RESOURCE (the runtime itself runs confined) a hard limit
    above ours cannot be set: cap it at ours instead of failing every container."""
    if not _MAY_RAISE_RLIMITS:
        _, own_hard = resource.getrlimit(number)
        if own_hard != resource.RLIM_INFINITY:
            hard = own_hard if hard == resource.RLIM_INFINITY else min(hard, own_hard)
            soft = hard if soft == resource.RLIM_INFINITY else min(soft, hard)
    return number, soft, hard


_UNSIGNED = (1 << 64) - 1  # RLIM_INFINITY is -1 here and ~0 to the kernel


def entries(plan: ProcessPlan) -> Iterator[Entry]:
    """The plan as ``orch-init`` entries (see ``native``)."""
    for arg in plan.args:
        yield "arg", arg
    for key, value in plan.env.items():
        yield "env", f"{key}={value}"
    yield "cwd", plan.cwd
    yield "user", plan.user
    yield "capmask", plan.cap_mask
    for cap in plan.cap_drop:
        yield "capdrop", cap
    yield "nnp", int(plan.no_new_privs)
    if plan.seccomp is not None:
        yield "seccomp", plan.seccomp.hex()
    for number, soft, hard in plan.rlimits:
        yield "rlimit", f"{number}:{soft & _UNSIGNED}:{hard & _UNSIGNED}"
    for name, fd in zip(("stdin", "stdout", "stderr"), plan.stdio, strict=True):
        if fd is not None:
            yield name, fd
    if plan.console_fd is not None:
        yield "console", plan.console_fd
        yield "winsize", "{} {}".format(*plan.console_size)
    yield "report", plan.report_fd


def fds(plan: ProcessPlan) -> list[int]:
    """The fds ``orch-init`` must inherit for this plan."""
    console = [] if plan.console_fd is None else [plan.console_fd]
    return [plan.report_fd, *(fd for fd in plan.stdio if fd is not None), *console]
