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
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from model.objects import Node, Service, Task, TaskState, TaskStatus, UpdateStatus
from model.units import MAX_REPLICAS

from .changes import Changes
from .placement import keeps_global, starts_global
from .restart import restart_due
from .rollout import (
    REBALANCING,
    Pacer,
    SlotView,
    config_of,
    movable_to,
    ready,
    rebalance_moves,
    review,
    same_spec,
)
from .snapshot import bound_volumes
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


def _newest_first(task: Task) -> tuple[float, int, str]:
    return (-task.created_at, -task.attempt, task.id)


def _best_holder(task: Task) -> tuple[bool, bool, float, int, str]:
    return (not alive(task), task.desired_state > TaskState.RUNNING, *_newest_first(task))


def diff(services: Mapping[str, Service], tasks: Iterable[Task], nodes: Mapping[str, Node],
         now: float, *, new_id: IdFactory = random_id, history: int = TASK_HISTORY,
         paced: bool = True, only: Collection[str] | None = None) -> Changes:
    """One reconciler pass; see the module docstring for the rules.
    ``paced=False`` updates every stale task at once and leaves rollout
    status and rebalancing alone (``orch plan``: where things end up).
    ``only``: the ids of the services to decide on (None: every one); the
    others, and their tasks, are left as they are. A service's decisions
    read only its own tasks, the nodes and (rebalancing) every task, so a
    pass on a few services decides for them what a full one would."""
    return _Pass(nodes, now, new_id, paced).run(services, tasks, history, only)


class _Pass:
    """The working state of one ``diff``: copies of changed tasks, new tasks, deletions."""

    def __init__(self, nodes: Mapping[str, Node], now: float, new_id: IdFactory, paced: bool) -> None:
        self.nodes = nodes
        self.now = now
        self.new_id = new_id
        self.paced = paced
        self.services: list[Service] = []  # services whose rollout status moved
        self.original: dict[str, Task] = {}
        self.current: dict[str, Task] = {}  # task id -> latest copy (changed or not)
        self.changed: dict[str, None] = {}  # ids in the order they were first changed
        self.created: list[Task] = []
        self.deleted: set[str] = set()
        self.wakeup: float | None = None
        self.edits = 0  # task edits and creations so far: a slot's view is stale once they move
        self._movable: dict[tuple[str, ...], tuple[list[Node], list[Node]]] = {}

    def run(self, services: Mapping[str, Service], tasks: Iterable[Task], history: int,
            only: Collection[str] | None = None) -> Changes:
        by_service: dict[str, list[Task]] = defaultdict(list)
        for t in tasks:
            self.original[t.id] = self.current[t.id] = t
            by_service[t.service_id].append(t)
        for sid in sorted(set(services) | set(by_service)):
            if only is not None and sid not in only:
                continue
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
        self.edits += 1
        return task

    def _retire(self, task_id: str) -> None:
        task = self.current[task_id]
        if task.desired_state < TaskState.SHUTDOWN:
            self._set(dataclasses.replace(task, desired_state=TaskState.SHUTDOWN))

    def _create(self, service: Service, group: _Group, attempt: int) -> None:
        status = TaskStatus(state=TaskState.PENDING, message="created", timestamp=self.now)
        task = Task(
            id=self.new_id(), service_id=service.id, service_name=service.spec.name, slot=group.slot,
            spec=service.spec, node_id=group.node_id, desired_state=TaskState.RUNNING, status=status,
            created_at=self.now, attempt=attempt, data_node=self._data_node(service, group))
        self.created.append(task)
        # Seen by the rest of the pass as the slot's (the rollout counts it in flight).
        self.current[task.id] = task
        group.ids.append(task.id)
        self.edits += 1

    def _data_node(self, service: Service, group: _Group) -> str:
        """Where the slot's node-local volumes keep their data: its newest
        task's ``data_node``, unless that node left or released it (the new
        task then binds where it is placed, ``orchestrator._assign``)."""
        if not bound_volumes(service.spec):
            return ""
        held = [self.current[tid] for tid in group.ids if self.current[tid].data_node]
        if not held:
            return ""
        newest = max(held, key=lambda t: (t.created_at, t.id))
        node = self.nodes.get(newest.data_node)
        return "" if node is None or node.data_released else newest.data_node

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
        groups = [_Group(slot, "", by_slot.get(slot, []), True) for slot in range(1, replicas + 1)]
        self._settle_service(service, ids, groups)
        for group in groups:
            self._prune(group.ids, keep=history)

    def _global_service(self, service: Service, ids: list[str], history: int) -> None:
        by_node: dict[str, list[str]] = defaultdict(list)
        for tid in ids:
            by_node[self.current[tid].node_id].append(tid)
        constraints = service.spec.placement.constraints
        groups = []
        for node_id in sorted(set(by_node) | set(self.nodes)):
            group = by_node.get(node_id, [])
            node = self.nodes.get(node_id)
            if node is None or not keeps_global(node, constraints):
                for tid in group:
                    if holds_slot(self.current[tid]):
                        self._retire(tid)
                self._prune(group, keep=0 if node is None else history)
                continue
            groups.append(_Group(0, node_id, group, starts_global(node, constraints)))
        self._settle_service(service, ids, groups)
        for g in groups:
            self._prune(g.ids, keep=history)

    def _settle_service(self, service: Service, ids: list[str], groups: list[_Group]) -> None:
        """Leave each slot with one holder (two while a start-first replacement
        is not ready), its stale tasks updated as the rollout admits them.

        Three steps, each on the slots as the one before left them, so that
        the next pass, on what this one wrote, decides the same: what every
        slot needs whatever the rollout (a first task, a restart, extras
        retired, a stale task that serves nothing replaced); then the stale
        tasks the rollout admits; then, on a settled service, rebalancing."""
        pacer = Pacer(service, self.now)
        groups = [g for g in groups if g.can_start or any(holds_slot(self.current[t]) for t in g.ids)]
        seen: list[SlotView | None] = [None] * len(groups)  # the slots' views, while still true
        if self.paced:
            views = [self._view(service, g) for g in groups]
            moved = review(service, views, (self.current[t] for t in ids), self.now, pacer)
            if moved is None:
                seen = list(views)
            else:
                self.services.append(moved)
                if moved.spec is not service.spec:
                    self._wake(pacer.wakeup)
                    return  # a rollback: the tasks follow once it is written
                service = moved
                woken, pacer = pacer.wakeup, Pacer(moved, self.now)  # paused now: admits nothing
                pacer.wakeup = woken
        else:
            pacer.moving = True
            pacer.config = dataclasses.replace(pacer.config, parallelism=0)
        created = len(self.created)
        # A slot's view reads only its own tasks: one that settling left as
        # it was is still true (a settled service's pass makes each once).
        views = [self._settle_slot(service, group, view) for group, view in zip(groups, seen, strict=True)]
        for view in views:
            pacer.count(view)
        for view, group in zip(views, groups, strict=True):
            if view.main is not None and not view.fresh and group.can_start and pacer.admit():
                if not pacer.start_first():
                    self._retire(view.main.id)
                self._create(service, group, attempt=0)  # start-first: the main serves until it is ready
        if self.paced and len(self.created) == created:
            moves = rebalance_moves(service, views, self.nodes, self.current.values(), self.now, pacer,
                                    self._targets)
            for view, target in moves:
                self._move(service, view, target, pacer.start_first())
            if moves:
                self._status(service, moves)
        self._wake(pacer.wakeup)

    def _targets(self, constraints: Sequence[str]) -> tuple[list[Node], list[Node]]:
        """``movable_to`` for these constraints, once a pass (not once a service)."""
        key = tuple(constraints)
        if key not in self._movable:
            self._movable[key] = movable_to(self.nodes.values(), constraints, self.now)
        return self._movable[key]

    def _view(self, service: Service, group: _Group) -> SlotView:
        holders = [task for t in group.ids if holds_slot(task := self.current[t])]
        if len(holders) > 1:
            holders.sort(key=_best_holder)
        fresh = [h for h in holders if same_spec(h.spec, service.spec)]
        main = fresh[0] if fresh else (holders[0] if holders else None)
        standby = None
        if fresh and main is not None and not ready(main):
            # The task main replaces serves until main is ready: one that
            # serves, else (start-first) the old task still starting, which
            # is no worse than main.
            others = [h for h in holders if h is not main and alive(h)]
            starting = [h for h in others if not same_spec(h.spec, service.spec)] \
                if config_of(service).order == "start-first" else []
            standby = next((h for h in others if ready(h)), starting[0] if starting else None)
        return SlotView(group.slot, group.node_id, main, bool(fresh), standby)

    def _settle_slot(self, service: Service, group: _Group, view: SlotView | None) -> SlotView:
        """Settle the slot (``_settle``), whose view is ``view`` if known; its view after."""
        edits = self.edits
        view = view or self._view(service, group)
        self._settle(service, group, view)
        return view if self.edits == edits else self._view(service, group)

    def _settle(self, service: Service, group: _Group, view: SlotView) -> None:
        """What a slot needs whatever the rollout: its extras retired, a first
        task, a fresh main's restart, a stale main that serves nothing replaced."""
        for tid in group.ids:
            task = self.current[tid]
            if holds_slot(task) and task is not view.main and task is not view.standby:
                self._retire(tid)  # extras: only the main and its standby hold a slot
        main = view.main
        if main is None:
            if group.can_start:
                self._create(service, group, attempt=0)
            return
        if view.fresh:
            replacement = self._replacement_attempt(service, main)
        elif not alive(main) or not main.status.state.on_node or self._drained(service, main):
            replacement = 0  # not serving: replaced at once, which costs no capacity
        else:
            return  # the rollout decides
        if replacement is not None and group.can_start:
            self._retire(main.id)
            self._create(service, group, attempt=replacement)

    def _move(self, service: Service, view: SlotView, node_id: str, start_first: bool) -> None:
        """Rebalancing: the slot's task again, pinned to ``node_id``."""
        assert view.main is not None
        if not start_first:
            self._retire(view.main.id)
        self._create(service, _Group(view.slot, node_id, [], True), attempt=view.main.attempt)

    def _status(self, service: Service, moves: list[tuple[SlotView, str]]) -> None:
        names = sorted({self.nodes[target].name for _, target in moves})
        status = UpdateStatus(state="updating", started_at=self.now, total=len(moves),
                              message=f"{REBALANCING} {len(moves)} task(s) to {', '.join(names)}")
        # After this pass's own review of the service, if any: one write per service.
        self.services = [s for s in self.services if s.id != service.id]
        self.services.append(dataclasses.replace(service, update_status=status))

    def _wake(self, when: float | None) -> None:
        if when is not None:
            self.wakeup = when if self.wakeup is None else min(self.wakeup, when)

    def _drained(self, service: Service, task: Task) -> bool:
        node = self.nodes.get(task.node_id)
        return service.spec.mode == "replicated" and node is not None and node.availability == "drain"

    def _replacement_attempt(self, service: Service, holder: Task) -> int | None:
        """The attempt of the task that replaces the fresh ``holder`` now, or None to keep it (rules 5-6)."""
        if holder.desired_state == TaskState.COMPLETE:
            return None
        if alive(holder):
            return holder.attempt if self._drained(service, holder) else None
        due = restart_due(holder, service.spec.restart_policy)
        if due is None:
            self._set(dataclasses.replace(holder, desired_state=TaskState.COMPLETE))
            return None
        if due > self.now:
            self._wake(due)
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
        return Changes(create=self.created, update=update, delete=delete, wakeup=self.wakeup,
                       services=self.services)


@dataclass
class _Group:
    """A slot's tasks (a replica number, or a global service's node) and whether a task may start there."""

    slot: int
    node_id: str
    ids: list[str]
    can_start: bool
