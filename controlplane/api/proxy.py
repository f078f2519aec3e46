"""Logs and exec, proxied to the agents that run the tasks.

The control plane dials each node's agent at the address it registered, over
mutual TLS with its own certificate (the node's API serves only control
planes of its cluster, and only logs, exec and stats).

A service's logs merge the streams of all its tasks that have a container,
one thread per task, batches in the order they arrive; a node that cannot
be read gets a notice and is logged, the others still stream. Following,
new tasks join and a gone node's tasks resume (``_Pump``). Exec runs in one
running task, named by id, id prefix or name; an interactive exec
(``exec_attach``: stdin, a tty) streams both ways through the same node call.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc
import structlog

from common.tls import ServerTLS
from controlplane.logctx import task_fields
from controlplane.store import Informer, Kind, StoreError
from model.objects import Node, Task, TaskState
from proto import agent_pb2 as pb
from proto import agent_pb2_grpc as pb_grpc
from proto import cluster_pb2 as cpb

from .lookups import find_running_task, find_service

log = structlog.get_logger("orch.api")

LOG_BUFFER = 64  # batches waiting for a slow client before the pumps block
LOOK_INTERVAL = 0.5  # following: how often new tasks and gone nodes are looked for


class AgentProxy:
    """Streams from the agents; knows the nodes through ``informer``."""

    def __init__(self, informer: Informer, tls: ServerTLS | None = None) -> None:
        self.informer = informer
        # This replica's certificate, presented to the nodes' APIs (mutual
        # TLS); None: plaintext (in-process agents without TLS).
        self.tls = tls

    def agent(self, node_id: str) -> tuple[Node, Any, Any]:
        """The node, a channel to its API (mutual TLS with this replica's
        certificate) and a stub."""
        node = self.informer.get(Kind.NODE, node_id)
        if not isinstance(node, Node) or not node.address:
            raise StoreError(f"node {node_id} has no address")
        channel = (self.tls.channel(node.address, "node") if self.tls is not None
                   else grpc.insecure_channel(node.address))
        return node, channel, pb_grpc.AgentStub(channel)

    def logs(self, request: cpb.ServiceLogsRequest,
             context: grpc.ServicerContext) -> Iterator[cpb.TaskLogLine]:
        """``log_batches``, a line a message (a notice as a line of stream "orch")."""
        for batch in self.log_batches(request, context):
            if batch.notice:
                yield cpb.TaskLogLine(task=batch.task, node=batch.node,
                                      line=pb.LogLine(stream="orch", line=batch.notice))
            for line in batch.lines:
                yield cpb.TaskLogLine(task=batch.task, node=batch.node, line=line)

    def log_batches(self, request: cpb.ServiceLogsRequest,
                    context: grpc.ServicerContext) -> Iterator[cpb.TaskLogBatch]:
        """The service's tasks' lines, merged as their batches arrive.

        With follow, a task that gets a container later joins (all its
        lines, since ``request.since``); a pump whose node is gone says so
        once and resumes when the node is back (``_Pump``). Without, the
        stream ends when every task's lines are sent."""
        svc = find_service(self.informer, request.service, context)
        out: queue.Queue[cpb.TaskLogBatch | None] = queue.Queue(maxsize=LOG_BUFFER)
        pumps: dict[tuple[str, str], _Pump] = {}
        live = 0

        def join(first: bool) -> None:
            nonlocal live
            for task in self.informer.tasks_of_service(svc.id):
                key = (task.id, task.status.container_id)
                if task.node_id and task.status.container_id and key not in pumps:
                    pumps[key] = _Pump(self, task, request, out, first)
                    live += 1

        join(first=True)
        look = time.monotonic() + LOOK_INTERVAL
        try:
            while context.is_active() and (request.follow or live):
                if request.follow and time.monotonic() >= look:
                    join(first=False)
                    for pump in pumps.values():
                        pump.check_node()
                    look = time.monotonic() + LOOK_INTERVAL
                try:
                    item = out.get(timeout=LOOK_INTERVAL)
                except queue.Empty:
                    continue
                if item is None:
                    live -= 1
                else:
                    yield item
        finally:
            for pump in pumps.values():
                pump.cancel()

    def _running(self, ref: str, method: str, context: grpc.ServicerContext) -> tuple[Any, Any, Any]:
        """The running task ``ref`` names, a logger bound to it, and (node,
        channel, stub) of its node's API; the call is aborted otherwise."""
        task = find_running_task(self.informer, ref, context)
        call = log.bind(method=method, **task_fields(task))
        if task.status.state != TaskState.RUNNING or not task.status.container_id:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"task {task.name} is not running")
        try:
            return task, call, self.agent(task.node_id)
        except StoreError as err:
            call.info("exec refused: the task's node cannot be reached", error=str(err))
            context.abort(grpc.StatusCode.UNAVAILABLE, str(err))
        raise AssertionError

    def exec(self, request: cpb.TaskExecRequest,
             context: grpc.ServicerContext) -> Iterator[pb.ExecOutput]:
        task, call, (node, channel, stub) = self._running(request.task, "Exec", context)
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


    def exec_attach(self, request_iterator: Iterator[cpb.TaskAttachInput],
                    context: grpc.ServicerContext) -> Iterator[pb.ExecOutput]:
        """``exec`` with stdin and a tty: the first message names the task
        and the command; the rest (stdin, resizes, its end) go on to the
        node's ``ExecAttach`` as they come. A client that leaves cancels it."""
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("input") != "exec":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "the stream's first message must be 'exec'")
        request = first.exec
        task, call, (node, channel, stub) = self._running(request.task, "ExecAttach", context)
        start = pb.ExecRequest(id=task.status.container_id, command=list(request.command),
                               tty=request.tty, stdin=request.stdin, size=request.size)

        def inputs() -> Iterator[pb.AttachInput]:
            yield pb.AttachInput(exec=start)
            for msg in request_iterator:
                kind = msg.WhichOneof("input")
                if kind is not None:
                    yield pb.AttachInput(**{kind: getattr(msg, kind)})

        call.info("exec", node=node.name, program=request.command[0] if request.command else "",
                  tty=request.tty)
        with channel:
            upstream = stub.ExecAttach(inputs())
            context.add_callback(upstream.cancel)
            try:
                yield from upstream
            except grpc.RpcError as err:
                code, details = _failure(err)
                if code is grpc.StatusCode.CANCELLED and not context.is_active():
                    return  # the client left
                call.info("exec failed on the node", node=node.name, code=code.name)
                context.abort(code, details or "exec failed")


def _failure(err: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """An agent call's status code and message (UNKNOWN for an error that carries none)."""
    if isinstance(err, grpc.Call):
        return err.code(), err.details() or ""
    return grpc.StatusCode.UNKNOWN, str(err)


class LogCursor:
    """Where a task's stream is: the time of the last line sent and how many
    sent lines carry exactly that time. A resumed stream asks for lines from
    ``since`` on (inclusive); ``fresh`` drops the ones already sent."""

    def __init__(self, since: str = "") -> None:
        self.since = since
        self.at_since = 0
        self.drop = 0  # after a resume: lines at exactly ``since`` still to drop

    def resume(self) -> None:
        self.drop = self.at_since

    def fresh(self, lines: Any) -> Any:
        """``lines`` (each with a ``time``, in order) less those sent before
        a resume; moves the cursor past them."""
        if self.drop:
            start = 0
            while start < len(lines) and self.drop and lines[start].time == self.since:
                start, self.drop = start + 1, self.drop - 1
            if start < len(lines):
                self.drop = 0
            lines = lines[start:]
        if len(lines):
            last = lines[-1].time
            same = 0
            while same < len(lines) and lines[len(lines) - 1 - same].time == last:
                same += 1
            if last == self.since and same == len(lines):
                self.at_since += same
            else:
                self.since, self.at_since = last, same
        return lines


class _Pump:
    """One task's lines, from its node to ``out``, on a thread of its own.

    When the stream breaks while following (the agent died, or
    ``check_node`` saw the node go down and cut it), it sends one notice,
    waits for the node to be ready again, and asks for the lines from its
    ``LogCursor`` on: every line once, in order. Without follow, a node
    that cannot be read gets a notice too. Ends with None on ``out``."""

    def __init__(self, proxy: AgentProxy, task: Task, request: cpb.ServiceLogsRequest,
                 out: queue.Queue[cpb.TaskLogBatch | None], first: bool) -> None:
        self.proxy = proxy
        self.task = task
        self.request = request
        self.out = out
        self.follow = request.follow
        # A task that joins later shows all its lines; tail is for the first ones.
        self.tail: int | None = request.tail if first and request.HasField("tail") else None
        self.cursor = LogCursor(request.since)
        self.gone = False  # a notice was sent, and no line has come since
        self.node_name = ""
        self.stream: Any = None
        self.cut = ""  # why check_node cut the stream
        self.stopped = threading.Event()
        self.lock = threading.Lock()
        threading.Thread(target=self._run, daemon=True,
                         name=f"logs-{task.name}").start()

    def cancel(self) -> None:
        self.stopped.set()
        with self.lock:
            if self.stream is not None:
                self.stream.cancel()

    def check_node(self) -> None:
        """Cut a stream whose node the store says is down (a partitioned
        node's stream would otherwise hang until TCP gives up)."""
        node = self.proxy.informer.get(Kind.NODE, self.task.node_id)
        down = not isinstance(node, Node) or node.state == "down"
        with self.lock:
            if down and self.stream is not None and not self.cut:
                self.cut = "it is down"
                self.stream.cancel()

    def _run(self) -> None:
        try:
            while not self.stopped.is_set():
                why = self._stream()
                if why is None:
                    return
                node = self.node_name or self.task.node_id
                if not self.follow:
                    self._put(cpb.TaskLogBatch(task=self.task.name, node=self.node_name, notice=(
                        f"node {node} cannot be read ({why}); this task's lines are left out")))
                    return
                if not self.gone:  # once an outage: retries while the node is down say nothing
                    self.gone = True
                    self._put(cpb.TaskLogBatch(task=self.task.name, node=self.node_name, notice=(
                        f"node {node} is gone ({why}); this task's lines resume when it returns")))
                if not self._wait_ready():
                    return
        finally:
            self._put(None)

    def _stream(self) -> str | None:
        """Send the task's lines; None when they ended (or the caller left),
        else why the node could not be read."""
        task = self.task
        try:
            node, channel, stub = self.proxy.agent(task.node_id)
        except StoreError as err:
            log.info("task logs unavailable from its node", method="Logs", **task_fields(task),
                     error=str(err))
            return str(err)
        self.node_name = node.name
        req = pb.LogsRequest(id=task.status.container_id, follow=self.follow,
                             since=self.cursor.since, until=self.request.until)
        if self.tail is not None:
            req.tail = self.tail
        with channel:
            try:
                with self.lock:
                    if self.stopped.is_set():
                        return None
                    self.stream = stub.LogBatches(req)
                for batch in self.stream:
                    self.gone = False
                    lines = self.cursor.fresh(batch.lines)
                    if len(lines):
                        self.tail = None  # resumes go by the cursor
                        self._put(cpb.TaskLogBatch(task=task.name, node=node.name, lines=lines))
                return None
            except grpc.RpcError as err:
                code, details = _failure(err)
                if self.stopped.is_set():
                    return None
                if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                    self._put(cpb.TaskLogBatch(task=task.name, node=node.name, notice=details))
                    return None
                log.info("task logs unavailable from its node", method="Logs", **task_fields(task),
                         code=code.name, error=details)
                return self.cut or details or code.name.lower()
            finally:
                with self.lock:
                    self.stream, self.cut = None, ""

    def _wait_ready(self) -> bool:
        """Until the task's node is ready again (True), or the caller left or
        the node was removed (False)."""
        while not self.stopped.wait(LOOK_INTERVAL):
            node = self.proxy.informer.get(Kind.NODE, self.task.node_id)
            if not isinstance(node, Node):
                return False
            if node.state == "ready" and node.address:
                self.cursor.resume()
                return True
        return False

    def _put(self, item: cpb.TaskLogBatch | None) -> None:
        """Queue ``item`` unless the caller left while the queue was full."""
        while True:
            try:
                self.out.put(item, timeout=LOOK_INTERVAL)
                return
            except queue.Full:
                if self.stopped.is_set():
                    return
