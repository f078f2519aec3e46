"""Hypothesis properties of ``schedule`` over random clusters and batches.

Every property runs through both placement strategies (best-first and the
heap selector), which must also agree with each other exactly.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sched_helpers import check_invariants

import scheduler._schedule as schedule_module
from scheduler import ClusterSnapshot, NodeInfo, Placed, TaskRequest, schedule

MiB = 1 << 20
ZONES = ["a", "b", "c"]
SERVICES = ["web", "db", "cache"]
CONSTRAINTS = ["node.labels.zone==a", "node.labels.zone!=b", "node.name!=n0", "node.id==id1"]
PORTS = [(80, "tcp"), (80, "udp"), (443, "tcp")]


@st.composite
def nodes(draw: st.DrawFn, max_nodes: int = 12) -> tuple[NodeInfo, ...]:
    n = draw(st.integers(0, max_nodes))
    out = []
    for i in range(n):
        labels = {}
        zone = draw(st.sampled_from([*ZONES, None]))
        if zone:
            labels["zone"] = zone
        mostly_true = st.booleans() | st.just(True)
        out.append(NodeInfo(id=f"id{i}", name=f"n{i}", labels=labels, ready=draw(mostly_true),
                            active=draw(mostly_true), cpus=draw(st.sampled_from([0.0, 1.0, 2.5, 4.0])),
                            memory_bytes=draw(st.integers(0, 8)) * 256 * MiB))
    return tuple(out)


@st.composite
def placed(draw: st.DrawFn, node_list: tuple[NodeInfo, ...]) -> tuple[Placed, ...]:
    if not node_list:
        return ()
    return tuple(Placed(node_id=draw(st.sampled_from(node_list)).id, service=draw(st.sampled_from(SERVICES)),
                        cpus=draw(st.sampled_from([0.0, 0.5, 1.0])),
                        memory_bytes=draw(st.integers(0, 4)) * 128 * MiB,
                        host_ports=tuple(draw(st.lists(st.sampled_from(PORTS), max_size=1))))
                 for _ in range(draw(st.integers(0, 10))))


@st.composite
def requests(draw: st.DrawFn) -> list[TaskRequest]:
    out: list[TaskRequest] = []
    # A service property: groups of one service (a rolling update) share it.
    limits = {s: draw(st.integers(0, 2)) for s in SERVICES}
    for g in range(draw(st.integers(1, 4))):
        service = draw(st.sampled_from(SERVICES))
        spec = dict(
            cpus=draw(st.sampled_from([0.0, 0.25, 0.5, 1.0])),
            memory_bytes=draw(st.integers(0, 3)) * 256 * MiB,
            constraints=tuple(draw(st.lists(st.sampled_from(CONSTRAINTS), max_size=2))),
            preferences=tuple(draw(st.lists(st.just("node.labels.zone"), max_size=1))),
            max_replicas_per_node=limits[service],
            host_ports=tuple(draw(st.lists(st.sampled_from(PORTS), max_size=2, unique=True))),
            binpack=draw(st.booleans()),
        )
        for i in range(draw(st.integers(1, 12))):
            out.append(TaskRequest(id=f"g{g}-{i}", service=service, slot=i + 1, **spec))  # type: ignore[arg-type]
    return out


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[ClusterSnapshot, list[TaskRequest], int]:
    node_list = draw(nodes())
    return (ClusterSnapshot(node_list, draw(placed(node_list))), draw(requests()),
            draw(st.integers(0, 2**32)))


STRATEGIES = pytest.mark.parametrize("strategy", ["best-first", "selector"])
Scenario = tuple[ClusterSnapshot, list[TaskRequest], int]


@contextlib.contextmanager
def using(strategy: str) -> Iterator[None]:
    """Force the heap selector for every group, or leave the default."""
    old = schedule_module.BEST_FIRST_MAX_GROUP
    if strategy == "selector":
        schedule_module.BEST_FIRST_MAX_GROUP = 0
    try:
        yield
    finally:
        schedule_module.BEST_FIRST_MAX_GROUP = old


@STRATEGIES
@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_invariants_hold(strategy: str, scenario: Scenario) -> None:
    """Never overcommits, constraints hold, ports never collide, replica limits kept."""
    snapshot, pending, seed = scenario
    with using(strategy):
        check_invariants(snapshot, pending, schedule(snapshot, pending, seed=seed))


@STRATEGIES
@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_deterministic_for_a_seed(strategy: str, scenario: Scenario) -> None:
    snapshot, pending, seed = scenario
    with using(strategy):
        assert schedule(snapshot, pending, seed=seed) == schedule(snapshot, pending, seed=seed)


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_strategies_agree(scenario: Scenario) -> None:
    snapshot, pending, seed = scenario
    best_first = schedule(snapshot, pending, seed=seed)
    with using("selector"):
        assert schedule(snapshot, pending, seed=seed) == best_first


@STRATEGIES
@settings(max_examples=200, deadline=None)
@given(n_nodes=st.integers(1, 10), batches=st.lists(st.tuples(st.sampled_from(SERVICES), st.integers(1, 40)),
                                                    min_size=1, max_size=4),
       seed=st.integers(0, 1000))
def test_spread_differs_by_at_most_one(strategy: str, n_nodes: int, batches: list[tuple[str, int]],
                                       seed: int) -> None:
    """Identical unconstrained nodes, no reservations: each service is even to within one."""
    snapshot = ClusterSnapshot(tuple(NodeInfo(id=f"id{i}", name=f"n{i}") for i in range(n_nodes)))
    pending = [TaskRequest(id=f"{s}-{b}-{i}", service=s, slot=i + 1)
               for b, (s, n) in enumerate(batches) for i in range(n)]
    with using(strategy):
        decisions = schedule(snapshot, pending, seed=seed)
    for service in SERVICES:
        counts = Counter(d.node_id for t, d in zip(pending, decisions, strict=True) if t.service == service)
        if counts:
            per_node = [counts.get(f"id{i}", 0) for i in range(n_nodes)]
            assert max(per_node) - min(per_node) <= 1, (service, per_node)


@settings(max_examples=200, deadline=None)
@given(zones=st.lists(st.sampled_from([*ZONES, None]), min_size=1, max_size=12), n=st.integers(1, 40),
       seed=st.integers(0, 1000), cpus=st.sampled_from([0.0, 0.5]))
def test_preferences_spread_across_zones(zones: list[str | None], n: int, seed: int, cpus: float) -> None:
    """Per label value (no label = its own group) counts differ by at most one when all fit."""
    snapshot = ClusterSnapshot(tuple(NodeInfo(id=f"id{i}", name=f"n{i}", labels={"zone": z} if z else {},
                                              cpus=1000.0) for i, z in enumerate(zones)))
    pending = [TaskRequest(id=f"t{i}", service="web", slot=i + 1, cpus=cpus,
                           preferences=("node.labels.zone",)) for i in range(n)]
    decisions = schedule(snapshot, pending, seed=seed)
    assert all(d.node_id for d in decisions)
    zone_of = {f"id{i}": z for i, z in enumerate(zones)}
    counts = Counter(zone_of[d.node_id] for d in decisions if d.node_id)
    per_zone = [counts.get(z, 0) for z in set(zones)]
    assert max(per_zone) - min(per_zone) <= 1, counts
