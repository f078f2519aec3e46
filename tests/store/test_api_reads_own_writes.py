"""The cluster API reads its own writes: a get right after a deploy, scale,
node update or removal sees it, even when this replica's watch runs late."""

from __future__ import annotations

import json
import time
from typing import Any

import grpc
import pytest
from store_helpers import make_node

from controlplane.api import ClusterAPI
from controlplane.store import Informer, Store
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
    spec = {"name": "web", "image": "busybox", "replicas": 2}
    api.Deploy(cpb.DeployRequest(services_json=[json.dumps(spec)]), Context())
    assert api.GetService(cpb.ServiceRef(name="web"), Context()).name == "web"
    api.Scale(cpb.ScaleRequest(service="web", replicas=5), Context())
    assert json.loads(api.GetService(cpb.ServiceRef(name="web"), Context()).json)["spec"]["replicas"] == 5
    node = store.create(make_node("n1"))
    api.informer.wait_revision(node.version, 10)
    api.UpdateNode(cpb.UpdateNodeRequest(node="n1", availability="drain"), Context())
    [listed] = api.ListNodes(cpb.ListRequest(), Context()).nodes
    assert json.loads(listed.json)["availability"] == "drain"
    api.RemoveService(cpb.ServiceRef(name="web"), Context())
    with pytest.raises(Aborted, match="NOT_FOUND"):
        api.GetService(cpb.ServiceRef(name="web"), Context())
