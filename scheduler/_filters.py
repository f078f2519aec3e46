"""Feasibility filters, swarmkit style: ``applies``, ``check``, ``explain``.

A filter instance carries the one requirement it checks (a constraint, a
resource, a host port), so the pipeline can count failures per requirement
and explain them precisely ("constraint node.labels.zone==b not met on
2 nodes"). Filters never mutate a node; they only read its counters.
"""

from __future__ import annotations

from typing import Literal, Protocol

from model.constraints import PLATFORM_LABELS
from scheduler._expr import Constraint, matches, parse_constraint
from scheduler._nodestate import NodeState, normalise_ports
from scheduler._types import TaskRequest


def on_nodes(n: int) -> str:
    return f"on {n} node" if n == 1 else f"on {n} nodes"


class Filter(Protocol):
    name: str

    def applies(self, task: TaskRequest) -> bool:
        """Whether this filter has anything to check for ``task``."""
        ...

    def check(self, task: TaskRequest, node: NodeState) -> bool:
        """Whether ``node`` can take ``task`` as far as this filter is concerned."""
        ...

    def explain(self, n_nodes: int) -> str:
        """Why ``n_nodes`` nodes were rejected, for the user."""
        ...


class ReadyFilter:
    name = "ready"

    def applies(self, task: TaskRequest) -> bool:
        return True

    def check(self, task: TaskRequest, node: NodeState) -> bool:
        return node.info.ready

    def explain(self, n_nodes: int) -> str:
        return f"not ready {on_nodes(n_nodes)}"


class ActiveFilter:
    name = "active"

    def applies(self, task: TaskRequest) -> bool:
        return True

    def check(self, task: TaskRequest, node: NodeState) -> bool:
        return node.info.active

    def explain(self, n_nodes: int) -> str:
        return f"drained or paused {on_nodes(n_nodes)}"


class ConstraintFilter:
    """One constraint expression; a task gets one instance per constraint."""

    def __init__(self, constraint: Constraint) -> None:
        self.constraint = constraint
        self.name = f"constraint {constraint}"

    def applies(self, task: TaskRequest) -> bool:
        return True  # built only from the task's own constraints

    def check(self, task: TaskRequest, node: NodeState) -> bool:
        return matches(self.constraint, node.info)

    def explain(self, n_nodes: int) -> str:
        text = f"constraint {self.constraint} not met {on_nodes(n_nodes)}"
        if self.constraint.subject == "label" and self.constraint.label in PLATFORM_LABELS:
            # Nodes register no platform: it is a label an operator gives them.
            key = self.constraint.label
            text += f"; label the nodes of that platform: orch node label NODE {key}={self.constraint.value}"
        return text


class ResourceFilter:
    """Reservations against capacity minus what is placed; one instance per resource."""

    def __init__(self, resource: Literal["cpu", "memory"]) -> None:
        self.resource = resource
        self.name = f"resource {resource}"

    def applies(self, task: TaskRequest) -> bool:
        return (task.cpus if self.resource == "cpu" else task.memory_bytes) > 0

    def check(self, task: TaskRequest, node: NodeState) -> bool:
        if self.resource == "cpu":
            return node.fits_cpus(task.cpus)
        return node.fits_memory(task.memory_bytes)

    def explain(self, n_nodes: int) -> str:
        return f"insufficient {self.resource} {on_nodes(n_nodes)}"


class HostPortFilter:
    """One published host port; tcp and udp are separate port spaces."""

    def __init__(self, port: tuple[int, str]) -> None:
        self.port = port
        self.name = f"host port {port[0]}/{port[1]}"

    def applies(self, task: TaskRequest) -> bool:
        return self.port in normalise_ports(task.host_ports)

    def check(self, task: TaskRequest, node: NodeState) -> bool:
        return self.port not in node.ports

    def explain(self, n_nodes: int) -> str:
        return f"host port {self.port[0]}/{self.port[1]} already in use {on_nodes(n_nodes)}"


class MaxReplicasFilter:
    name = "max replicas"

    def applies(self, task: TaskRequest) -> bool:
        return task.max_replicas_per_node > 0

    def check(self, task: TaskRequest, node: NodeState) -> bool:
        return node.service_tasks(task.service) < task.max_replicas_per_node

    def explain(self, n_nodes: int) -> str:
        return f"max replicas per node reached {on_nodes(n_nodes)}"


class DataFilter:
    """The node that holds the task's node-local volume data, and only it."""

    def __init__(self, node_name: str) -> None:
        self.node_name = node_name
        self.name = f"volume data on {node_name}"

    def applies(self, task: TaskRequest) -> bool:
        return bool(task.data_node)

    def check(self, task: TaskRequest, node: NodeState) -> bool:
        return node.info.id == task.data_node

    def explain(self, n_nodes: int) -> str:
        return (f"its node-local volumes' data is on {self.node_name}, not {on_nodes(n_nodes)}: "
                f"`orch node drain --allow-data-loss {self.node_name}` lets it start elsewhere, empty")


def filters_for(task: TaskRequest) -> list[Filter]:
    """The filters relevant to ``task``, in pipeline order.

    Order: cheapest first, and node properties that cannot change during a
    batch (ready, active, constraints) before usage that can (resources,
    ports, replicas), so a node that fails both is blamed on the durable
    reason. Raises ``ConstraintError`` for a malformed constraint.
    """
    candidates: list[Filter] = [DataFilter(task.data_node_name or task.data_node), ReadyFilter(),
                                ActiveFilter()]
    candidates += [ConstraintFilter(parse_constraint(c)) for c in task.constraints]
    candidates += [ResourceFilter("memory"), ResourceFilter("cpu")]
    candidates += [HostPortFilter(p) for p in dict.fromkeys(normalise_ports(task.host_ports))]
    candidates.append(MaxReplicasFilter())
    return [f for f in candidates if f.applies(task)]
