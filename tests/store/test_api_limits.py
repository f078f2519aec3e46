"""The cluster API and the orchestrator against a real etcd: replica counts and
other values beyond the limits are refused at every way in (a manifest,
``services``, ``Scale``), an empty manifest is not "deployed", and a
service already stored with an absurd count is skipped with a logged error
instead of having its tasks created."""

from __future__ import annotations

import dataclasses
import threading
from typing import Any

import grpc
import pytest
from structlog.testing import capture_logs

from controlplane.api import ClusterAPI
from controlplane.orchestrator import Orchestrator
from controlplane.store import Informer, Store
from model.objects import Service, ServiceSpec
from model.wire import spec_to_pb
from proto import cluster_pb2 as cpb


class Aborted(Exception):
    pass


class Context:
    def abort(self, code: grpc.StatusCode, message: str) -> None:
        raise Aborted(f"{code.name}: {message}")


@pytest.fixture
def api(store: Store, informer: Informer) -> ClusterAPI:
    return ClusterAPI(store, informer, "r1", is_leader=lambda: True, leader_id=lambda: "r1")


def _deploy(api: ClusterAPI, **request: Any) -> Any:
    return api.Deploy(cpb.DeployRequest(**request), Context())


@pytest.mark.parametrize(
    ("request_fields", "message"),
    [
        ({"manifest": "services:\n  web:\n    image: busybox\n    deploy: {replicas: 1000000000000}\n",
          "manifest_path": "web.yaml"},
         "INVALID_ARGUMENT: web.yaml:4: services.web.deploy.replicas: 1000000000000 is too large: at most "
         "100000 replicas per service"),
        ({"manifest": "services:\n  web:\n    image: busybox\n    stop_grace_period: 99999999999999h\n",
          "manifest_path": "web.yaml"},
         "INVALID_ARGUMENT: web.yaml:4: services.web.stop_grace_period: '99999999999999h' is too long"),
        ({"manifest_path": "empty.yaml"},  # an empty file: the CLI sends its path, no text
         "INVALID_ARGUMENT: empty.yaml:1: the manifest is empty"),
        ({"manifest": "# only a comment\n", "manifest_path": "c.yaml"},
         "INVALID_ARGUMENT: c.yaml:1: the manifest is empty"),
        ({"manifest": "services: " + "[" * 1000 + "]" * 1000 + "\n", "manifest_path": "deep.yaml"},
         "INVALID_ARGUMENT: deep.yaml:1: the manifest nests deeper than 64 levels"),
        ({}, "INVALID_ARGUMENT: nothing to deploy"),
        ({"services": [spec_to_pb(ServiceSpec(name="web", image="busybox", replicas=10**12))]},
         "INVALID_ARGUMENT: services: services.web.deploy.replicas: 1000000000000 is too large"),
        ({"services": [spec_to_pb(ServiceSpec(name="web", image="busybox", command=[]))]},
         "INVALID_ARGUMENT: services: services.web.command: the command is empty"),
        # Enum values from a newer client: named, not guessed.
        ({"services": [spec_to_pb(ServiceSpec(name="db", image="busybox")),
                       cpb.ServiceSpec(name="web", image="busybox", mode=7)]},  # type: ignore[arg-type]
         "INVALID_ARGUMENT: services[1].mode: 7 is not a value this version knows"),
        ({"services": [cpb.ServiceSpec(name="web", image="busybox", ports=[
            cpb.PortConfig(published=80, target=80, protocol=5)])]},  # type: ignore[arg-type]
         "INVALID_ARGUMENT: services[0].ports[0].protocol: 5 is not a value this version knows"),
    ],
)
def test_deploy_refuses(api: ClusterAPI, store: Store, request_fields: dict[str, Any], message: str) -> None:
    with pytest.raises(Aborted) as caught:
        _deploy(api, **request_fields)
    assert str(caught.value).startswith(message), str(caught.value)
    assert store.list_services() == []


def test_scale_refuses_beyond_the_limit(api: ClusterAPI, store: Store) -> None:
    _deploy(api, services=[spec_to_pb(ServiceSpec(name="web", image="busybox"))])
    for replicas in (100_001, 2**31 - 1, -1):
        with pytest.raises(Aborted, match=rf"INVALID_ARGUMENT: invalid replicas {replicas}: expected 0 to "
                                          "100000"):
            api.Scale(cpb.ScaleRequest(service="web", replicas=replicas), Context())
    api.Scale(cpb.ScaleRequest(service="web", replicas=100_000), Context())
    [stored] = store.list_services()
    assert stored.spec.replicas == 100_000


def test_a_stored_service_beyond_the_limit_is_skipped_with_an_error(store: Store, informer: Informer) -> None:
    leadership = store.campaign("controllers", "cp-1", ttl=5)
    assert leadership is not None
    huge = store.create(Service(id="huge", spec=ServiceSpec(name="huge", image="busybox", replicas=10**12)))
    small = store.create(Service(id="small", spec=ServiceSpec(name="small", image="busybox", replicas=2)))
    informer.wait_revision(small.version, 10)
    orchestrator = Orchestrator(store, informer, leadership, threading.Event())
    with capture_logs() as logs:
        for _ in range(3):  # the same service is reported once, not on every pass
            orchestrator.pass_once()
    assert sorted(t.slot for t in store.list_tasks(service_id=small.id)) == [1, 2]
    assert store.list_tasks(service_id=huge.id) == []
    errors = [e for e in logs if e["log_level"] == "error"]
    assert errors == [{"event": "service skipped: its replica count is beyond the limit; scale it or "
                                "remove it", "service": "huge", "service_id": "huge", "replicas": 10**12,
                       "limit": 100_000, "log_level": "error"}]
    # Scaled to a sane count, it is reconciled again.
    fixed = store.update(dataclasses.replace(huge, spec=dataclasses.replace(huge.spec, replicas=1)))
    informer.wait_revision(fixed.version, 10)
    orchestrator.pass_once()
    assert [t.slot for t in store.list_tasks(service_id=huge.id)] == [1]
    leadership.resign()
