"""``exec``: a new process inside a running container.

The runtime R posix_spawns ``orch-init exec`` (``orch-init/main.c``; see ``native``).
That process E1 joins the container's cgroup, opens every namespace of the
container's PID 1 first (/proc paths stop resolving once it enters the mount
namespace), enters them with the mount namespace last (entering it resets
root and cwd to the container's root), clones E2 onto R (``CLONE_PARENT``;
E2 lands in the pid namespace), reports E2's pid and exits. E2 runs the
process checklist (see ``process``) and execs. Step names: watch_runtime,
join_cgroup, open_namespace, setns_<ns>, fork, then the checklist's, and
parent_death (E2 dies with R, as a container's PID 1 does: see ``init``).
Same report-pipe rule as create: any failure -> report, _exit(127).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from nodeagent.runtime import native, process
from nodeagent.runtime.process import ProcessPlan


@dataclass
class ExecPlan:
    target_pid: int
    cgroup_files: list[str]  # Cgroup.self_join_files() of the container's group
    process: ProcessPlan  # with the report fd


def spawn(plan: ExecPlan) -> int:
    """Spawn E1 and return its pid; SetupError if the spawn fails."""
    entries = [("runtime", os.getpid()), ("target", plan.target_pid),
               *(("cgfile", path) for path in plan.cgroup_files),
               *process.entries(plan.process)]
    return native.spawn("exec", entries, process.fds(plan.process))
