"""What the node's namespace should hold, computed from the network state.
Pure: no I/O.

:class:`Mirror` is the data plane's own copy of :class:`NetworkState`
(the hub's belongs to the hub's thread), with endpoints indexed by network
and by service, so an update costs work in proportion to what it changed:
``Mirror.apply`` says which networks and services an update touched.

:func:`plan_network` is one network's links, FDB, neighbours and mesh return
routes (:class:`LinkPlan`); :func:`service_rules` one service's part of the
nftables table (:class:`ServiceRules`), merged by
:func:`nodeagent.network.overlay.ruleset.build`.

Which peers a node programs for a network: those with an endpoint on it;
and every node when the network carries a port published in ingress mode,
because the routing mesh of any node may send a connection to a task here
over that network, and its replies must go back to that node.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from nodeagent.network.overlay.addressing import (
    MAX_INDEX,
    mesh_mark,
    router_address,
    vx_mac,
    vx_name,
)
from nodeagent.network.state import (
    Endpoint,
    OverlayNetwork,
    Peer,
    ServiceRoute,
)

__all__ = [
    "Affected",
    "Batch",
    "LinkPlan",
    "MeshReturn",
    "MeshRoute",
    "Mirror",
    "ServiceRules",
    "plan_network",
    "service_rules",
]


@dataclass
class Batch:
    """Objects that changed since the last batch: key -> the new object, or
    None when it is gone (copied on the hub's thread, applied on ours)."""

    node_id: str = ""
    networks: dict[str, OverlayNetwork | None] = field(default_factory=dict)
    peers: dict[str, Peer | None] = field(default_factory=dict)
    services: dict[str, ServiceRoute | None] = field(default_factory=dict)
    endpoints: dict[str, Endpoint | None] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.networks or self.peers or self.services or self.endpoints)

    def only_new_endpoints(self) -> bool:
        """Whether all it holds is endpoints that appeared or changed: what
        may wait a moment (a task that starts gets traffic a little later),
        unlike a removal (a task that stops must get no new connection)."""
        return not (self.networks or self.peers or self.services or self.node_id) and all(
            e is not None for e in self.endpoints.values())


@dataclass
class Affected:
    """What an applied batch touched. ``everything``: this node's identity
    (id, index, address) changed, so every name and MAC may have."""

    networks: set[str] = field(default_factory=set)
    services: set[str] = field(default_factory=set)
    everything: bool = False

    def __bool__(self) -> bool:
        return bool(self.networks or self.services or self.everything)


class Mirror:
    """The state as the data plane last applied it, with indexes."""

    def __init__(self, address: str = "", fixed: Peer | None = None) -> None:
        self.node_id = ""  # as the state says, once it does
        self.address = address  # this node's underlay address, if known
        self.fixed = fixed  # this node, when given rather than found in the state
        self.me: Peer | None = fixed
        self.networks: dict[str, OverlayNetwork] = {}
        self.peers: dict[str, Peer] = {}
        self.services: dict[str, ServiceRoute] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.by_network: dict[str, set[str]] = {}  # network id -> endpoint keys
        self.by_service: dict[str, set[str]] = {}  # service id -> endpoint keys
        self.ingress: dict[str, set[str]] = {}  # network id -> services publishing in ingress mode there

    def identify(self) -> None:
        """Which peer is this node: the one the state names (``node_id``),
        else the one with this node's underlay address, else the fixed one."""
        me = self.peers.get(self.node_id) if self.node_id else None
        if me is None and self.address:
            me = next((p for p in self.peers.values() if p.address == self.address), None)
        if me is None and self.fixed is not None:
            me = self.fixed
        self.me = me

    def apply(self, batch: Batch) -> Affected:
        affected = Affected()
        before = self.me
        if batch.node_id and batch.node_id != self.node_id:
            self.node_id = batch.node_id
        for nid, net in batch.networks.items():
            _put(self.networks, nid, net)
            affected.networks.add(nid)
        for pid, peer in batch.peers.items():
            _put(self.peers, pid, peer)
        for sid, svc in batch.services.items():
            self._put_service(sid, svc, affected)
        for key, ep in batch.endpoints.items():
            self._put_endpoint(key, ep, affected)
        if batch.peers:
            # Peers' addresses and indexes are in every network's FDB and
            # neighbours; endpoints name their node by id.
            affected.networks.update(self.networks)
        self.identify()
        if self.me != before:
            affected.everything = True
            affected.networks.update(self.networks)
            affected.services.update(self.services)
        return affected

    def _put_service(self, sid: str, svc: ServiceRoute | None, affected: Affected) -> None:
        old = self.services.get(sid)
        if old is not None:
            for sn in old.networks:
                _discard(self.ingress, sn.network_id, sid)
                affected.networks.add(sn.network_id)
        _put(self.services, sid, svc)
        if svc is not None:
            published = any(p.mode == "ingress" for p in svc.ports)
            for sn in svc.networks:
                if published:
                    self.ingress.setdefault(sn.network_id, set()).add(sid)
                affected.networks.add(sn.network_id)
        affected.services.add(sid)

    def _put_endpoint(self, key: str, ep: Endpoint | None, affected: Affected) -> None:
        old = self.endpoints.get(key)
        if old is not None:
            _discard(self.by_network, old.network_id, key)
            _discard(self.by_service, old.service_id, key)
            affected.networks.add(old.network_id)
            affected.services.add(old.service_id)
        _put(self.endpoints, key, ep)
        if ep is not None:
            self.by_network.setdefault(ep.network_id, set()).add(key)
            self.by_service.setdefault(ep.service_id, set()).add(key)
            affected.networks.add(ep.network_id)
            affected.services.add(ep.service_id)

    def endpoints_of_service(self, sid: str) -> list[Endpoint]:
        return _ordered(self.endpoints[k] for k in self.by_service.get(sid, ()))

    def endpoints_on(self, nid: str) -> list[Endpoint]:
        return _ordered(self.endpoints[k] for k in self.by_network.get(nid, ()))

    def ingress_on(self, nid: str) -> bool:
        """Whether a service on network ``nid`` publishes a port in ingress mode."""
        return bool(self.ingress.get(nid))


def _put(table: dict, key: str, obj: object) -> None:  # type: ignore[type-arg]
    if obj is None:
        table.pop(key, None)
    else:
        table[key] = obj


def _discard(index: dict[str, set[str]], key: str, member: str) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(member)
        if not members:
            del index[key]


def _ordered(endpoints: Iterable[Endpoint]) -> list[Endpoint]:
    return sorted(endpoints, key=lambda e: (e.slot, e.task_id, e.network_id))


# ---- links ------------------------------------------------------------------------


@dataclass(frozen=True)
class MeshReturn:
    """Replies to connections another node's mesh sent here over this
    network: ``ip rule fwmark MARK lookup MARK``, and in table MARK
    ``default via GATEWAY dev <vx> onlink``."""

    mark: int
    gateway: str  # the peer's router address
    mac: str  # the peer's vx MAC (the ct mark comes from it)


@dataclass(frozen=True)
class LinkPlan:
    """One network's part of the node's namespace."""

    network_id: str
    name: str  # vx-<VNI>
    vni: int
    mac: str  # this node's vx MAC on it
    local: str  # this node's underlay address
    router: str  # this node's router address (/32 on the device)
    subnet: str  # routed over the device
    fdb: Mapping[str, str]  # remote vx MAC -> its node's underlay address
    neigh: Mapping[str, str]  # remote task or router address -> its node's vx MAC
    returns: tuple[MeshReturn, ...] = ()


def plan_network(mirror: Mirror, nid: str, problems: list[str] | None = None) -> LinkPlan | None:
    """Network ``nid`` as this node should have it; None while this node is
    unknown or the network is gone. A peer that cannot be programmed (an
    index out of range) is left out and said in ``problems``."""
    me, net = mirror.me, mirror.networks.get(nid)
    if me is None or net is None or not _usable(me, problems):
        return None
    endpoints = mirror.endpoints_on(nid)
    on_network = {e.node_id for e in endpoints}
    everyone = mirror.ingress_on(nid)
    fdb: dict[str, str] = {}
    neigh: dict[str, str] = {}
    returns: list[MeshReturn] = []
    macs: dict[str, str] = {}  # node id -> its vx MAC here
    for peer in sorted(mirror.peers.values(), key=lambda p: p.index):
        if peer.node_id == me.node_id or not (everyone or peer.node_id in on_network):
            continue
        if not _usable(peer, problems) or peer.address == me.address:
            continue
        mac = vx_mac(peer.index, net.vni)
        macs[peer.node_id] = mac
        fdb[mac] = peer.address
        router = router_address(peer.index)
        neigh[router] = mac
        returns.append(MeshReturn(mesh_mark(peer.index, net.vni), router, mac))
    for ep in endpoints:
        if ep.node_id != me.node_id and ep.node_id in macs:
            neigh[ep.address] = macs[ep.node_id]
    subnet = str(ipaddress.IPv4Network(net.subnet, strict=False))
    return LinkPlan(network_id=nid, name=vx_name(net.vni), vni=net.vni, mac=vx_mac(me.index, net.vni),
                    local=me.address, router=router_address(me.index), subnet=subnet, fdb=fdb,
                    neigh=neigh, returns=tuple(returns))


def _usable(peer: Peer, problems: list[str] | None) -> bool:
    if 1 <= peer.index <= MAX_INDEX:
        return True
    if problems is not None:
        problems.append(f"node {peer.node_id}: index {peer.index} out of range 1..{MAX_INDEX}")
    return False


# ---- nftables ---------------------------------------------------------------------


@dataclass(frozen=True)
class MeshRoute:
    """A port published in ingress mode: where this node sends it."""

    protocol: str  # "tcp" | "udp"
    published: int
    target: int
    addresses: tuple[str, ...]  # the service's local tasks if it has any here, else all


@dataclass(frozen=True)
class ServiceRules:
    """One service's part of the table."""

    vips: tuple[str, ...] = ()  # every VIP, with endpoints or not (those are refused)
    balanced: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # VIP -> endpoint addresses
    mesh: tuple[MeshRoute, ...] = ()


def service_rules(mirror: Mirror, sid: str) -> ServiceRules:
    svc = mirror.services.get(sid)
    if svc is None:
        return ServiceRules()
    endpoints = [e for e in mirror.endpoints_of_service(sid) if not e.draining]  # the routes keep all
    vips: list[str] = []
    balanced: dict[str, tuple[str, ...]] = {}
    if svc.endpoint_mode == "vip":
        for sn in svc.networks:
            if not sn.vip:
                continue
            vips.append(sn.vip)
            addresses = tuple(e.address for e in endpoints if e.network_id == sn.network_id)
            if addresses:
                balanced[sn.vip] = addresses
    return ServiceRules(vips=tuple(vips), balanced=balanced, mesh=_mesh_routes(mirror, svc, endpoints))


def _mesh_routes(mirror: Mirror, svc: ServiceRoute, endpoints: list[Endpoint]) -> tuple[MeshRoute, ...]:
    ports = [p for p in svc.ports if p.mode == "ingress"]
    if not ports:
        return ()
    # One address per task: its endpoint on the first of the service's
    # networks it is on (a task on two networks is one replica, not two).
    rank = {sn.network_id: i for i, sn in enumerate(svc.networks)}
    chosen: dict[str, Endpoint] = {}
    for ep in endpoints:
        if ep.network_id not in rank or ep.network_id not in mirror.networks:
            continue
        best = chosen.get(ep.task_id)
        if best is None or rank[ep.network_id] < rank[best.network_id]:
            chosen[ep.task_id] = ep
    tasks = _ordered(chosen.values())
    here = mirror.me.node_id if mirror.me is not None else None
    local = [e for e in tasks if e.node_id == here]
    addresses = tuple(e.address for e in (local or tasks))
    if not addresses:
        return ()
    return tuple(MeshRoute(p.protocol, p.published, p.target, addresses) for p in ports)
