"""While etcd is down, the cluster API says the store is unavailable (not
"Exception calling application"), and a call retries within its client's
deadline: real etcd, the real API servicer, a real gRPC server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest

from controlplane.api import ClusterAPI
from controlplane.apierrors import store_errors
from controlplane.etcd import EmbeddedEtcd
from controlplane.store import Informer, Store, StoreError
from model.objects import ServiceSpec
from model.wire import service_from_pb, spec_to_pb
from proto import cluster_pb2 as cpb
from proto import cluster_pb2_grpc as cpb_grpc


class Served:
    def __init__(self, store: Store) -> None:
        self.retried = threading.Event()
        self.informer = Informer(store).start()
        assert self.informer.wait_synced(10)
        api = ClusterAPI(store, self.informer, "r1", is_leader=lambda: True, leader_id=lambda: "r1")
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4),
                                  interceptors=[store_errors(on_retry=self._retried)])
        cpb_grpc.add_ClusterAPIServicer_to_server(api, self.server)  # type: ignore[no-untyped-call]
        port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()
        self.channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        self.stub = cpb_grpc.ClusterAPIStub(self.channel)

    def _retried(self, err: StoreError) -> None:
        self.retried.set()

    def close(self) -> None:
        self.channel.close()
        self.server.stop(grace=0).wait()
        self.informer.stop()


@pytest.fixture
def served(store: Store) -> Iterator[Served]:
    s = Served(store)
    try:
        yield s
    finally:
        s.close()


def _deploy(served: Served) -> None:
    spec = ServiceSpec(name="web", image="busybox", replicas=2)
    served.stub.Deploy(cpb.DeployRequest(services=[spec_to_pb(spec)]), timeout=10)


def test_scale_while_etcd_is_down_says_the_store_is_unavailable(served: Served, etcd: EmbeddedEtcd) -> None:
    _deploy(served)
    etcd.stop()
    with pytest.raises(grpc.RpcError) as err:
        served.stub.Scale(cpb.ScaleRequest(service="web", replicas=3), timeout=2)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    details = err.value.details() or ""
    assert details.startswith("the cluster store (etcd) is unavailable"), details
    assert "Exception calling application" not in details
    assert served.retried.is_set()  # it did try again before giving up


def test_a_call_made_during_an_outage_succeeds_once_etcd_is_back(served: Served,
                                                                  etcd: EmbeddedEtcd) -> None:
    _deploy(served)
    etcd.stop()
    result: dict[str, Any] = {}

    def scale() -> None:
        try:
            result["service"] = served.stub.Scale(cpb.ScaleRequest(service="web", replicas=4),
                                                  timeout=60)
        except grpc.RpcError as err:
            result["error"] = err

    caller = threading.Thread(target=scale)
    caller.start()
    assert served.retried.wait(30)  # the call has met the outage
    etcd.start()
    caller.join(60)
    assert "error" not in result, result.get("error")
    assert service_from_pb(result["service"]).spec.replicas == 4
