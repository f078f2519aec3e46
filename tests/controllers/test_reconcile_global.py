"""Global services: one task per ready, active, matching node (controlplane/controllers/reconcile.py)."""

from __future__ import annotations

import dataclasses

from controllers_helpers import Ids, node, nodes_of, service, services_of, settle, task

from controlplane.controllers import diff
from model.objects import TaskState

R, S = TaskState.RUNNING, TaskState.SHUTDOWN


def test_one_task_per_eligible_node_with_its_node_set() -> None:
    svc = service("g", mode="global", constraints=["node.labels.zone==a"])
    nodes = nodes_of(node("ok", zone="a"), node("ok2", zone="a"), node("other", zone="b"), node("bare"),
                     node("down", state="down", zone="a"), node("drain", availability="drain", zone="a"),
                     node("pause", availability="pause", zone="a"), node("new", state="unknown", zone="a"))
    ch = diff(services_of(svc), [], nodes, 1.0, new_id=Ids())
    assert sorted((t.node_id, t.slot, t.status.state) for t in ch.create) == [
        ("ok", 0, TaskState.PENDING), ("ok2", 0, TaskState.PENDING)]


def test_node_field_constraints_and_not_equal() -> None:
    svc = service("g", mode="global", constraints=["node.name!=host-a", "node.labels.disk!=hdd"])
    nodes = nodes_of(node("a"), node("b", disk="hdd"), node("c", disk="ssd"), node("d"))
    ch = diff(services_of(svc), [], nodes, 0.0, new_id=Ids())
    assert sorted(t.node_id for t in ch.create) == ["c", "d"]


def test_malformed_constraint_matches_no_node() -> None:
    svc = service("g", mode="global", constraints=["zone=a"])
    assert diff(services_of(svc), [], nodes_of(node("a")), 0.0, new_id=Ids()).empty


def test_node_down_orphans_without_replacement_and_its_return_gets_a_new_task() -> None:
    svc = service("g", mode="global", delay=5.0)
    ids = Ids()
    tasks = [task("t1", svc, 0, node_id="n1"), task("t2", svc, 0, node_id="n2")]
    down = nodes_of(node("n1", state="down"), node("n2"))
    tasks, ch = settle(services_of(svc), tasks, down, 10.0, ids)
    assert [(t.id, t.status.state, t.desired_state) for t in ch.update] == [("t1", TaskState.ORPHANED, S)]
    assert ch.create == []
    back = nodes_of(node("n1"), node("n2"))
    tasks, ch = settle(services_of(svc), tasks, back, 11.0, ids)
    assert [(t.node_id, t.attempt) for t in ch.create] == [("n1", 0)] and ch.update == []


def test_drained_or_no_longer_matching_node_loses_its_task() -> None:
    svc = service("g", mode="global", constraints=["node.labels.zone==a"])
    nodes = nodes_of(node("n1", availability="drain", zone="a"), node("n2", zone="b"))
    tasks = [task("t1", svc, 0, node_id="n1"), task("t2", svc, 0, node_id="n2")]
    ch = diff(services_of(svc), tasks, nodes, 0.0, new_id=Ids())
    assert sorted((t.id, t.desired_state) for t in ch.update) == [("t1", S), ("t2", S)] and ch.create == []


def test_failed_global_task_restarts_on_the_same_node_after_its_delay() -> None:
    svc = service("g", mode="global", delay=2.0)
    dead = task("t1", svc, 0, node_id="n1", state=TaskState.FAILED, at=10.0, attempt=1)
    nodes = nodes_of(node("n1"))
    assert diff(services_of(svc), [dead], nodes, 11.0, new_id=Ids()).wakeup == 14.0
    ch = diff(services_of(svc), [dead], nodes, 14.0, new_id=Ids())
    assert [(t.node_id, t.attempt) for t in ch.create] == [("n1", 2)]


def test_paused_node_keeps_its_task_but_a_dead_one_waits_for_it_to_be_active() -> None:
    svc = service("g", mode="global")
    paused = nodes_of(node("n1", availability="pause"))
    assert diff(services_of(svc), [task("t1", svc, 0)], paused, 0.0, new_id=Ids()).empty
    dead = task("t1", svc, 0, state=TaskState.FAILED)
    assert diff(services_of(svc), [dead], paused, 0.0, new_id=Ids()).create == []
    assert len(diff(services_of(svc), [dead], nodes_of(node("n1")), 0.0, new_id=Ids()).create) == 1


def test_finished_tasks_of_a_removed_node_are_deleted() -> None:
    svc = service("g", mode="global")
    gone = task("t1", svc, 0, node_id="n9", desired=S, state=TaskState.ORPHANED)
    ch = diff(services_of(svc), [gone], nodes_of(node("n1")), 0.0, new_id=Ids())
    assert [t.id for t in ch.delete] == ["t1"] and len(ch.create) == 1


def test_switching_replicated_to_global_replaces_tasks() -> None:
    rep = service("s", replicas=1)
    glob = dataclasses.replace(rep, spec=dataclasses.replace(rep.spec, mode="global"))
    ch = diff(services_of(glob), [task("t1", rep, 1, node_id="n1")], nodes_of(node("n1")), 0.0,
              new_id=Ids())
    assert [(t.id, t.desired_state) for t in ch.update] == [("t1", S)]
    assert [(t.node_id, t.slot) for t in ch.create] == [("n1", 0)]
