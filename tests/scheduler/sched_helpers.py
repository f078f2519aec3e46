"""Builders and an independent checker for the scheduler tests.

``check_invariants`` recomputes usage from the snapshot and the decisions
alone (no scheduler code), so properties do not trust the code under test.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from scheduler import ClusterSnapshot, Decision, NodeInfo, Placed, TaskRequest, matches, parse_constraint

GiB = 1 << 30


def node(name: str, cpus: float = 4.0, memory: int = 8 * GiB, ready: bool = True, active: bool = True,
         **labels: str) -> NodeInfo:
    return NodeInfo(id=f"id-{name}", name=name, labels=labels, ready=ready, active=active, cpus=cpus,
                    memory_bytes=memory)


def task(tid: str, service: str = "web", slot: int = 1, **kw: Any) -> TaskRequest:
    return TaskRequest(id=tid, service=service, slot=slot, **kw)


def tasks(n: int, service: str = "web", **kw: Any) -> list[TaskRequest]:
    return [task(f"{service}-{i}", service, slot=i + 1, **kw) for i in range(n)]


def placed_on(decisions: Sequence[Decision]) -> Counter[str | None]:
    return Counter(d.node_id for d in decisions)


def check_invariants(snapshot: ClusterSnapshot, pending: Sequence[TaskRequest],
                     decisions: Sequence[Decision]) -> None:
    """No overcommit, constraints hold, no port clash, replica limits kept."""
    assert [d.task_id for d in decisions] == [t.id for t in pending]
    nodes = {n.id: n for n in snapshot.nodes}
    all_placed: list[Placed] = list(snapshot.placed)
    for t, d in zip(pending, decisions, strict=True):
        if d.node_id is None:
            assert d.explanation.startswith(("no suitable node (", f"task {t.id}")), d.explanation
            continue
        assert d.explanation == ""
        n = nodes[d.node_id]
        assert n.ready and n.active
        for c in t.constraints:
            assert matches(parse_constraint(c), n), (c, n)
        all_placed.append(Placed(d.node_id, t.service, t.cpus, t.memory_bytes, t.host_ports))
    new_ids = {d.node_id for d in decisions if d.node_id}
    for node_id in new_ids:
        n = nodes[node_id]
        here = [p for p in all_placed if p.node_id == node_id]
        new = here[len([p for p in snapshot.placed if p.node_id == node_id]):]
        # A new task reserving a resource saw it fit, and later ones only add to
        # it if they reserve it too: so the total fits whenever any new one reserves.
        if any(p.cpus > 0 for p in new):
            assert sum(p.cpus for p in here) <= n.cpus + 1e-6, (node_id, here)
        if any(p.memory_bytes > 0 for p in new):
            assert sum(p.memory_bytes for p in here) <= n.memory_bytes, (node_id, here)
        ports = [(port, proto.lower()) for p in here for port, proto in p.host_ports]
        new_ports = [(port, proto.lower()) for t, d in zip(pending, decisions, strict=True)
                     if d.node_id == node_id for port, proto in t.host_ports]
        for port in set(new_ports):
            assert ports.count(port) == 1, (node_id, port)
    for t, d in zip(pending, decisions, strict=True):
        if d.node_id and t.max_replicas_per_node:
            count = sum(1 for p in all_placed if p.node_id == d.node_id and p.service == t.service)
            assert count <= t.max_replicas_per_node, (d.node_id, t.service, count)
