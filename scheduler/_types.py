"""The scheduler's own input and output types.

The scheduler never sees the control plane's model: the caller converts its
nodes and tasks into these small frozen records at its edge, and reads back
``Decision`` objects. Quantities are base units: CPUs as a float, bytes as an
int. Host ports are ``(port, protocol)`` pairs, protocol "tcp" or "udp".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class NodeInfo:
    """One node as the scheduler sees it: identity, labels, health, capacity."""

    id: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    ready: bool = True  # the node's agent is connected and heartbeating
    active: bool = True  # availability == "active" (not drained or paused)
    cpus: float = 0.0
    memory_bytes: int = 0


@dataclass(frozen=True)
class TaskRequest:
    """One task waiting for a node; ``cpus``/``memory_bytes`` are reservations."""

    id: str
    service: str
    slot: int
    cpus: float = 0.0
    memory_bytes: int = 0
    constraints: tuple[str, ...] = ()  # "node.labels.zone==a", "node.name!=n1"
    preferences: tuple[str, ...] = ()  # spread labels: "node.labels.zone"
    max_replicas_per_node: int = 0  # 0 = no limit
    host_ports: tuple[tuple[int, str], ...] = ()  # ((8080, "tcp"), (53, "udp"))
    binpack: bool = False  # pack the most-used node that fits instead of spreading
    # The node holding the data of its node-local volumes ("": none): it runs
    # there or nowhere. ``data_node_name`` names it in explanations.
    data_node: str = ""
    data_node_name: str = ""


@dataclass(frozen=True)
class Placed:
    """What one running or assigned task uses on its node."""

    node_id: str
    service: str
    cpus: float = 0.0
    memory_bytes: int = 0
    host_ports: tuple[tuple[int, str], ...] = ()


@dataclass(frozen=True)
class ClusterSnapshot:
    """The cluster at one instant: every node and every task holding a node."""

    nodes: tuple[NodeInfo, ...]
    placed: tuple[Placed, ...] = ()


@dataclass
class Decision:
    """Where a task goes; ``node_id`` None means it stays pending, and why."""

    task_id: str
    node_id: str | None
    explanation: str = ""  # "" when placed
