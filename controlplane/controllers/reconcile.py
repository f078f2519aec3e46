"""The service reconciler: desired services + observed tasks and nodes -> task changes.

Pure and synchronous: ``diff(services, tasks, nodes, now)`` reads nothing else
and returns ``Changes``; the driver writes them with compare-and-swap and runs
the pass again on the next watch event or at ``Changes.wakeup``.

Vocabulary. A task *holds* its slot while its desired state is running (or
below), or ``COMPLETE``: the reconciler sets desired ``COMPLETE`` on a dead
task whose restart policy declines a replacement, so the slot stays filled by
a finished task and is not refilled on the next pass (the agent stops any
task desired above running, as for ``SHUTDOWN``). A task is *retired* by
desired ``SHUTDOWN``. A holder is *alive* while its status is not terminal and
*dead* once it is. A slot is a replica number (replicated) or a node
(global, slot 0).

Rules, in the order one pass applies them:

1. Any task still alive on a node that is down or no longer known becomes
   ``ORPHANED`` (its true state is unknown; later reports from that node are
   stale and refused by ``transitions``).
2. Tasks of a deleted service: deleted when nothing can be running (status
   terminal, or never assigned), else retired.
3. Replicated: slots above ``replicas`` are retired (scale down never touches
   lower slots); each slot 1..replicas keeps exactly one holder (the alive,
   newest one; extras are retired) and gets a new task when it has none.
   Global: one holder per node that is ready, active and matches the
   constraints; holders on down, drained, unmatched or unknown nodes are
   retired, holders on paused or not-yet-ready nodes are kept.
4. A holder made from another spec (anything but ``replicas`` differs) is
   retired and replaced at attempt 0: the whole service at once, no rolling
   update yet (the rollout controller will pace this).
5. An alive replicated holder on a drained node is retired and replaced (the
   scheduler places the replacement elsewhere), same attempt.
6. A dead holder is replaced per ``restart``: when due, it is retired and a
   replacement with ``attempt + 1`` created; before that the pass only
   reports the due time in ``wakeup``; when never, it gets desired ``COMPLETE``.
7. Retired, terminal tasks beyond ``history`` per slot are deleted (newest
   kept); in slots that no longer exist (above ``replicas``, or a global
   task's node that is gone) none are kept.

A replicated service asking for more than ``MAX_REPLICAS`` (``model.units``;
every way in refuses it, but one may already be stored) is skipped: its tasks
are left as they are and none are created, so one bad spec cannot make the
control plane create tasks until it runs out of memory. ``oversized`` names
such services so the driver can report them.

New tasks are ``PENDING`` with desired running; replicated ones have no node
(the scheduler assigns one), global ones carry their node already (the
scheduler only checks that it fits).

Scope of the inputs: ``nodes`` must be the whole node set (a task whose node
is missing is orphaned, so never diff against a node cache that is still
loading); ``tasks`` must hold every task of the services it covers and only
those, and a task whose service is not in ``services`` is treated as one of a
deleted service. Services are independent, so the driver may diff one service
(``{id: service}`` with its tasks) per event, or a deleted one (``{}`` with its
tasks); a full pass is the same as the union of per-service passes.

Invariant (tested as properties): running the pass again on the task set it
produced, at the same ``now``, yields no changes; and each slot 1..replicas
has exactly one holder.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

from model.objects import Node, Service, ServiceSpec, Task, TaskState, TaskStatus
from model.units import MAX_REPLICAS

from .changes import Changes
from .placement import keeps_global, starts_global
from .restart import restart_due
from .transitions import advance

IdFactory = Callable[[], str]

TASK_HISTORY = 4  # retired, finished tasks kept per slot (with its holder: 5, like swarm)


def random_id() -> str:
    return uuid.uuid4().hex


def oversized(service: Service) -> bool:
    """A replicated service beyond ``MAX_REPLICAS``, which ``diff`` skips."""
    return service.spec.mode == "replicated" and service.spec.replicas > MAX_REPLICAS


def holds_slot(task: Task) -> bool:
    return task.desired_state <= TaskState.RUNNING or task.desired_state == TaskState.COMPLETE


def alive(task: Task) -> bool:
    return not task.status.state.terminal


def same_spec(a: ServiceSpec, b: ServiceSpec) -> bool:
    """Specs equal but for ``replicas``: scaling never replaces a task.
    (Checked for every task on every pass: compared in place, not copied.)"""
    if a is b:
        return True
    if a.replicas == b.replicas:
        return a == b
    return dataclasses.replace(a, replicas=0) == dataclasses.replace(b, replicas=0)


def _newest_first(task: Task) -> tuple[float, int, str]:
    return (-task.created_at, -task.attempt, task.id)


def _best_holder(task: Task) -> tuple[bool, bool, float, int, str]:
    return (not alive(task), task.desired_state > TaskState.RUNNING, *_newest_first(task))


def diff(services: Mapping[str, Service], tasks: Iterable[Task], nodes: Mapping[str, Node],
         now: float, *, new_id: IdFactory = random_id, history: int = TASK_HISTORY) -> Changes:
    """One reconciler pass; see the module docstring for the rules."""
    return _Pass(nodes, now, new_id).run(services, tasks, history)


class _Pass:
    """The working state of one ``diff``: copies of changed tasks, new tasks, deletions."""

    def __init__(self, nodes: Mapping[str, Node], now: float, new_id: IdFactory) -> None:
        self.nodes = nodes
        self.now = now
        self.new_id = new_id
        self.original: dict[str, Task] = {}
        self.current: dict[str, Task] = {}  # task id -> latest copy (changed or not)
        self.changed: dict[str, None] = {}  # ids in the order they were first changed
        self.created: list[Task] = []
        self.deleted: set[str] = set()
        self.wakeup: float | None = None

    def run(self, services: Mapping[str, Service], tasks: Iterable[Task], history: int) -> Changes:
        by_service: dict[str, list[Task]] = defaultdict(list)
        for t in tasks:
            self.original[t.id] = self.current[t.id] = t
            by_service[t.service_id].append(t)
        for sid in sorted(set(services) | set(by_service)):
            ids = [t.id for t in by_service.get(sid, [])]
            service = services.get(sid)
            if service is not None and oversized(service):
                continue
            self._orphan_lost(ids)
            if service is None:
                self._removed_service(ids)
            elif service.spec.mode == "global":
                self._global_service(service, ids, history)
            else:
                self._replicated_service(service, ids, history)
        return self._changes()

    # ---- task edits (always on copies) -----------------------------------

    def _set(self, task: Task) -> Task:
        self.current[task.id] = task
        self.changed.setdefault(task.id)
        return task

    def _retire(self, task_id: str) -> None:
        task = self.current[task_id]
        if task.desired_state < TaskState.SHUTDOWN:
            self._set(dataclasses.replace(task, desired_state=TaskState.SHUTDOWN))

    def _create(self, service: Service, slot: int, node_id: str, attempt: int) -> None:
        status = TaskStatus(state=TaskState.PENDING, message="created", timestamp=self.now)
        self.created.append(Task(
            id=self.new_id(), service_id=service.id, service_name=service.spec.name, slot=slot,
            spec=service.spec, node_id=node_id, desired_state=TaskState.RUNNING, status=status,
            created_at=self.now, attempt=attempt))

    def _lost(self, node_id: str) -> bool:
        node = self.nodes.get(node_id)
        return bool(node_id) and (node is None or node.state == "down")

    # ---- rules -------------------------------------------------------------

    def _orphan_lost(self, ids: list[str]) -> None:
        for tid in ids:
            task = self.current[tid]
            if alive(task) and self._lost(task.node_id):
                self._set(advance(task, TaskState.ORPHANED, now=self.now,
                                  message=f"node {task.node_id} is down"))

    def _removed_service(self, ids: list[str]) -> None:
        for tid in ids:
            task = self.current[tid]
            if not alive(task) or not task.node_id:
                self.deleted.add(tid)
            else:
                self._retire(tid)

    def _replicated_service(self, service: Service, ids: list[str], history: int) -> None:
        by_slot: dict[int, list[str]] = defaultdict(list)
        for tid in ids:
            by_slot[self.current[tid].slot].append(tid)
        replicas = max(service.spec.replicas, 0)
        extra = sorted((s for s in by_slot if not 1 <= s <= replicas), reverse=True)
        for slot in extra:  # scale down: highest slots first, lower slots untouched
            for tid in by_slot[slot]:
                if holds_slot(self.current[tid]):
                    self._retire(tid)
            self._prune(by_slot[slot], keep=0)
        for slot in range(1, replicas + 1):
            self._settle_slot(service, by_slot.get(slot, []), slot, "", can_start=True)
            self._prune(by_slot.get(slot, []), keep=history)

    def _global_service(self, service: Service, ids: list[str], history: int) -> None:
        by_node: dict[str, list[str]] = defaultdict(list)
        for tid in ids:
            by_node[self.current[tid].node_id].append(tid)
        constraints = service.spec.placement.constraints
        for node_id in sorted(set(by_node) | set(self.nodes)):
            group = by_node.get(node_id, [])
            node = self.nodes.get(node_id)
            if node is None or not keeps_global(node, constraints):
                for tid in group:
                    if holds_slot(self.current[tid]):
                        self._retire(tid)
                self._prune(group, keep=0 if node is None else history)
                continue
            self._settle_slot(service, group, 0, node_id, can_start=starts_global(node, constraints))
            self._prune(group, keep=history)

    def _settle_slot(self, service: Service, ids: list[str], slot: int, node_id: str,
                     can_start: bool) -> None:
        """Leave the slot with exactly one holder (or none, when no task may start)."""
        holders = sorted((self.current[t] for t in ids if holds_slot(self.current[t])), key=_best_holder)
        for extra in holders[1:]:
            self._retire(extra.id)
        if not holders:
            if can_start:
                self._create(service, slot, node_id, attempt=0)
            return
        holder = holders[0]
        replacement = self._replacement_attempt(service, holder)
        if replacement is not None and can_start:
            self._retire(holder.id)
            self._create(service, slot, node_id, attempt=replacement)

    def _replacement_attempt(self, service: Service, holder: Task) -> int | None:
        """The attempt of the task that replaces ``holder`` now, or None to keep it (rules 4-6)."""
        if not same_spec(holder.spec, service.spec):
            return 0
        if holder.desired_state == TaskState.COMPLETE:
            return None
        if alive(holder):
            node = self.nodes.get(holder.node_id)
            drained = node is not None and node.availability == "drain"
            return holder.attempt if drained and service.spec.mode == "replicated" else None
        due = restart_due(holder, service.spec.restart_policy)
        if due is None:
            self._set(dataclasses.replace(holder, desired_state=TaskState.COMPLETE))
            return None
        if due > self.now:
            self.wakeup = due if self.wakeup is None else min(self.wakeup, due)
            return None
        return holder.attempt + 1

    def _prune(self, ids: list[str], keep: int) -> None:
        done = [self.current[t] for t in ids
                if not holds_slot(self.current[t]) and not alive(self.current[t])]
        for task in sorted(done, key=_newest_first)[max(keep, 0):]:
            self.deleted.add(task.id)

    def _changes(self) -> Changes:
        update = [self.current[tid] for tid in self.changed if tid not in self.deleted]
        delete = [self.original[tid] for tid in self.original if tid in self.deleted]
        return Changes(create=self.created, update=update, delete=delete, wakeup=self.wakeup)
