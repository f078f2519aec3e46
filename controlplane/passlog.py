"""What a leader's pass did, as log lines.

What happens to one task gets a line naming it (``controlplane.logctx``): a
task orphaned by its node's loss, a dead task replaced or, under its restart
policy, not; a service's rollout changing state (started by a rebalance,
paused, rolling back, completed). What happens in bulk gets one line per service: tasks created,
placed, retired (scale down, a new spec, a drain, a removed service),
deleted (history), waiting for a node (with the scheduler's explanation), so
a rollout of many replicas is a few lines, not one per task. A pass writes
at most ``TASK_LINES`` per-task lines; the tasks beyond them are counted in
their service's line (``orphaned``, ``restarted``), so a node lost with
thousands of tasks cannot stall the next pass behind its log.

The driver collects a pass's report from the objects as they were before the
pass, and emits it once the pass's write is committed: a pass that conflicts
is decided again, and reported then, once.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable

import structlog

from controlplane.controllers import Changes
from controlplane.logctx import service_fields, task_fields
from controlplane.store import StoreObject
from model.objects import Service, Task, TaskState

log = structlog.get_logger("orch.orchestrator")

TASK_LINES = 50  # per-task lines per pass; the rest are counted per service

SlotKey = tuple[str, int, str]


def _slot(task: Task) -> SlotKey:
    """A task's slot: a replica number, or (global) its node."""
    return task.service_id, task.slot, task.node_id if task.slot == 0 else ""


class PassReport:
    """Collects one pass's lines; ``emit`` writes them."""

    def __init__(self) -> None:
        self.per_service: dict[str, Counter[str]] = defaultdict(Counter)
        self.waiting: Counter[tuple[str, str]] = Counter()  # (service, explanation) -> tasks
        self.task_lines: list[tuple[str, str, dict[str, object]]] = []  # (level, event, fields)

    def _task_line(self, kind: str, task: Task, event: str, level: str = "info", **fields: object) -> None:
        if len(self.task_lines) >= TASK_LINES:
            self.per_service[task.service_name][kind] += 1
        else:
            self.task_lines.append((level, event, {**task_fields(task), **fields}))

    def count(self, tasks: Iterable[Task], kind: str) -> None:
        for task in tasks:
            self.per_service[task.service_name][kind] += 1

    def changes(self, changes: Changes, before: Callable[[str], StoreObject | None],
                before_service: Callable[[str], StoreObject | None] | None = None) -> None:
        """A reconciler pass's written ``changes``; ``before`` looks a task up
        (``before_service`` a service) as it was before the pass."""
        replacements = {_slot(t): t for t in changes.create}
        for task in changes.update:
            old = before(task.id)
            if isinstance(old, Task):
                self._updated(old, task, replacements)
        self.count(changes.delete, "deleted")
        self.count(changes.create, "created")
        for service in changes.services:
            old = before_service(service.id) if before_service is not None else None
            self._rollout(old, service)

    def _rollout(self, old: StoreObject | None, service: Service) -> None:
        """A line when a service's rollout changes state (progress alone is not logged)."""
        status = service.update_status
        was = old.update_status if isinstance(old, Service) else None
        if status is None or (was is not None and was.state == status.state):
            return
        level = "warning" if status.state.endswith("paused") or status.state == "rollback_started" else "info"
        self.task_lines.append((level, f"rollout {status.state.replace('_', ' ')}", {
            **service_fields(service), "revision": service.revision, "message": status.message,
            "updated": status.updated, "total": status.total}))

    def _updated(self, old: Task, task: Task, replacements: dict[SlotKey, Task]) -> None:
        status = task.status
        if status.state == TaskState.ORPHANED and old.status.state != TaskState.ORPHANED:
            self._task_line("orphaned", task, "task orphaned: its node is down", "warning")
        if task.desired_state == old.desired_state:
            return
        if task.desired_state == TaskState.COMPLETE:
            self._task_line("not_restarted", task, "task not restarted: its restart policy declines",
                            state=status.state.label(), exit_code=status.exit_code)
            return
        replacement = replacements.get(_slot(task))
        if status.state.terminal and replacement is not None:
            self._task_line("restarted", task, "task replaced after it ended", state=status.state.label(),
                            exit_code=status.exit_code, error=status.error,
                            replacement=replacement.name, attempt=replacement.attempt)
        else:
            self.per_service[task.service_name]["retired"] += 1

    def placed(self, tasks: Iterable[Task]) -> None:
        """Tasks the scheduler changed: assigned, or waiting with a new explanation."""
        for task in tasks:
            if task.status.state == TaskState.ASSIGNED:
                self.per_service[task.service_name]["assigned"] += 1
            elif task.status.state == TaskState.PENDING and task.desired_state == TaskState.RUNNING:
                self.waiting[task.service_name, task.status.message] += 1

    def emit(self) -> None:
        for level, event, fields in self.task_lines:
            getattr(log, level)(event, **fields)
        for service, counts in sorted(self.per_service.items()):
            log.info("service reconciled", service=service, **dict(sorted(counts.items())))
        for (service, explanation), count in sorted(self.waiting.items()):
            log.info("tasks wait for a node", service=service, tasks=count, explanation=explanation)
