"""Log context: the fields a control-plane log line about a node, a service
or a task carries, with the same keys everywhere.

Components bind these (``log.bind(**task_fields(task))``) when they act on
one object, so every line about a task can be found by its name or id,
whichever component wrote it:

- ``node``: the node's name; ``node_id``: its id.
- ``service``: the service's name; ``service_id``: its id.
- ``task``: the task's name (``service.slot.id-prefix``); ``task_id``: its
  full id; with its ``service`` and, once placed, its ``node_id``.

API handlers also bind ``method``, the RPC's name.
"""

from __future__ import annotations

from model.objects import Node, Service, Task


def node_fields(node: Node) -> dict[str, str]:
    return {"node": node.name, "node_id": node.id}


def service_fields(service: Service) -> dict[str, str]:
    return {"service": service.spec.name, "service_id": service.id}


def task_fields(task: Task) -> dict[str, str]:
    fields = {"task": task.name, "task_id": task.id, "service": task.service_name}
    if task.node_id:
        fields["node_id"] = task.node_id
    return fields


def object_fields(obj: object) -> dict[str, str]:
    """The fields of a node, service or task; ``{}`` for anything else."""
    if isinstance(obj, Task):
        return task_fields(obj)
    if isinstance(obj, Service):
        return service_fields(obj)
    if isinstance(obj, Node):
        return node_fields(obj)
    return {}
