"""The leader's loop: node monitor, reconciler, address allocator, scheduler.

Runs only while this replica holds the ``controllers`` leadership. Reads the
informer's cache (never polls etcd), decides with the pure functions
(``controllers.diff``, ``NodeMonitor``, ``scheduler.schedule``) and writes the
result in fenced batches: a deposed leader's writes fail instead of racing
the new leader's. A conflict just means the cache was behind: the next pass
sees the newer objects and decides again.

Start order (``controllers.dependencies``): a service's first tasks stay
pending, saying why, until the services it depends on are started, healthy
or completed (its ``depends_on``); they are addressed but not placed.

Addresses (``controlplane.allocator``): a service gets its VIPs and a task
its address on each of its networks in the pass that creates it, before the
scheduler places it, so no node ever sees a task without them; a task whose
network is missing or full stays pending with the reason. The allocator's
reservations of a pass are settled once its write is in the cache.

A pass runs when the informer reports a change (debounced by ``SETTLE``, but
at once for a user's request: a service written through the API), when a
restart backoff or a heartbeat deadline falls due, and at least every
``TICK`` seconds. It decides on the services whose tasks or spec changed
since the last pass and those it wrote (``DirtyServices``, ``diff(only=)``):
a task's report costs a pass over its service's tasks, not every task. Every
service is decided on at the first pass, after any other change (a node, a
network), when a wakeup falls due, and at least every ``FULL_EVERY`` seconds.
A node's liveness is judged from the later of its stored heartbeat and the
one this replica's dispatcher heard (``heard``).

Logs: what a pass did, once its write is committed (``passlog``): a line per
task for what happens to one task, a line per service for bulk changes; every
line about a node, service or task names it (``controlplane.logctx``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

import structlog

from controlplane.allocator import Allocator
from controlplane.controllers import NodeMonitor, diff, oversized
from controlplane.controllers.dependencies import held
from controlplane.controllers.rollout import ready
from controlplane.controllers.snapshot import bound_volumes, snapshot, task_request
from controlplane.logctx import node_fields, service_fields
from controlplane.passlog import PassReport
from controlplane.store import (
    Change,
    Informer,
    Kind,
    Leadership,
    Op,
    Store,
    StoreConflict,
    StoreError,
    StoreObject,
)
from model.objects import Node, Service, Task, TaskState
from model.units import MAX_REPLICAS
from scheduler import schedule

log = structlog.get_logger("orch.orchestrator")

TICK = 1.0
SETTLE = 0.02
# A pass decides on every service at least this often (seconds), whatever
# changed: the others decide on the services whose objects changed.
FULL_EVERY = 10.0
FIRST_WRITE_PER_NODE = 2  # new tasks per node in a big create's first, small write


class Orchestrator:
    def __init__(self, store: Store, informer: Informer, leadership: Leadership,
                 wake: threading.Event, clock: Callable[[], float] = time.time,
                 prompt: threading.Event | None = None,
                 on_pass: Callable[[float], None] | None = None,
                 dirty: DirtyServices | None = None,
                 heard: Callable[[str], float] | None = None,
                 lag: Callable[[], float] | None = None) -> None:
        self.store = store
        # Seconds the heartbeats this replica reads may be behind the nodes
        # (its dispatcher's loop ran late): the monitor allows them.
        self.lag = lag
        # When this replica's dispatcher last heard each node on its
        # session (0.0: not on a session here): fresher than the informer's
        # copy of the stored heartbeat while the cache lags a busy leader.
        self.heard = heard
        self.on_pass = on_pass  # hears each pass's seconds (the control plane's metrics)
        self.informer = informer
        self.leadership = leadership
        self.clock = clock
        self.monitor = NodeMonitor()
        # Rebuilt with each leadership: what is in use is the informer's.
        self.allocator = Allocator(informer)
        self._wake = wake  # set by the informer on every change (the server wires it once)
        self._prompt = prompt or threading.Event()  # set with wake for a user's request
        self._seed = 0
        self._written = 0  # the revision of this leader's last write
        self._reported: set[tuple[str, int]] = set()  # oversized services logged, by id and version
        # A new leader gives every node a full grace period from its own start
        # (swarmkit does the same): heartbeats sent while no replica listened,
        # e.g. during a control-plane restart, must not mark nodes down.
        self.started = clock()
        # What the next pass decides on: the services changed since the last
        # one (fed by the informer's handler), those this leader wrote, and
        # every one at the first pass, when a wakeup falls due, and at least
        # every FULL_EVERY seconds. Without ``dirty`` (nothing tells it what
        # changed), every pass decides on every service.
        self.dirty = dirty if dirty is not None else DirtyServices()
        self._tracked = dirty is not None
        self.dirty.all()
        self._carry: set[str] | None = set()
        self._due: float | None = None  # the earliest wakeup a pass asked for
        self._last_full = 0.0

    def run(self, stop: threading.Event) -> None:
        log.info("leading: controllers started")
        wakeup: float | None = None
        wrote = False  # the last pass wrote, and its cache already holds the write
        while not stop.is_set() and not self.leadership.lost():
            timeout = TICK if wakeup is None else max(0.0, min(TICK, wakeup - self.clock()))
            if self._wake.wait(timeout) and not wrote and not self._prompt.is_set():
                time.sleep(SETTLE)  # let a burst of changes land in the cache
            self._wake.clear()
            self._prompt.clear()
            started = time.monotonic()
            try:
                wakeup = self.pass_once()
                wrote = wakeup is not None and wakeup <= self.clock()
                if self.on_pass is not None:
                    self.on_pass(time.monotonic() - started)
            except StoreConflict:
                wakeup, wrote = None, False  # the cache was behind; decide again
                self.dirty.all()
                self._wake.set()
            except StoreError as err:
                # A write may have been applied without this replica knowing:
                # its addresses stay reserved until the cache has caught up.
                self.allocator.unsure = True
                self.dirty.all()
                log.warning("orchestrator pass failed", error=str(err))
                time.sleep(0.2)
        log.info("controllers stopped", lost=self.leadership.lost())

    def pass_once(self) -> float | None:
        # The last pass's write is in the cache (``_write`` waited for it):
        # its addresses are held there now, or were never written.
        self.allocator.resync(self.store)
        self.allocator.settle(self._written)
        now = self.clock()
        only = self._decide_on(now)
        nodes = {n.id: self._heard(n) for n in self.informer.nodes()}
        slack = self.lag() if self.lag is not None else 0.0
        node_updates = self.monitor.observe([_since(n, self.started) for n in nodes.values()], now, slack)
        if node_updates:
            self._carry = None
            self._write([Op.update(n) for n in node_updates])
            for n in node_updates:
                log.info("node state", **node_fields(n), state=n.state)
            return now  # run again on the fresh cache
        services = {s.id: s for s in self.informer.services()}
        self._report_oversized(services.values())
        tasks = self.informer.tasks()
        # A task stopped before any node took it has no agent to report its
        # end: it is shut down here.
        unstarted = [_shut(t, now) for t in tasks if t.desired_state > TaskState.RUNNING
                     and t.status.state <= TaskState.PENDING]
        if unstarted:
            self._keep(only)
            self._write([Op.update(t) for t in unstarted])
            report = PassReport()
            report.count(unstarted, "shut_before_start")
            report.emit()
            return now
        changes = diff(services, tasks, nodes, now, only=only)
        if only is None:
            self._due, self._last_full = changes.wakeup, now
        elif changes.wakeup is not None:
            self._due = changes.wakeup if self._due is None else min(self._due, changes.wakeup)
        moved = {s.id: s for s in changes.services}  # rollout status (one write per service)
        vips = [with_vips for s in services.values()
                if (with_vips := self.allocator.vips(moved.get(s.id, s))) is not s]
        if not changes.empty or vips:
            # New tasks are addressed and placed before they are stored: one
            # write each, not a pending one and then its assignment.
            created = self._place(list(nodes.values()), tasks, changes.create, now)
            # Retirements before creations: a stop-first update's old task is
            # told to stop before its replacement exists (watchers see the
            # ops of a write in this order).
            ops = ([Op.update(s) for s in vips] + [Op.update(t) for t in changes.update]
                   + [Op.create(t) for t in created] + [Op.delete(t) for t in changes.delete])
            # A few tasks per node go first, in a small write of their own:
            # the nodes start on them while the rest is written.
            report = PassReport()  # from the cache as it was before the write
            report.changes(changes, lambda task_id: self.informer.get(Kind.TASK, task_id),
                           lambda service_id: self.informer.get(Kind.SERVICE, service_id))
            report.placed(t for t, was in zip(created, changes.create, strict=True) if t is not was)
            self._write(ops, first=len(vips) + len(changes.update) + FIRST_WRITE_PER_NODE * len(nodes))
            report.emit()
            return now
        placed = self._schedule(list(nodes.values()), tasks, now)
        next_check = self.monitor.next_check([_since(n, self.started) for n in nodes.values()], now, slack)
        candidates = [t for t in (self._due, next_check) if t is not None]
        return now if placed else (min(candidates) if candidates else None)

    def _heard(self, node: Node) -> Node:
        """``node`` with the later of its stored heartbeat and the one this
        replica heard on its session."""
        beat = self.heard(node.id) if self.heard is not None else 0.0
        return replace(node, last_heartbeat=beat) if beat > node.last_heartbeat else node

    def _decide_on(self, now: float) -> set[str] | None:
        """The ids of the services this pass decides on (None: every one)."""
        only, carried = self.dirty.take(), self._carry
        self._carry = set()
        due = self._due is not None and self._due <= now
        if (not self._tracked or only is None or carried is None or due
                or now - self._last_full >= FULL_EVERY):
            return None
        return only | carried

    def _keep(self, only: set[str] | None) -> None:
        """A pass that returns before deciding: its services are the next one's."""
        if only is None or self._carry is None:
            self._carry = None
        else:
            self._carry |= only

    def _report_oversized(self, services: Iterable[Service]) -> None:
        """Log, once per version, each stored service the reconciler skips for its replica count
        (the API refuses one; a store written by other means, or by an older version, may hold one)."""
        for service in services:
            key = (service.id, service.version)
            if oversized(service) and key not in self._reported:
                self._reported.add(key)
                log.error("service skipped: its replica count is beyond the limit; scale it or remove it",
                          **service_fields(service), replicas=service.spec.replicas, limit=MAX_REPLICAS)

    def _schedule(self, nodes: list[Node], tasks: list[Task], now: float) -> bool:
        """Place the stored tasks that wait for a node; True if any changed."""
        pending = [t for t in tasks if t.status.state <= TaskState.PENDING
                   and t.desired_state == TaskState.RUNNING]
        if not pending:
            return False
        placed = [t for t, was in zip(self._place(nodes, tasks, pending, now), pending, strict=True)
                  if t is not was]
        if placed:
            self._write([Op.update(t) for t in placed])
            report = PassReport()
            report.placed(placed)
            report.emit()
        return bool(placed)

    def _place(self, nodes: list[Node], tasks: list[Task], pending: list[Task], now: float) -> list[Task]:
        """``pending`` with each task assigned to a node, or (when none fits)
        pending with the scheduler's explanation; a task with nothing to
        change is returned as it is. ``tasks`` are the placed ones to count."""
        if not pending:
            return []
        cluster = snapshot(nodes, tasks)
        self._seed += 1
        # A service's first start waits for its dependencies (depends_on).
        held_back = held(self.informer.services(), tasks, pending)
        # Addresses first: a task reaches a node with them, or not at all.
        given = {t.id: self.allocator.address(t) for t in pending if t.desired_state == TaskState.RUNNING}
        free = [got for t in pending if not t.node_id and t.id not in held_back
                and isinstance(got := given.get(t.id), Task)]
        by_id = {n.id: n for n in nodes}
        decisions = {d.task_id: d for d in schedule(cluster, [task_request(t, by_id) for t in free],
                                                     seed=self._seed)}
        out: list[Task] = []
        for was in pending:
            task = given.get(was.id, was)
            if isinstance(task, str):  # no address yet: it waits, saying why
                waits = was.status.message != task or was.status.state != TaskState.PENDING
                out.append(_pending(was, task, now) if waits else was)
            elif task.desired_state != TaskState.RUNNING:
                out.append(task)
            elif task.id in held_back:
                reason = held_back[task.id]
                changed = task.status.message != reason or task.status.state != TaskState.PENDING
                out.append(_pending(task, reason, now) if changed else task)
            elif task.node_id:  # global tasks come with their node
                node = by_id.get(task.node_id)
                fits = node is not None and node.state == "ready" and node.availability == "active"
                out.append(_assign(task, task.node_id, now) if fits else task)
            else:
                d = decisions.get(task.id)
                if d is not None and d.node_id:
                    out.append(_assign(task, d.node_id, now))
                elif d is not None and (task.status.message != d.explanation
                                        or task.status.state != TaskState.PENDING):
                    out.append(_pending(task, d.explanation, now))
                else:
                    out.append(task)
        return out

    def _write(self, ops: list[Op], first: int = 0) -> None:
        """Write ``ops`` (the first ``first`` of them in a write of their own).
        The next pass decides on the services written, whether or not the
        informer's handler has heard of the write by then."""
        for op in ops:
            if self._carry is None:
                break
            if isinstance(op.obj, Task):
                self._carry.add(op.obj.service_id)
            elif isinstance(op.obj, Service):
                self._carry.add(op.obj.id)
            else:
                self._carry = None
        results: list[StoreObject | None] = []
        committed = 0  # of the part of a batch committed before a conflict
        try:
            if 0 < first < len(ops):
                results = self.store.batch(ops[:first], fence=self.leadership)
                ops = ops[first:]
            results += self.store.batch(ops, fence=self.leadership)
        except StoreConflict as conflict:
            committed = conflict.revision
            raise
        finally:
            # Decide again only on a cache that holds this write (or the part
            # of it that was written before a conflict): a pass on a stale
            # cache would create the same tasks twice.
            revision = max([committed, *(obj.version for obj in results if obj is not None)])
            if revision:
                self._written = max(self._written, revision)
                self.informer.wait_revision(revision, 5.0)


class DirtyServices:
    """The services whose tasks or spec changed since the leader's last
    pass, as the informer reports them (on its thread); any other change
    (a node, a network, a secret) dirties every service."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: set[str] | None = None  # None: every service

    def note(self, change: Change) -> None:
        with self._lock:
            if self._ids is None:
                return
            obj, old = change.obj, change.old
            if isinstance(obj, Task):
                self._ids.add(obj.service_id)
                if isinstance(old, Task):
                    self._ids.add(old.service_id)
            elif isinstance(obj, Service):
                self._ids.add(obj.id)
            else:
                self._ids = None

    def all(self) -> None:
        with self._lock:
            self._ids = None

    def take(self) -> set[str] | None:
        """The services changed since the last take (None: every one); empties it."""
        with self._lock:
            ids, self._ids = self._ids, set()
        return ids


def needs_pass(change: Change) -> bool:
    """Whether a change can alter what a pass decides. A task's progress on
    its node up to running (assigned -> preparing -> starting) cannot: every
    rule reads whether a task is alive, its desired state and its node, the
    scheduler whether it is placed, and a rollout whether it is ready
    (running, and healthy if it has a check). A rollout of N replicas makes
    2N such changes; each woke a pass over every task before."""
    old, new = change.old, change.obj
    if change.type == "update" and isinstance(old, Node) and isinstance(new, Node):
        # A ready node's heartbeat moved (every node's, twice a second):
        # nothing a pass reads changed, and its expiry is the pass's own
        # timer (``NodeMonitor.next_check``). A node that is down or unknown
        # and heard again wakes one, which marks it ready.
        return new.state != "ready" or replace(
            old, last_heartbeat=new.last_heartbeat, version=new.version) != new
    if change.type != "update" or not isinstance(old, Task) or not isinstance(new, Task):
        return True
    progressed = old.status.state.on_node and new.status.state.on_node
    return not (progressed and old.desired_state == new.desired_state and old.node_id == new.node_id
                and ready(old) == ready(new) and old.status.health == new.status.health)


def is_request(change: Change) -> bool:
    """A service created, changed or removed, or its rollout paused or
    resumed: a user waits on the pass it wakes (``orch deploy``, ``scale``,
    ``rm``, ``update``), so it skips the settle. Not the leader's writes of a
    rollout's progress or of VIPs, which leave the spec and the rollout's
    state as they were: a rollout of N tasks makes N of those."""
    if change.kind != Kind.SERVICE:
        return False
    old, new = change.old, change.obj
    if change.type == "update" and isinstance(old, Service) and isinstance(new, Service):
        return old.spec != new.spec or _rollout_state(old) != _rollout_state(new)
    return True


def _rollout_state(service: Service) -> str:
    return service.update_status.state if service.update_status is not None else ""


def _assign(task: Task, node_id: str, now: float) -> Task:
    """``task`` on ``node_id``, which then holds its node-local volumes' data
    (``Task.data_node``: its slot's later tasks go there too)."""
    status = replace(task.status, state=TaskState.ASSIGNED, message="assigned", timestamp=now)
    return replace(task, node_id=node_id, status=status,
                   data_node=node_id if bound_volumes(task.spec) else "")


def _since(node: Node, started: float) -> Node:
    if node.last_heartbeat >= started or node.state != "ready":
        return node
    return replace(node, last_heartbeat=started)


def _shut(task: Task, now: float) -> Task:
    status = replace(task.status, state=TaskState.SHUTDOWN, message="shut down before it started",
                     timestamp=now)
    return replace(task, status=status)


def _pending(task: Task, explanation: str, now: float) -> Task:
    status = replace(task.status, state=TaskState.PENDING, message=explanation, timestamp=now)
    return replace(task, status=status)
