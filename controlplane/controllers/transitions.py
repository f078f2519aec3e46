"""Task status transitions: states only move forward, and a terminal state is final.

``TaskState`` is ordered (new < pending < ... < running < complete/failed/
shutdown/rejected/orphaned). A report that would move a task backwards, or
out of a terminal state, is refused: it is a late or duplicated message (the
agent re-sends its batch after a reconnect, two control-plane replicas race).
A restart is never a transition; it is a new task in the same slot.

``advance`` raises ``TransitionError`` on a refused move so that callers who
care can log it; ``can_advance`` is the check without the exception, for the
dispatcher, which ignores stale reports. Re-reporting the current state is
not an error and not a change: ``advance`` then returns the task itself.
"""

from __future__ import annotations

import dataclasses

from model.objects import Task, TaskState


class TransitionError(ValueError):
    """A task status change that would move backwards or leave a terminal state."""

    def __init__(self, task: Task, new_state: TaskState) -> None:
        current = task.status.state
        why = "is final" if current.terminal else "is later"
        super().__init__(f"task {task.id} ({task.name}): refusing {current.label()} -> "
                         f"{new_state.label()}: {current.label()} {why}")
        self.task_id = task.id
        self.current = current
        self.new_state = new_state


def can_advance(current: TaskState, new_state: TaskState) -> bool:
    """True when ``current -> new_state`` is a forward move out of a non-terminal state."""
    return not current.terminal and new_state > current


def advance(task: Task, new_state: TaskState, *, now: float, message: str = "", error: str = "",
            exit_code: int | None = None, container_id: str | None = None) -> Task:
    """A copy of ``task`` with its status moved to ``new_state`` at ``now``.

    Same state: returns ``task`` unchanged (identity; nothing to write).
    Backwards or out of a terminal state: raises ``TransitionError``.
    """
    current = task.status.state
    if new_state == current:
        return task
    if not can_advance(current, new_state):
        raise TransitionError(task, new_state)
    status = dataclasses.replace(
        task.status, state=new_state, message=message, error=error, timestamp=now,
        exit_code=task.status.exit_code if exit_code is None else exit_code,
        container_id=task.status.container_id if container_id is None else container_id)
    return dataclasses.replace(task, status=status)
