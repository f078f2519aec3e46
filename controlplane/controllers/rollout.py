"""Rolling updates and rebalancing: which of a service's slots may change now,
and where its rollout stands.

A service's rollout is stored on the service (``Service.update_status``), and
everything else it needs is read from its tasks, so the leader that picks it
up after a failover goes on from the same place:

- A slot's *main* task is its newest holder with the service's spec (a
  *fresh* one), or else its best holder, which is then *stale*.
- A fresh main *counts as updated* once it has been *ready* (running, and
  healthy if it has a health check) for ``monitor`` seconds; ``status.timestamp``
  is the time of its last state or health change, so that is when it became
  ready.
- A slot is *in flight* while its fresh main was made during this rollout
  (``created_at >= started_at``) and has not counted as updated for ``delay``
  seconds more. A stale slot may start its update only while fewer than
  ``parallelism`` slots are in flight (0: no limit), so ``parallelism`` tasks
  move at a time and each waits for its health check, ``monitor`` and ``delay``
  (swarmkit's updater: a worker per parallel slot, which sleeps ``delay``).
- ``stop-first`` retires the stale task and creates its replacement in one
  pass; ``start-first`` creates the replacement first, and the stale task
  stays as the slot's *standby*, serving, until the new one is ready.
- A stale task that is not serving (dead, or never placed) is replaced at
  once, paused or not: that costs no capacity.
- A task of the new spec that fails or is rejected during the rollout is a
  failure (its id is kept in ``failed``, so it counts once, on any leader).
  Beyond ``max_failure_ratio`` of the tasks to update, ``failure_action``:
  ``pause`` stops admitting slots, ``continue`` goes on, ``rollback`` returns
  the service to its previous spec (a new revision) and rolls that out with
  its ``rollback_config`` (as swarmkit: the config of the spec returned to); a
  failing rollback pauses.
- Completed when every slot's main is fresh and counts as updated, and no
  standby is left.

Rebalancing rides on the same machinery: once a replicated service is
settled (no rollout under way, every slot updated), and its tasks are spread
unevenly over the eligible nodes (ready for ``REBALANCE_GRACE``, active,
matching its constraints: a node that has just come back is left alone until
it has stayed), a task moves from the fullest node to the emptiest while the
counts differ by two or more, ``parallelism`` at a time, in the service's
update order, pinned to the target (which the scheduler must say it fits).
Services with spread preferences or ``binpack`` are left as placed (their
spread is not per node), as are those with ``rebalance`` off and those with
node-local volumes (a move would leave the data behind).

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from model.objects import Node, Revision, Service, ServiceSpec, Task, TaskState, UpdateConfig, UpdateStatus
from scheduler import schedule

from .placement import matches_all
from .snapshot import bound_volumes, snapshot, task_request

HISTORY = 10  # revisions kept per service, the current one included
REBALANCE_GRACE = 10.0  # seconds a node is ready before tasks move to it
MAX_FAILED_IDS = 100  # failed task ids kept in a status (failure_action continue)
FAILED_STATES = (TaskState.FAILED, TaskState.REJECTED)
REBALANCING = "rebalancing: moving"  # how a rebalance's status message starts


def config_of(service: Service) -> UpdateConfig:
    """The config the service's current rollout follows."""
    status = service.update_status
    spec = service.spec
    return spec.rollback_config if status is not None and status.rollback else spec.update_config


def ready(task: Task) -> bool:
    """Serving: running and, with a health check, healthy, and not being stopped."""
    return (task.status.state == TaskState.RUNNING and task.status.health in ("", "healthy")
            and task.desired_state <= TaskState.RUNNING)


def updated_at(task: Task, monitor: float) -> float | None:
    """When ``task`` counts (or will count) as updated; None while it is not ready.
    A finished task kept in its slot (desired ``COMPLETE``) counts at once."""
    if task.desired_state == TaskState.COMPLETE:
        return 0.0
    return task.status.timestamp + monitor if ready(task) else None


@dataclass
class SlotView:
    """One slot of a service as a pass finds it."""

    slot: int
    node_id: str  # global: the slot's node; replicated: ""
    main: Task | None
    fresh: bool  # main has the service's spec
    standby: Task | None  # a serving task kept until main is ready (start-first, moves)


class Pacer:
    """A service's rollout for one pass: the slots in flight, and which may start."""

    def __init__(self, service: Service, now: float) -> None:
        self.service = service
        self.status = service.update_status
        self.config = config_of(service)
        self.now = now
        self.started = self.status.started_at if self.status is not None else 0.0
        # Only a paused rollout starts nothing: a service stored before
        # rollouts existed (no status) rolls its stale tasks all the same, and
        # so does a completed one that a node kept from updating (paused then).
        self.moving = self.status is None or not self.status.state.endswith("paused")
        self.in_flight = 0
        self.wakeup: float | None = None

    def wake(self, when: float) -> None:
        """Ask for a pass at ``when`` (the earliest asked wins)."""
        if when > self.now:
            self.wakeup = when if self.wakeup is None else min(self.wakeup, when)

    def count(self, view: SlotView) -> None:
        """Note a slot in flight (its fresh main not yet updated, plus ``delay``).
        With ``failure_action: continue``, a slot whose new task failed is
        given up on (its restarts go on): it holds no place, as swarmkit
        moves on."""
        main = view.main
        if main is None or not view.fresh or main.created_at < self.started:
            return
        done = updated_at(main, self.config.monitor)
        if done is None:
            if not (self.config.failure_action == "continue" and main.status.state in FAILED_STATES):
                self.in_flight += 1
            return
        if done + self.config.delay > self.now:
            self.in_flight += 1
            self.wake(done + self.config.delay)

    def admit(self, move: bool = False) -> bool:
        """Whether one more stale slot may start its update now (and take its
        place in flight); ``move``: a rebalancing move, which a settled
        service makes whatever its last rollout's state."""
        if not self.moving and not move:
            return False
        limit = self.config.parallelism
        if limit > 0 and self.in_flight >= limit:
            return False
        self.in_flight += 1
        return True

    def start_first(self) -> bool:
        return self.config.order == "start-first"


def review(service: Service, views: list[SlotView], tasks: Iterable[Task], now: float,
           wake: Pacer) -> Service | None:
    """The service with its rollout status moved on by what its tasks show
    (progress, failures, completion), or None when nothing changes. A
    returned service with another spec is a rollback: the pass makes no
    task changes for it until that is written."""
    status = service.update_status
    if status is None or not status.active:
        return None
    config = config_of(service)
    counted = 0
    for view in views:
        if view.main is not None and view.fresh and view.standby is None:
            done = updated_at(view.main, config.monitor)
            if done is not None and done <= now:
                counted += 1
            elif done is not None:
                wake.wake(done)
    failed = list(status.failed)
    known = set(failed)
    new = [t for t in tasks if t.id not in known and t.status.state in FAILED_STATES
           and t.created_at >= status.started_at and same_spec(t.spec, service.spec)]
    failed += sorted(t.id for t in new)
    total = status.total or len(views)
    # Slots not yet updated are the rollout's still to do (a rebalance's
    # total is its moves, not every slot).
    counted = max(0, total - (len(views) - counted))
    rebalancing = status.message.startswith(REBALANCING)
    if new and len(failed) > config.max_failure_ratio * total:
        failed_line = _failure_line(new)
        if config.failure_action == "rollback" and not status.rollback and not rebalancing \
                and service.previous_spec is not None:
            return rolled_back(service, service.previous_spec, f"automatic rollback: {failed_line}", now)
        if config.failure_action != "continue":
            what = "rollback" if status.rollback else "update"
            return dataclasses.replace(service, update_status=dataclasses.replace(
                status, state="rollback_paused" if status.rollback else "paused",
                failed=failed[-MAX_FAILED_IDS:], updated=counted,
                message=f"{what} paused: {failed_line}"))
    complete = counted == total and all(v.main is not None for v in views) \
        and all(v.fresh and v.standby is None for v in views if v.main is not None)
    moved = dataclasses.replace(
        status, failed=failed[-MAX_FAILED_IDS:], updated=counted,
        state=("rollback_completed" if status.rollback else "completed") if complete else status.state,
        completed_at=now if complete else status.completed_at,
        message=_completed(service, status) if complete else status.message)
    return None if moved == status else dataclasses.replace(service, update_status=moved)


def _completed(service: Service, status: UpdateStatus) -> str:
    if status.rollback:
        return f"rollback completed ({service.note})"
    if status.message.startswith(REBALANCING):
        return status.message.replace(REBALANCING, "rebalanced: moved", 1)
    return "update completed"


def _failure_line(new: list[Task]) -> str:
    task = new[0]
    why = task.status.error or task.status.message or task.status.state.label()
    more = f" (and {len(new) - 1} more)" if len(new) > 1 else ""
    return f"task {task.name} failed: {why}{more}"


# ---- revisions ----------------------------------------------------------------

def revised(service: Service, spec: ServiceSpec, note: str, now: float, *,
            status: UpdateStatus | None, keep: int = HISTORY) -> Service:
    """``service`` at a new revision with ``spec`` (its current one goes to
    the history, which keeps ``keep`` revisions in all)."""
    old = Revision(service.revision, service.spec, service.updated_at or service.created_at, service.note)
    history = [*service.history, old][-max(keep - 1, 0):] if keep > 1 else []
    return dataclasses.replace(service, spec=spec, revision=service.revision + 1, note=note, history=history,
                               update_status=status, updated_at=now)


def rolled_back(service: Service, spec: ServiceSpec, note: str, now: float, *,
                total: int | None = None) -> Service:
    """``service`` rolling back to ``spec`` (keeping its replica count: scaling is not a revision)."""
    spec = dataclasses.replace(spec, replicas=service.spec.replicas)
    # A global service's total is its nodes, which the leader counts (0: every slot).
    count = (service.spec.replicas if spec.mode == "replicated" else 0) if total is None else total
    status = UpdateStatus(state="rollback_started", started_at=now, total=count, message=note)
    return revised(service, spec, note, now, status=status)


def update_started(service: Service, spec: ServiceSpec, now: float, note: str = "deploy") -> Service:
    """``service`` with a new ``spec`` from a deploy: a new revision, and a
    rollout when a task's spec changes (scaling alone changes neither)."""
    if same_spec(service.spec, spec):
        if spec == dataclasses.replace(service.spec, replicas=spec.replicas):
            return dataclasses.replace(service, spec=spec, updated_at=now)
        return revised(service, spec, note, now, status=service.update_status)
    status = UpdateStatus(state="updating", started_at=now, total=spec.replicas if spec.mode == "replicated"
                          else 0, message="update in progress")
    return revised(service, spec, note, now, status=status)


# ---- what counts as the same task ----------------------------------------------

# The spec fields that say how a service rolls out and how many tasks it has,
# not what a task runs: a change to them alone replaces no task.
_NOT_TASK = frozenset({"replicas", "update_config", "rollback_config", "rebalance"})
_TASK_FIELDS = tuple(f.name for f in dataclasses.fields(ServiceSpec) if f.name not in _NOT_TASK)


def same_spec(a: ServiceSpec, b: ServiceSpec) -> bool:
    """Whether a task made from ``a`` is one of ``b``: the specs are equal
    but for scaling and rollout settings. (Checked for every task on every
    pass: compared field by field, not copied, and remembered for the pair
    of objects: the tasks of a service share their spec object, as the
    store's decoder makes them, so a pass over 1,000 of them compares
    once.)"""
    if a is b:
        return True
    key = (id(a), id(b))
    seen = _same.get(key)
    # The entry holds both objects, so neither id can be reused while it is kept.
    if seen is not None and seen[0] is a and seen[1] is b:
        return seen[2]
    same = all(getattr(a, name) == getattr(b, name) for name in _TASK_FIELDS)
    if len(_same) >= SAME_CACHE:
        _same.clear()
    _same[key] = (a, b, same)
    return same


SAME_CACHE = 4096
_same: dict[tuple[int, int], tuple[ServiceSpec, ServiceSpec, bool]] = {}


# ---- rebalancing ----------------------------------------------------------------

def movable_to(nodes: Iterable[Node], constraints: Sequence[str],
               now: float) -> tuple[list[Node], list[Node]]:
    """The nodes, by id, a service with ``constraints`` may move tasks to at
    ``now``, and those it may once they have been back REBALANCE_GRACE."""
    eligible: list[Node] = []
    waiting: list[Node] = []
    for node in sorted(nodes, key=lambda n: n.id):
        if node.state != "ready" or node.availability != "active" or not matches_all(node, constraints):
            continue
        (eligible if node.ready_since + REBALANCE_GRACE <= now else waiting).append(node)
    return eligible, waiting


def rebalance_moves(service: Service, views: list[SlotView], nodes: Mapping[str, Node],
                    tasks: Collection[Task], now: float, wake: Pacer,
                    targets: Callable[[Sequence[str]], tuple[list[Node], list[Node]]] | None = None,
                    ) -> list[tuple[SlotView, str]]:
    """The slots to move now and the node each goes to (empty when the spread
    is even enough). ``targets``: ``movable_to`` on ``nodes`` at ``now`` for
    the given constraints (a pass over many services remembers it)."""
    spec = service.spec
    if (spec.mode != "replicated" or not spec.rebalance or spec.placement.preferences or spec.binpack
            or bound_volumes(spec)
            or not views):
        return []
    status = service.update_status
    if status is not None and not status.state.endswith("completed"):
        return []
    monitor = spec.update_config.monitor
    serving = []
    for view in views:
        main = view.main
        if main is not None and main.desired_state == TaskState.COMPLETE:
            continue  # finished for good: neither moved nor waited for
        done = updated_at(main, monitor) if main is not None and view.fresh else None
        if view.standby is not None or done is None or done > now:
            return []  # not settled
        serving.append(view)
    views = serving
    eligible, waiting = (targets(spec.placement.constraints) if targets is not None
                         else movable_to(nodes.values(), spec.placement.constraints, now))
    if len(eligible) < 2:
        return []
    on: dict[str, list[SlotView]] = {n.id: [] for n in eligible}
    for view in views:
        assert view.main is not None
        if view.main.node_id in on:
            on[view.main.node_id].append(view)
    moves: list[tuple[SlotView, str]] = []
    by_node = {n.id: n for n in eligible}
    while True:
        fullest = max(on, key=lambda n: (len(on[n]), n))
        emptiest = min(on, key=lambda n: (len(on[n]), n))
        if len(on[fullest]) - len(on[emptiest]) < 2:
            break
        # Never a task made at this very instant: it and its replacement
        # would tie as the slot's newest.
        movable = [v for v in on[fullest] if v.main is not None and v.main.created_at < now]
        if not movable:
            break
        view = max(movable, key=lambda v: v.slot)
        if not _fits(by_node[emptiest], view.main, tasks, moves):  # type: ignore[arg-type]
            break
        if not wake.admit(move=True):
            break
        on[fullest].remove(view)
        on[emptiest].append(view)
        moves.append((view, emptiest))
    if not moves and waiting:
        # A node back for less than the grace period: look again once it has stayed.
        counts = [len(v) for v in on.values()]
        if max(counts) >= 2:
            for node in waiting:
                wake.wake(node.ready_since + REBALANCE_GRACE)
    return moves


def _fits(node: Node, task: Task, tasks: Collection[Task], moves: list[tuple[SlotView, str]]) -> bool:
    """Whether the scheduler would place a copy of ``task`` on ``node``, with
    what is there and the moves already decided."""
    there = [t for t in tasks if t.node_id == node.id]
    there += [dataclasses.replace(v.main, node_id=target, status=dataclasses.replace(
        v.main.status, state=TaskState.ASSIGNED)) for v, target in moves
              if target == node.id and v.main is not None]
    probe = dataclasses.replace(task, id=f"{task.id}-move", node_id="")
    [decision] = schedule(snapshot([node], there), [task_request(probe)], seed=0)
    return decision.node_id == node.id
