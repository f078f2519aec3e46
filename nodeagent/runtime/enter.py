"""``exec``: a new process inside a running container.

P forks E1. E1 joins the container's cgroup, opens every namespace of the
container's PID 1 first (/proc paths stop resolving once it enters the mount
namespace), enters them with the mount namespace last (entering it resets
root and cwd to the container's root), forks E2 (which lands in the pid
namespace), reports E2's pid and exits. E2 runs the finalize checklist and
execs. Same report-pipe rule as create: any failure -> report, _exit(127).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from nodeagent.runtime import _libc, channel, process
from nodeagent.runtime.cgroups import join_self
from nodeagent.runtime.process import ProcessPlan

# Order of setns; mount last.
ENTER_ORDER: tuple[str, ...] = ("ipc", "uts", "net", "pid", "cgroup", "mount")


@dataclass
class ExecPlan:
    target_pid: int
    cgroup_files: list[str]  # Cgroup.self_join_files() of the container's group
    process: ProcessPlan
    report_fd: int


def spawn(plan: ExecPlan) -> int:
    pid = os.fork()
    if pid == 0:
        try:
            _enter(plan)
        finally:
            os._exit(channel.EXIT_SETUP_FAILED)
    return pid


def _enter(plan: ExecPlan) -> None:
    report = plan.report_fd
    try:
        join_self(plan.cgroup_files)
    except BaseException as exc:
        channel.fail(report, "join_cgroup", exc)
    fds: list[tuple[str, int]] = []
    for name in ENTER_ORDER:
        path = f"/proc/{plan.target_pid}/ns/{_libc.NAMESPACE_PROC_NAMES[name]}"
        try:
            fds.append((name, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
        except BaseException as exc:
            channel.fail(report, "open_namespace", exc)
    for name, fd in fds:
        try:
            _libc.setns(fd, _libc.NAMESPACE_FLAGS[name])
            os.close(fd)
        except BaseException as exc:
            channel.fail(report, f"setns_{name}", exc)
    try:
        pid = os.fork()
    except BaseException as exc:
        channel.fail(report, "fork", exc)
    if pid == 0:
        try:
            process.run_steps(process.FINALIZE_STEPS, plan.process, report)
            process.exec_process(plan.process)
        finally:
            os._exit(channel.EXIT_SETUP_FAILED)
    channel.send(report, b"P%d" % pid)
    os._exit(0)
