"""Hypothesis properties of the reconciler (controlplane/controllers/reconcile.py).

Random clusters (nodes in every state, services of both modes and every
restart policy, tasks in every state, some of deleted services, some from an
older spec) and random event sequences; time is an argument, never read.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter, defaultdict
from typing import Any

from controllers_helpers import Ids, node, nodes_of, run_all, service, settle, task
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.controllers import apply, diff, holds_slot
from controlplane.controllers.placement import keeps_global, starts_global
from controlplane.controllers.rollout import ready, same_spec
from model.objects import Node, Service, Task, TaskState, TaskStatus

NODE_IDS = ["n0", "n1", "n2", "n3"]
R = TaskState.RUNNING


@st.composite
def nodes_st(draw: st.DrawFn) -> dict[str, Node]:
    ids = draw(st.lists(st.sampled_from(NODE_IDS), unique=True, max_size=4))
    return nodes_of(*(node(i, state=draw(st.sampled_from(["ready", "ready", "down", "unknown"])),
                           availability=draw(st.sampled_from(["active", "active", "drain", "pause"])),
                           zone=draw(st.sampled_from(["a", "b"]))) for i in ids))


@st.composite
def service_st(draw: st.DrawFn, sid: str, healthy_policy: bool = False) -> Service:
    mode = "replicated" if healthy_policy else draw(st.sampled_from(["replicated", "global"]))
    return service(
        sid, draw(st.integers(0, 5)), mode=mode,
        condition="any" if healthy_policy else draw(st.sampled_from(["any", "on-failure", "none"])),
        delay=0.0 if healthy_policy else draw(st.sampled_from([0.0, 1.0, 5.0])),
        max_attempts=0 if healthy_policy else draw(st.integers(0, 3)),
        constraints=draw(st.sampled_from([[], ["node.labels.zone==a"]])))


@st.composite
def task_st(draw: st.DrawFn, svc: Service, tid: str) -> Task:
    spec = svc.spec if draw(st.booleans()) else dataclasses.replace(svc.spec, image="old")
    return task(tid, svc, draw(st.integers(0, 6)), node_id=draw(st.sampled_from([*NODE_IDS, "ghost", ""])),
                state=draw(st.sampled_from(list(TaskState))),
                desired=draw(st.sampled_from([R, R, TaskState.SHUTDOWN, TaskState.COMPLETE])),
                attempt=draw(st.integers(0, 4)), created_at=draw(st.floats(0, 10)),
                at=draw(st.floats(0, 10)), spec=spec)


@st.composite
def cluster_st(draw: st.DrawFn, healthy_policy: bool = False
               ) -> tuple[dict[str, Service], list[Task], dict[str, Node], float]:
    nodes = draw(nodes_st())
    svcs = [draw(service_st(f"s{i}", healthy_policy)) for i in range(draw(st.integers(1, 3)))]
    gone = service("deleted", 2)
    tasks: list[Task] = []
    for svc in [*svcs, gone]:
        for _ in range(draw(st.integers(0, 6))):
            tasks.append(draw(task_st(svc, f"t{len(tasks)}")))
    return {s.id: s for s in svcs}, tasks, nodes, draw(st.floats(0, 100))


def check_slots(services: dict[str, Service], tasks: list[Task], nodes: dict[str, Node]) -> None:
    """Every replicated slot 1..replicas has one holder; each global node at most one, as placement
    says. (A slot's second holder is a serving standby for a main of the service's spec that is
    not ready yet: it counts once.)"""
    holders: dict[tuple[str, object], int] = Counter()
    by_slot: dict[tuple[str, object], list[Task]] = defaultdict(list)
    for t in tasks:
        if holds_slot(t):
            assert t.service_id in services, f"{t.id} of a deleted service still holds a slot"
            svc = services[t.service_id]
            by_slot[(t.service_id, t.node_id if svc.spec.mode == "global" else t.slot)].append(t)
    for key, held in by_slot.items():
        holders[key] = len(held) - standby_of(services[key[0]], held)
    for sid, svc in services.items():
        if svc.spec.mode == "replicated":
            want = {(sid, s): 1 for s in range(1, svc.spec.replicas + 1)}
            assert {k: v for k, v in holders.items() if k[0] == sid} == want
            continue
        cons = svc.spec.placement.constraints
        for nid, n in nodes.items():
            count = holders.get((sid, nid), 0)
            assert count <= 1
            assert count == 0 or keeps_global(n, cons)
            if starts_global(n, cons) and not any(
                    t.service_id == sid and t.node_id == nid and holds_slot(t) for t in tasks):
                raise AssertionError(f"ready node {nid} has no task of global service {sid}")
        assert all(nid in nodes for (s, nid) in holders if s == sid)


def standby_of(svc: Service, held: list[Task]) -> int:
    """1 if ``held`` is a main of the service's spec that is not ready and a ready standby, else 0."""
    if len(held) != 2:
        return 0
    fresh = [t for t in held if same_spec(t.spec, svc.spec)]
    return int(any(not ready(m) and any(ready(o) for o in held if o is not m) for m in fresh))


@settings(max_examples=300, deadline=None)
@given(cluster_st())
def test_diff_is_idempotent_and_leaves_every_slot_held_once(
        cluster: tuple[dict[str, Service], list[Task], dict[str, Node], float]) -> None:
    services, tasks, nodes, now = cluster
    before = copy.deepcopy((services, tasks, nodes))
    ids = Ids()
    first = diff(services, tasks, nodes, now, new_id=ids)
    assert (services, tasks, nodes) == before, "diff mutated its inputs"
    lists = [t.id for t in first.create + first.update + first.delete]
    assert len(lists) == len(set(lists)), "a task id in two lists"
    assert not {t.id for t in first.create} & {t.id for t in tasks}
    old = {t.id: t for t in tasks}
    for t in first.update:  # states and desired states only move forward
        assert t.status.state >= old[t.id].status.state and t.desired_state >= old[t.id].desired_state
        assert t.version == old[t.id].version
    after = apply(first, tasks)
    second = diff(services, after, nodes, now, new_id=ids)
    assert second.empty, second
    assert second.wakeup == first.wakeup
    assert first.wakeup is None or first.wakeup > now
    check_slots(services, after, nodes)


@settings(max_examples=200, deadline=None)
@given(cluster_st(healthy_policy=True))
def test_with_restart_any_and_no_delay_replicas_alive_equal_the_count(
        cluster: tuple[dict[str, Service], list[Task], dict[str, Node], float]) -> None:
    services, tasks, nodes, now = cluster
    # desired COMPLETE records a restart this policy would not have declined: leave such slots out
    tasks = [t for t in tasks if t.desired_state != TaskState.COMPLETE]
    now = max(now, 10.0)  # no failure is in the future (task timestamps are at most 10)
    after = apply(diff(services, tasks, nodes, now, new_id=Ids()), tasks)
    alive: dict[tuple[str, int], list[Task]] = defaultdict(list)
    for t in after:
        if t.desired_state == R and not t.status.state.terminal:
            alive[(t.service_id, t.slot)].append(t)
    for sid, svc in services.items():
        # A slot's serving standby (kept until its new main is ready) counts once with it.
        slots = sorted(slot for (s, slot), held in alive.items() if s == sid
                       for _ in range(len(held) - standby_of(svc, held)))
        assert slots == list(range(1, svc.spec.replicas + 1))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 8), st.integers(0, 8))
def test_rescaling_keeps_the_lowest_slots(first: int, second: int) -> None:
    svc = service("s", first)
    nodes, ids = nodes_of(node("n1")), Ids()
    tasks, _ = settle({"s": svc}, [], nodes, 0.0, ids)
    tasks = run_all(tasks)
    before = {t.slot: t.id for t in tasks if holds_slot(t)}
    rescaled = dataclasses.replace(svc, spec=dataclasses.replace(svc.spec, replicas=second))
    tasks, _ = settle({"s": rescaled}, tasks, nodes, 1.0, ids)
    after = {t.slot: t.id for t in tasks if holds_slot(t)}
    assert sorted(after) == list(range(1, second + 1))
    assert all(after[s] == before[s] for s in range(1, min(first, second) + 1))


EVENTS = st.one_of(
    st.tuples(st.just("fail"), st.integers(0, 20), st.sampled_from(
        [TaskState.FAILED, TaskState.COMPLETE, TaskState.REJECTED])),
    st.tuples(st.just("node"), st.sampled_from(NODE_IDS[:3]),
              st.sampled_from([("ready", "active"), ("down", "active"), ("ready", "drain"),
                               ("ready", "pause")])),
    st.tuples(st.just("scale"), st.integers(0, 6), st.none()),
    st.tuples(st.just("tick"), st.floats(0, 30), st.none()),
    st.tuples(st.just("run"), st.none(), st.none()),
    st.tuples(st.just("update"), st.sampled_from(["v1", "v2"]), st.none()),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(EVENTS, max_size=25), st.sampled_from(["any", "on-failure", "none"]),
       st.sampled_from(["replicated", "global"]))
def test_event_sequences_keep_the_invariants(events: list[tuple[str, Any, Any]], condition: str,
                                             mode: str) -> None:
    svc = service("s", 3, mode=mode, condition=condition, delay=2.0, max_attempts=3)
    nodes = nodes_of(*(node(i) for i in NODE_IDS[:3]))
    tasks: list[Task] = []
    now, ids = 0.0, Ids()
    for kind, a, b in events:
        if kind == "fail":
            live = [t for t in tasks if t.desired_state == R and not t.status.state.terminal]
            if live:
                t = live[a % len(live)]
                failed = dataclasses.replace(t, status=TaskStatus(state=b, timestamp=now))
                tasks = [failed if x.id == t.id else x for x in tasks]
        elif kind == "node":
            state, availability = b
            nodes[str(a)] = dataclasses.replace(nodes[str(a)], state=state, availability=availability)
        elif kind == "scale":
            svc = dataclasses.replace(svc, spec=dataclasses.replace(svc.spec, replicas=a))
        elif kind == "tick":
            now += a
        elif kind == "run":
            ready = [n for n in nodes.values() if n.state == "ready" and n.availability == "active"]
            if ready:
                tasks = run_all(tasks, ready[0].id)
        else:
            svc = dataclasses.replace(svc, spec=dataclasses.replace(svc.spec, image=str(a)))
        services = {"s": svc}
        tasks, _ = settle(services, tasks, nodes, now, ids)
        assert diff(services, tasks, nodes, now, new_id=ids).empty
        check_slots(services, tasks, nodes)
        slots: dict[tuple[int, str], list[Task]] = defaultdict(list)
        for t in tasks:
            if t.desired_state == R and not t.status.state.terminal:
                slots[(t.slot, t.node_id if mode == "global" else "")].append(t)
        assert all(len(v) - standby_of(svc, v) == 1 for v in slots.values()), "two live tasks share a slot"


@settings(max_examples=100, deadline=None)
@given(cluster_st())
def test_a_full_pass_is_the_union_of_per_service_passes(
        cluster: tuple[dict[str, Service], list[Task], dict[str, Node], float]) -> None:
    services, tasks, nodes, now = cluster
    full = diff(services, tasks, nodes, now, new_id=Ids())
    parts = [diff({sid: services[sid]} if sid in services else {},
                  [t for t in tasks if t.service_id == sid], nodes, now, new_id=Ids())
             for sid in sorted(services.keys() | {t.service_id for t in tasks})]

    def created(ts: list[Task]) -> list[tuple[str, int, str, int]]:
        return sorted((t.service_id, t.slot, t.node_id, t.attempt) for t in ts)

    assert created(full.create) == created([t for p in parts for t in p.create])
    assert sorted(t.id for t in full.update) == sorted(t.id for p in parts for t in p.update)
    assert sorted(t.id for t in full.delete) == sorted(t.id for p in parts for t in p.delete)
    assert full.wakeup == min((p.wakeup for p in parts if p.wakeup is not None), default=None)


@settings(max_examples=100, deadline=None)
@given(cluster_st(), st.integers(0, 2**16))
def test_a_pass_on_some_services_decides_for_them_what_a_full_one_does(
        cluster: tuple[dict[str, Service], list[Task], dict[str, Node], float], pick: int) -> None:
    """``diff(only=...)``, the leader's pass on the services that changed,
    against the full pass: the same decisions for those services, none for
    the others."""
    services, tasks, nodes, now = cluster
    every = sorted(services.keys() | {t.service_id for t in tasks})
    only = {sid for k, sid in enumerate(every) if pick >> k & 1}
    full = diff(services, tasks, nodes, now, new_id=Ids())
    some = diff(services, tasks, nodes, now, new_id=Ids(), only=only)

    def of(ts: list[Task]) -> list[tuple[str, int, str, int]]:
        return sorted((t.service_id, t.slot, t.node_id, t.attempt) for t in ts if t.service_id in only)

    assert of(some.create) == of(full.create) and len(some.create) == len(of(some.create))
    assert sorted(t.id for t in some.update) == sorted(t.id for t in full.update if t.service_id in only)
    assert sorted(t.id for t in some.delete) == sorted(t.id for t in full.delete if t.service_id in only)
