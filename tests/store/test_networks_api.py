"""Networks through the cluster API on a real etcd: create, list, get and remove;
two API replicas creating networks at once never share a subnet, VNI or name;
a deploy makes its stack's networks (once) before its services; a network in
use is never removed, however the calls interleave."""

from __future__ import annotations

import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from controlplane.api import ClusterAPI
from controlplane.store import Informer, Store, StoreConflict
from model.objects import NetworkAttachment, ServiceSpec
from model.wire import network_from_pb, service_from_pb, spec_to_pb
from proto import cluster_pb2 as cpb


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code


class Context:
    def is_active(self) -> bool:
        return True

    def abort(self, code: grpc.StatusCode, message: str) -> None:
        raise Aborted(code, message)


def _api(store: Store) -> tuple[ClusterAPI, Informer]:
    informer = Informer(store).start()
    assert informer.wait_synced(10)
    return ClusterAPI(store, informer, "r1", is_leader=lambda: True, leader_id=lambda: "r1",
                      network_pool="10.96.0.0/22", reserved_ports=frozenset({7700})), informer


@pytest.fixture
def api(store: Store) -> Iterator[ClusterAPI]:
    api, informer = _api(store)
    yield api
    informer.stop()


def _create(api: ClusterAPI, name: str, subnet: str = "", **labels: str) -> Any:
    return network_from_pb(api.CreateNetwork(cpb.CreateNetworkRequest(name=name, subnet=subnet,
                                                                      labels=labels), Context()))


def _deploy(api: ClusterAPI, text: str, path: str = "shop/m.yaml", stack: str = "shop") -> list[Any]:
    reply = api.Deploy(cpb.DeployRequest(manifest=textwrap.dedent(text), manifest_path=path, stack=stack),
                       Context())
    return [service_from_pb(s) for s in reply.services]


def _names(api: ClusterAPI) -> dict[str, Any]:
    return {n.name: network_from_pb(n) for n in api.ListNetworks(cpb.ListRequest(), Context()).networks}


def test_create_list_get_and_remove(api: ClusterAPI, store: Store) -> None:
    a = _create(api, "a", tier="back")
    b = _create(api, "b")
    c = _create(api, "c", subnet="192.168.50.0/24")
    assert (a.subnet, a.vni, a.labels) == ("10.96.0.0/24", 4096, {"tier": "back"})
    assert (b.subnet, b.vni) == ("10.96.1.0/24", 4097)
    assert (c.subnet, c.vni) == ("192.168.50.0/24", 4098)
    assert sorted(_names(api)) == ["a", "b", "c"]
    got = network_from_pb(api.GetNetwork(cpb.NetworkRef(name=a.id), Context()))
    assert got == a
    api.RemoveNetwork(cpb.NetworkRef(name="b"), Context())
    assert sorted(_names(api)) == ["a", "c"] and store.get_network(b.id) is None
    assert _create(api, "d").subnet == "10.96.1.0/24"  # the freed /24 is the first free again


@pytest.mark.parametrize(("name", "subnet", "code", "message"), [
    ("a", "", grpc.StatusCode.ALREADY_EXISTS, "network a already exists"),
    ("x", "10.96.0.128/25", grpc.StatusCode.INVALID_ARGUMENT, "subnet 10.96.0.128/25 overlaps network a's"),
    ("x", "10.96.0.5/24", grpc.StatusCode.INVALID_ARGUMENT, "host bits are set"),
    ("-x", "", grpc.StatusCode.INVALID_ARGUMENT, "invalid network name '-x'"),
])
def test_bad_creates_are_refused(api: ClusterAPI, name: str, subnet: str, code: grpc.StatusCode,
                                 message: str) -> None:
    _create(api, "a")
    with pytest.raises(Aborted, match=message) as caught:
        _create(api, name, subnet)
    assert caught.value.code == code


def test_an_exhausted_pool_and_an_unknown_network_are_said_plainly(api: ClusterAPI) -> None:
    for i in range(4):  # the pool of this API is a /22: four /24s
        _create(api, f"n{i}")
    with pytest.raises(Aborted, match=r"RESOURCE_EXHAUSTED: the network pool 10\.96\.0\.0/22 is exhausted"):
        _create(api, "n4")
    with pytest.raises(Aborted, match="NOT_FOUND: no such network: nope"):
        api.RemoveNetwork(cpb.NetworkRef(name="nope"), Context())


def test_two_replicas_creating_networks_at_once_get_distinct_subnets(store: Store) -> None:
    """Two APIs, each with its own cache, on one etcd: the guarded writes serialise them."""
    replicas = [_api(store), _api(store)]
    made: list[Any] = []
    errors: list[Exception] = []
    start = threading.Barrier(2)

    def create_many(api: ClusterAPI, prefix: str) -> None:
        start.wait()
        for i in range(2):
            try:
                made.append(_create(api, f"{prefix}{i}"))
            except Exception as err:  # reported below
                errors.append(err)

    threads = [threading.Thread(target=create_many, args=(api, f"r{i}-"))
               for i, (api, _) in enumerate(replicas)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for _, informer in replicas:
        informer.stop()
    assert errors == []
    stored = store.list_networks()
    assert len(stored) == 4 == len({n.subnet for n in stored}) == len({n.vni for n in stored})
    assert sorted(n.subnet for n in stored) == [f"10.96.{i}.0/24" for i in range(4)]


STACK = """
    services:
      web:
        image: busybox
        ports: ["8080:80"]
      db:
        image: busybox
        networks:
          back: {aliases: [database]}
    networks:
      back:
        ipam: {config: [{subnet: 10.96.200.0/24}]}
        labels: {tier: back}
"""


def test_a_deploy_makes_its_networks_once_before_its_services(api: ClusterAPI, store: Store) -> None:
    web, db = _deploy(api, STACK)
    networks = _names(api)
    assert sorted(networks) == ["shop_back", "shop_default"]
    assert networks["shop_back"].subnet == "10.96.200.0/24" and networks["shop_back"].stack == "shop"
    assert web.spec.networks == [NetworkAttachment("shop_default")]
    assert db.spec.networks == [NetworkAttachment("shop_back", ["database"])]
    _deploy(api, STACK)  # again: the same networks, not new ones
    assert {n: v.id for n, v in _names(api).items()} == {n: v.id for n, v in networks.items()}
    # Removing a service leaves its networks; a network in use cannot go.
    api.RemoveService(cpb.ServiceRef(name="web"), Context())
    assert sorted(_names(api)) == ["shop_back", "shop_default"]
    with pytest.raises(Aborted, match="FAILED_PRECONDITION: network shop_back is in use by service"
                                      r"\(s\) db"):
        api.RemoveNetwork(cpb.NetworkRef(name="shop_back"), Context())
    api.RemoveService(cpb.ServiceRef(name="db"), Context())
    api.RemoveNetwork(cpb.NetworkRef(name="shop_back"), Context())
    assert sorted(_names(api)) == ["shop_default"]


def test_a_deploy_whose_subnet_or_external_network_does_not_fit_names_its_line(api: ClusterAPI) -> None:
    _deploy(api, STACK)
    changed = STACK.replace("10.96.200.0/24", "10.96.201.0/24")
    with pytest.raises(Aborted, match=r"FAILED_PRECONDITION: shop/m\.yaml:11: networks\.back: network "
                                      "shop_back exists with subnet 10.96.200.0/24, not 10.96.201.0/24"):
        _deploy(api, changed)
    external = """
        services:
          api: {image: busybox, networks: [shared]}
        networks:
          shared: {external: true}
    """
    with pytest.raises(Aborted, match=r"FAILED_PRECONDITION: shop/m\.yaml:5: networks\.shared: external "
                                      "network shared does not exist: create it with orch network create"):
        _deploy(api, external)
    _create(api, "shared")
    [svc] = _deploy(api, external)
    assert svc.spec.networks == [NetworkAttachment("shared")]
    overlapping = STACK.replace("back:\n        ipam", "other:\n        ipam").replace(
        "back: {aliases", "other: {aliases")
    with pytest.raises(Aborted, match=r"INVALID_ARGUMENT: shop/m\.yaml:11: networks\.other: subnet "
                                      "10.96.200.0/24 overlaps network shop_back's"):
        _deploy(api, overlapping)


def test_specs_must_name_existing_networks_and_no_reserved_port(api: ClusterAPI) -> None:
    spec = ServiceSpec(name="web", image="busybox", networks=[NetworkAttachment("nowhere")])
    with pytest.raises(Aborted, match="INVALID_ARGUMENT: service web: network nowhere does not exist"):
        api.Deploy(cpb.DeployRequest(services=[spec_to_pb(spec)]), Context())
    _create(api, "nowhere")
    api.Deploy(cpb.DeployRequest(services=[spec_to_pb(spec)]), Context())
    text = """
        services:
          hijack: {image: busybox, ports: ["7700:80"]}
    """
    with pytest.raises(Aborted, match="INVALID_ARGUMENT: service hijack: host port 7700/tcp is reserved "
                                      "for orch"):
        _deploy(api, text)


def test_a_removal_that_read_a_network_before_a_service_named_it_fails(api: ClusterAPI,
                                                                      store: Store) -> None:
    """The service's write rewrites the networks it names: a removal that read
    one before cannot delete it after (the API then looks again, and refuses)."""
    net = _create(api, "n")
    spec = ServiceSpec(name="web", image="busybox", networks=[NetworkAttachment("n")])
    api.Deploy(cpb.DeployRequest(services=[spec_to_pb(spec)]), Context())
    with pytest.raises(StoreConflict):
        store.delete(net)  # as read before the deploy
    assert store.get_network(net.id) is not None
