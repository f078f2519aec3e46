"""Builders for controller tests: services, nodes, tasks and a deterministic id factory."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

from controlplane.controllers import Changes, apply, diff
from model.objects import (
    Node,
    Placement,
    RestartPolicy,
    Service,
    ServiceSpec,
    Task,
    TaskState,
    TaskStatus,
)


class Ids:
    """Deterministic task ids: new-1, new-2, ..."""

    def __init__(self, prefix: str = "new") -> None:
        self._n = itertools.count(1)
        self.prefix = prefix

    def __call__(self) -> str:
        return f"{self.prefix}-{next(self._n)}"


def service(sid: str = "s1", replicas: int = 1, *, mode: str = "replicated", image: str = "busybox",
            condition: str = "any", delay: float = 0.0, max_attempts: int = 0,
            constraints: Iterable[str] = ()) -> Service:
    spec = ServiceSpec(name=f"svc-{sid}", image=image, replicas=replicas, mode=mode,  # type: ignore[arg-type]
                       placement=Placement(constraints=list(constraints)),
                       restart_policy=RestartPolicy(condition=condition,  # type: ignore[arg-type]
                                                    delay=delay, max_attempts=max_attempts))
    return Service(id=sid, spec=spec)


def node(nid: str, state: str = "ready", availability: str = "active", **labels: str) -> Node:
    return Node(id=nid, name=f"host-{nid}", state=state, availability=availability,  # type: ignore[arg-type]
                labels=dict(labels), last_heartbeat=0.0)


def task(tid: str, svc: Service, slot: int = 1, *, node_id: str = "n1",
         state: TaskState = TaskState.RUNNING, desired: TaskState = TaskState.RUNNING,
         attempt: int = 0, created_at: float = 0.0, at: float = 0.0, spec: ServiceSpec | None = None,
         **kw: Any) -> Task:
    return Task(id=tid, service_id=svc.id, service_name=svc.spec.name, slot=slot,
                spec=spec or svc.spec, node_id=node_id, desired_state=desired,
                status=TaskStatus(state=state, timestamp=at), created_at=created_at, attempt=attempt, **kw)


def services_of(*svcs: Service) -> dict[str, Service]:
    return {s.id: s for s in svcs}


def nodes_of(*ns: Node) -> dict[str, Node]:
    return {n.id: n for n in ns}


def by_id(tasks: Iterable[Task]) -> dict[str, Task]:
    return {t.id: t for t in tasks}


def settle(services: dict[str, Service], tasks: list[Task], nodes: dict[str, Node], now: float,
           ids: Ids) -> tuple[list[Task], Changes]:
    """One pass applied: the new task set and the changes that made it."""
    changes = diff(services, tasks, nodes, now, new_id=ids)
    return apply(changes, tasks), changes


def run_all(tasks: Iterable[Task], node_id: str = "n1") -> list[Task]:
    """Pretend the scheduler and agents did their work: pending tasks assigned and running."""
    out = []
    for t in tasks:
        if t.desired_state == TaskState.RUNNING and not t.status.state.terminal:
            t = Task(**{**t.__dict__, "node_id": t.node_id or node_id,
                        "status": TaskStatus(state=TaskState.RUNNING, timestamp=t.status.timestamp)})
        out.append(t)
    return out
