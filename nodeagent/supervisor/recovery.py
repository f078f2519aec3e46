"""What a supervisor decides, at start, about the containers of one that died.

A container dies with its supervisor: its PID 1 and its exec'd processes have
SIGKILL as their parent-death signal (``nodeagent.runtime.init``). Without a
shim per container, one that outlived its supervisor would already have lost
what only the supervisor held for it: the read ends of its output pipes (its
next write gets EPIPE) and its exit status (only its parent can wait for it).

So a new supervisor finds the records of a dead one's containers still
"running", kills whatever of them is left (a PID 1 that exec'd a set-user-ID
binary lost its parent-death signal), tears each down as a normal exit does,
and records it as killed (:data:`KILLED_EXIT`, :func:`killed_error`). Then it
applies restart policies as Docker's daemon does at start
(:func:`restart_at_start`).

Pure functions: the supervisor's server does the I/O.
"""

from __future__ import annotations

import os
import signal

from model.objects import SUPERVISOR_DIED
from nodeagent.restart import RestartPolicy, should_restart

# How a killed container's record ends: 128 + SIGKILL, as if `orch kill`ed.
KILLED_SIGNAL = int(signal.SIGKILL)
KILLED_EXIT = 128 + KILLED_SIGNAL


def previous_pid(pid_file: str) -> int:
    """The pid a previous supervisor wrote to ``pid_file`` (a clean stop
    removes the file); 0 if there is none, it is unreadable, or it is ours."""
    try:
        with open(pid_file) as f:
            text = f.read().strip()
    except OSError:
        return 0
    if not (text.isascii() and text.isdigit()):
        return 0
    pid = int(text)
    return 0 if pid == os.getpid() else pid


def killed_error(supervisor_pid: int) -> str:
    """The error a record killed with its supervisor carries."""
    if supervisor_pid:
        return f"{SUPERVISOR_DIED} (pid {supervisor_pid}) died"
    return f"{SUPERVISOR_DIED} died"


def restart_at_start(policy: RestartPolicy, exit_code: int, restart_count: int,
                     stopped_by_user: bool) -> bool:
    """Whether a container found down when a supervisor starts comes back,
    as Docker's daemon decides at start: ``always`` does even if the user had
    stopped it; ``unless-stopped`` unless the user had; ``on-failure`` after a
    non-zero exit, within its retry count, unless the user had stopped it."""
    if policy.name == "always":
        return True
    return should_restart(policy, exit_code, restart_count, stopped_by_user)
