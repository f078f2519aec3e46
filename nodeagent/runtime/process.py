"""Turning a set-up child into the container's process: the finalize checklist.

Shared by a container's PID 1 (after its rootfs is ready) and by ``exec``.
:func:`build_plan` runs in the parent and precomputes everything (masks,
rlimit numbers, the seccomp program) so the forked child only makes calls.

Order matters and is why it is a checklist: the bounding set is dropped and
seccomp loaded while the child still has CAP_SYS_ADMIN (loading without
no_new_privs needs it); groups and gid before uid; PR_SET_KEEPCAPS around
setuid so capset can restore the permitted set for root and non-root alike
(execve then clears a non-root user's capabilities, as in Docker).
"""

from __future__ import annotations

import _signal
import os
import resource
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from nodeagent.errors import InvalidArgument, SetupError
from nodeagent.runtime import _libc, capabilities, channel, seccomp
from nodeagent.runtime.api import Stdio
from nodeagent.runtime.spec import ProcessSpec
from nodeagent.runtime.user import ResolvedUser, resolve

T = TypeVar("T")

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
    seccomp: _libc.SeccompProgram | None
    rlimits: list[tuple[int, int, int]]
    stdio: tuple[int | None, int | None, int | None]
    report_fd: int
    resolved: ResolvedUser | None = None
    ignored_signals: list[int] = field(default_factory=list)


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
    # Signals the parent ignores stay ignored across execve; the container
    # must start with default dispositions (Python itself ignores SIGPIPE).
    # _signal: signal.getsignal makes an enum of every answer.
    ignored = [s for s in _CATCHABLE if _signal.getsignal(s) == _signal.SIG_IGN]
    return ProcessPlan(
        args=list(process.args), env=env, cwd=process.cwd or "/", user=process.user,
        cap_mask=mask, cap_drop=capabilities.to_drop(mask, _LAST_CAP),
        no_new_privs=process.no_new_privileges,
        seccomp=seccomp.default_program() if process.seccomp else None,
        rlimits=rlimits, stdio=(stdio.stdin, stdio.stdout, stdio.stderr),
        report_fd=report_fd, ignored_signals=ignored,
    )


_LAST_CAP = capabilities.last_cap()
# As plain ints: valid_signals() makes an enum of each, on every container.
_CATCHABLE = tuple(int(s) for s in signal.valid_signals()
                   if s not in (signal.SIGKILL, signal.SIGSTOP))
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


# --- the checklist (runs in the child) ---------------------------------------

def set_rlimits(plan: ProcessPlan) -> None:
    for number, soft, hard in plan.rlimits:
        resource.setrlimit(number, (soft, hard))


def resolve_user(plan: ProcessPlan) -> None:
    try:
        plan.resolved = resolve(plan.user)
    except LookupError as exc:
        raise SetupError("resolve_user", plan.user, str(exc))
    plan.env.setdefault("HOME", plan.resolved.home)


def change_dir(plan: ProcessPlan) -> None:
    try:
        os.chdir(plan.cwd)
    except FileNotFoundError:
        os.makedirs(plan.cwd, mode=0o755)  # Docker creates a missing workdir
        os.chdir(plan.cwd)


def connect_stdio(plan: ProcessPlan) -> None:
    # Move every source above the others first, so swapped fds survive.
    null = -1
    sources = []
    for fd in plan.stdio:
        if fd is None:
            if null < 0:
                null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
            fd = null
        sources.append(os.dup(fd) if fd < 3 else fd)
    for target, fd in enumerate(sources):
        os.dup2(fd, target, inheritable=True)


def drop_bounding_caps(plan: ProcessPlan) -> None:
    for cap in plan.cap_drop:
        _libc.prctl(_libc.PR_CAPBSET_DROP, cap)


def set_no_new_privs(plan: ProcessPlan) -> None:
    if plan.no_new_privs:
        _libc.prctl(_libc.PR_SET_NO_NEW_PRIVS, 1)


def load_seccomp(plan: ProcessPlan) -> None:
    if plan.seccomp is not None:
        plan.seccomp.load()


def set_groups(plan: ProcessPlan) -> None:
    assert plan.resolved is not None
    os.setgroups(plan.resolved.groups)
    os.setresgid(plan.resolved.gid, plan.resolved.gid, plan.resolved.gid)


def set_user(plan: ProcessPlan) -> None:
    assert plan.resolved is not None
    _libc.prctl(_libc.PR_SET_KEEPCAPS, 1)
    os.setresuid(plan.resolved.uid, plan.resolved.uid, plan.resolved.uid)
    _libc.prctl(_libc.PR_SET_KEEPCAPS, 0)


def set_capabilities(plan: ProcessPlan) -> None:
    _libc.capset(plan.cap_mask, plan.cap_mask, plan.cap_mask)


def reset_signals(plan: ProcessPlan) -> None:
    for sig in plan.ignored_signals:
        signal.signal(sig, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


def mark_fds_cloexec(plan: ProcessPlan) -> None:
    _libc.close_range_cloexec(3)


Step = Callable[[ProcessPlan], None]

# Everything up to the point where only execve is left.
FINALIZE_STEPS: tuple[tuple[str, Step], ...] = (
    ("rlimits", set_rlimits),
    ("resolve_user", resolve_user),
    ("cwd", change_dir),
    ("stdio", connect_stdio),
    ("drop_bounding_caps", drop_bounding_caps),
    ("no_new_privs", set_no_new_privs),
    ("seccomp", load_seccomp),
    ("setgroups", set_groups),
    ("setuid", set_user),
    ("capset", set_capabilities),
    ("reset_signals", reset_signals),
    ("close_fds", mark_fds_cloexec),
)


def run_steps(steps: Sequence[tuple[str, Callable[[T], None]]], plan: T, report_fd: int) -> None:
    """Run a checklist; on the first failure report it and _exit (never returns)."""
    for name, fn in steps:
        try:
            fn(plan)
        except BaseException as exc:
            channel.fail(report_fd, name, exc)


def exec_process(plan: ProcessPlan) -> None:
    """execvpe with PATH from the container env; reports and exits on failure."""
    try:
        os.execvpe(plan.args[0], plan.args, plan.env)
    except OSError as exc:
        err = SetupError("exec", plan.args, exc.strerror or str(exc), exc.errno or 0)
        channel.fail(plan.report_fd, "exec", err)
    except BaseException as exc:
        channel.fail(plan.report_fd, "exec", exc)
