"""The cluster API reads its own writes: a get right after a deploy, scale,
node update or removal sees it, even when this replica's watch runs late."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest
from store_helpers import make_node

from controlplane.api import ClusterAPI
from controlplane.store import Informer, Store
from model.objects import ServiceSpec
from model.wire import availability_to_pb, node_from_pb, service_from_pb, spec_to_pb
from proto import cluster_pb2 as cpb


class Aborted(Exception):
    pass


class Context:
    def abort(self, code: grpc.StatusCode, message: str) -> None:
        raise Aborted(f"{code.name}: {message}")


class LateInformer(Informer):
    """Applies each batch of watch events 0.3 s after it arrives."""

    def _follow(self, watch: Any) -> None:
        next_batch = watch.next

        def late(timeout: float | None = None) -> Any:
            events = next_batch(timeout=timeout)
            if events:
                time.sleep(0.3)
            return events

        watch.next = late
        super()._follow(watch)


@pytest.fixture
def api(store: Store) -> Any:
    informer = LateInformer(store).start()
    assert informer.wait_synced(10)
    yield ClusterAPI(store, informer, "r1", is_leader=lambda: True, leader_id=lambda: "r1")
    informer.stop()


def test_a_get_after_each_write_sees_it(api: ClusterAPI, store: Store) -> None:
    spec = ServiceSpec(name="web", image="busybox", replicas=2)
    api.Deploy(cpb.DeployRequest(services=[spec_to_pb(spec)]), Context())
    assert service_from_pb(api.GetService(cpb.ServiceRef(name="web"), Context())).spec == spec
    api.Scale(cpb.ScaleRequest(service="web", replicas=5), Context())
    assert service_from_pb(api.GetService(cpb.ServiceRef(name="web"), Context())).spec.replicas == 5
    node = store.create(make_node("n1"))
    api.informer.wait_revision(node.version, 10)
    api.UpdateNode(cpb.UpdateNodeRequest(node="n1", availability=availability_to_pb("drain")), Context())
    [listed] = api.ListNodes(cpb.ListRequest(), Context()).nodes
    assert node_from_pb(listed).availability == "drain"
    api.RemoveService(cpb.ServiceRef(name="web"), Context())
    with pytest.raises(Aborted, match="NOT_FOUND"):
        api.GetService(cpb.ServiceRef(name="web"), Context())
