"""Per-node usage counters, kept in memory for the length of one ``schedule`` call.

Invariants:
- a ``NodeState`` holds exactly the sum of what was placed on its node (from
  the snapshot plus this call's placements), so every filter and scorer
  reads O(1) counters instead of scanning tasks;
- ``rank`` is the node's position after the seeded shuffle; it is unique and
  is the last tie-break everywhere;
- ``Cluster`` indexes the nodes by load (total tasks, then rank) and by
  service, updated on every placement, so the spread scorer can visit nodes
  best-first instead of scanning them all.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Iterator
from dataclasses import dataclass, field

from scheduler._types import ClusterSnapshot, NodeInfo

# Reservations are summed as floats; this keeps 10 x 0.1 CPU fitting on 1 CPU.
CPU_EPSILON = 1e-9


@dataclass(eq=False)
class NodeState:
    info: NodeInfo
    rank: int
    cpus_used: float = 0.0
    memory_used: int = 0
    tasks: int = 0
    by_service: dict[str, int] = field(default_factory=dict)
    ports: set[tuple[int, str]] = field(default_factory=set)

    def add(self, service: str, cpus: float, memory_bytes: int,
            host_ports: tuple[tuple[int, str], ...]) -> None:
        self.cpus_used += cpus
        self.memory_used += memory_bytes
        self.tasks += 1
        self.by_service[service] = self.by_service.get(service, 0) + 1
        if host_ports:
            self.ports.update(normalise_ports(host_ports))

    def service_tasks(self, service: str) -> int:
        return self.by_service.get(service, 0)

    def fits_cpus(self, cpus: float) -> bool:
        return self.cpus_used + cpus <= self.info.cpus + CPU_EPSILON

    def fits_memory(self, memory_bytes: int) -> bool:
        return self.memory_used + memory_bytes <= self.info.memory_bytes

    def utilisation(self) -> float:
        """Mean reserved fraction over the resources this node reports (0..1)."""
        fractions = []
        if self.info.cpus > 0:
            fractions.append(self.cpus_used / self.info.cpus)
        if self.info.memory_bytes > 0:
            fractions.append(self.memory_used / self.info.memory_bytes)
        return sum(fractions) / len(fractions) if fractions else 0.0


def normalise_ports(host_ports: tuple[tuple[int, str], ...]) -> list[tuple[int, str]]:
    return [(int(port), proto.lower()) for port, proto in host_ports]


_EMPTY: set[int] = set()


class Cluster:
    """All node states of one ``schedule`` call, with the indexes placement needs."""

    def __init__(self, snapshot: ClusterSnapshot, seed: int) -> None:
        order = list(range(len(snapshot.nodes)))
        random.Random(seed).shuffle(order)
        self.nodes = [NodeState(snapshot.nodes[i], rank) for rank, i in enumerate(order)]  # by rank
        by_id = {s.info.id: s for s in self.nodes}
        # Placed tasks naming an unknown node are ignored: that node is gone and
        # its tasks are rescheduled by whoever notices.
        for p in snapshot.placed:
            state = by_id.get(p.node_id)
            if state is not None:
                state.add(p.service, p.cpus, p.memory_bytes, p.host_ports)
        self._by_service: dict[str, set[int]] = {}  # service -> ranks of nodes running it
        self._by_load: dict[int, list[int]] = {}  # total tasks -> sorted ranks
        for s in self.nodes:
            self._by_load.setdefault(s.tasks, []).append(s.rank)
            for service in s.by_service:
                self._by_service.setdefault(service, set()).add(s.rank)

    def place(self, node: NodeState, service: str, cpus: float, memory_bytes: int,
              host_ports: tuple[tuple[int, str], ...]) -> None:
        """Add one task to ``node`` and keep the indexes in step."""
        bucket = self._by_load[node.tasks]
        del bucket[bisect.bisect_left(bucket, node.rank)]
        if not bucket:
            del self._by_load[node.tasks]
        node.add(service, cpus, memory_bytes, host_ports)
        bisect.insort(self._by_load.setdefault(node.tasks, []), node.rank)
        self._by_service.setdefault(service, set()).add(node.rank)

    def by_load(self) -> Iterator[NodeState]:
        """Nodes by (total tasks, rank), lowest first. Do not place while iterating."""
        for tasks in sorted(self._by_load):
            for rank in self._by_load[tasks]:
                yield self.nodes[rank]

    def running(self, service: str) -> set[int]:
        """Ranks of the nodes with at least one task of ``service`` (do not modify)."""
        return self._by_service.get(service, _EMPTY)
