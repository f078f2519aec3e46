"""The CLI-facing gRPC API: deploy, scale, remove; list and get; node
drain/activate/label; logs and exec proxied to the right agent; events.

Writes go straight to the store with compare-and-swap; the controllers on the
leader react through their watch. Reads come from the informer's cache.
"""

from __future__ import annotations

import dataclasses
import queue
import secrets
import threading
import time
from collections.abc import Iterator
from typing import Any

import grpc

from controlplane.store import (
    Change,
    Informer,
    Kind,
    Store,
    StoreConflict,
    StoreError,
    StoreObject,
)
from model.objects import Node, Service, Task, TaskState
from model.units import MAX_REPLICAS
from model.wire import (
    WireError,
    availability_from_pb,
    event_to_pb,
    node_to_pb,
    service_to_pb,
    spec_from_pb,
    task_to_pb,
)
from proto import agent_pb2 as pb
from proto import agent_pb2_grpc as pb_grpc
from proto import cluster_pb2 as cpb
from proto import cluster_pb2_grpc as cpb_grpc

VERSION = "0.1.0"
EVENT_BATCH = 500  # events per EventBatches message at most


def _service_name(obj: StoreObject) -> str | None:
    if isinstance(obj, Task):
        return obj.service_name
    if isinstance(obj, Service):
        return obj.spec.name
    return None


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


class ClusterAPI(cpb_grpc.ClusterAPIServicer):
    def __init__(self, store: Store, informer: Informer, replica_id: str,
                 is_leader: Any, leader_id: Any) -> None:
        self.store = store
        self.informer = informer
        self.replica_id = replica_id
        self.is_leader = is_leader
        self.leader_id = leader_id
        self._watchers: list[queue.Queue[Change]] = []
        self._lock = threading.Lock()
        informer.add_handler(self._fan_out)

    # ---- lookups -------------------------------------------------------------

    def _service(self, ref: str, context: grpc.ServicerContext) -> Service:
        found = self.informer.get(Kind.SERVICE, ref)
        if not isinstance(found, Service):
            found = next((s for s in self.informer.services() if s.spec.name == ref), None)
        if found is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no such service: {ref}")
        assert isinstance(found, Service)
        return found

    def _node_ref(self, ref: str, context: grpc.ServicerContext) -> Node:
        nodes = self.informer.nodes()
        found = next((n for n in nodes if n.id == ref or n.name == ref), None)
        if found is None:
            matches = [n for n in nodes if n.id.startswith(ref)]
            found = matches[0] if len(matches) == 1 else None
        if found is None:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no such node: {ref}")
        assert found is not None
        return found

    def _task_ref(self, ref: str, context: grpc.ServicerContext) -> Task:
        """A task by id, id prefix or name (``web.1`` means slot 1's running task)."""
        tasks = self.informer.tasks()
        exact = [t for t in tasks if t.id == ref or t.name == ref]
        matches = exact or [t for t in tasks if t.id.startswith(ref) or t.name.startswith(ref + ".")
                            or t.name.startswith(ref)]
        running = [t for t in matches if t.status.state == TaskState.RUNNING]
        if len(running) == 1:
            return running[0]
        if len(running) > 1:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"task {ref!r} is ambiguous: {', '.join(t.name for t in running[:5])}")
        if not matches:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no such task: {ref}")
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"task {ref} is not running")
        raise AssertionError

    # ---- services ------------------------------------------------------------

    def Deploy(self, request: cpb.DeployRequest, context: grpc.ServicerContext) -> cpb.DeployResponse:
        out = [self._apply(spec, context) for spec in self._specs(request, context)]
        return cpb.DeployResponse(services=[service_to_pb(s) for s in out])

    def _specs(self, request: cpb.DeployRequest, context: grpc.ServicerContext) -> list[Any]:
        """The services to apply: a manifest's (parsed here, so the CLI need
        not load YAML and the model: half its start-up), or ready specs held
        to the same rules (``check_specs``). An empty manifest is an error,
        not a deploy of nothing: its path comes without text."""
        from model.manifest import ManifestError, check_specs, parse_manifest

        try:
            if request.manifest or request.manifest_path:
                return parse_manifest(request.manifest, request.manifest_path or "<manifest>")
            if not request.services:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                              "nothing to deploy: give a manifest or service specs")
            return check_specs(self._decoded(request.services, context), "services")
        except ManifestError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        raise AssertionError

    def _decoded(self, services: Any, context: grpc.ServicerContext) -> list[Any]:
        specs = []
        for index, message in enumerate(services):
            try:
                specs.append(spec_from_pb(message))
            except WireError as err:
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"services[{index}].{err}")
        return specs

    def _pin(self, spec: Any, context: grpc.ServicerContext) -> Any:
        """Resolve a registry image's tag to its digest now, so every node
        runs the same bytes however the tag moves later."""
        from registry.reference import names_registry

        if "@" in spec.image or not names_registry(spec.image):
            return spec
        # Only now the HTTP client (httpx): loading it costs a local image's
        # first deploy ~20 ms for nothing. Its CAs: --registry-ca, certs.d.
        from common.errors import AgentError
        from registry.manifest import resolve_digest
        from registry.reference import parse_remote

        try:
            remote = parse_remote(spec.image)
            digest = resolve_digest(spec.image)
        except AgentError as err:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"service {spec.name}: cannot resolve image {spec.image}: {err.message}")
        return dataclasses.replace(spec, image=remote.with_digest(digest).canonical)

    def _apply(self, spec: Any, context: grpc.ServicerContext) -> Service:
        # Every way in has checked this already; a count beyond it would have
        # the orchestrator create tasks until the process runs out of memory.
        if not 0 <= spec.replicas <= MAX_REPLICAS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"service {spec.name}: {spec.replicas} replicas is beyond 0 to {MAX_REPLICAS}")
        spec = self._pin(spec, context)
        for _ in range(5):
            now = time.time()
            existing = next((s for s in self.informer.services() if s.spec.name == spec.name), None)
            try:
                if existing is None:
                    return self._written(self.store.create(Service(
                        id=secrets.token_hex(12), spec=spec, created_at=now, updated_at=now)))
                if existing.spec == spec:
                    return existing
                return self._written(self.store.update(
                    dataclasses.replace(existing, spec=spec, updated_at=now)))
            except StoreConflict:
                time.sleep(0.05)
        context.abort(grpc.StatusCode.ABORTED, f"service {spec.name} kept changing; try again")
        raise AssertionError

    def _written(self, obj: Any, revision: int = 0) -> Any:
        """Read your writes: return once this replica's cache holds the write,
        so a get or list that follows it (as `orch deploy` does) sees it.
        Bounded: a cache that lags more than 5 s answers with what it has."""
        self.informer.wait_revision(revision or obj.version, 5.0)
        return obj

    def Scale(self, request: cpb.ScaleRequest, context: grpc.ServicerContext) -> cpb.Service:
        if not 0 <= request.replicas <= MAX_REPLICAS:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"invalid replicas {request.replicas}: expected 0 to {MAX_REPLICAS} "
                          "(orch's maximum per service)")
        svc = self._service(request.service, context)
        if svc.spec.mode != "replicated":
            context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                          f"service {svc.spec.name} is global: it runs one task per node")
        spec = dataclasses.replace(svc.spec, replicas=request.replicas)
        return service_to_pb(self._apply(spec, context))

    def RemoveService(self, request: cpb.ServiceRef, context: grpc.ServicerContext) -> cpb.RemoveResponse:
        svc = self._service(request.name, context)
        try:
            self.store.delete(svc)
        except StoreConflict:
            context.abort(grpc.StatusCode.ABORTED, f"service {svc.spec.name} changed; try again")
        self._written(svc, self.store.revision())
        return cpb.RemoveResponse(id=svc.id)

    def GetService(self, request: cpb.ServiceRef, context: grpc.ServicerContext) -> cpb.Service:
        return service_to_pb(self._service(request.name, context))

    def ListServices(self, request: cpb.ListRequest,
                     context: grpc.ServicerContext) -> cpb.ListServicesResponse:
        services = sorted(self.informer.services(), key=lambda s: s.spec.name)
        return cpb.ListServicesResponse(services=[service_to_pb(s) for s in services])

    def ListTasks(self, request: cpb.ListTasksRequest,
                  context: grpc.ServicerContext) -> cpb.ListTasksResponse:
        if request.service:
            tasks = self.informer.tasks_of_service(self._service(request.service, context).id)
        else:
            tasks = self.informer.tasks()
        if not request.all:
            tasks = [t for t in tasks if t.desired_state == TaskState.RUNNING
                     or t.status.state < TaskState.COMPLETE]
        specs: dict[int, cpb.ServiceSpec] = {}  # the tasks keep their specs alive meanwhile
        return cpb.ListTasksResponse(tasks=[task_to_pb(t, specs) for t in tasks])

    # ---- nodes ---------------------------------------------------------------

    def ListNodes(self, request: cpb.ListRequest, context: grpc.ServicerContext) -> cpb.ListNodesResponse:
        return cpb.ListNodesResponse(nodes=[node_to_pb(n) for n in sorted(self.informer.nodes(),
                                                                         key=lambda n: n.name)])

    def UpdateNode(self, request: cpb.UpdateNodeRequest, context: grpc.ServicerContext) -> cpb.Node:
        try:
            wanted = (availability_from_pb(request.availability) if request.HasField("availability")
                      else None)
        except WireError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid {err}")
        for _ in range(5):
            node = self._node_ref(request.node, context)
            labels = {**node.labels, **dict(request.add_labels)}
            for key in request.remove_labels:
                labels.pop(key, None)
            avail = wanted or node.availability
            try:
                return node_to_pb(self._written(self.store.update(dataclasses.replace(
                    node, labels=labels, availability=avail))))  # type: ignore[arg-type]
            except StoreConflict:
                time.sleep(0.05)  # a heartbeat flush raced us
        context.abort(grpc.StatusCode.ABORTED, f"node {request.node} kept changing; try again")
        raise AssertionError

    # ---- logs and exec, through the agents --------------------------------------

    def _agent(self, node_id: str) -> tuple[Node, Any, Any]:
        """The node, a channel to its API and a stub whose calls carry the
        node's API token (the only calls it serves over TCP: logs, exec, stats)."""
        from common.auth import bearer

        node = self.informer.get(Kind.NODE, node_id)
        if not isinstance(node, Node) or not node.address:
            raise StoreError(f"node {node_id} has no address")
        channel = grpc.intercept_channel(grpc.insecure_channel(node.address),
                                         _Metadata(bearer(node.api_token)))
        return node, channel, pb_grpc.AgentStub(channel)

    def Logs(self, request: cpb.ServiceLogsRequest,
             context: grpc.ServicerContext) -> Iterator[cpb.TaskLogLine]:
        svc = self._service(request.service, context)
        tasks = [t for t in self.informer.tasks_of_service(svc.id)
                 if t.node_id and t.status.container_id]
        lines: queue.Queue[cpb.TaskLogLine | None] = queue.Queue(maxsize=10000)
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
        except (grpc.RpcError, StoreError):
            pass  # a node that is gone has no logs to give
        finally:
            out.put(None)

    def Exec(self, request: cpb.TaskExecRequest,
             context: grpc.ServicerContext) -> Iterator[pb.ExecOutput]:
        task = self._task_ref(request.task, context)
        if task.status.state != TaskState.RUNNING or not task.status.container_id:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"task {task.name} is not running")
        try:
            _node_obj, channel, stub = self._agent(task.node_id)
        except StoreError as err:
            context.abort(grpc.StatusCode.UNAVAILABLE, str(err))
        with channel:
            try:
                yield from stub.Exec(pb.ExecRequest(id=task.status.container_id,
                                                    command=list(request.command)))
            except grpc.RpcError as err:
                context.abort(err.code(), err.details() or "exec failed")

    # ---- events and info ---------------------------------------------------------

    def _fan_out(self, change: Change) -> None:
        with self._lock:
            for q in self._watchers:
                q.put(change)

    def Events(self, request: cpb.EventsRequest, context: grpc.ServicerContext) -> Iterator[cpb.Event]:
        """Changes as they reach this replica's cache; see ``EventsRequest``."""
        return (event for event in self._events(request, context) if event is not None)

    def EventBatches(self, request: cpb.EventsRequest,
                     context: grpc.ServicerContext) -> Iterator[cpb.EventBatch]:
        """The events of ``Events``, each message carrying all that were ready
        (at most ``EVENT_BATCH``): one message per change cost the control
        plane and the client far more than the change itself."""
        batch: list[cpb.Event] = []
        for event in self._events(request, context):
            if event is not None:
                batch.append(event)
            if batch and (event is None or len(batch) >= EVENT_BATCH):
                yield cpb.EventBatch(events=batch)
                batch = []

    def _events(self, request: cpb.EventsRequest,
                context: grpc.ServicerContext) -> Iterator[cpb.Event | None]:
        """The events for ``request``, and None whenever no more are ready."""
        names = set(request.services)
        q: queue.Queue[Change] = queue.Queue(maxsize=100000)
        with self._lock:
            self._watchers.append(q)
        try:
            if request.initial:
                # Registered first: a change made while the snapshot is read
                # is in the snapshot, the queue, or both (a client keeps the
                # newest version of each object).
                everything: list[StoreObject] = [*self.informer.services(), *self.informer.tasks()]
                snapshot = [o for o in everything if not names or _service_name(o) in names]
                specs: dict[int, cpb.ServiceSpec] = {}
                for obj in snapshot:
                    yield event_to_pb("put", obj, specs)
                del specs, snapshot, everything
                yield event_to_pb("synced")
            wait = request.keepalive if request.keepalive > 0 else 0.5
            while context.is_active():
                try:
                    change = q.get_nowait()
                except queue.Empty:
                    yield None
                    try:
                        change = q.get(timeout=wait)
                    except queue.Empty:
                        if request.keepalive > 0:
                            yield event_to_pb("keepalive")
                        continue
                if names and _service_name(change.obj) not in names:
                    continue
                yield event_to_pb("delete" if change.type == "delete" else "put", change.obj)
        finally:
            with self._lock:
                self._watchers.remove(q)

    def Info(self, request: cpb.InfoRequest, context: grpc.ServicerContext) -> cpb.InfoResponse:
        return cpb.InfoResponse(version=VERSION, controlplane_id=self.replica_id,
                                leader=bool(self.is_leader()), leader_id=self.leader_id() or "",
                                nodes=len(self.informer.nodes()),
                                services=len(self.informer.services()),
                                tasks=len(self.informer.tasks()))
