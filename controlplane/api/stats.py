"""TaskStats: the resource use of running tasks, read from their nodes.

The running tasks of the named services (every service when none is named)
are grouped by node; each node is asked once, with StatsAll for its tasks'
containers, on a small thread pool shared by the calls, with a deadline of
:data:`NODE_TIMEOUT` per node. A node that cannot be read (no address, down,
too slow, an error) is named in the answer's ``unreachable`` with why
(``"n2: deadline exceeded"``): the other nodes' figures still come back, and
the call itself fails only for a service name that matches nothing
(NOT_FOUND, naming it).

An agent that does not serve StatsAll (an older one, during an upgrade)
is asked with one Stats a task instead, on the same thread.

The figures are the agents' as they read them (counters and the time of
the reading); rates are the caller's, from two answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import grpc
import structlog

from controlplane.store import Informer, Kind, StoreError
from model.objects import Node, Task, TaskState
from proto import agent_pb2 as pb
from proto import cluster_pb2 as cpb

from .lookups import find_service

__all__ = ["NODE_TIMEOUT", "TaskStats"]

log = structlog.get_logger("orch.api")

NODE_TIMEOUT = 2.0  # seconds a node has to answer one call
POOL_SIZE = 16  # nodes read at once, over every caller
# Codes of an agent that does not serve StatsAll (older than this call).
_NO_STATS_ALL = (grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.PERMISSION_DENIED)


class TaskStats:
    """``task_stats``: TaskStatsResponse for a TaskStatsRequest.

    ``agent(node_id) -> (node, channel, stub)``: a channel to the node's
    agent and a stub whose calls carry its API token (``AgentProxy.agent``);
    it raises ``StoreError`` for a node that cannot be dialled."""

    def __init__(self, informer: Informer, agent: Callable[[str], tuple[Node, Any, Any]],
                 timeout: float = NODE_TIMEOUT) -> None:
        self.informer = informer
        self.agent = agent
        self.timeout = timeout
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def task_stats(self, request: cpb.TaskStatsRequest,
                   context: grpc.ServicerContext) -> cpb.TaskStatsResponse:
        by_node: dict[str, list[Task]] = {}
        for task in self._tasks(list(request.services), context):
            by_node.setdefault(task.node_id, []).append(task)
        answer = cpb.TaskStatsResponse()
        if not by_node:
            return answer
        pool = self._executor()
        asked: dict[str, Future[list[cpb.TaskStat]]] = {
            node_id: pool.submit(self._node, node_id, tasks) for node_id, tasks in by_node.items()}
        # Beyond the call's own deadline: a node waits its turn when the pool is busy.
        deadline = time.monotonic() + self.timeout + 1.0
        for node_id, future in sorted(asked.items(), key=lambda item: self._node_name(item[0])):
            try:
                answer.tasks.extend(future.result(timeout=max(0.0, deadline - time.monotonic())))
            except _Unreachable as err:
                answer.unreachable.append(f"{self._node_name(node_id)}: {err}")
            except TimeoutError:
                future.cancel()
                answer.unreachable.append(f"{self._node_name(node_id)}: no answer within "
                                          f"{self.timeout:g} s")
            except Exception as err:  # one node's failure never fails the others' answer
                log.warning("task stats failed for a node", method="TaskStats", node_id=node_id,
                            error=repr(err))
                answer.unreachable.append(f"{self._node_name(node_id)}: {err}")
        answer.tasks.sort(key=lambda t: (t.service, t.task))
        return answer

    def _tasks(self, names: list[str], context: grpc.ServicerContext) -> list[Task]:
        """The running tasks (placed, with a container) of the services ``names``
        name, or of every service; an unknown name ends the call NOT_FOUND."""
        if names:
            services = {find_service(self.informer, name, context).id: None for name in names}
            tasks = [t for sid in services for t in self.informer.tasks_of_service(sid)]
        else:
            tasks = self.informer.tasks()
        return [t for t in tasks
                if t.status.state == TaskState.RUNNING and t.node_id and t.status.container_id]

    def _node(self, node_id: str, tasks: list[Task]) -> list[cpb.TaskStat]:
        """The figures of ``tasks``, all on ``node_id``, from one StatsAll;
        ``_Unreachable`` saying why when the node cannot be read."""
        try:
            node, channel, stub = self.agent(node_id)
        except StoreError as err:
            raise _Unreachable(str(err)) from None
        by_container = {t.status.container_id: t for t in tasks}
        ids = list(by_container)
        with channel:
            try:
                try:
                    stats = list(stub.StatsAll(pb.StatsAllRequest(ids=ids), timeout=self.timeout).stats)
                except grpc.RpcError as err:
                    if _code(err) not in _NO_STATS_ALL:
                        raise
                    stats = self._one_by_one(stub, ids)
            except grpc.RpcError as err:
                log.info("task stats unavailable from a node", method="TaskStats", node=node.name,
                         node_id=node_id, code=_code(err).name, error=_details(err))
                raise _Unreachable(_details(err) or _code(err).name.lower()) from None
        out = []
        for s in stats:
            task = by_container.get(s.id)
            if task is not None:
                out.append(cpb.TaskStat(task=task.name, node=node.name, service=task.service_name,
                                        stats=s))
        return out

    def _one_by_one(self, stub: Any, ids: list[str]) -> list[pb.StatsResponse]:
        """Stats for each container, within the node's one deadline; a
        container that stopped meanwhile is left out."""
        deadline = time.monotonic() + self.timeout
        out = []
        for cid in ids:
            try:
                s = stub.Stats(pb.ContainerRef(id=cid), timeout=max(0.01, deadline - time.monotonic()))
            except grpc.RpcError as err:
                if _code(err) in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION):
                    continue
                raise
            if not s.time:  # an agent older than the field: the time of the answer
                s.time = time.time()
            out.append(s)
        return out

    def _node_name(self, node_id: str) -> str:
        node = self.informer.get(Kind.NODE, node_id)
        return node.name if isinstance(node, Node) else node_id[:12]

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:  # made on first use: a replica never asked keeps no threads
                self._pool = ThreadPoolExecutor(max_workers=POOL_SIZE, thread_name_prefix="task-stats")
            return self._pool


class _Unreachable(Exception):
    """A node that could not be read; the message says why."""


def _code(err: grpc.RpcError) -> grpc.StatusCode:
    return err.code() if isinstance(err, grpc.Call) else grpc.StatusCode.UNKNOWN


def _details(err: grpc.RpcError) -> str:
    return (err.details() or "") if isinstance(err, grpc.Call) else str(err)
