"""The control plane's ``NetworkState`` messages as the node's own objects
(``nodeagent.network.state``), at the gRPC edge: the session applies them to
the worker's ``NetworkStateHub``, which the data plane and DNS follow.

An item this version cannot read (an enum value from a newer control plane)
is left out and logged; the rest of the message still counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from model.wire import WireError, endpoint_mode_from_pb, ports_from_pb
from nodeagent.network.state import (
    Endpoint,
    OverlayNetwork,
    Peer,
    PublishedPort,
    ServiceNetwork,
    ServiceRoute,
    StateUpdate,
)
from proto import cluster_pb2 as cpb

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

__all__ = ["state_update_from_pb"]


def _route(m: cpb.ServiceRoute) -> ServiceRoute:
    ports = tuple(PublishedPort(published=p.published, target=p.target, protocol=p.protocol, mode=p.mode)
                  for p in ports_from_pb(m.ports, f"service {m.name}: ports"))
    return ServiceRoute(
        id=m.id, name=m.name, endpoint_mode=endpoint_mode_from_pb(m.endpoint_mode, f"service {m.name}"),
        networks=tuple(ServiceNetwork(network_id=n.network_id, vip=n.vip, aliases=tuple(n.aliases))
                       for n in m.networks),
        ports=ports)


def state_update_from_pb(m: cpb.NetworkState, log: FilteringBoundLogger | None = None) -> StateUpdate:
    routes: list[ServiceRoute] = []
    for service in m.services:
        try:
            routes.append(_route(service))
        except WireError as err:
            if log is not None:
                log.warning("unreadable service in the network state", service=service.name, error=str(err))
    return StateUpdate(
        full=m.full,
        networks=[OverlayNetwork(id=n.id, name=n.name, subnet=n.subnet, vni=n.vni) for n in m.networks],
        removed_networks=list(m.removed_networks),
        peers=[Peer(node_id=p.node_id, index=p.index, address=p.address) for p in m.peers],
        removed_peers=list(m.removed_peers),
        services=routes,
        removed_services=list(m.removed_services),
        endpoints=[_endpoint(e) for e in m.endpoints],
        removed_endpoints=list(m.removed_endpoints),
    )


def _endpoint(e: Any) -> Endpoint:
    return Endpoint(task_id=e.task_id, service_id=e.service_id, network_id=e.network_id, address=e.address,
                    node_id=e.node_id, name=e.name, slot=e.slot, draining=e.draining)
