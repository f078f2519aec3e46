"""The control plane's metrics (controlplane.metrics) over a real store:
counts made from the informer at scrape time, the observed histograms, the
agents' service discovery, and the HTTP endpoint itself."""

from __future__ import annotations

import dataclasses
import json
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from controlplane.metrics import Metrics, serve
from controlplane.store import Informer, Store
from controlplane.store import _client as store_client
from model.objects import Node, NodeResources, TaskState, TaskStatus, UpdateStatus
from tests.store.store_helpers import make_service, make_task


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _node(name: str, state: str, metrics: str = "") -> Node:
    return Node(id=f"id-{name}", name=name, state=state,  # type: ignore[arg-type]
                resources=NodeResources(cpus=1, memory_bytes=1 << 30), metrics_address=metrics)


def test_counts_histograms_and_discovery(store: Store, informer: Informer) -> None:
    leader = [True]
    metrics = Metrics(informer, lambda: leader[0], "cp1")
    store_client.observers.append(metrics.observe_store)
    try:
        for node in (_node("n1", "ready", "10.89.0.11:7702"), _node("n2", "ready", "10.89.0.12:7702"),
                     _node("n3", "down", "10.89.0.13:7702"), _node("n4", "ready")):
            store.create(node)
        service = store.create(dataclasses.replace(make_service("web", 2), update_status=UpdateStatus(
            state="updating", started_at=1.0, total=2, updated=1, failed=["t9"])))
        for slot, (state, health) in enumerate([(TaskState.RUNNING, "healthy"),
                                                (TaskState.RUNNING, "starting"),
                                                (TaskState.PENDING, "")], 1):
            task = make_task(service, slot, "id-n1")
            written = store.create(dataclasses.replace(task, status=TaskStatus(state=state, health=health)))
        informer.wait_revision(written.version, 10)
        metrics.observe_running(100.0, 100.4)
        metrics.observe_pass(0.003)
        samples = _samples(metrics.exposition().decode())
        assert samples[("orch_manager_nodes", (("state", "ready"),))] == 3
        assert samples[("orch_manager_nodes", (("state", "down"),))] == 1
        assert samples[("orch_manager_tasks", (("state", "running"),))] == 2
        assert samples[("orch_manager_tasks", (("state", "pending"),))] == 1
        assert samples[("orch_manager_tasks_health", (("health", "healthy"),))] == 1
        assert samples[("orch_manager_tasks_health", (("health", "starting"),))] == 1
        assert samples[("orch_manager_services", ())] == 1
        assert samples[("orch_node_state", (("node", "n3"), ("state", "down")))] == 1
        assert samples[("orch_node_state", (("node", "n1"), ("state", "ready")))] == 1
        assert ("orch_node_state", (("node", "n1"), ("state", "down"))) not in samples
        assert samples[("orch_service_replicas_desired", (("mode", "replicated"), ("service", "web")))] == 2
        assert samples[("orch_service_replicas_running", (("service", "web"),))] == 2
        assert samples[("orch_service_rollout_state", (("service", "web"), ("state", "updating")))] == 1
        assert samples[("orch_service_rollout_updated_tasks", (("service", "web"),))] == 1
        assert samples[("orch_service_rollout_tasks", (("service", "web"),))] == 2
        assert samples[("orch_service_rollout_failed_tasks", (("service", "web"),))] == 1
        assert samples[("orch_manager_leader", ())] == 1
        assert samples[("orch_dispatcher_scheduling_delay_seconds_count", ())] == 1
        assert samples[("orch_dispatcher_scheduling_delay_seconds_bucket", (("le", "0.5"),))] == 1
        assert samples[("orch_orchestrator_pass_seconds_count", ())] == 1
        # The writes above went through the store's calls, timed by operation.
        assert samples[("orch_store_request_seconds_count", (("op", "txn"),))] >= 1
        assert ("process_resident_memory_bytes", ()) in samples
        leader[0] = False
        assert _samples(metrics.exposition().decode())[("orch_manager_leader", ())] == 0
        # Discovery: ready nodes that serve metrics, by name; n3 is down, n4 serves none.
        targets = metrics.agent_targets()
        assert [(t["targets"], t["labels"]["node"]) for t in targets] == [
            (["10.89.0.11:7702"], "n1"), (["10.89.0.12:7702"], "n2")]
        http = serve(metrics, "127.0.0.1:0")
        try:
            port = http.server_address[1]
            base = f"http://127.0.0.1:{port}"
            with urllib.request.urlopen(f"{base}/sd/agents", timeout=10) as reply:
                assert json.load(reply) == targets
            with urllib.request.urlopen(f"{base}/metrics", timeout=10) as reply:
                assert ("orch_manager_services", ()) in _samples(reply.read().decode())
            try:
                urllib.request.urlopen(f"{base}/other", timeout=10)
                raise AssertionError("served a path it does not have")
            except urllib.error.HTTPError as err:
                assert err.code == 404
        finally:
            http.shutdown()
            http.server_close()
    finally:
        store_client.observers.remove(metrics.observe_store)


