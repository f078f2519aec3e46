"""The control plane's Prometheus metrics and Prometheus' service discovery
of the agents (``orch controlplane --metrics-listen HOST:PORT``).

Metrics mirror Swarm's manager metrics, under orch's names:

- from the informer's cache at scrape time (no polling, no thread):
  ``orch_manager_nodes{state}``, ``orch_manager_tasks{state}``,
  ``orch_manager_tasks_health{health}`` (running tasks with a check),
  ``orch_manager_services``, ``orch_manager_leader`` (1 on the replica that
  runs the controllers), ``orch_manager_info{replica}``; rollout progress:
  ``orch_service_rollout_state{service,state}`` (1 for its last rollout's
  state), ``orch_service_rollout_{updated_tasks,tasks,failed_tasks}{service}``;
- observed where things happen: ``orch_dispatcher_scheduling_delay_seconds``
  (a task's creation to its node reporting it running),
  ``orch_orchestrator_pass_seconds`` (one reconcile/schedule pass),
  ``orch_store_request_seconds{op}`` and ``orch_store_errors_total{op}``
  (every etcd call, ``controlplane.store._client``),
  ``orch_api_request_seconds{method}`` and ``orch_api_errors_total{method,code}``
  (the CLI API, by RPC);
- the process's own (prometheus-client's process collector).

``/sd/agents`` answers Prometheus' HTTP service discovery (``http_sd_configs``)
with every ready node's agent metrics address (``Node.metrics_address``, sent
in its Register), labelled with the node's name: nodes that join appear, and
nodes that are down or removed drop out, at Prometheus' next refresh.

Nothing here is loaded unless metrics are on (prometheus-client is imported
by :class:`Metrics`); the store and the controllers see only plain callbacks.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc

from controlplane.store import Informer
from model.objects import TaskState

__all__ = ["Metrics", "serve"]

DELAY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
PASS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
REQUEST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5)


class Metrics:
    """The replica's registry and the callbacks that feed it."""

    def __init__(self, informer: Informer, is_leader: Callable[[], bool], replica: str) -> None:
        from prometheus_client import CollectorRegistry, Histogram, ProcessCollector
        from prometheus_client import Counter as PromCounter

        self.informer = informer
        self.registry = CollectorRegistry()
        self.scheduling_delay = Histogram(
            "orch_dispatcher_scheduling_delay_seconds", "From a task's creation to its node reporting it "
            "running.", buckets=DELAY_BUCKETS, registry=self.registry)
        self.pass_seconds = Histogram("orch_orchestrator_pass_seconds", "One pass of the leader's "
                                      "controllers (reconcile, allocate, schedule, write).",
                                      buckets=PASS_BUCKETS, registry=self.registry)
        self.store_seconds = Histogram("orch_store_request_seconds", "etcd requests, by operation.", ["op"],
                                       buckets=REQUEST_BUCKETS, registry=self.registry)
        self.store_errors = PromCounter("orch_store_errors", "etcd requests that failed, by operation.",
                                        ["op"], registry=self.registry)
        self.api_seconds = Histogram("orch_api_request_seconds", "CLI API calls, by method.", ["method"],
                                     buckets=REQUEST_BUCKETS, registry=self.registry)
        self.api_errors = PromCounter("orch_api_errors", "CLI API calls that failed, by method and code.",
                                      ["method", "code"], registry=self.registry)
        ProcessCollector(registry=self.registry)
        self.registry.register(_StateCollector(informer, is_leader, replica))  # type: ignore[arg-type]

    # ---- callbacks (cheap; called on the hot paths) ----------------------

    def observe_store(self, what: str, seconds: float, error: BaseException | None) -> None:
        op = what.split(" ", 1)[0]
        self.store_seconds.labels(op).observe(seconds)
        if error is not None:
            self.store_errors.labels(op).inc()

    def observe_running(self, created_at: float, now: float) -> None:
        if created_at > 0 and now >= created_at:
            self.scheduling_delay.observe(now - created_at)

    def observe_pass(self, seconds: float) -> None:
        self.pass_seconds.observe(seconds)

    def interceptor(self) -> grpc.ServerInterceptor:
        """Times every unary call of the CLI API and counts its failures."""
        metrics = self

        class _Timed(grpc.ServerInterceptor):  # type: ignore[misc]
            def intercept_service(self, continuation: Any, details: Any) -> Any:
                handler = continuation(details)
                if handler is None or handler.request_streaming or handler.response_streaming \
                        or "/orch.cluster.v1.ClusterAPI/" not in details.method:
                    return handler
                method = details.method.rpartition("/")[2]
                inner = handler.unary_unary

                def timed(request: Any, context: grpc.ServicerContext) -> Any:
                    started = time.monotonic()
                    try:
                        return inner(request, context)
                    except BaseException:
                        code = context.code() if hasattr(context, "code") else None
                        metrics.api_errors.labels(method, _code_name(code)).inc()
                        raise
                    finally:
                        metrics.api_seconds.labels(method).observe(time.monotonic() - started)

                return grpc.unary_unary_rpc_method_handler(
                    timed, request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer)

        return _Timed()

    # ---- what the HTTP endpoint serves -----------------------------------

    def exposition(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))

    def agent_targets(self) -> list[dict[str, Any]]:
        """Prometheus' HTTP SD answer: a target group per ready node with a metrics address."""
        return [{"targets": [n.metrics_address],
                 "labels": {"node": n.name, "node_id": n.id, "job": "orch-agent"}}
                for n in sorted(self.informer.nodes(), key=lambda n: n.name)
                if n.metrics_address and n.state == "ready"]


def _code_name(code: Any) -> str:
    return str(code.name) if isinstance(code, grpc.StatusCode) else "UNKNOWN"


class _StateCollector:
    """Counts from the informer's cache, made at scrape time."""

    def __init__(self, informer: Informer, is_leader: Callable[[], bool], replica: str) -> None:
        self.informer = informer
        self.is_leader = is_leader
        self.replica = replica

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        nodes = Counter(n.state for n in self.informer.nodes())
        family = GaugeMetricFamily("orch_manager_nodes", "Nodes, by state.", labels=["state"])
        for name in ("ready", "down", "unknown"):
            family.add_metric([name], nodes.get(name, 0))
        yield family
        tasks = self.informer.tasks()
        by_state = Counter(t.status.state for t in tasks)
        family = GaugeMetricFamily("orch_manager_tasks", "Tasks, by their current state.", labels=["state"])
        for state in TaskState:
            family.add_metric([state.label()], by_state.get(state, 0))
        yield family
        health = Counter(t.status.health for t in tasks
                         if t.status.state == TaskState.RUNNING and t.status.health)
        family = GaugeMetricFamily("orch_manager_tasks_health", "Running tasks with a health check, by "
                                   "health.", labels=["health"])
        for value in ("starting", "healthy", "unhealthy"):
            family.add_metric([value], health.get(value, 0))
        yield family
        node_state = GaugeMetricFamily("orch_node_state", "1 for the state each node is in.",
                                       labels=["node", "state"])
        for node in self.informer.nodes():
            node_state.add_metric([node.name, node.state], 1)
        yield node_state
        services = self.informer.services()
        yield GaugeMetricFamily("orch_manager_services", "Services.", value=len(services))
        yield from _replicas(services, tasks)
        yield from _rollouts(services)
        yield GaugeMetricFamily("orch_manager_leader", "1 on the replica that runs the controllers.",
                                value=1 if self.is_leader() else 0)
        info = GaugeMetricFamily("orch_manager_info", "This control-plane replica.", labels=["replica"])
        info.add_metric([self.replica], 1)
        yield info


def _replicas(services: list[Any], tasks: list[Any]) -> Iterator[Any]:
    """Each service's desired and running replicas, as kube-state-metrics has a
    deployment's spec and available replicas (a global service wants one
    task a node it places on: its tasks told to run)."""
    from prometheus_client.core import GaugeMetricFamily

    told, running = Counter[str](), Counter[str]()
    for t in tasks:
        if t.desired_state == TaskState.RUNNING:
            told[t.service_id] += 1
            if t.status.state == TaskState.RUNNING:
                running[t.service_id] += 1
    desired = GaugeMetricFamily("orch_service_replicas_desired", "Replicas each service wants.",
                                labels=["service", "mode"])
    up = GaugeMetricFamily("orch_service_replicas_running", "Tasks of each service running and "
                           "told to run.", labels=["service"])
    for service in services:
        name, mode = service.spec.name, service.spec.mode
        desired.add_metric([name, mode], service.spec.replicas if mode == "replicated" else told[service.id])
        up.add_metric([name], running[service.id])
    yield from (desired, up)


def _rollouts(services: list[Any]) -> Iterator[Any]:
    """Each service's rollout: its state (1 for the state it is in) and its progress."""
    from prometheus_client.core import GaugeMetricFamily

    state = GaugeMetricFamily("orch_service_rollout_state", "1 for the state each service's last "
                              "rollout is in.", labels=["service", "state"])
    updated = GaugeMetricFamily("orch_service_rollout_updated_tasks", "Tasks of the service's new spec "
                                "that count as updated, in its last rollout.", labels=["service"])
    total = GaugeMetricFamily("orch_service_rollout_tasks", "Tasks to update in the service's last "
                              "rollout.", labels=["service"])
    failed = GaugeMetricFamily("orch_service_rollout_failed_tasks", "Tasks of the new spec that "
                               "failed during the service's last rollout.", labels=["service"])
    for service in services:
        status = service.update_status
        if status is None:
            continue
        name = service.spec.name
        state.add_metric([name, status.state], 1)
        updated.add_metric([name], status.updated)
        total.add_metric([name], status.total)
        failed.add_metric([name], len(status.failed))
    yield from (state, updated, total, failed)


def serve(metrics: Metrics, address: str) -> ThreadingHTTPServer:
    """Serve ``/metrics`` and ``/sd/agents`` on ``address`` (HOST:PORT), on a
    daemon thread; ``shutdown()`` the returned server to stop."""
    host, _, port = address.rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] == "/metrics":
                from prometheus_client import CONTENT_TYPE_LATEST

                self._reply(200, CONTENT_TYPE_LATEST, metrics.exposition())
            elif self.path.split("?", 1)[0] == "/sd/agents":
                self._reply(200, "application/json", json.dumps(metrics.agent_targets()).encode())
            else:
                self._reply(404, "text/plain", b"not found: /metrics or /sd/agents\n")

        def _reply(self, code: int, kind: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a scrape every few seconds is not news

    server = ThreadingHTTPServer((host.strip("[]"), int(port)), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server
