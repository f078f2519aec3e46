"""Shared pieces of the DNS tests: the sample networks and services, scopes,
and a node's DNS server in its namespace (fixtures in ``conftest``)."""

from __future__ import annotations

from collections.abc import Callable

from nshelp import dns_sockets

from nodeagent.dns.node import NodeDns
from nodeagent.dns.scope import Attachment, ContainerScope
from nodeagent.network.state import (
    Endpoint,
    NetworkStateHub,
    OverlayNetwork,
    ServiceNetwork,
    ServiceRoute,
    StateUpdate,
)

FRONT, BACK = "net-front", "net-back"


def sample_hub() -> NetworkStateHub:
    """Two networks; ``api`` (VIP, alias ``backend``) on both, ``db``
    (dnsrr) on back only, ``web`` on front only."""
    h = NetworkStateHub()
    h.apply(StateUpdate(
        full=True,
        networks=[OverlayNetwork(FRONT, "front", "10.96.1.0/24", 4097),
                  OverlayNetwork(BACK, "back", "10.96.2.0/24", 4098)],
        services=[
            ServiceRoute("s-api", "api", networks=(ServiceNetwork(FRONT, "10.96.1.2", ("backend",)),
                                                   ServiceNetwork(BACK, "10.96.2.2"))),
            ServiceRoute("s-db", "db", endpoint_mode="dnsrr", networks=(ServiceNetwork(BACK),)),
            ServiceRoute("s-web", "web", networks=(ServiceNetwork(FRONT, "10.96.1.3"),)),
        ],
        endpoints=[
            Endpoint("t-api1", "s-api", FRONT, "10.96.1.11", "n1", "api.1.t-api1", 1),
            Endpoint("t-api1", "s-api", BACK, "10.96.2.11", "n1", "api.1.t-api1", 1),
            Endpoint("t-api2", "s-api", FRONT, "10.96.1.12", "n2", "api.2.t-api2", 2),
            Endpoint("t-api2", "s-api", BACK, "10.96.2.12", "n2", "api.2.t-api2", 2),
            Endpoint("t-db1", "s-db", BACK, "10.96.2.21", "n1", "db.1.t-db1", 1),
            Endpoint("t-db2", "s-db", BACK, "10.96.2.22", "n2", "db.2.t-db2", 2),
            Endpoint("t-db3", "s-db", BACK, "10.96.2.23", "n3", "db.3.t-db3", 3),
            Endpoint("t-web1", "s-web", FRONT, "10.96.1.31", "n1", "web.1.t-web1", 1),
        ]))
    return h


def on(*networks: tuple[str, str], name: str = "ctr") -> ContainerScope:
    """A cluster task's scope: on these (id, name) networks, in order."""
    return ContainerScope(name=name, networks=tuple(
        Attachment(nid, nname, f"10.96.{i}.99") for i, (nid, nname) in enumerate(networks, 1)))


FRONT_ONLY = on((FRONT, "front"))
BACK_ONLY = on((BACK, "back"))


class Node:
    """A node's DNS server, its thread inside the node's namespace (so
    upstreams on that namespace's loopback are reachable), and helpers."""

    def __init__(self, ns: str, dns: NodeDns, make_ns: Callable[[], str]) -> None:
        self.ns, self.dns, self.make_ns = ns, dns, make_ns

    def container(self, cid: str, scope: ContainerScope) -> str:
        """A new namespace with its sockets served for ``cid``: its name."""
        ns = self.make_ns()
        udp, tcp = dns_sockets(ns)
        self.dns.add_container(cid, udp, tcp, scope)
        return ns
