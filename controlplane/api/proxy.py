"""Logs and exec, proxied to the agents that run the tasks.

The control plane dials each node's agent at the address it registered, with
the node's API token as a bearer token (the only calls an agent serves over
TCP: logs, exec, stats). The token stays here: no API answer carries it.

A service's logs merge the streams of all its tasks that have a container,
one thread per task, in the order lines arrive; a node that cannot be
reached gives no lines and is logged, the others still stream. Exec runs in
one running task, named by id, id prefix or name.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import structlog

from controlplane.logctx import task_fields
from controlplane.store import Informer, Kind, StoreError
from model.objects import Node, Task, TaskState
from proto import agent_pb2 as pb
from proto import agent_pb2_grpc as pb_grpc
from proto import cluster_pb2 as cpb

from .lookups import find_running_task, find_service

log = structlog.get_logger("orch.api")

LOG_BUFFER = 10000  # lines waiting for a slow client before the pumps block


class _Metadata(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):  # type: ignore[misc]
    """Adds fixed metadata (a bearer token) to every call of a channel."""

    def __init__(self, metadata: list[tuple[str, str]]) -> None:
        self.metadata = metadata

    def _details(self, details: Any) -> Any:
        return details._replace(metadata=[*(details.metadata or ()), *self.metadata])

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)


class AgentProxy:
    """Streams from the agents; knows the nodes through ``informer``."""

    def __init__(self, informer: Informer) -> None:
        self.informer = informer

    def _agent(self, node_id: str) -> tuple[Node, Any, Any]:
        """The node, a channel to its API and a stub whose calls carry the
        node's API token."""
        from common.auth import bearer

        node = self.informer.get(Kind.NODE, node_id)
        if not isinstance(node, Node) or not node.address:
            raise StoreError(f"node {node_id} has no address")
        channel = grpc.intercept_channel(grpc.insecure_channel(node.address),
                                         _Metadata(bearer(node.api_token)))
        return node, channel, pb_grpc.AgentStub(channel)

    def logs(self, request: cpb.ServiceLogsRequest,
             context: grpc.ServicerContext) -> Iterator[cpb.TaskLogLine]:
        svc = find_service(self.informer, request.service, context)
        tasks = [t for t in self.informer.tasks_of_service(svc.id)
                 if t.node_id and t.status.container_id]
        lines: queue.Queue[cpb.TaskLogLine | None] = queue.Queue(maxsize=LOG_BUFFER)
        threads = [threading.Thread(target=self._pump_logs, args=(t, request, lines, context),
                                    daemon=True) for t in tasks]
        for th in threads:
            th.start()
        remaining = len(threads)
        while remaining and context.is_active():
            try:
                item = lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if item is None:
                remaining -= 1
            else:
                yield item

    def _pump_logs(self, task: Task, request: cpb.ServiceLogsRequest,
                   out: queue.Queue[cpb.TaskLogLine | None], context: grpc.ServicerContext) -> None:
        try:
            node, channel, stub = self._agent(task.node_id)
            req = pb.LogsRequest(id=task.status.container_id, follow=request.follow)
            if request.HasField("tail"):
                req.tail = request.tail
            with channel:
                stream = stub.Logs(req)
                context.add_callback(stream.cancel)
                for line in stream:
                    out.put(cpb.TaskLogLine(task=task.name, node=node.name, line=line))
        except grpc.RpcError as err:
            code, details = _failure(err)
            if code != grpc.StatusCode.CANCELLED:  # cancelled: the client went away
                log.info("task logs unavailable from its node", method="Logs", **task_fields(task),
                         code=code.name, error=details)
        except StoreError as err:  # a node that is gone has no logs to give
            log.info("task logs unavailable from its node", method="Logs", **task_fields(task),
                     error=str(err))
        finally:
            out.put(None)

    def exec(self, request: cpb.TaskExecRequest,
             context: grpc.ServicerContext) -> Iterator[pb.ExecOutput]:
        task = find_running_task(self.informer, request.task, context)
        call = log.bind(method="Exec", **task_fields(task))
        if task.status.state != TaskState.RUNNING or not task.status.container_id:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"task {task.name} is not running")
        try:
            node, channel, stub = self._agent(task.node_id)
        except StoreError as err:
            call.info("exec refused: the task's node cannot be reached", error=str(err))
            context.abort(grpc.StatusCode.UNAVAILABLE, str(err))
        # The program only: its arguments may carry secrets.
        call.info("exec", node=node.name, program=request.command[0] if request.command else "")
        with channel:
            try:
                yield from stub.Exec(pb.ExecRequest(id=task.status.container_id,
                                                    command=list(request.command)))
            except grpc.RpcError as err:
                code, details = _failure(err)
                call.info("exec failed on the node", node=node.name, code=code.name)
                context.abort(code, details or "exec failed")


def _failure(err: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """An agent call's status code and message (UNKNOWN for an error that carries none)."""
    if isinstance(err, grpc.Call):
        return err.code(), err.details() or ""
    return grpc.StatusCode.UNKNOWN, str(err)
