"""Which informer changes wake the leader's pass (``orchestrator.needs_pass``),
and that the ones that do not cannot change what a pass decides."""

from __future__ import annotations

import dataclasses

import pytest
from controllers_helpers import node, nodes_of, service, services_of, task
from hypothesis import given
from hypothesis import strategies as st

from controlplane.controllers import diff
from controlplane.orchestrator import is_request, needs_pass
from controlplane.store import Change, Kind
from model.objects import Task, TaskState, TaskStatus, UpdateStatus

SVC = service("s1", replicas=3)
S = TaskState


def _with(t: Task, state: TaskState | None = None, **kw: object) -> Task:
    if state is not None:
        kw["status"] = TaskStatus(state=state, message=state.label())
    return dataclasses.replace(t, **kw)  # type: ignore[arg-type]


def _update(old: Task, new: Task) -> Change:
    return Change(Kind.TASK, "update", new, old)


@pytest.mark.parametrize(("before", "after"), [
    (S.ASSIGNED, S.STARTING), (S.ASSIGNED, S.PREPARING), (S.PREPARING, S.STARTING), (S.RUNNING, S.RUNNING),
])
def test_progress_on_its_node_does_not_wake(before: TaskState, after: TaskState) -> None:
    t = task("t1", SVC, state=before)
    assert not needs_pass(_update(t, _with(t, after)))


def test_becoming_ready_or_a_health_change_wakes() -> None:
    """A rollout waits for its new tasks to be ready (running, healthy if checked)."""
    t = task("t1", SVC, state=S.STARTING)
    assert needs_pass(_update(t, _with(t, S.RUNNING)))
    running = task("t2", SVC, state=S.RUNNING)
    healthy = _with(running, status=dataclasses.replace(running.status, health="healthy"))
    starting = _with(running, status=dataclasses.replace(running.status, health="starting"))
    assert needs_pass(_update(starting, healthy))
    assert not needs_pass(_update(healthy, _with(healthy, status=dataclasses.replace(
        healthy.status, message="still running"))))


@pytest.mark.parametrize(("before", "after"), [
    (S.PENDING, S.ASSIGNED), (S.NEW, S.PENDING), (S.RUNNING, S.FAILED), (S.RUNNING, S.COMPLETE),
    (S.STARTING, S.REJECTED), (S.RUNNING, S.ORPHANED), (S.RUNNING, S.SHUTDOWN),
])
def test_scheduling_and_endings_wake(before: TaskState, after: TaskState) -> None:
    t = task("t1", SVC, state=before)
    assert needs_pass(_update(t, _with(t, after)))


def test_desired_state_node_and_membership_changes_wake() -> None:
    t = task("t1", SVC, state=S.RUNNING)
    assert needs_pass(_update(t, _with(t, desired_state=S.SHUTDOWN)))
    assert needs_pass(_update(t, _with(t, node_id="n2")))
    assert needs_pass(Change(Kind.TASK, "add", t, None))
    assert needs_pass(Change(Kind.TASK, "delete", t, t))
    assert needs_pass(Change(Kind.SERVICE, "update", SVC, SVC))
    n = node("n1")
    assert needs_pass(Change(Kind.NODE, "update", dataclasses.replace(n, labels={"zone": "a"}), n))
    assert needs_pass(Change(Kind.NODE, "update", dataclasses.replace(n, state="down"), n))
    assert needs_pass(Change(Kind.NODE, "add", n, None))


def test_a_ready_nodes_heartbeat_does_not_wake() -> None:
    """Every node's heartbeat is a write twice a second: a ready node's
    wakes nothing (its expiry is the pass's timer); a down node's heard
    again wakes the pass that marks it ready."""
    n = dataclasses.replace(node("n1"), last_heartbeat=10.0, version=3)
    beat = dataclasses.replace(n, last_heartbeat=10.5, version=4)
    assert n.state == "ready"
    assert not needs_pass(Change(Kind.NODE, "update", beat, n))
    down = dataclasses.replace(n, state="down")
    assert needs_pass(Change(Kind.NODE, "update", dataclasses.replace(down, last_heartbeat=10.5), down))
    svc = service("s1", replicas=4)
    tasks = [task(f"t{i}", svc, slot=i + 1, node_id="n1", state=S.RUNNING) for i in range(3)]
    a = diff(services_of(svc), tasks, nodes_of(n), 100.0, new_id=iter(map(str, range(9))).__next__)
    b = diff(services_of(svc), tasks, nodes_of(beat), 100.0, new_id=iter(map(str, range(9))).__next__)
    assert a == b


BAND = [S.ASSIGNED, S.PREPARING, S.STARTING, S.RUNNING]


@given(st.lists(st.tuples(st.sampled_from(list(TaskState)),
                          st.sampled_from([S.RUNNING, S.SHUTDOWN, S.COMPLETE])),
                min_size=1, max_size=6),
       st.integers(0, 5), st.sampled_from(BAND), st.integers(0, 4))
def test_a_change_that_does_not_wake_leaves_the_pass_unchanged(
        states: list[tuple[TaskState, TaskState]], pick: int, new_state: TaskState,
        replicas: int) -> None:
    svc = service("s1", replicas=replicas)
    nodes = nodes_of(node("n1"), node("n2"))
    tasks = [task(f"t{i}", svc, slot=i % 3 + 1, node_id=f"n{i % 2 + 1}", state=state, desired=desired)
             for i, (state, desired) in enumerate(states)]
    i = pick % len(tasks)
    moved = [*tasks[:i], _with(tasks[i], new_state), *tasks[i + 1:]]
    if needs_pass(_update(tasks[i], moved[i])):
        return
    a = diff(services_of(svc), tasks, nodes, 100.0, new_id=iter(map(str, range(99))).__next__)
    b = diff(services_of(svc), moved, nodes, 100.0, new_id=iter(map(str, range(99))).__next__)
    assert [t.slot for t in a.create] == [t.slot for t in b.create]
    assert sorted(t.id for t in a.update) == sorted(t.id for t in b.update)
    assert sorted(t.id for t in a.delete) == sorted(t.id for t in b.delete)


def test_only_service_changes_are_requests() -> None:
    """A service written through the API wakes the pass at once (no settle):
    a user waits on it. Task and node changes come in bursts and settle."""
    changed = dataclasses.replace(SVC, spec=dataclasses.replace(SVC.spec, image="busybox:2"))
    for kind in ("add", "update", "delete"):
        assert is_request(Change(Kind.SERVICE, kind, changed, SVC if kind != "add" else None))
    # The leader's own writes: a rollout's progress is no request, its state changing (a user's
    # pause or resume, a completion) is.
    rolling = dataclasses.replace(SVC, update_status=UpdateStatus(state="updating", updated=1))
    progressed = dataclasses.replace(SVC, update_status=UpdateStatus(state="updating", updated=2))
    paused = dataclasses.replace(SVC, update_status=UpdateStatus(state="paused", updated=2))
    assert not is_request(Change(Kind.SERVICE, "update", progressed, rolling))
    assert is_request(Change(Kind.SERVICE, "update", paused, progressed))
    t = task("t1", SVC, state=S.RUNNING)
    assert not is_request(Change(Kind.TASK, "add", t, None))
    assert not is_request(_update(t, _with(t, S.FAILED)))
    n = node("n1")
    assert not is_request(Change(Kind.NODE, "update", n, n))


def test_dirty_services_are_the_ones_whose_objects_changed() -> None:
    """What the leader's next pass decides on: a task's service (its old one
    too), a service; any other change (a node) is every service."""
    from controlplane.orchestrator import DirtyServices

    dirty = DirtyServices()
    assert dirty.take() is None  # from the start: every service
    other = service("s2", replicas=1)
    t = task("t1", SVC, state=S.RUNNING)
    dirty.note(_update(t, _with(t, desired_state=S.SHUTDOWN)))
    dirty.note(Change(Kind.SERVICE, "update", other, other))
    assert dirty.take() == {SVC.id, other.id}
    assert dirty.take() == set()
    dirty.note(Change(Kind.TASK, "delete", t, t))
    dirty.note(Change(Kind.NODE, "update", dataclasses.replace(node("n1"), state="down"), node("n1")))
    dirty.note(_update(t, t))
    assert dirty.take() is None


def test_a_pass_decides_on_every_service_when_due() -> None:
    """The first pass, a pass after one that wrote a node, one whose wakeup
    fell due and one FULL_EVERY after the last full one decide on every
    service; the others on the changed ones and those the last pass wrote."""
    import threading

    from controlplane.orchestrator import FULL_EVERY, DirtyServices, Orchestrator

    dirty = DirtyServices()
    orch = Orchestrator(None, None, None, threading.Event(), dirty=dirty)  # type: ignore[arg-type]
    assert orch._decide_on(100.0) is None
    orch._last_full = 100.0
    t = task("t1", SVC, state=S.RUNNING)
    dirty.note(_update(t, _with(t, desired_state=S.SHUTDOWN)))
    orch._carry = {"written"}
    assert orch._decide_on(101.0) == {SVC.id, "written"}
    assert orch._decide_on(101.5) == set()
    orch._due = 102.0
    assert orch._decide_on(101.9) == set()
    assert orch._decide_on(102.0) is None
    orch._due = None
    assert orch._decide_on(100.0 + FULL_EVERY) is None
    orch._carry = None  # the last pass wrote a node
    assert orch._decide_on(101.0) is None


def test_the_monitor_reads_the_heartbeats_this_replica_heard() -> None:
    """A busy leader's cache can hold a stored heartbeat seconds old while
    the node's session here heard it just now: the node stays ready. A node
    with no session here (heard 0.0) is judged by the store alone."""
    import threading

    from controlplane.controllers import NodeMonitor
    from controlplane.orchestrator import Orchestrator

    stale = dataclasses.replace(node("n1"), last_heartbeat=10.0)
    away = dataclasses.replace(node("n2"), last_heartbeat=10.0)
    heard = {"n1": 50.0}
    orch = Orchestrator(None, None, None, threading.Event(),  # type: ignore[arg-type]
                        heard=lambda node_id: heard.get(node_id, 0.0))
    seen = [orch._heard(stale), orch._heard(away)]
    assert [n.last_heartbeat for n in seen] == [50.0, 10.0]
    assert [n.id for n in NodeMonitor().observe(seen, 51.0)] == ["n2"]
    assert orch._heard(away) is away
