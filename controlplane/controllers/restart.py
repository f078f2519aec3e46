"""Restart policy: whether a dead task's slot gets a replacement, and when.

A task is *dead* when its observed status is terminal while its desired state
is still running. The service's ``RestartPolicy`` decides:

- ``condition``: ``none`` never replaces; ``on-failure`` replaces unless the
  task completed (exit 0); ``any`` always replaces (swarmkit's rule, so a
  task stopped behind the orchestrator's back counts as a failure).
- ``max_attempts``: restarts per slot; ``task.attempt`` counts the restarts
  before it, so a task is replaced while ``attempt < max_attempts`` (0 = no
  limit). The replacement carries ``attempt + 1``.
- ``delay``: the replacement is due at ``status.timestamp + backoff`` where
  backoff doubles with each attempt and is capped at ``MAX_RESTART_DELAY``
  (the cap never shortens a configured base delay above it).

An orphaned task (its node went down), or one killed with its node's
supervisor, is replaced without delay: the backoff damps crash loops, and a
lost node is not one; the cluster promises a replacement within a few
seconds of a node loss (see ``nodemonitor``).

``window`` is not applied yet: attempts count over the slot's whole life.
"""

from __future__ import annotations

from model.objects import SUPERVISOR_DIED, RestartPolicy, Task, TaskState

MAX_RESTART_DELAY = 60.0  # seconds; backoff cap
_MAX_DOUBLINGS = 16  # keeps 2**n small; the cap is reached long before


def restart_allowed(task: Task, policy: RestartPolicy) -> bool:
    """Whether the dead ``task`` may be replaced at all under ``policy``."""
    if policy.condition == "none":
        return False
    if policy.condition == "on-failure" and task.status.state == TaskState.COMPLETE:
        return False
    return policy.max_attempts <= 0 or task.attempt < policy.max_attempts


def restart_delay(task: Task, policy: RestartPolicy) -> float:
    """Seconds between the task's death and its replacement."""
    if task.status.state == TaskState.ORPHANED or policy.delay <= 0 \
            or task.status.error.startswith(SUPERVISOR_DIED):
        return 0.0
    backoff = policy.delay * 2 ** min(max(task.attempt, 0), _MAX_DOUBLINGS)
    return min(backoff, max(MAX_RESTART_DELAY, policy.delay))


def restart_due(task: Task, policy: RestartPolicy) -> float | None:
    """When the dead ``task`` should be replaced; ``None`` when it never is."""
    if not restart_allowed(task, policy):
        return None
    return task.status.timestamp + restart_delay(task, policy)
