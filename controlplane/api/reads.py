"""The API's reads: services, tasks, nodes and the replica's own info.

Every answer comes from this replica's informer cache, never from etcd, so a
read costs the store nothing and works on any replica, leader or not. A node
in an answer never carries its API token (``model.wire.node_to_pb``).
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from controlplane.store import Informer
from model.objects import TaskState
from model.wire import node_to_pb, service_to_pb, task_to_pb
from proto import cluster_pb2 as cpb

from .lookups import find_service

VERSION = "0.1.0"


class Reads:
    """Answers from ``informer``; ``is_leader`` and ``leader_id`` describe the election."""

    def __init__(self, informer: Informer, replica_id: str, is_leader: Callable[[], bool],
                 leader_id: Callable[[], str | None]) -> None:
        self.informer = informer
        self.replica_id = replica_id
        self.is_leader = is_leader
        self.leader_id = leader_id

    def get_service(self, request: cpb.ServiceRef, context: grpc.ServicerContext) -> cpb.Service:
        return service_to_pb(find_service(self.informer, request.name, context))

    def list_services(self) -> cpb.ListServicesResponse:
        services = sorted(self.informer.services(), key=lambda s: s.spec.name)
        return cpb.ListServicesResponse(services=[service_to_pb(s) for s in services])

    def list_tasks(self, request: cpb.ListTasksRequest,
                   context: grpc.ServicerContext) -> cpb.ListTasksResponse:
        """The tasks (of a service, when named); without ``all``, only those
        meant to run or not yet finished."""
        if request.service:
            tasks = self.informer.tasks_of_service(find_service(self.informer, request.service, context).id)
        else:
            tasks = self.informer.tasks()
        if not request.all:
            tasks = [t for t in tasks if t.desired_state == TaskState.RUNNING
                     or t.status.state < TaskState.COMPLETE]
        specs: dict[int, cpb.ServiceSpec] = {}  # the tasks keep their specs alive meanwhile
        return cpb.ListTasksResponse(tasks=[task_to_pb(t, specs) for t in tasks])

    def list_nodes(self) -> cpb.ListNodesResponse:
        nodes = sorted(self.informer.nodes(), key=lambda n: n.name)
        return cpb.ListNodesResponse(nodes=[node_to_pb(n) for n in nodes])

    def info(self) -> cpb.InfoResponse:
        return cpb.InfoResponse(version=VERSION, controlplane_id=self.replica_id,
                                leader=bool(self.is_leader()), leader_id=self.leader_id() or "",
                                nodes=len(self.informer.nodes()),
                                services=len(self.informer.services()),
                                tasks=len(self.informer.tasks()))
