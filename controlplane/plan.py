"""What a deploy would do, without doing it (``orch plan``), and whether a
node's loss could be absorbed (``orch plan --without NODE``).

Pure: it runs the leader's own deciders on copies — the reconciler
(``controllers.diff``) on the services as they would be, the scheduler on the
tasks that pass would create — against the informer's nodes and tasks, and
writes nothing. So a plan says what the leader would decide now, with the
same rules and the same reasons ("no suitable node (memory on 2 nodes, ...)").

- Per service in the file: ``created``, ``updated`` (each changed field,
  old and new), or ``unchanged`` (a registry image's tag that the store holds
  pinned to its digest counts as the same image); scaling alone is an
  update of ``replicas``.
- The tasks the deploy would start and where: the node the scheduler picks,
  or no node and why. Replaced tasks free their resources first (stop-first).
- ``without``: those nodes are taken as down: their tasks are orphaned and
  replaced as the reconciler would (restart delays are skipped: the plan
  says where replacements go, not when), and each affected service says
  where its tasks would go, or why some could not.

Invariant: the inputs are never changed (the simulation works on copies).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from controlplane.controllers import diff
from controlplane.controllers.snapshot import node_info, placed_of, task_request
from model.objects import Node, Service, ServiceSpec, Task, TaskState, to_dict
from scheduler import ClusterSnapshot, schedule

__all__ = ["FieldChange", "PlannedTask", "ServicePlan", "plan"]

SIMULATED_PASSES = 4  # orphan, then replace (after any restart delay), then place


@dataclass(frozen=True)
class FieldChange:
    field: str  # a dotted path of the spec, e.g. "limits.memory_bytes"
    old: str
    new: str


@dataclass(frozen=True)
class PlannedTask:
    slot: int  # replicated: the replica; global: 0
    node_id: str  # "" when it would not fit
    reason: str = ""  # why it would not fit


@dataclass
class ServicePlan:
    name: str
    action: Literal["created", "updated", "unchanged", "affected"]
    changes: list[FieldChange] = field(default_factory=list)
    tasks: list[PlannedTask] = field(default_factory=list)  # the tasks it would start

    @property
    def unplaced(self) -> list[PlannedTask]:
        return [t for t in self.tasks if not t.node_id]


def plan(services: Mapping[str, Service], tasks: Iterable[Task], nodes: Mapping[str, Node],
         proposed: list[ServiceSpec] | None, now: float, without: Iterable[str] = ()) -> list[ServicePlan]:
    """The plan for deploying ``proposed`` (None: nothing, only ``without``);
    ``without``: node ids taken as down."""
    gone = set(without)
    future = dict(services)
    plans: dict[str, ServicePlan] = {}
    by_name = {s.spec.name: s for s in services.values()}
    for spec in proposed or []:
        current = by_name.get(spec.name)
        if current is None:
            sid = f"planned-{spec.name}"
            future[sid] = Service(id=sid, spec=spec, created_at=now, updated_at=now)
            plans[sid] = ServicePlan(spec.name, "created")
            continue
        changes = spec_changes(current.spec, spec)
        plans[current.id] = ServicePlan(spec.name, "updated" if changes else "unchanged", changes)
        if changes:
            future[current.id] = dataclasses.replace(current, spec=spec)
    hypothetical = {nid: dataclasses.replace(n, state="down") if nid in gone else n
                    for nid, n in nodes.items()}
    started = _simulate(future, list(tasks), hypothetical, now)
    for task in started:
        if task.service_id not in plans:
            plans[task.service_id] = ServicePlan(future[task.service_id].spec.name, "affected")
    _place(plans, started, [t for t in _survivors(tasks, gone) if t.id not in {s.id for s in started}],
           hypothetical)
    return sorted(plans.values(), key=lambda p: p.name)


def _simulate(services: Mapping[str, Service], tasks: list[Task], nodes: Mapping[str, Node],
              now: float) -> list[Task]:
    """The tasks the reconciler would create over a few passes, each pass
    seeing the last one's writes, and the stopped tasks as stopped."""
    counter = itertools.count(1)
    created: dict[str, Task] = {}
    current = {t.id: t for t in tasks}
    moment = now
    for _ in range(SIMULATED_PASSES):
        changes = diff(services, current.values(), nodes, moment, new_id=lambda: f"plan-{next(counter)}",
                       paced=False)
        for t in changes.update:
            current[t.id] = _stopped(t) if t.desired_state > TaskState.RUNNING else t
        for t in changes.delete:
            current.pop(t.id, None)
            created.pop(t.id, None)
        for t in changes.create:
            current[t.id] = created[t.id] = dataclasses.replace(
                t, status=dataclasses.replace(t.status, state=TaskState.RUNNING))
        if changes.empty and changes.wakeup is None:
            break
        moment = max(moment, changes.wakeup or moment) + 1.0
    return list(created.values())


def _stopped(task: Task) -> Task:
    """A retired task as it will be once its node has stopped it."""
    if task.status.state.terminal:
        return task
    return dataclasses.replace(task, status=dataclasses.replace(task.status, state=TaskState.SHUTDOWN))


def _survivors(tasks: Iterable[Task], gone: set[str]) -> list[Task]:
    """The placed tasks that keep running (and their resources)."""
    return [t for t in tasks if t.node_id and t.node_id not in gone and t.desired_state == TaskState.RUNNING
            and t.status.state.on_node]


def _place(plans: dict[str, ServicePlan], started: list[Task], staying: list[Task],
           nodes: Mapping[str, Node]) -> None:
    snapshot = ClusterSnapshot(nodes=tuple(node_info(n) for n in nodes.values()),
                               placed=tuple(placed_of(t) for t in staying))
    free = [t for t in started if not t.node_id]
    decisions = {d.task_id: d for d in schedule(snapshot, [task_request(t, nodes) for t in free], seed=1)}
    for task in sorted(started, key=lambda t: (t.service_id, t.slot, t.node_id)):
        target = plans[task.service_id]
        if task.node_id:  # global: its node, if that node takes tasks
            node = nodes.get(task.node_id)
            fits = node is not None and node.state == "ready" and node.availability == "active"
            target.tasks.append(PlannedTask(task.slot, task.node_id if fits else "",
                                            "" if fits else "its node is not ready and active"))
            continue
        d = decisions.get(task.id)
        if d is not None and d.node_id:
            target.tasks.append(PlannedTask(task.slot, d.node_id))
        else:
            target.tasks.append(PlannedTask(task.slot, "", d.explanation if d else "not placed"))


def _flat(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out or {prefix.rstrip("."): {}}
    return {prefix.rstrip("."): value}


def _unpinned(stored: str, asked: str) -> str:
    """The stored image as asked: a tag the deploy pinned to its digest
    (``ref@sha256:...``) is the same image as the bare tag."""
    if "@" not in asked and stored.startswith(asked + "@"):
        return asked
    return stored


def spec_changes(old: ServiceSpec, new: ServiceSpec) -> list[FieldChange]:
    """Each field of the spec that differs, as a dotted path, old and new."""
    before = _flat(to_dict(dataclasses.replace(old, image=_unpinned(old.image, new.image))))
    after = _flat(to_dict(new))
    out = []
    for key in sorted(before.keys() | after.keys()):
        a, b = before.get(key), after.get(key)
        if a != b:
            out.append(FieldChange(key, _show(a), _show(b)))
    return out


def _show(value: Any) -> str:
    if value is None:
        return "-"
    return value if isinstance(value, str) else json.dumps(value)
