"""The start order of a deploy (Compose's ``depends_on``): which pending tasks wait for another service.

A service's tasks are held back, pending with the reason as their message,
until each service it depends on meets its condition:

- ``service_started``: a task of it is running (or has completed);
- ``service_healthy``: a task of it is running and healthy (its health check,
  or the image's, passed);
- ``service_completed_successfully``: a task of it has exited 0.

Only the service's first start waits: once one of its tasks is on a node
(or has had a container), its later tasks (restarts, rollouts, scaling) are placed at once, as
Compose orders ``up`` but not a container's restarts. A dependency that does
not exist (yet: a deploy writes its services one by one) holds the tasks too.

Pure, as the other controllers: the driver (``orchestrator``) places only the
pending tasks not in :func:`held`, and sets the others' messages.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from model.objects import Dependency, Service, Task, TaskState

__all__ = ["held"]

_WHAT = {
    "service_started": "to start",
    "service_healthy": "to be healthy",
    "service_completed_successfully": "to complete successfully",
}


def held(services: Iterable[Service], tasks: Iterable[Task], pending: Iterable[Task]) -> dict[str, str]:
    """Task id -> why it waits, for the tasks of ``pending`` whose service's
    first start waits on a dependency; ``tasks`` are all the tasks there are."""
    waiting = [t for t in pending if t.spec.depends_on]
    if not waiting:  # the common case costs one look at each pending task
        return {}
    by_service: dict[str, list[Task]] = defaultdict(list)
    for task in tasks:
        by_service[task.service_id].append(task)
    ids = {s.spec.name: s.id for s in services}
    out: dict[str, str] = {}
    reasons: dict[str, str] = {}  # by service id: its tasks share it
    for task in waiting:
        if task.service_id not in reasons:
            own = by_service[task.service_id]
            started = any(t.status.state.on_node or t.status.container_id for t in own)
            reasons[task.service_id] = "" if started else _reason(task.spec.depends_on, ids, by_service)
        if reasons[task.service_id]:
            out[task.id] = reasons[task.service_id]
    return out


def _reason(dependencies: list[Dependency], ids: dict[str, str], by_service: dict[str, list[Task]]) -> str:
    """Why the first start waits ("" when it need not): the first dependency not met."""
    for dep in dependencies:
        service_id = ids.get(dep.service)
        if service_id is None:
            return f"waiting for service {dep.service} (depends_on), which is not deployed"
        if not any(_meets(t, dep.condition) for t in by_service[service_id]):
            return f"waiting for {dep.service} {_WHAT.get(dep.condition, dep.condition)} (depends_on)"
    return ""


def _meets(task: Task, condition: str) -> bool:
    state = task.status.state
    if condition == "service_healthy":
        return state == TaskState.RUNNING and task.status.health == "healthy"
    if condition == "service_completed_successfully":
        return state == TaskState.COMPLETE and task.status.exit_code == 0
    return state in (TaskState.RUNNING, TaskState.COMPLETE)
