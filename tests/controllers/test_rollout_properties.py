"""Hypothesis properties of rolling updates (controlplane/controllers/rollout.py through reconcile.diff).

Random update configs, replica counts and agent behaviour (start delays, health checks, new tasks
that fail as they start) drive ``Sim`` (test_rollout_pacing.py) from a deploy to rest; random
mid-rollout clusters check that one pass is final; random deploy sequences check revisions.
"""

from __future__ import annotations

import copy
import dataclasses
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from controllers_helpers import Ids, node, nodes_of, service, task
from hypothesis import given, settings
from hypothesis import strategies as st
from test_rollout_pacing import Agents, Sim, configured, deployed, old_tasks

from controlplane.controllers import HISTORY, apply, diff, holds_slot, update_started
from controlplane.controllers.rollout import ready, same_spec
from model.objects import (
    ROLLOUT_STATES,
    Node,
    Service,
    Task,
    TaskState,
    TaskStatus,
    UpdateConfig,
    UpdateStatus,
)

NODE_IDS = ("n1", "n2", "n3")
HALVES = st.integers(0, 10).map(lambda q: q / 2)  # 0, 0.5, ... 5: exact in binary, as sums of them


@dataclass
class Rollout:
    svc: Service  # deployed: v2, status "updating"
    agents: Agents
    failing: frozenset[int]  # slots (global: node numbers) whose first v2 task fails

    @property
    def parallelism(self) -> int:
        return self.svc.spec.update_config.parallelism

    @property
    def slots(self) -> list[object]:
        if self.svc.spec.mode == "global":
            return list(NODE_IDS)
        return list(range(1, self.svc.spec.replicas + 1))


def key(t: Task) -> int:
    """A task's slot number, or its node's number for a global task."""
    return t.slot or int(t.node_id[1:])


@st.composite
def rollout_st(draw: st.DrawFn) -> Rollout:
    mode = draw(st.sampled_from(["replicated", "replicated", "global"]))
    svc = configured(service("s", draw(st.integers(0, 6)), mode=mode),
                     parallelism=draw(st.integers(0, 4)),
                     order=draw(st.sampled_from(["stop-first", "start-first"])),
                     monitor=draw(HALVES), delay=draw(st.integers(0, 4).map(lambda q: q / 2)),
                     failure_action="continue")
    starts = draw(st.lists(st.integers(0, 10).map(lambda q: q / 2), min_size=1, max_size=4))
    failing = frozenset(draw(st.sets(st.integers(1, 6), max_size=3)))

    def fails(t: Task) -> bool:
        return t.spec.image == "v2" and t.attempt == 0 and key(t) in failing

    agents = Agents(start=lambda t: starts[(key(t) + t.attempt) % len(starts)],
                    healthy_after=draw(st.none() | HALVES), fails=fails)
    return Rollout(deployed(svc), agents, failing)


def updated(t: Task, monitor: float, now: float) -> bool:
    return ready(t) and t.status.timestamp + monitor <= now


def invariants(case: Rollout) -> Callable[[Sim], None]:
    """(a) at most ``parallelism`` slots hold a v2 task not yet updated; (b) stop-first leaves at
    least ``slots - parallelism`` slots serving, start-first all of them."""
    slots = case.slots
    p = case.parallelism

    def check(sim: Sim) -> None:
        svc = sim.services["s"]
        monitor = svc.spec.update_config.monitor
        held = sim.holders()
        pending = [s for s, ts in held.items() if any(same_spec(t.spec, svc.spec) for t in ts)
                   and not any(updated(t, monitor, sim.now) for t in ts if same_spec(t.spec, svc.spec))]
        if p > 0:
            assert len(pending) <= p, (sim.now, sorted(map(str, pending)))
        serving = sum(1 for s in slots if any(ready(t) for t in held.get(s, [])))
        start_first = svc.spec.update_config.order == "start-first"
        floor = len(slots) if start_first else len(slots) - (p or len(slots))
        assert serving >= floor, (sim.now, serving, floor)

    return check


@settings(max_examples=250, deadline=None)
@given(rollout_st())
def test_a_rollout_keeps_its_pace_and_capacity_and_completes(case: Rollout) -> None:
    sim = Sim({"s": case.svc}, old_tasks(case.svc), dict(nodes_of(*(node(n) for n in NODE_IDS))),
              agents=case.agents)
    sim.run(invariants(case), max_steps=400)  # (c): every pass is checked final inside
    status = sim.status()
    assert status is not None and status.state == "completed", status
    slots = case.slots
    rebalanced = any(s.update_status is not None and s.update_status.message.startswith("rebalancing")
                     for ch in sim.passes for s in ch.services)
    total = case.svc.spec.replicas if case.svc.spec.mode == "replicated" else 0
    if status.message.startswith("rebalanced"):  # the last status is a rebalance's: its moves
        assert rebalanced and status.updated == status.total
    else:
        assert status.updated == len(slots) and status.total == total
    held = sim.holders()
    assert sorted(map(str, held)) == sorted(map(str, slots))
    assert all(len(ts) == 1 and same_spec(ts[0].spec, case.svc.spec) and ready(ts[0]) for ts in held.values())
    seen = [s.update_status for ch in sim.passes for s in ch.services if s.update_status is not None]
    assert all(len(set(s.failed)) == len(s.failed) for s in seen)
    assert {tid for s in seen for tid in s.failed} == set(sim.failed)  # each failure counted, once
    assert len(sim.failed) == len(case.failing & {key(t) for ts in held.values() for t in ts})


# ---- one pass is final, from any point of a rollout ----------------------------------------

@st.composite
def midway_st(draw: st.DrawFn) -> tuple[dict[str, Service], list[Task], dict[str, Node], float]:
    mode = draw(st.sampled_from(["replicated", "replicated", "global"]))
    availability = ["active", "active", "drain", "pause"]
    nodes = {n: dataclasses.replace(
        node(n, state=draw(st.sampled_from(["ready", "ready", "down"])),
             availability=draw(st.sampled_from(availability))),
        ready_since=draw(st.sampled_from([0.0, 15.0, 25.0]))) for n in NODE_IDS}
    config: dict[str, Any] = {
        "parallelism": draw(st.integers(0, 3)), "order": draw(st.sampled_from(["stop-first", "start-first"])),
        "monitor": draw(st.sampled_from([0.0, 2.0, 5.0])), "delay": draw(st.sampled_from([0.0, 1.0])),
        "failure_action": draw(st.sampled_from(["pause", "continue", "rollback"])),
        "max_failure_ratio": draw(st.sampled_from([0.0, 0.5]))}
    v1 = configured(service("s", draw(st.integers(0, 5)), mode=mode),
                    rollback=UpdateConfig(parallelism=draw(st.integers(0, 2))), **config)
    svc = deployed(v1, now=draw(st.sampled_from([0.0, 10.0])), update_config=UpdateConfig(**config))
    status = draw(st.none() | st.builds(
        UpdateStatus, state=st.sampled_from(ROLLOUT_STATES), started_at=st.sampled_from([0.0, 10.0]),
        total=st.integers(0, 5),
        failed=st.lists(st.sampled_from(["t0", "t1", "t2"]), max_size=2, unique=True)))
    svc = dataclasses.replace(svc, update_status=status if draw(st.booleans()) else svc.update_status)
    tasks = []
    for i in range(draw(st.integers(0, 8))):
        spec = draw(st.sampled_from([v1.spec, svc.spec]))
        state = draw(st.sampled_from(list(TaskState)))
        health = draw(st.sampled_from(["", "", "starting", "healthy", "unhealthy"]))
        t = task(f"t{i}", svc, 0 if mode == "global" else draw(st.integers(1, 6)),
                 node_id=draw(st.sampled_from([*NODE_IDS, ""])),
                 desired=draw(st.sampled_from([TaskState.RUNNING, TaskState.RUNNING, TaskState.SHUTDOWN])),
                 created_at=draw(st.sampled_from([0.0, 5.0, 10.0, 12.0])), spec=spec)
        at = draw(st.sampled_from([0.0, 11.0, 14.0]))
        tasks.append(dataclasses.replace(t, status=TaskStatus(state=state, health=health, timestamp=at)))
    return {"s": svc}, tasks, nodes, draw(st.sampled_from([10.0, 13.0, 16.0, 30.0, 40.0]))


def one_holder_per_slot(svc: Service, tasks: list[Task]) -> None:
    """Replicated: each slot 1..replicas has one holder, or a fresh main not ready and a ready standby."""
    if svc.spec.mode != "replicated":
        return
    by_slot: dict[int, list[Task]] = {}
    for t in tasks:
        if holds_slot(t):
            by_slot.setdefault(t.slot, []).append(t)
    assert sorted(by_slot) == list(range(1, svc.spec.replicas + 1))
    for slot, held in by_slot.items():
        if len(held) == 2:
            # a fresh main not ready, and a standby: one that serves or (start-first) an old one
            start_first = svc.spec.update_config.order == "start-first"
            fresh = [t for t in held if same_spec(t.spec, svc.spec)]
            assert any(not ready(m) and any(ready(o) or (start_first and not same_spec(o.spec, svc.spec))
                                            for o in held if o is not m) for m in fresh), slot
        else:
            assert len(held) == 1, slot


@settings(max_examples=400, deadline=None)
@given(midway_st())
def test_one_pass_is_final_from_any_point_of_a_rollout(
        cluster: tuple[dict[str, Service], list[Task], dict[str, Node], float]) -> None:
    services, tasks, nodes, now = cluster
    before = copy.deepcopy(cluster)
    first = diff(services, tasks, nodes, now, new_id=Ids())
    assert (services, tasks, nodes, now) == before, "diff mutated its inputs"
    assert first.wakeup is None or first.wakeup > now
    after = apply(first, tasks)
    moved = {s.id: s for s in first.services}
    if "s" in moved and moved["s"].spec != services["s"].spec:  # a rollback: tasks follow next pass
        assert moved["s"].update_status is not None and moved["s"].update_status.state == "rollback_started"
        assert not first.create
        services = {**services, **moved}
        first = diff(services, after, nodes, now, new_id=Ids("next"))
        after = apply(first, after)
        moved = {s.id: s for s in first.services}
    services = {**services, **moved}
    second = diff(services, after, nodes, now, new_id=Ids("again"))
    assert not (second.create or second.update or second.delete), second
    # No wakeup missed (one too early is only a spare pass: a fresh task being monitored on a node
    # being drained asks for one though this pass replaces it).
    assert second.wakeup is None or (first.wakeup is not None and first.wakeup <= second.wakeup)
    one_holder_per_slot(services["s"], after)


# ---- revisions ---------------------------------------------------------------------------

EDITS = st.lists(st.sampled_from(["image", "scale", "config", "same", "rebalance"]), max_size=30)


@settings(max_examples=150, deadline=None)
@given(EDITS)
def test_revisions_count_spec_changes_but_scaling_and_keep_the_last_history(edits: list[str]) -> None:
    svc = service("s", 2)
    for i, edit in enumerate(edits):
        spec = svc.spec
        if edit == "image":
            spec = dataclasses.replace(spec, image=f"v{i}")
        elif edit == "scale":
            spec = dataclasses.replace(spec, replicas=spec.replicas % 5 + 1)
        elif edit == "config":
            spec = dataclasses.replace(spec, update_config=UpdateConfig(
                parallelism=spec.update_config.parallelism % 4 + 1))  # never the one it had
        elif edit == "rebalance":
            spec = dataclasses.replace(spec, rebalance=not spec.rebalance)
        new = update_started(svc, spec, float(i))
        assert new.spec == spec and new.updated_at == float(i)
        if edit in ("image", "config", "rebalance"):
            assert new.revision == svc.revision + 1
            assert (new.history[-1].revision, new.history[-1].spec) == (svc.revision, svc.spec)
        else:
            assert (new.revision, new.history) == (svc.revision, svc.history)
        if edit == "image":
            assert new.update_status == UpdateStatus(state="updating", started_at=float(i),
                                                     total=spec.replicas, message="update in progress")
        else:
            assert new.update_status == svc.update_status
        assert len(new.history) == min(new.revision - 1, HISTORY - 1)
        assert [r.revision for r in new.history] == list(range(new.revision - len(new.history), new.revision))
        svc = new
    assert Counter(e for e in edits if e in ("image", "config", "rebalance")).total() == svc.revision - 1
