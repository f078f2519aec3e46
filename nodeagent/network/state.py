"""What a node knows of the cluster's service networking: the contract
between the session that fills it (what the control plane sends over the
node's session), the data plane that follows it (``overlay``: VXLAN links,
FDB and neighbour entries, routes, nftables VIPs and the routing mesh) and
the DNS server that answers from it (``nodeagent.dns``).

Pure data and its bookkeeping, no I/O. The control plane is the only source
of truth (no gossip): it sends the whole state when a session starts
(``StateUpdate(full=True)``), then changes. ``NetworkState.apply`` returns
what changed, so a follower does O(changes) work per update.

Keys: networks by id, peers (nodes) by node id, services by id, endpoints by
``endpoint_key(task_id, network_id)`` (a task has one endpoint per network
it joins). An endpoint exists only while its task should receive traffic
(running, and, once health checks exist, healthy): a stopped, failed or
moved task's endpoint is removed, which is how VIPs and DNS stop sending to
it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "Changes",
    "Endpoint",
    "NetworkState",
    "NetworkStateHub",
    "OverlayNetwork",
    "Peer",
    "PublishedPort",
    "ServiceNetwork",
    "ServiceRoute",
    "StateUpdate",
    "endpoint_key",
]


@dataclass(frozen=True)
class OverlayNetwork:
    id: str
    name: str
    subnet: str  # "10.96.5.0/24"
    vni: int  # VXLAN network identifier, >= 4096


@dataclass(frozen=True)
class Peer:
    """A node of the cluster (this one included), as the data plane needs it."""

    node_id: str
    index: int  # small and unique in the cluster (link-local addresses, marks, tables)
    address: str  # its underlay IPv4 address: VXLAN goes there


@dataclass(frozen=True)
class Endpoint:
    """A task's address on one network while it runs on a node; it receives
    traffic (VIPs, DNS) unless ``draining``."""

    task_id: str
    service_id: str
    network_id: str
    address: str  # IPv4 address, no prefix
    node_id: str  # where the task runs
    name: str  # the task's name (service.slot.id), which DNS also answers
    slot: int = 0
    # Routable but not serving: out of the VIPs and DNS (being stopped, or
    # not yet healthy); connections made to it before keep their route.
    draining: bool = False


@dataclass(frozen=True)
class ServiceNetwork:
    """A service on one of its networks."""

    network_id: str
    vip: str = ""  # its virtual IP there ("" in dnsrr mode)
    aliases: tuple[str, ...] = ()  # extra DNS names on that network


@dataclass(frozen=True)
class PublishedPort:
    published: int
    target: int
    protocol: Literal["tcp", "udp"] = "tcp"
    mode: Literal["ingress", "host"] = "ingress"  # ingress: every node answers (the routing mesh)


@dataclass(frozen=True)
class ServiceRoute:
    """What the data plane and DNS need of a service."""

    id: str
    name: str
    endpoint_mode: Literal["vip", "dnsrr"] = "vip"
    networks: tuple[ServiceNetwork, ...] = ()
    ports: tuple[PublishedPort, ...] = ()


def endpoint_key(task_id: str, network_id: str) -> str:
    return f"{task_id}/{network_id}"


@dataclass
class StateUpdate:
    """The whole state (``full``: anything not in it is gone) or changes."""

    full: bool = False
    networks: list[OverlayNetwork] = field(default_factory=list)
    removed_networks: list[str] = field(default_factory=list)
    peers: list[Peer] = field(default_factory=list)
    removed_peers: list[str] = field(default_factory=list)
    services: list[ServiceRoute] = field(default_factory=list)
    removed_services: list[str] = field(default_factory=list)
    endpoints: list[Endpoint] = field(default_factory=list)
    removed_endpoints: list[str] = field(default_factory=list)  # endpoint keys


@dataclass
class Changes:
    """Keys that were added, changed or removed by one update."""

    networks: set[str] = field(default_factory=set)
    peers: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    endpoints: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.networks or self.peers or self.services or self.endpoints)


@dataclass
class NetworkState:
    node_id: str = ""  # this node
    networks: dict[str, OverlayNetwork] = field(default_factory=dict)
    peers: dict[str, Peer] = field(default_factory=dict)
    services: dict[str, ServiceRoute] = field(default_factory=dict)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)

    def apply(self, update: StateUpdate) -> Changes:
        changes = Changes()
        for name, upserts, removals, key in (
            ("networks", update.networks, update.removed_networks, lambda o: o.id),
            ("peers", update.peers, update.removed_peers, lambda o: o.node_id),
            ("services", update.services, update.removed_services, lambda o: o.id),
            ("endpoints", update.endpoints, update.removed_endpoints,
             lambda o: endpoint_key(o.task_id, o.network_id)),
        ):
            table: dict[str, object] = getattr(self, name)
            changed: set[str] = getattr(changes, name)
            fresh = {key(o): o for o in upserts}
            if update.full:
                changed.update(k for k in table if k not in fresh)
                for k in [k for k in table if k not in fresh]:
                    del table[k]
            for k in removals:
                if table.pop(k, None) is not None:
                    changed.add(k)
            for k, obj in fresh.items():
                if table.get(k) != obj:
                    table[k] = obj
                    changed.add(k)
        return changes

    def endpoints_of(self, service_id: str, network_id: str | None = None) -> list[Endpoint]:
        return sorted((e for e in self.endpoints.values() if e.service_id == service_id
                       and (network_id is None or e.network_id == network_id)),
                      key=lambda e: (e.slot, e.task_id))


Listener = Callable[[NetworkState, Changes], None]


class NetworkStateHub:
    """The node's one ``NetworkState``, and who follows it. ``apply`` runs
    the listeners in order, on the caller's thread, with the lock held: a
    listener sees every update once and in order, and must not block long
    (it may hand work to a thread of its own)."""

    def __init__(self) -> None:
        self.state = NetworkState()
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()

    def subscribe(self, listener: Listener) -> None:
        """Follow the state from now on (called at once with everything there is)."""
        with self._lock:
            self._listeners.append(listener)
            everything = Changes(set(self.state.networks), set(self.state.peers),
                                 set(self.state.services), set(self.state.endpoints))
            listener(self.state, everything)

    def apply(self, update: StateUpdate) -> Changes:
        with self._lock:
            changes = self.state.apply(update)
            if changes:
                for listener in self._listeners:
                    listener(self.state, changes)
            return changes
