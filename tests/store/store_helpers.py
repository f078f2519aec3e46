"""Object builders shared by the store tests."""

from __future__ import annotations

import itertools

from model.objects import Node, NodeResources, Service, ServiceSpec, Task

_ids = itertools.count(1)


def make_service(name: str = "web", replicas: int = 1) -> Service:
    return Service(id=f"svc{next(_ids)}", spec=ServiceSpec(name=name, image="busybox", replicas=replicas))


def make_task(service: Service, slot: int, node_id: str = "") -> Task:
    return Task(id=f"task{next(_ids)}", service_id=service.id, service_name=service.spec.name, slot=slot,
                spec=service.spec, node_id=node_id)


def make_node(name: str = "n") -> Node:
    return Node(id=f"node{next(_ids)}", name=name, resources=NodeResources(cpus=4, memory_bytes=1 << 30))
