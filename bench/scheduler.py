"""Scheduler throughput: 5,000 busy nodes x 1,000 pending tasks, two workloads.

"mixed": a few services with many replicas (spread, a zone preference, a
constraint, reservations, a host port, a replica limit, binpack).
"rescheduling": one task each of many services, as after a node failure.
Prints the best of three rounds per workload, then overall tasks per second.

    python bench/scheduler.py [NODES] [TASKS]      (default 5000 1000)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scheduler import ClusterSnapshot, NodeInfo, Placed, TaskRequest, schedule

GiB = 1 << 30


def snapshot(n_nodes: int) -> ClusterSnapshot:
    """Nodes in 5 zones, 1% not ready or drained; each runs ~2 old tasks, some a web task."""
    nodes = tuple(NodeInfo(id=f"n{i}", name=f"node{i}", ready=i % 97 != 0, active=i % 101 != 0,
                           labels={"zone": f"z{i % 5}", "disk": "ssd" if i % 3 else "hdd"},
                           cpus=8.0, memory_bytes=16 * GiB)
                  for i in range(n_nodes))
    old = tuple(Placed(node_id=f"n{i % n_nodes}", service=f"old{i % 200}", cpus=1.0, memory_bytes=2 * GiB)
                for i in range(2 * n_nodes))
    web = tuple(Placed(node_id=f"n{i}", service="web", cpus=0.5, memory_bytes=GiB, host_ports=((80, "tcp"),))
                for i in range(0, n_nodes, 7))
    return ClusterSnapshot(nodes=nodes, placed=old + web)


def mixed(n_tasks: int) -> list[TaskRequest]:
    """A few big groups: every filter and both scorers run."""
    kinds: list[dict[str, Any]] = [
        dict(service="api"),
        dict(service="web", cpus=0.5, memory_bytes=GiB, host_ports=((80, "tcp"),)),
        dict(service="db", cpus=2.0, memory_bytes=4 * GiB, constraints=("node.labels.disk==ssd",)),
        dict(service="cache", preferences=("node.labels.zone",), max_replicas_per_node=1),
        dict(service="batch", cpus=1.0, memory_bytes=GiB, binpack=True),
    ]
    return [TaskRequest(id=f"t{i}", slot=i // len(kinds) + 1, **kinds[i % len(kinds)])
            for i in range(n_tasks)]


def rescheduling(n_tasks: int) -> list[TaskRequest]:
    """One task each of many services (a failed node's tasks): a group per task."""
    return [TaskRequest(id=f"r{i}", service=f"old{i % 200}" if i % 2 else f"svc{i}", slot=1, cpus=0.25,
                        memory_bytes=GiB // 2, constraints=(f"node.labels.zone!=z{i % 5}",))
            for i in range(n_tasks)]


def run(name: str, snap: ClusterSnapshot, tasks: list[TaskRequest]) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        decisions = schedule(snap, tasks, seed=1)
        best = min(best, time.perf_counter() - t0)
    placed = sum(d.node_id is not None for d in decisions)
    print(f"{name}: nodes={len(snap.nodes)} tasks={len(tasks)} placed={placed} seconds={best:.3f}")
    return best


def main() -> None:
    n_nodes = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    n_tasks = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    snap = snapshot(n_nodes)
    seconds = run("mixed", snap, mixed(n_tasks)) + run("rescheduling", snap, rescheduling(n_tasks))
    print(f"tasks_per_s={2 * n_tasks / seconds:.0f}")


if __name__ == "__main__":
    main()
