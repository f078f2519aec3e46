"""The model's nodes and tasks as the scheduler sees them (``scheduler``'s own types).

One conversion for every caller that asks the scheduler something: the
leader placing new tasks, ``orch plan``, and rebalancing checking that a task
would fit the node it is to move to.

Invariant: a task counts on its node (its reservations and host ports held)
from its assignment until it has ended (``TaskState.on_node``), whatever its
desired state: a task being stopped still holds what it took.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from model.objects import Node, ServiceSpec, Task
from scheduler import ClusterSnapshot, NodeInfo, Placed, TaskRequest


def node_info(n: Node) -> NodeInfo:
    return NodeInfo(id=n.id, name=n.name, labels=dict(n.labels), ready=n.state == "ready",
                    active=n.availability == "active", cpus=n.resources.cpus,
                    memory_bytes=n.resources.memory_bytes)


def bound_volumes(spec: ServiceSpec) -> list[str]:
    """The node-local named volumes of ``spec`` (not shareable): a task with
    one stays with the node that holds its data (``Task.data_node``)."""
    return [m.source for m in spec.mounts if m.type == "volume" and m.source and not m.shareable]


def data_node(t: Task, nodes: Mapping[str, Node]) -> Node | None:
    """The node ``t`` must run on for its volumes' data, if any: not once
    that node is gone from the cluster or drained with --allow-data-loss."""
    if not t.data_node or not bound_volumes(t.spec):
        return None
    node = nodes.get(t.data_node)
    return None if node is None or node.data_released else node


def task_request(t: Task, nodes: Mapping[str, Node] | None = None) -> TaskRequest:
    """The scheduler's view of ``t``; ``nodes`` by id, for the node its
    volumes' data binds it to (left out: not bound)."""
    spec = t.spec
    held = data_node(t, nodes) if nodes is not None else None
    return TaskRequest(
        id=t.id, service=t.service_id, slot=t.slot, cpus=spec.reservations.cpus,
        memory_bytes=spec.reservations.memory_bytes,
        constraints=tuple(spec.placement.constraints),
        preferences=tuple(spec.placement.preferences),
        max_replicas_per_node=spec.placement.max_replicas_per_node,
        host_ports=host_ports(spec), binpack=spec.binpack,
        data_node=held.id if held is not None else "", data_node_name=held.name if held is not None else "")


def placed_of(t: Task, ports: dict[int, tuple[tuple[int, str], ...]] | None = None) -> Placed:
    """What ``t`` holds on its node. ``ports``: a memo of host ports by spec
    object, for a call over many tasks (a service's tasks share their spec);
    only while those specs stay alive."""
    spec = t.spec
    held = ports.get(id(spec)) if ports is not None else None
    if held is None:
        held = host_ports(spec)
        if ports is not None:
            ports[id(spec)] = held
    return Placed(node_id=t.node_id, service=t.service_id, cpus=spec.reservations.cpus,
                  memory_bytes=spec.reservations.memory_bytes, host_ports=held)


def host_ports(spec: ServiceSpec) -> tuple[tuple[int, str], ...]:
    """The ports a task binds on its node: ``mode: host`` ones (an ingress port
    is the routing mesh's, on every node, and binds none)."""
    return tuple((p.published, p.protocol) for p in spec.ports if p.mode == "host")


def snapshot(nodes: Iterable[Node], tasks: Iterable[Task]) -> ClusterSnapshot:
    """``nodes`` with what the ``tasks`` that are on them hold. (A spec's
    host ports are found once per spec object: a service's tasks share it.)"""
    ports: dict[int, tuple[tuple[int, str], ...]] = {}
    return ClusterSnapshot(nodes=tuple(node_info(n) for n in nodes),
                           placed=tuple(placed_of(t, ports) for t in tasks
                                        if t.node_id and t.status.state.on_node))
