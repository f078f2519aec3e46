"""Rolling updates and rebalancing as the reconciler paces them (controlplane/controllers/rollout.py
through reconcile.diff): case tables, plus ``Sim``, a small cluster that the properties
(test_rollout_properties.py) drive too.

``Sim`` runs the leader's loop without a store: a pass (``diff``), its task changes applied and
its ``Changes.services`` written over the services, then the "agents": a retired task stops, a
pending one gets a node (its pinned one, else the least loaded ready node) and runs, fails or
reports health. Every pass is checked to be final: a second pass at the same ``now`` on what it
wrote changes no task. Time moves only to ``Changes.wakeup`` or to the agents' next event, so a
rollout that forgets to ask for a wakeup stalls and fails the test instead of passing by luck.
"""

from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import pytest
from controllers_helpers import Ids, node, nodes_of, service, task

from controlplane.controllers import (
    HISTORY,
    REBALANCE_GRACE,
    Changes,
    apply,
    diff,
    holds_slot,
    rolled_back,
    update_started,
)
from controlplane.controllers.rollout import ready, same_spec
from model.objects import (
    Node,
    NodeResources,
    Placement,
    Resources,
    Service,
    ServiceSpec,
    Task,
    TaskState,
    TaskStatus,
    UpdateConfig,
    UpdateStatus,
)

R, S = TaskState.RUNNING, TaskState.SHUTDOWN
T0 = 10.0  # when the deploy starts the rollout
GIB = 1 << 30


# ---- building blocks -------------------------------------------------------------

def configured(svc: Service, *, rollback: UpdateConfig | None = None, rebalance: bool = True,
               **update: Any) -> Service:
    """``svc`` with an ``update_config`` made of ``update`` (and a ``rollback_config``)."""
    spec = dataclasses.replace(svc.spec, update_config=UpdateConfig(**update),
                               rollback_config=rollback or UpdateConfig(), rebalance=rebalance)
    return dataclasses.replace(svc, spec=spec)


def respec(svc: Service, **changes: object) -> Service:
    return dataclasses.replace(svc, spec=dataclasses.replace(svc.spec, **changes))  # type: ignore[arg-type]


def restatus(svc: Service, **changes: object) -> Service:
    """``svc`` with its rollout status changed (say, paused by a user)."""
    assert svc.update_status is not None
    return dataclasses.replace(svc, update_status=dataclasses.replace(svc.update_status, **changes))  # type: ignore[arg-type]


def deployed(svc: Service, now: float = T0, **changes: object) -> Service:
    """``svc`` after a deploy of image v2 (and ``changes``), as the API stores it."""
    return update_started(svc, dataclasses.replace(svc.spec, image="v2", **changes), now)  # type: ignore[arg-type]


def old_tasks(svc: Service, nodes: Collection[str] = ("n1", "n2", "n3")) -> list[Task]:
    """One running task per slot (``svc.spec.replicas``, or one per node if global), ready since 0,
    spread evenly, made from the spec before the last deploy (the service's own if it has none)."""
    spec = svc.previous_spec or svc.spec
    if svc.spec.mode == "global":
        return [task(f"o-{n}", svc, 0, node_id=n, spec=spec) for n in nodes]
    order = list(nodes)
    return [task(f"o{i}", svc, i, node_id=order[(i - 1) % len(order)], spec=spec)
            for i in range(1, svc.spec.replicas + 1)]


def never(_: Task) -> bool:
    return False


@dataclass
class Agents:
    """How the simulated nodes treat their tasks (``Sim.act``)."""

    start: float | Callable[[Task], float] = 0.0  # seconds from placement to running (or failing)
    healthy_after: float | None = None  # with a health check: seconds "starting" before "healthy"
    fails: Callable[[Task], bool] = never  # a task that fails as it starts instead of running

    def start_after(self, t: Task) -> float:
        return self.start(t) if callable(self.start) else self.start


@dataclass
class Sim:
    services: dict[str, Service]
    tasks: list[Task]
    nodes: dict[str, Node]
    now: float = T0
    agents: Agents = field(default_factory=Agents)
    ids: Ids = field(default_factory=Ids)
    restless: int = 0  # passes whose second pass still moved a rollout status
    failed: list[str] = field(default_factory=list)  # tasks the agents failed
    passes: list[Changes] = field(default_factory=list)  # every pass's changes

    # ---- the leader ----------------------------------------------------------

    def reconcile(self) -> Changes:
        """One pass at ``now``, written; the pass after it changes no task."""
        changes = diff(self.services, self.tasks, self.nodes, self.now, new_id=self.ids)
        self.tasks = apply(changes, self.tasks)
        respecified = False
        for svc in changes.services:
            respecified |= svc.spec != self.services[svc.id].spec
            self.services[svc.id] = svc
        self.passes.append(changes)
        if respecified:
            return changes  # a rollback: its tasks change in the next pass, which is checked
        again = diff(self.services, self.tasks, self.nodes, self.now, new_id=Ids("probe"))
        assert not (again.create or again.update or again.delete), f"pass at {self.now} not final: {again}"
        # No wakeup missed: what the written state waits for, this pass asked for (or earlier).
        assert again.wakeup is None or (changes.wakeup is not None and changes.wakeup <= again.wakeup), (
            again.wakeup, changes.wakeup)
        self.restless += bool(again.services)
        return changes

    # ---- the agents ----------------------------------------------------------

    def _put(self, old: Task, new: Task) -> None:
        self.tasks = [new if t.id == old.id else t for t in self.tasks]

    def _status(self, t: Task, state: TaskState, health: str = "", error: str = "") -> None:
        self._put(t, dataclasses.replace(t, status=TaskStatus(state=state, timestamp=self.now, health=health,
                                                              error=error)))

    def _least_loaded(self) -> str | None:
        load = Counter(t.node_id for t in self.tasks if t.status.state.on_node)
        usable = [n for n in sorted(self.nodes) if self.nodes[n].state == "ready"
                  and self.nodes[n].availability == "active"]
        return min(usable, key=lambda n: load[n]) if usable else None

    def stop_retired(self) -> bool:
        gone = [t for t in self.tasks if t.desired_state > R and not t.status.state.terminal]
        for t in gone:
            self._status(t, S)
        return bool(gone)

    def place(self) -> bool:
        moved = False
        for t in self.tasks:
            if t.desired_state == R and t.status.state <= TaskState.PENDING:
                where = t.node_id or self._least_loaded()
                if where is not None:
                    self._put(t, dataclasses.replace(t, node_id=where, status=TaskStatus(
                        state=TaskState.ASSIGNED, timestamp=self.now)))
                    moved = True
        return moved

    def start(self, t: Task, *, fail: bool = False, health: str = "") -> None:
        if fail:
            self._status(t, TaskState.FAILED, error="exit status 1")
            self.failed.append(t.id)
        else:
            self._status(t, R, health=health)

    def play(self, *, fail: Collection[str] = (), health: str = "") -> None:
        """The agents at once: retired tasks stop, waiting ones get a node and run (or fail)."""
        self.stop_retired()
        self.place()
        for t in list(self.tasks):
            if t.status.state == TaskState.ASSIGNED:
                self.start(t, fail=t.id in fail, health=health)

    def set_health(self, task_id: str, health: str) -> None:
        t = next(t for t in self.tasks if t.id == task_id)
        self._status(t, t.status.state, health=health)

    def act(self) -> bool:
        """What the agents do at ``now`` as ``agents`` says; whether anything changed."""
        acted = self.stop_retired() | self.place()
        for t in list(self.tasks):
            after = self.agents.healthy_after
            due = t.status.timestamp + self.agents.start_after(t)
            if t.status.state == TaskState.ASSIGNED and due <= self.now:
                self.start(t, fail=self.agents.fails(t), health="" if after is None else "starting")
                acted = True
            elif (t.status.state == R and t.status.health == "starting" and after is not None
                  and t.status.timestamp + after <= self.now):
                self._status(t, R, health="healthy")
                acted = True
        return acted

    def next_event(self) -> float | None:
        due = [t.status.timestamp + self.agents.start_after(t) for t in self.tasks
               if t.status.state == TaskState.ASSIGNED]
        if self.agents.healthy_after is not None:
            due += [t.status.timestamp + self.agents.healthy_after for t in self.tasks
                    if t.status.state == R and t.status.health == "starting"]
        later = [d for d in due if d > self.now]
        return min(later) if later else None

    def run(self, check: Callable[[Sim], None] | None = None, max_steps: int = 600) -> int:
        """Passes and agents until nothing is left to do (no change, no wakeup, no agent event);
        the number of steps it took. ``check`` runs after every pass and every agent step."""
        for step in range(max_steps):
            changes = self.reconcile()
            if check is not None:
                check(self)
            acted = self.act()
            if check is not None:
                check(self)
            if acted or changes.create or changes.update or changes.delete or changes.services:
                continue
            times = [t for t in (changes.wakeup, self.next_event()) if t is not None]
            if not times:
                return step
            assert min(times) > self.now, (times, self.now)
            self.now = min(times)
        raise AssertionError(f"no rest after {max_steps} steps: {self.status()}")

    # ---- what it looks like ----------------------------------------------------

    def status(self, sid: str = "s") -> UpdateStatus | None:
        return self.services[sid].update_status

    def get(self, task_id: str) -> Task:
        return next(t for t in self.tasks if t.id == task_id)

    def holders(self, sid: str = "s") -> dict[object, list[Task]]:
        """Each slot's holders (slot number, or node for a global service)."""
        svc = self.services[sid]
        out: dict[object, list[Task]] = defaultdict(list)
        for t in self.tasks:
            if t.service_id == sid and holds_slot(t):
                out[t.node_id if svc.spec.mode == "global" else t.slot].append(t)
        return dict(out)

    def spread(self, sid: str = "s") -> dict[str, int]:
        counts = {n: 0 for n in self.nodes}
        for t in self.tasks:
            if t.service_id == sid and holds_slot(t) and t.node_id:
                counts[t.node_id] += 1
        return counts


def sim_of(svc: Service, tasks: list[Task], nodes: dict[str, Node] | None = None, **kw: object) -> Sim:
    return Sim({svc.id: svc}, tasks, dict(nodes or nodes_of(node("n1"), node("n2"), node("n3"))), **kw)  # type: ignore[arg-type]


def created(ch: Changes) -> list[tuple[str, int]]:
    return [(t.id, t.slot) for t in ch.create]


def retired(ch: Changes) -> list[str]:
    return sorted(t.id for t in ch.update if t.desired_state == S)


def all_new_and_one_per_slot(sim: Sim, sid: str = "s") -> bool:
    svc = sim.services[sid]
    held = sim.holders(sid)
    return all(len(ts) == 1 and same_spec(ts[0].spec, svc.spec) for ts in held.values())


# ---- 1. stop-first, parallelism 1 -------------------------------------------------

def test_stop_first_replaces_one_slot_and_the_next_waits_for_monitor_then_delay() -> None:
    svc = deployed(configured(service("s", 3), parallelism=1, monitor=5.0, delay=2.0))
    assert svc.update_status == UpdateStatus(state="updating", started_at=T0, total=3,
                                             message="update in progress")
    sim = sim_of(svc, old_tasks(svc))
    ch = sim.reconcile()
    assert created(ch) == [("new-1", 1)] and retired(ch) == ["o1"]
    assert sim.get("new-1").spec == svc.spec and sim.get("new-1").attempt == 0
    assert ch.wakeup is None  # the new task is not running: a status report wakes the leader
    sim.now = 11.0
    sim.play()  # new-1 running since 11
    ch = sim.reconcile()
    assert not ch.create and not ch.update and ch.wakeup == 16.0  # ready for monitor at 16
    sim.now = 16.0
    ch = sim.reconcile()
    assert not ch.create and ch.wakeup == 18.0  # then the delay
    assert [s.update_status.updated for s in ch.services if s.update_status] == [1]
    sim.now = 17.9
    assert not sim.reconcile().create
    sim.now = 18.0
    ch = sim.reconcile()
    assert created(ch) == [("new-2", 2)] and retired(ch) == ["o2"]


def test_a_new_task_that_is_not_ready_keeps_its_slot_in_flight() -> None:
    svc = deployed(configured(service("s", 2), monitor=0.0))
    sim = sim_of(svc, old_tasks(svc))
    sim.reconcile()
    for state in (TaskState.ASSIGNED, TaskState.PREPARING, TaskState.STARTING):
        sim._status(sim.get("new-1"), state)
        sim.now += 100.0
        ch = sim.reconcile()
        assert not ch.create and not ch.update and ch.wakeup is None, state
    sim._status(sim.get("new-1"), R)
    assert created(sim.reconcile()) == [("new-2", 2)]  # monitor 0: at once


def test_a_slot_counts_from_when_its_task_became_ready_not_from_when_it_was_made() -> None:
    svc = deployed(configured(service("s", 2), monitor=5.0))
    sim = sim_of(svc, old_tasks(svc))
    sim.reconcile()
    sim.now = 30.0
    sim.play()  # running only at 30, twenty seconds after it was made
    assert sim.reconcile().wakeup == 35.0
    sim.now = 34.0
    assert not sim.reconcile().create
    sim.now = 35.0
    assert created(sim.reconcile()) == [("new-2", 2)]


def test_a_service_stored_without_a_rollout_status_still_rolls_at_its_pace() -> None:
    svc = configured(service("s", 3), parallelism=1, monitor=1.0)
    changed = dataclasses.replace(svc, spec=dataclasses.replace(svc.spec, image="v2"))
    sim = sim_of(changed, old_tasks(svc))
    assert created(sim.reconcile()) == [("new-1", 1)]


# ---- 2. parallelism N and 0 ------------------------------------------------------

@pytest.mark.parametrize(("parallelism", "replicas", "first"), [
    (1, 4, [1]),
    (2, 4, [1, 2]),
    (3, 5, [1, 2, 3]),
    (4, 3, [1, 2, 3]),
    (0, 5, [1, 2, 3, 4, 5]),  # all at once
])
def test_the_first_pass_starts_parallelism_slots_lowest_first(parallelism: int, replicas: int,
                                                             first: list[int]) -> None:
    svc = deployed(configured(service("s", replicas), parallelism=parallelism))
    sim = sim_of(svc, old_tasks(svc))
    ch = sim.reconcile()
    assert [slot for _, slot in created(ch)] == first
    assert retired(ch) == sorted(f"o{i}" for i in first)


def test_each_parallel_worker_moves_on_as_its_own_slot_is_done() -> None:
    svc = deployed(configured(service("s", 5), parallelism=2, monitor=3.0))
    sim = sim_of(svc, old_tasks(svc))
    sim.reconcile()  # new-1 (slot 1), new-2 (slot 2)
    sim.now = 11.0
    sim.play(health="starting")
    sim.set_health("new-1", "healthy")  # slot 2 stays "starting"
    assert sim.reconcile().wakeup == 14.0
    sim.now = 14.0
    ch = sim.reconcile()
    assert created(ch) == [("new-3", 3)] and retired(ch) == ["o3"]  # one slot freed, one started
    sim.now = 100.0
    assert not sim.reconcile().create  # slot 2 still starting, slot 3 not running: two in flight


def test_parallelism_zero_updates_all_at_once_and_completes() -> None:
    svc = deployed(configured(service("s", 4), parallelism=0, monitor=2.0))
    sim = sim_of(svc, old_tasks(svc, ("n1", "n2")))
    assert len(sim.reconcile().create) == 4
    sim.run()
    status = sim.status()
    assert status is not None and (status.state, status.updated, status.total) == ("completed", 4, 4)
    assert all_new_and_one_per_slot(sim)


# ---- 3. start-first ----------------------------------------------------------------

def test_start_first_runs_the_new_task_beside_the_old_until_it_is_ready() -> None:
    svc = deployed(configured(service("s", 2), order="start-first", monitor=5.0))
    sim = sim_of(svc, old_tasks(svc))
    ch = sim.reconcile()
    assert created(ch) == [("new-1", 1)] and ch.update == []  # o1 keeps serving
    assert sorted(t.id for t in sim.holders()[1]) == ["new-1", "o1"]
    sim.now = 11.0
    sim.play(health="starting")
    ch = sim.reconcile()
    assert not ch.update and not ch.create  # starting is not ready: o1 stays
    sim.now = 12.0
    sim.set_health("new-1", "healthy")
    ch = sim.reconcile()
    assert retired(ch) == ["o1"] and not ch.create  # ready: the old one goes at once, monitor or not
    assert ch.wakeup == 17.0
    sim.now = 17.0
    ch = sim.reconcile()
    assert created(ch) == [("new-2", 2)] and not retired(ch)


@pytest.mark.parametrize(("state", "health", "old_retired"), [
    (R, "", True),  # no health check: running is ready
    (R, "healthy", True),
    (R, "starting", False),
    (R, "unhealthy", False),
    (TaskState.STARTING, "", False),
    (TaskState.ASSIGNED, "", False),
])
def test_start_first_retires_the_old_task_once_the_new_one_is_ready(state: TaskState, health: str,
                                                                   old_retired: bool) -> None:
    svc = deployed(configured(service("s", 1), order="start-first"))
    sim = sim_of(svc, old_tasks(svc))
    sim.reconcile()
    sim._put(sim.get("new-1"), dataclasses.replace(sim.get("new-1"), node_id="n2"))
    sim._status(sim.get("new-1"), state, health=health)
    ch = sim.reconcile()
    assert retired(ch) == (["o1"] if old_retired else []) and not ch.create


@pytest.mark.parametrize(("state", "health"), [(R, "unhealthy"), (R, "starting"), (TaskState.STARTING, "")])
def test_start_first_over_an_old_task_that_is_not_ready_is_final_in_one_pass(state: TaskState,
                                                                            health: str) -> None:
    svc = deployed(configured(service("s", 1), order="start-first"))
    tasks = old_tasks(svc)
    tasks[0] = dataclasses.replace(tasks[0], status=TaskStatus(state=state, health=health))
    Sim({"s": svc}, tasks, nodes_of(node("n1"))).reconcile()  # checks that the next pass changes nothing


def test_start_first_keeps_serving_when_the_new_task_fails() -> None:
    svc = deployed(configured(service("s", 2), order="start-first", failure_action="continue"))
    sim = sim_of(svc, old_tasks(svc))
    sim.reconcile()
    sim.play(fail={"new-1"})
    ch = sim.reconcile()
    assert retired(ch) == ["new-1"] and created(ch) == [("new-2", 1)]  # its restart; o1 still serves
    assert [t.id for t in sim.holders()[1] if ready(t)] == ["o1"]


# ---- 4. failure_action pause ------------------------------------------------------

def test_a_failed_new_task_pauses_the_rollout_naming_it() -> None:
    svc = deployed(configured(service("s", 3), monitor=1.0))
    sim = sim_of(svc, old_tasks(svc))
    sim.reconcile()
    sim.now = 11.0
    sim.play(fail={"new-1"})
    ch = sim.reconcile()
    [moved] = ch.services
    status = moved.update_status
    assert status is not None and status.state == "paused" and status.failed == ["new-1"]
    assert "svc-s.1.new-1" in status.message and "exit status 1" in status.message
    assert not {"o2", "o3"} & set(retired(ch))
    for now in (12.0, 20.0, 100.0):  # its restart runs and is monitored; no slot is admitted
        sim.now = now
        sim.play()
        ch = sim.reconcile()
        assert not {"o2", "o3"} & set(retired(ch)) and all(t.slot == 1 for t in ch.create)
    assert sim.status() == status  # paused as it was


def test_the_pass_that_pauses_admits_no_more_slots() -> None:
    svc = deployed(configured(service("s", 4), parallelism=2, monitor=1.0))
    sim = sim_of(svc, old_tasks(svc))
    sim.reconcile()  # slots 1 and 2
    sim.now = 11.0
    sim.play(fail={"new-1"})  # slot 1 fails, slot 2 runs
    sim.now = 13.0  # slot 2 counts as updated: one place free
    ch = sim.reconcile()
    assert [s.update_status.state for s in ch.services if s.update_status] == ["paused"]
    assert "o3" not in retired(ch) and 3 not in [slot for _, slot in created(ch)]


def test_a_paused_rollout_still_replaces_stale_tasks_that_serve_nothing() -> None:
    svc = restatus(deployed(configured(service("s", 4))), state="paused")
    tasks = old_tasks(svc)
    tasks[1] = dataclasses.replace(tasks[1], status=TaskStatus(state=TaskState.FAILED, timestamp=5.0))
    tasks[2] = dataclasses.replace(tasks[2], node_id="", status=TaskStatus(state=TaskState.PENDING))
    sim = sim_of(svc, tasks)
    ch = sim.reconcile()
    assert sorted(slot for _, slot in created(ch)) == [2, 3]  # dead and never placed: at once
    assert retired(ch) == ["o2", "o3"]
    assert all(t.spec == svc.spec and t.attempt == 0 for t in ch.create)
    assert sim.get("o1").desired_state == R and sim.get("o4").desired_state == R  # serving: left alone


def test_resuming_a_paused_rollout_goes_on() -> None:
    svc = deployed(configured(service("s", 2), monitor=0.0))
    sim = sim_of(svc, old_tasks(svc))
    sim.reconcile()
    sim.play(fail={"new-1"})
    sim.reconcile()
    status = sim.status()
    assert status is not None and status.state == "paused"
    sim.play()
    sim.reconcile()
    sim.services["s"] = restatus(sim.services["s"], state="updating", message="resumed by a user")  # the API
    sim.run()
    status = sim.status()
    assert status is not None and status.state == "completed" and status.failed == ["new-1"]
    assert all_new_and_one_per_slot(sim)


# ---- 5. failure_action rollback ----------------------------------------------------

def rollback_case(replicas: int = 3, rollback: UpdateConfig | None = None) -> Sim:
    """v1 (rollback_config ``rollback``) deployed as v2 (failure_action rollback), scaled to
    ``replicas`` after the deploy; slot 1's new task has just failed."""
    v1 = configured(service("s", 2), rollback=rollback or UpdateConfig(parallelism=0, monitor=2.0))
    v2 = deployed(v1, update_config=UpdateConfig(failure_action="rollback", monitor=1.0))
    v2 = update_started(v2, dataclasses.replace(v2.spec, replicas=replicas), T0)  # scaled: no revision
    sim = sim_of(v2, old_tasks(v2))
    sim.reconcile()
    sim.now = 11.0
    sim.play(fail={"new-1"})
    return sim


def test_a_failure_rolls_back_to_the_previous_spec_with_no_task_change_in_that_pass() -> None:
    sim = rollback_case(replicas=3)
    before = sim.services["s"]
    ch = sim.reconcile()
    assert ch.create == ch.update == ch.delete == []
    [back] = ch.services
    v1 = before.history[-1].spec
    assert back.spec == dataclasses.replace(v1, replicas=3)  # the count stays as scaled
    assert back.revision == before.revision + 1 == 3
    assert [r.revision for r in back.history] == [1, 2] and back.history[-1].spec == before.spec
    assert back.note.startswith("automatic rollback: task svc-s.1.new-1 failed")
    status = back.update_status
    assert status is not None
    assert (status.state, status.started_at, status.total) == ("rollback_started", 11.0, 3)


def test_the_rollback_rolls_out_with_the_rollback_config_and_completes() -> None:
    sim = rollback_case(replicas=3, rollback=UpdateConfig(parallelism=0, monitor=2.0))
    sim.reconcile()  # the rollback is written
    ch = sim.reconcile()
    # slot 1's v2 task is dead (replaced at once), slots 2-3 still run v1: nothing else to do
    assert created(ch) == [("new-2", 1)] and ch.create[0].spec.image == "busybox"
    sim.run()
    status = sim.status()
    assert status is not None and status.state == "rollback_completed"
    assert status.message.startswith("rollback completed")
    assert status.completed_at == 13.0  # ready at 11, monitored for 2 s
    assert all_new_and_one_per_slot(sim) and sim.services["s"].spec.image == "busybox"


def test_a_rollback_with_v2_tasks_to_undo_follows_its_parallelism() -> None:
    v1 = configured(service("s", 4), rollback=UpdateConfig(parallelism=3, monitor=1.0))
    v2 = deployed(v1, update_config=UpdateConfig(parallelism=2, failure_action="rollback", monitor=1.0))
    sim = sim_of(v2, old_tasks(v1))
    sim.reconcile()  # slots 1, 2 -> v2
    sim.play()
    sim.now = 12.0
    sim.reconcile()  # slots 3, 4 -> v2
    sim.play(fail={"new-3"})
    ch = sim.reconcile()
    status = ch.services[0].update_status
    assert status is not None and status.state == "rollback_started" and not ch.create
    ch = sim.reconcile()
    # v1's rollback_config (parallelism 3), not v2's update_config (2) nor v1's (1): slot 3 is dead
    # and replaced at once, which takes a place in flight; slots 1 and 2 take the others
    assert sorted(slot for _, slot in created(ch)) == [1, 2, 3]
    sim.run()
    assert sim.status().state == "rollback_completed"  # type: ignore[union-attr]
    assert all_new_and_one_per_slot(sim)


def test_a_failure_during_a_rollback_pauses_it() -> None:
    sim = rollback_case(replicas=2, rollback=UpdateConfig(parallelism=1, monitor=1.0))
    sim.reconcile()  # rollback written
    ch = sim.reconcile()
    [(tid, slot)] = created(ch)
    sim.now = 12.0
    sim.play(fail={tid})
    ch = sim.reconcile()
    [moved] = ch.services
    status = moved.update_status
    assert status is not None and status.state == "rollback_paused" and status.failed == [tid]
    assert status.message.startswith(f"rollback paused: task svc-s.{slot}.{tid} failed")
    assert moved.spec == sim.services["s"].spec and moved.revision == 3  # no second rollback


def test_failure_action_rollback_without_an_earlier_revision_pauses() -> None:
    svc = configured(service("s", 2), failure_action="rollback", monitor=0.0)
    svc = dataclasses.replace(svc, spec=dataclasses.replace(svc.spec, image="v2"),
                              update_status=UpdateStatus(state="updating", started_at=T0, total=2))
    sim = sim_of(svc, old_tasks(service("s", 2)))
    sim.reconcile()
    sim.play(fail={"new-1"})
    ch = sim.reconcile()
    assert [s.update_status.state for s in ch.services if s.update_status] == ["paused"]


def test_a_global_rollback_counts_its_nodes_as_its_total() -> None:
    v1 = configured(service("g", mode="global"),
                    rollback=UpdateConfig(parallelism=0, failure_action="pause", max_failure_ratio=0.5))
    v2 = deployed(v1, update_config=UpdateConfig(failure_action="rollback"))
    nodes = nodes_of(*(node(f"n{i}") for i in range(1, 5)))
    back = rolled_back(v2, v1.spec, "rollback to 1", 20.0)
    tasks = [task(f"v2-{n}", back, 0, node_id=n, spec=v2.spec) for n in nodes]
    sim = Sim({"g": back}, tasks, dict(nodes), now=20.0)
    sim.reconcile()
    sim.play(fail={"new-1"})  # one node of four fails: within the ratio
    sim.reconcile()
    status = sim.status("g")
    assert status is not None and status.state == "rollback_started"


# ---- 6. failure_action continue, max_failure_ratio ------------------------------------

@pytest.mark.parametrize(("ratio", "failures", "paused"), [
    (0.0, 1, True),
    (0.25, 1, False),
    (0.25, 2, True),
    (0.5, 2, False),  # 2 <= 0.5 * 4: tolerated
    (0.5, 3, True),
    (1.0, 4, False),
])
def test_failures_are_tolerated_up_to_the_ratio_of_the_total(ratio: float, failures: int,
                                                             paused: bool) -> None:
    svc = deployed(configured(service("s", 4), parallelism=0, max_failure_ratio=ratio, monitor=0.0))
    sim = sim_of(svc, old_tasks(svc))
    sim.reconcile()
    failing = {f"new-{i}" for i in range(1, failures + 1)}
    sim.play(fail=failing)
    sim.reconcile()
    status = sim.status()
    assert status is not None and status.failed == sorted(failing)
    assert status.state == ("paused" if paused else "updating")


def test_continue_counts_failures_once_and_goes_on_to_completion() -> None:
    svc = deployed(configured(service("s", 3), failure_action="continue", monitor=1.0))
    agents = Agents(start=0.5, fails=lambda t: t.spec.image == "v2" and t.attempt == 0 and t.slot != 2)
    sim = sim_of(svc, old_tasks(svc), agents=agents)
    sim.run()
    status = sim.status()
    assert status is not None and status.state == "completed" and (status.updated, status.total) == (3, 3)
    assert len(status.failed) == 2 and len(set(status.failed)) == 2  # slots 1 and 3, once each
    assert all_new_and_one_per_slot(sim)


def test_failures_before_the_rollout_started_or_of_another_spec_do_not_count() -> None:
    svc = deployed(configured(service("s", 2), monitor=0.0))
    sim = sim_of(svc, old_tasks(svc))
    sim.tasks[1] = dataclasses.replace(sim.tasks[1], status=TaskStatus(state=TaskState.FAILED, timestamp=9.0))
    early = task("early", svc, 1, spec=svc.spec, created_at=5.0, state=TaskState.FAILED, desired=S)
    sim.tasks.append(early)
    sim.reconcile()
    status = sim.status()
    assert status is not None and status.state == "updating" and status.failed == []


# ---- 7. completion -------------------------------------------------------------------

def test_completed_once_every_slot_is_fresh_and_monitored() -> None:
    svc = deployed(configured(service("s", 2), parallelism=0, monitor=4.0))
    sim = sim_of(svc, old_tasks(svc))
    sim.reconcile()
    sim.now = 11.0
    sim.play(health="starting")
    sim.set_health("new-1", "healthy")  # ready at 11
    sim.reconcile()
    sim.now = 13.0
    sim.set_health("new-2", "healthy")  # ready at 13
    ch = sim.reconcile()
    assert ch.wakeup == 15.0
    sim.now = 15.0
    ch = sim.reconcile()
    status = sim.status()
    assert status is not None and (status.state, status.updated) == ("updating", 1)
    assert ch.wakeup == 17.0
    sim.now = 17.0
    sim.reconcile()
    status = sim.status()
    assert status is not None
    assert (status.state, status.updated, status.total, status.completed_at, status.message) == (
        "completed", 2, 2, 17.0, "update completed")
    sim.now = 50.0
    assert sim.reconcile().services == []  # completed stays as it is


def test_not_completed_while_a_start_first_replacement_is_starting() -> None:
    svc = deployed(configured(service("s", 1), order="start-first", monitor=0.0))
    sim = sim_of(svc, old_tasks(svc))
    sim.reconcile()
    sim.play(health="starting")
    ch = sim.reconcile()
    assert ch.services == [] and sim.status().state == "updating"  # type: ignore[union-attr]


def test_a_slot_finished_for_good_counts_as_updated() -> None:
    svc = deployed(configured(service("s", 2, condition="none"), monitor=0.0))
    sim = sim_of(svc, old_tasks(svc))
    sim.reconcile()
    sim.tasks = [dataclasses.replace(t, status=TaskStatus(state=TaskState.COMPLETE, timestamp=T0))
                 if t.id == "new-1" else t for t in sim.tasks]  # exited 0; restart "none": kept as is
    sim.run()
    status = sim.status()
    assert status is not None and (status.state, status.updated) == ("completed", 2)
    assert sim.get("new-1").desired_state == TaskState.COMPLETE


def test_an_unpaced_pass_updates_every_stale_task_and_leaves_the_status() -> None:
    svc = restatus(deployed(configured(service("s", 4), parallelism=1)), state="paused")
    ch = diff({"s": svc}, old_tasks(svc), nodes_of(node("n1"), node("n2"), node("n3")), T0, new_id=Ids(),
              paced=False)  # orch plan: where things end up
    assert [slot for _, slot in created(ch)] == [1, 2, 3, 4] and ch.services == []


# ---- 8. revisions -----------------------------------------------------------------------

def test_update_started_makes_a_revision_and_a_rollout() -> None:
    svc = dataclasses.replace(service("s", 3), created_at=1.0)
    new = update_started(svc, dataclasses.replace(svc.spec, image="v2"), 5.0)
    assert (new.revision, new.note, new.updated_at) == (2, "deploy", 5.0)
    assert [(r.revision, r.spec, r.created_at, r.note) for r in new.history] == [(1, svc.spec, 1.0, "")]
    assert new.update_status == UpdateStatus(state="updating", started_at=5.0, total=3,
                                             message="update in progress")
    glob = update_started(service("g", mode="global"),
                          ServiceSpec(name="svc-g", image="v2", mode="global"), 5.0)
    assert glob.update_status is not None and glob.update_status.total == 0  # a global service: its nodes


def test_scaling_alone_is_no_revision_and_no_rollout() -> None:
    svc = deployed(service("s", 2))
    done = dataclasses.replace(svc, update_status=UpdateStatus(state="completed", started_at=T0, total=2))
    scaled = update_started(done, dataclasses.replace(done.spec, replicas=4), 20.0)
    assert (scaled.revision, scaled.history, scaled.update_status) == (2, done.history, done.update_status)
    assert scaled.spec.replicas == 4 and scaled.updated_at == 20.0
    tasks = [task(f"t{i}", done, i) for i in (1, 2)]
    ch = diff({"s": scaled}, tasks, nodes_of(node("n1")), 20.0, new_id=Ids())
    assert created(ch) == [("new-1", 3), ("new-2", 4)] and ch.update == []


@pytest.mark.parametrize("change", [
    {"update_config": UpdateConfig(parallelism=3)},
    {"rollback_config": UpdateConfig(order="start-first")},
    {"rebalance": False},
])
def test_a_rollout_settings_change_is_a_revision_that_replaces_no_task(change: dict[str, object]) -> None:
    svc = service("s", 2)
    new = update_started(svc, dataclasses.replace(svc.spec, **change), 5.0)  # type: ignore[arg-type]
    assert new.revision == 2 and new.history[0].spec == svc.spec and new.update_status is None
    tasks = [task(f"t{i}", svc, i) for i in (1, 2)]
    assert diff({"s": new}, tasks, nodes_of(node("n1")), 5.0, new_id=Ids()).empty


def test_history_keeps_history_revisions_in_all() -> None:
    assert HISTORY == 10
    svc = service("s", 1)
    for i in range(2, 16):
        svc = update_started(svc, dataclasses.replace(svc.spec, image=f"v{i}"), float(i))
    assert svc.revision == 15 and svc.spec.image == "v15"
    assert [r.revision for r in svc.history] == list(range(6, 15))  # 9 earlier + the current = 10
    assert [r.spec.image for r in svc.history] == [f"v{i}" for i in range(6, 15)]


def test_rolled_back_is_a_new_revision_keeping_the_replica_count() -> None:
    svc = deployed(service("s", 2))
    svc = dataclasses.replace(svc, spec=dataclasses.replace(svc.spec, replicas=5))
    back = rolled_back(svc, svc.history[0].spec, "rollback to 1", 30.0)
    assert back.spec == dataclasses.replace(svc.history[0].spec, replicas=5)
    assert (back.revision, back.note, [r.revision for r in back.history]) == (3, "rollback to 1", [1, 2])
    assert back.update_status == UpdateStatus(state="rollback_started", started_at=30.0, total=5,
                                              message="rollback to 1")


# ---- 9. rebalancing ------------------------------------------------------------------------

BACK_AT = 100.0  # when n3 came back


def uneven(svc: Service, *, n3: Node | None = None, on_n1: int = 3) -> Sim:
    """``svc``'s replicas on n1 (``on_n1`` of them) and n2, settled; n3 ready since ``BACK_AT``."""
    nodes = nodes_of(node("n1"), node("n2"), n3 or node("n3"))
    nodes["n3"] = dataclasses.replace(nodes["n3"], ready_since=BACK_AT)
    tasks = [task(f"t{i}", svc, i, node_id="n1" if i <= on_n1 else "n2")
             for i in range(1, svc.spec.replicas + 1)]
    return Sim({svc.id: svc}, tasks, nodes, now=BACK_AT)


def test_a_node_back_for_less_than_the_grace_period_is_left_alone() -> None:
    sim = uneven(service("s", 6))
    sim.now = BACK_AT + 5.0
    ch = sim.reconcile()
    assert ch.empty and ch.wakeup == BACK_AT + REBALANCE_GRACE


def test_after_the_grace_period_one_task_moves_to_the_empty_node() -> None:
    sim = uneven(service("s", 6))
    sim.now = BACK_AT + REBALANCE_GRACE
    ch = sim.reconcile()
    [new] = ch.create
    assert (new.node_id, new.slot, new.spec) == ("n3", 6, sim.services["s"].spec)  # pinned; n2's last slot
    assert retired(ch) == ["t6"]  # stop-first
    [moved] = ch.services
    status = moved.update_status
    assert status is not None and status.state == "updating" and status.total == 1
    assert status.message.startswith("rebalancing") and "host-n3" in status.message


def test_rebalancing_moves_parallelism_tasks_per_pass() -> None:
    svc = configured(service("s", 6), parallelism=2)
    sim = uneven(svc, on_n1=6)
    sim.now = BACK_AT + REBALANCE_GRACE
    ch = sim.reconcile()
    assert sorted((t.slot, t.node_id) for t in ch.create) == [(5, "n3"), (6, "n2")]


def test_rebalancing_start_first_keeps_the_old_task_until_the_new_is_ready() -> None:
    svc = configured(service("s", 6), order="start-first")
    sim = uneven(svc)
    sim.now = BACK_AT + REBALANCE_GRACE
    ch = sim.reconcile()
    assert [t.node_id for t in ch.create] == ["n3"] and ch.update == []
    sim.place()
    sim.now += 1.0
    sim._status(sim.get("new-1"), R, health="starting")
    assert sim.reconcile().update == []
    sim.set_health("new-1", "healthy")
    assert retired(sim.reconcile()) == ["t6"]


def rebalanced(delay: float, status: UpdateStatus | None) -> tuple[Sim, int]:
    svc = dataclasses.replace(configured(service("s", 6), delay=delay, monitor=1.0), update_status=status)
    sim = uneven(svc)
    return sim, sim.run()


def test_rebalancing_ends_even_and_completed() -> None:
    sim, _ = rebalanced(0.0, None)
    assert sorted(sim.spread().values()) == [2, 2, 2]
    status = sim.status()
    assert status is not None and status.state == "completed"
    assert all_new_and_one_per_slot(sim)


@pytest.mark.parametrize(("delay", "status"), [
    (0.0, UpdateStatus(state="completed", started_at=1.0, completed_at=2.0, total=6, updated=6)),
    (0.0, UpdateStatus(state="rollback_completed", started_at=1.0, completed_at=2.0, total=6, updated=6)),
    (2.0, None),  # the first move sets "updating"; the second waits for the delay, after "completed"
])
def test_rebalancing_a_service_that_has_completed_a_rollout(delay: float,
                                                           status: UpdateStatus | None) -> None:
    sim, _ = rebalanced(delay, status)
    assert sorted(sim.spread().values()) == [2, 2, 2]


def test_a_pass_lists_a_service_once_when_a_rebalance_step_completes_and_the_next_starts() -> None:
    svc = configured(service("s", 6), monitor=5.0)
    svc = dataclasses.replace(svc, update_status=UpdateStatus(
        state="updating", started_at=110.0, total=1, message="rebalancing: moving 1 task(s) to host-n3"))
    sim = uneven(svc)
    sim.tasks[5] = task("t6", svc, 6, node_id="n3", created_at=110.0, at=111.0)  # moved, ready at 111
    sim.now = 120.0
    ch = sim.reconcile()
    assert [t.node_id for t in ch.create] == ["n3"]  # the next step: n1 3, n2 2, n3 1
    assert len(ch.services) == 1, [s.update_status for s in ch.services]


def test_a_rebalance_step_is_final_for_its_status_too() -> None:
    sim = uneven(service("s", 6))
    sim.now = BACK_AT + REBALANCE_GRACE
    sim.reconcile()
    assert sim.restless == 0


def test_a_failed_rebalance_move_does_not_roll_the_spec_back() -> None:
    svc = service("s", 6)  # revision 2 changed only update_config: no rollout, status None
    svc = update_started(svc, dataclasses.replace(
        svc.spec, update_config=UpdateConfig(failure_action="rollback", monitor=1.0)), 1.0)
    sim = uneven(svc)
    sim.now = BACK_AT + REBALANCE_GRACE
    [moved] = sim.reconcile().create
    sim.now += 1.0
    sim.play(fail={moved.id})
    ch = sim.reconcile()
    assert all(s.spec == svc.spec and s.revision == 2 for s in ch.services)


def test_a_move_of_a_task_made_at_the_same_instant_is_final() -> None:
    svc = configured(service("s", 3), order="start-first", monitor=0.0)
    tasks = [task("a1", svc, 1, node_id="n1"), task("a2", svc, 2, node_id="n1", created_at=20.0, at=20.0),
             task("a3", svc, 3, node_id="n2")]
    sim = Sim({"s": svc}, tasks, dict(nodes_of(node("n1"), node("n2"), node("n3"))), now=20.0)
    sim.reconcile()  # moves slot 2 to n3; checks the next pass changes no task


@pytest.mark.parametrize(("what", "change"), [
    ("opted out", {"rebalance": False}),
    ("spread preference", {"placement": Placement(preferences=["node.labels.zone"])}),
    ("binpack", {"binpack": True}),
    ("constraint excludes n3", {"placement": Placement(constraints=["node.name!=host-n3"])}),
])
def test_no_move_for(what: str, change: dict[str, object]) -> None:
    svc = service("s", 6)
    svc = dataclasses.replace(svc, spec=dataclasses.replace(svc.spec, **change))  # type: ignore[arg-type]
    sim = uneven(svc)
    sim.now = BACK_AT + 2 * REBALANCE_GRACE
    assert sim.reconcile().empty, what


@pytest.mark.parametrize(("memory", "moves"), [(GIB, False), (2 * GIB, True)])
def test_a_move_needs_the_reservation_to_fit_the_target(memory: int, moves: bool) -> None:
    svc = respec(service("s", 6), reservations=Resources(memory_bytes=2 * GIB))
    n3 = dataclasses.replace(node("n3"), resources=NodeResources(cpus=4, memory_bytes=memory))
    sim = uneven(svc, n3=n3)
    sim.now = BACK_AT + 2 * REBALANCE_GRACE
    assert [t.node_id for t in sim.reconcile().create] == (["n3"] if moves else [])


@pytest.mark.parametrize(("stopping", "moves"), [(3, False), (2, True)])
def test_a_move_needs_the_target_below_max_replicas_per_node(stopping: int, moves: bool) -> None:
    svc = respec(service("s", 6), placement=Placement(max_replicas_per_node=3))
    sim = uneven(svc)
    # Tasks of slots scaled away still stopping on n3 hold their places there.
    sim.tasks += [task(f"gone{i}", svc, 6 + i, node_id="n3", desired=S) for i in range(1, stopping + 1)]
    sim.now = BACK_AT + 2 * REBALANCE_GRACE
    ch = sim.reconcile()
    assert [t.node_id for t in ch.create] == (["n3"] if moves else []) and bool(ch.services) == moves


@pytest.mark.parametrize(("state", "availability"),
                         [("ready", "drain"), ("ready", "pause"), ("down", "active")])
def test_no_move_to_a_node_that_cannot_take_tasks(state: str, availability: str) -> None:
    sim = uneven(service("s", 6), n3=node("n3", state=state, availability=availability))
    sim.now = BACK_AT + 2 * REBALANCE_GRACE
    assert sim.reconcile().empty


def test_no_move_while_a_rollout_is_under_way() -> None:
    svc = service("s", 6)
    svc = dataclasses.replace(svc, update_status=UpdateStatus(state="paused", started_at=1.0, total=6))
    sim = uneven(svc)
    sim.now = BACK_AT + 2 * REBALANCE_GRACE
    assert sim.reconcile().empty


def test_a_spread_within_one_does_not_move() -> None:
    sim = uneven(service("s", 5), on_n1=3)  # 3, 2, 0: moves one; then 2, 2, 1
    sim.now = BACK_AT + REBALANCE_GRACE
    sim.run()
    assert sorted(sim.spread().values()) == [1, 2, 2]


# ---- 10. global services -----------------------------------------------------------------

def test_a_global_service_rolls_node_by_node() -> None:
    svc = deployed(configured(service("g", mode="global"), monitor=2.0))
    nodes = nodes_of(node("n1"), node("n2"), node("n3"))
    sim = Sim({"g": svc}, old_tasks(svc, nodes), dict(nodes))
    ch = sim.reconcile()
    assert [(t.node_id, t.slot) for t in ch.create] == [("n1", 0)] and retired(ch) == ["o-n1"]
    sim.now = 11.0
    sim.play()
    assert sim.reconcile().wakeup == 13.0
    sim.now = 13.0
    ch = sim.reconcile()
    assert [t.node_id for t in ch.create] == ["n2"] and retired(ch) == ["o-n2"]
    sim.run()
    status = sim.status("g")
    assert status is not None and (status.state, status.updated) == ("completed", 3)
    held = sim.holders("g")
    assert sorted(map(str, held)) == ["n1", "n2", "n3"] and all_new_and_one_per_slot(sim, "g")


@pytest.mark.parametrize("n1", [node("n1", availability="pause"), node("n1", state="unknown")])
@pytest.mark.parametrize("order", ["stop-first", "start-first"])
def test_a_global_rollout_leaves_a_node_that_cannot_start_tasks_alone(n1: Node, order: str) -> None:
    svc = deployed(configured(service("g", mode="global"), order=order, parallelism=0))
    sim = Sim({"g": svc}, old_tasks(svc, ("n1", "n2")), dict(nodes_of(n1, node("n2"))))
    ch = sim.reconcile()
    assert [t.node_id for t in ch.create] == ["n2"] and "o-n1" not in retired(ch)


def test_a_global_service_start_first_has_two_tasks_on_the_node_until_ready() -> None:
    svc = deployed(configured(service("g", mode="global"), order="start-first", monitor=0.0))
    nodes = nodes_of(node("n1"), node("n2"))
    sim = Sim({"g": svc}, old_tasks(svc, nodes), dict(nodes))
    sim.reconcile()
    assert sorted(t.id for t in sim.holders("g")["n1"]) == ["new-1", "o-n1"]
    sim.run()
    assert all_new_and_one_per_slot(sim, "g") and sim.status("g").state == "completed"  # type: ignore[union-attr]
