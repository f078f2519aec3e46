"""Replicated services: case tables for each reconciler rule (controlplane/controllers/reconcile.py)."""

from __future__ import annotations

import dataclasses

import pytest
from controllers_helpers import Ids, by_id, node, nodes_of, run_all, service, services_of, settle, task

from controlplane.controllers import TASK_HISTORY, apply, diff
from model.objects import Task, TaskState

NODES = nodes_of(node("n1"), node("n2"))
R, S, C = TaskState.RUNNING, TaskState.SHUTDOWN, TaskState.COMPLETE


def test_new_service_gets_one_pending_task_per_slot() -> None:
    svc = service(replicas=3)
    ch = diff(services_of(svc), [], NODES, now=10.0, new_id=Ids())
    assert [(t.id, t.slot, t.status.state, t.desired_state, t.node_id, t.attempt, t.created_at)
            for t in ch.create] == [(f"new-{i}", i, TaskState.PENDING, R, "", 0, 10.0) for i in (1, 2, 3)]
    assert all(t.spec == svc.spec and t.service_name == "svc-s1" for t in ch.create)
    assert ch.update == ch.delete == [] and ch.wakeup is None


def test_scale_down_retires_highest_slots_first_and_never_lower_ones() -> None:
    svc = service(replicas=4)
    tasks = [task(f"t{i}", svc, i) for i in (1, 2, 3, 4)]
    ch = diff(services_of(dataclasses.replace(svc, spec=dataclasses.replace(svc.spec, replicas=2))),
              tasks, NODES, 0.0, new_id=Ids())
    assert [(t.id, t.desired_state) for t in ch.update] == [("t4", S), ("t3", S)]
    assert ch.create == [] and ch.delete == []


def test_scale_up_keeps_existing_slots_and_fills_the_missing_ones() -> None:
    svc = service(replicas=3)
    tasks = [task("t2", svc, 2)]
    ch = diff(services_of(svc), tasks, NODES, 0.0, new_id=Ids())
    assert sorted(t.slot for t in ch.create) == [1, 3] and ch.update == []


def test_scaling_does_not_count_as_a_spec_change() -> None:
    svc = service(replicas=1)
    tasks = [task("t1", svc, 1)]
    bigger = dataclasses.replace(svc, spec=dataclasses.replace(svc.spec, replicas=2))
    ch = diff(services_of(bigger), tasks, NODES, 0.0, new_id=Ids())
    assert [t.slot for t in ch.create] == [2] and ch.update == []


def test_two_holders_in_one_slot_keep_the_alive_newest() -> None:
    svc = service(replicas=1)
    tasks = [task("old", svc, 1, created_at=1.0), task("new", svc, 1, created_at=2.0),
             task("dead", svc, 1, created_at=3.0, state=TaskState.FAILED)]
    ch = diff(services_of(svc), tasks, NODES, 0.0, new_id=Ids())
    assert sorted((t.id, t.desired_state) for t in ch.update) == [("dead", S), ("old", S)]
    assert ch.create == []


# (condition, max_attempts, failed state, attempt) -> replaced?
@pytest.mark.parametrize(("condition", "max_attempts", "state", "attempt", "replaced"), [
    ("any", 0, TaskState.FAILED, 0, True),
    ("any", 0, TaskState.COMPLETE, 0, True),
    ("any", 0, TaskState.REJECTED, 7, True),
    ("any", 0, TaskState.SHUTDOWN, 0, True),  # stopped behind our back: restart, as swarm does
    ("on-failure", 0, TaskState.FAILED, 0, True),
    ("on-failure", 0, TaskState.REJECTED, 0, True),
    ("on-failure", 0, TaskState.ORPHANED, 0, True),
    ("on-failure", 0, TaskState.COMPLETE, 0, False),
    ("none", 0, TaskState.FAILED, 0, False),
    ("none", 0, TaskState.ORPHANED, 0, False),
    ("any", 2, TaskState.FAILED, 1, True),
    ("any", 2, TaskState.FAILED, 2, False),
    ("on-failure", 1, TaskState.FAILED, 0, True),
    ("on-failure", 1, TaskState.FAILED, 1, False),
])
def test_dead_task_replacement_follows_the_restart_policy(
        condition: str, max_attempts: int, state: TaskState, attempt: int, replaced: bool) -> None:
    svc = service(replicas=1, condition=condition, max_attempts=max_attempts)
    dead = task("t1", svc, 1, state=state, attempt=attempt, at=5.0)
    ids = Ids()
    ch = diff(services_of(svc), [dead], NODES, 5.0, new_id=ids)
    if replaced:
        assert [(t.id, t.desired_state) for t in ch.update] == [("t1", S)]
        assert [(t.slot, t.attempt) for t in ch.create] == [(1, attempt + 1)]
    else:  # the slot stays held by the finished task, so it is not refilled later
        assert [(t.id, t.desired_state) for t in ch.update] == [("t1", C)] and ch.create == []
    after = apply(ch, [dead])
    assert diff(services_of(svc), after, NODES, 1e6, new_id=ids).empty


@pytest.mark.parametrize(("attempt", "due"), [(0, 105.0), (1, 110.0), (2, 120.0), (3, 140.0),
                                              (4, 160.0), (30, 160.0)])
def test_restart_waits_for_an_exponential_capped_backoff(attempt: int, due: float) -> None:
    svc = service(replicas=1, delay=5.0)
    dead = task("t1", svc, 1, state=TaskState.FAILED, attempt=attempt, at=100.0)
    early = diff(services_of(svc), [dead], NODES, due - 0.01, new_id=Ids())
    assert early.empty and early.wakeup == due
    on_time = diff(services_of(svc), [dead], NODES, due, new_id=Ids())
    assert [t.attempt for t in on_time.create] == [attempt + 1] and on_time.wakeup is None


def test_wakeup_is_the_earliest_due_restart() -> None:
    a, b = service("a", delay=5.0), service("b", delay=1.0)
    tasks = [task("ta", a, state=TaskState.FAILED, at=100.0), task("tb", b, state=TaskState.FAILED, at=102.0)]
    assert diff(services_of(a, b), tasks, NODES, 100.5, new_id=Ids()).wakeup == 103.0


@pytest.mark.parametrize("nodes", [nodes_of(node("n1", state="down"), node("n2")), nodes_of(node("n2"))],
                         ids=["node-down", "node-gone"])
def test_task_on_a_lost_node_is_orphaned_and_replaced_at_once(nodes: dict) -> None:
    svc = service(replicas=2, delay=5.0)  # restart delay does not apply to a lost node
    tasks = [task("t1", svc, 1, node_id="n1", attempt=3), task("t2", svc, 2, node_id="n2")]
    ch = diff(services_of(svc), tasks, nodes, 50.0, new_id=Ids())
    [orphan] = ch.update
    assert (orphan.id, orphan.status.state, orphan.desired_state) == ("t1", TaskState.ORPHANED, S)
    assert orphan.status.timestamp == 50.0 and "n1" in orphan.status.message
    assert [(t.slot, t.attempt, t.node_id) for t in ch.create] == [(1, 4, "")]


def test_orphaned_task_with_restart_none_stays_finished_and_is_stopped_when_its_node_returns() -> None:
    svc = service(replicas=1, condition="none")
    down = nodes_of(node("n1", state="down"))
    tasks, ch = settle(services_of(svc), [task("t1", svc)], down, 1.0, Ids())
    assert ch.create == []
    [t1] = tasks
    assert t1.status.state == TaskState.ORPHANED and t1.desired_state > R  # the agent stops it
    assert diff(services_of(svc), tasks, NODES, 2.0, new_id=Ids()).empty  # node back: nothing new


def test_drained_node_task_is_retired_and_replaced_with_the_same_attempt() -> None:
    svc = service(replicas=1)
    nodes = nodes_of(node("n1", availability="drain"))
    ch = diff(services_of(svc), [task("t1", svc, attempt=2)], nodes, 0.0, new_id=Ids())
    assert [(t.id, t.desired_state, t.status.state) for t in ch.update] == [("t1", S, R)]
    assert [(t.slot, t.attempt, t.node_id) for t in ch.create] == [(1, 2, "")]


@pytest.mark.parametrize(("state", "availability"), [("ready", "pause"), ("unknown", "active")])
def test_paused_or_unknown_node_keeps_its_tasks(state: str, availability: str) -> None:
    svc = service(replicas=1)
    nodes = nodes_of(node("n1", state=state, availability=availability))
    assert diff(services_of(svc), [task("t1", svc)], nodes, 0.0, new_id=Ids()).empty


def test_spec_change_with_parallelism_zero_replaces_every_task_at_attempt_zero() -> None:
    old = service(replicas=2)
    all_at_once = dataclasses.replace(old.spec.update_config, parallelism=0)
    new = dataclasses.replace(old, spec=dataclasses.replace(old.spec, image="busybox:2",
                                                            update_config=all_at_once))
    tasks = [task("t1", old, 1, attempt=3), task("t2", old, 2), task("t0", old, 1, desired=S, state=S)]
    ch = diff(services_of(new), tasks, NODES, 0.0, new_id=Ids())
    assert sorted(t.id for t in ch.update) == ["t1", "t2"]
    assert sorted((t.slot, t.attempt, t.spec.image) for t in ch.create) == [(1, 0, "busybox:2"),
                                                                            (2, 0, "busybox:2")]


def test_finished_slot_is_revived_by_a_spec_change() -> None:
    old = service(replicas=1, condition="none")
    done = task("t1", old, state=TaskState.FAILED, desired=C)
    new = dataclasses.replace(old, spec=dataclasses.replace(old.spec, command=["true"]))
    assert diff(services_of(old), [done], NODES, 0.0, new_id=Ids()).empty
    assert len(diff(services_of(new), [done], NODES, 0.0, new_id=Ids()).create) == 1


def test_deleted_service_tasks_are_stopped_then_deleted() -> None:
    svc = service(replicas=4)
    tasks = [task("running", svc, 1), task("failed", svc, 2, state=TaskState.FAILED),
             task("pending", svc, 3, node_id="", state=TaskState.PENDING),
             task("lost", svc, 4, node_id="n9")]
    ch = diff({}, tasks, NODES, 0.0, new_id=Ids())
    assert [(t.id, t.desired_state) for t in ch.update] == [("running", S)]
    assert sorted(t.id for t in ch.delete) == ["failed", "lost", "pending"]
    stopped = [dataclasses.replace(t, status=dataclasses.replace(t.status, state=S))
               for t in apply(ch, tasks)]
    assert [t.id for t in diff({}, stopped, NODES, 0.0, new_id=Ids()).delete] == ["running"]


def test_history_keeps_the_newest_finished_tasks_per_slot() -> None:
    svc = service(replicas=1)
    old = [task(f"h{i}", svc, 1, desired=S, state=TaskState.FAILED, created_at=float(i)) for i in range(8)]
    tasks = [*old, task("live", svc, 1, created_at=9.0)]
    ch = diff(services_of(svc), tasks, NODES, 0.0, new_id=Ids())
    assert sorted(t.id for t in ch.delete) == [f"h{i}" for i in range(8 - TASK_HISTORY)]
    assert ch.update == ch.create == []


def test_retired_but_still_running_tasks_are_not_pruned() -> None:
    svc = service(replicas=1)
    old = [task(f"h{i}", svc, 1, desired=S, created_at=float(i)) for i in range(8)]
    assert diff(services_of(svc), [*old, task("live", svc, 1, created_at=9.0)], NODES, 0.0,
                new_id=Ids()).empty


def test_finished_tasks_in_removed_slots_are_deleted() -> None:
    svc = service(replicas=1)
    tasks = [task("t1", svc, 1), task("t2", svc, 2, desired=S, state=S), task("t3", svc, 3)]
    ch = diff(services_of(svc), tasks, NODES, 0.0, new_id=Ids())
    assert [t.id for t in ch.delete] == ["t2"] and [t.id for t in ch.update] == ["t3"]


def test_a_failing_slot_walks_through_backoff_to_its_attempt_limit() -> None:
    svc = service(replicas=1, delay=1.0, max_attempts=3)
    ids, now = Ids(), 0.0
    tasks: list[Task] = []
    tasks, _ = settle(services_of(svc), tasks, NODES, now, ids)
    waits = []
    for _ in range(5):
        tasks = run_all(tasks)
        failed = [dataclasses.replace(t, status=dataclasses.replace(t.status, state=TaskState.FAILED,
                                                                    timestamp=now))
                  if t.desired_state == R else t for t in tasks]
        ch = diff(services_of(svc), failed, NODES, now, new_id=ids)
        if ch.wakeup is None:
            tasks = apply(ch, failed)
            break
        waits.append(ch.wakeup - now)
        now = ch.wakeup
        tasks, _ = settle(services_of(svc), failed, NODES, now, ids)
    assert waits == [1.0, 2.0, 4.0]
    holders = [t for t in tasks if t.desired_state in (R, C)]
    assert [(t.attempt, t.desired_state) for t in holders] == [(3, C)]
    assert by_id(tasks).keys() >= {"new-1", "new-2", "new-3", "new-4"}


def test_same_spec_ignores_replicas_and_nothing_else() -> None:
    import dataclasses

    from controlplane.controllers.reconcile import same_spec
    from model.objects import ServiceSpec

    base = ServiceSpec(name="web", image="busybox", replicas=3)
    assert same_spec(base, base)
    assert same_spec(base, dataclasses.replace(base))  # equal, not the same object
    assert same_spec(base, dataclasses.replace(base, replicas=9))
    assert not same_spec(base, dataclasses.replace(base, image="busybox:2"))
    assert not same_spec(base, dataclasses.replace(base, image="busybox:2", replicas=9))
    assert not same_spec(base, dataclasses.replace(base, env=["A=1"]))
