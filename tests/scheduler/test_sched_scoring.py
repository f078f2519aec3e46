"""Scoring among feasible nodes: spread, preferences, binpack, seeded ties."""

from __future__ import annotations

from collections import Counter

import pytest
from sched_helpers import GiB, check_invariants, node, placed_on, task, tasks

import scheduler._schedule as schedule_module
from scheduler import ClusterSnapshot, Placed, schedule


@pytest.fixture(params=["best-first", "selector"])
def strategy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run spread cases through both placement strategies: they must agree."""
    if request.param == "selector":
        monkeypatch.setattr(schedule_module, "BEST_FIRST_MAX_GROUP", 0)
    return str(request.param)


def test_spread_prefers_fewest_of_service_then_fewest_overall(strategy: str) -> None:
    nodes = (node("a"), node("b"), node("c"))
    placed = (Placed("id-a", "web"), Placed("id-b", "db"), Placed("id-b", "db"))
    decisions = schedule(ClusterSnapshot(nodes, placed), [task("t1")])
    assert decisions[0].node_id == "id-c"
    decisions = schedule(ClusterSnapshot(nodes, (*placed, Placed("id-c", "web"))), [task("t1")])
    assert decisions[0].node_id == "id-b"  # a and c run web; b runs 2 db but no web


def test_spread_evens_out_a_batch(strategy: str) -> None:
    nodes = tuple(node(f"n{i}") for i in range(4))
    placed = (Placed("id-n0", "web"), Placed("id-n0", "web"), Placed("id-n1", "web"))
    decisions = schedule(ClusterSnapshot(nodes, placed), tasks(9))
    counts = placed_on(decisions) + Counter(p.node_id for p in placed)
    assert sorted(counts.values()) == [3, 3, 3, 3]


def test_same_seed_same_result_and_seeds_break_ties(strategy: str) -> None:
    snapshot = ClusterSnapshot(tuple(node(f"n{i}") for i in range(20)))
    firsts = set()
    for seed in range(10):
        a = schedule(snapshot, tasks(5), seed=seed)
        assert a == schedule(snapshot, tasks(5), seed=seed)
        firsts.add(a[0].node_id)
    assert len(firsts) > 1


def test_preferences_spread_over_label_values_first() -> None:
    # Zone a has 3 nodes, b has 1, and 2 nodes have no zone (their own group).
    nodes = (node("a1", zone="a"), node("a2", zone="a"), node("a3", zone="a"), node("b1", zone="b"),
             node("x1"), node("x2"))
    decisions = schedule(ClusterSnapshot(nodes), tasks(6, preferences=("spread=node.labels.zone",)))
    zone = {n.id: n.labels.get("zone") for n in nodes}
    assert Counter(zone[d.node_id] for d in decisions if d.node_id) == {"a": 2, "b": 2, None: 2}


def test_preferences_count_placed_tasks_and_nest() -> None:
    nodes = tuple(node(f"{z}{r}{i}", zone=z, rack=f"{z}{r}") for z in "ab" for r in "xy" for i in range(2))
    placed = (Placed("id-ax0", "web"), Placed("id-ax1", "web"))
    decisions = schedule(ClusterSnapshot(nodes, placed),
                         tasks(6, preferences=("node.labels.zone", "node.labels.rack")))
    by_id = {n.id: n for n in nodes}
    zones = Counter(by_id[d.node_id].labels["zone"] for d in decisions if d.node_id)
    racks = Counter(by_id[d.node_id].labels["rack"] for d in decisions if d.node_id)
    assert zones == {"a": 2, "b": 4}  # 2 already in a: 4 and 4
    assert racks == {"ay": 2, "bx": 2, "by": 2}


def test_preferences_skip_exhausted_groups() -> None:
    nodes = (node("a1", zone="a", cpus=1.0), node("b1", zone="b", cpus=8.0))
    decisions = schedule(ClusterSnapshot(nodes), tasks(5, cpus=1.0, preferences=("node.labels.zone",)))
    assert placed_on(decisions) == {"id-a1": 1, "id-b1": 4}


def test_binpack_fills_the_most_used_node_that_fits() -> None:
    nodes = (node("a", memory=8 * GiB), node("b", memory=8 * GiB), node("c", memory=8 * GiB))
    placed = (Placed("id-b", "db", memory_bytes=4 * GiB),)
    snapshot = ClusterSnapshot(nodes, placed)
    pending = tasks(6, memory_bytes=2 * GiB, binpack=True)
    decisions = schedule(snapshot, pending)
    check_invariants(snapshot, pending, decisions)
    assert [d.node_id for d in decisions[:2]] == ["id-b", "id-b"]
    counts = placed_on(decisions)
    assert counts["id-b"] == 2 and sorted([counts["id-a"], counts["id-c"]]) == [0, 4]


def test_binpack_without_reservations_packs_by_task_count() -> None:
    nodes = (node("a"), node("b"))
    decisions = schedule(ClusterSnapshot(nodes, (Placed("id-b", "x"),)), tasks(3, binpack=True))
    assert placed_on(decisions) == {"id-b": 3}


def test_decisions_follow_pending_order_across_groups() -> None:
    pending = [task("w1", "web"), task("d1", "db", memory_bytes=GiB), task("w2", "web"), task("bad", "x",
               constraints=("nope",))]
    decisions = schedule(ClusterSnapshot((node("a"),)), pending)
    assert [d.task_id for d in decisions] == ["w1", "d1", "w2", "bad"]
    assert [d.node_id for d in decisions] == ["id-a", "id-a", "id-a", None]
