"""What each node needs of the cluster's service networking, sent over its
session as ``NetworkState`` messages: the whole of it when the session
starts, then changes (the dispatcher batches them with assignments).

A node needs:
- networks: those of its assigned tasks (what it is sent as assignments),
  and those of every service with an ingress port: the routing mesh on any
  node must reach a replica anywhere;
- peers: every node with an index and an address (its underlay address is
  the host part of the address it registered);
- services: those on its networks or with an ingress port, each with its
  networks among the node's (VIP, aliases) and its published ports;
- endpoints: the running tasks (desired running and running) on its networks,
  healthy ones only where the service has a health check.

The view keeps cluster-wide indexes, updated from the informer's changes,
and per session what was sent; a change re-evaluates only the keys it can
affect, so work per store event is O(what changes for the nodes): a task's
progress that moves no endpoint and no network costs O(1).

Invariants:
- updates are idempotent: each index keeps, per object, what it last
  contributed, so the view may be seeded from the informer's cache while its
  handler already runs (a change seen twice changes nothing);
- a session's state is only changed under the view's lock, and its messages
  are queued in the order they were decided; a session gets changes only
  once its full state has been made (``start``), so the first message it
  reads is the full one.
"""

from __future__ import annotations

import threading
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol

from controlplane.store import Change, Informer
from model.health import HEALTHY
from model.objects import Network, Node, PortConfig, Service, Task, TaskState
from model.wire import endpoint_mode_to_pb, ports_to_pb
from proto import cluster_pb2 as cpb

__all__ = ["NetworkView", "assigned", "merge_network_states", "receives_traffic", "underlay_address"]


def assigned(task: Task) -> bool:
    """A task a node is sent (and so runs, or is about to)."""
    return task.status.state.on_node


def receives_traffic(task: Task) -> bool:
    """Whether ``task`` is an endpoint of its service: running, meant to run,
    and healthy if it has a health check (one still starting gets nothing)."""
    return (task.desired_state == TaskState.RUNNING and task.status.state == TaskState.RUNNING
            and task.status.health in ("", HEALTHY))


def underlay_address(node: Node) -> str:
    """The host part of the address a node registered (``10.89.0.11:7701`` -> ``10.89.0.11``)."""
    return node.address.rpartition(":")[0].strip("[]")


def _ip(address: str) -> str:
    return address.partition("/")[0]


class NetRec(NamedTuple):
    id: str
    name: str
    subnet: str
    vni: int


class PeerRec(NamedTuple):
    node_id: str
    node_index: int  # (``index`` is a tuple's method)
    address: str


class RouteNet(NamedTuple):
    network_id: str
    vip: str
    aliases: tuple[str, ...]


class Port(NamedTuple):
    published: int
    target: int
    protocol: str
    mode: str


class RouteRec(NamedTuple):
    id: str
    name: str
    endpoint_mode: str
    networks: tuple[RouteNet, ...]
    ports: tuple[Port, ...]

    @property
    def ingress(self) -> bool:
        return any(p.mode == "ingress" for p in self.ports)

    def within(self, nets: set[str]) -> RouteRec:
        return self._replace(networks=tuple(n for n in self.networks if n.network_id in nets))


class EndRec(NamedTuple):
    task_id: str
    service_id: str
    network_id: str
    address: str
    node_id: str
    name: str
    slot: int
    draining: bool = False  # routable, not serving (see cpb.Endpoint)

    @property
    def key(self) -> str:
        return f"{self.task_id}/{self.network_id}"


class _Out:
    """One message's worth of changes for one session: each key's last decision."""

    def __init__(self, full: bool = False) -> None:
        self.full = full
        self.networks: dict[str, NetRec | None] = {}
        self.peers: dict[str, PeerRec | None] = {}
        self.routes: dict[str, RouteRec | None] = {}
        self.endpoints: dict[str, EndRec | None] = {}

    @property
    def empty(self) -> bool:
        return not (self.full or self.networks or self.peers or self.routes or self.endpoints)

    def peers_only(self) -> tuple[tuple[str, PeerRec | None], ...] | None:
        """The peer changes, if they are all this holds (a key to share its message by)."""
        if self.full or self.networks or self.routes or self.endpoints:
            return None
        return tuple(self.peers.items())

    def network(self, rec: NetRec | None, ident: str) -> None:
        self.networks[ident] = rec

    def peer(self, rec: PeerRec | None, ident: str) -> None:
        self.peers[ident] = rec

    def route(self, rec: RouteRec | None, ident: str) -> None:
        self.routes[ident] = rec

    def endpoint(self, rec: EndRec | None, key: str) -> None:
        self.endpoints[key] = rec

    def message(self) -> cpb.NetworkState:
        msg = cpb.NetworkState(full=self.full)
        for ident, net in self.networks.items():
            if net is None:
                msg.removed_networks.append(ident)
            else:
                msg.networks.append(cpb.OverlayNetwork(id=net.id, name=net.name, subnet=net.subnet,
                                                       vni=net.vni))
        for ident, peer in self.peers.items():
            if peer is None:
                msg.removed_peers.append(ident)
            else:
                msg.peers.append(cpb.Peer(node_id=peer.node_id, index=peer.node_index, address=peer.address))
        for ident, route in self.routes.items():
            if route is None:
                msg.removed_services.append(ident)
            else:
                msg.services.append(_route_pb(route))
        for key, ep in self.endpoints.items():
            if ep is None:
                msg.removed_endpoints.append(key)
            else:
                msg.endpoints.append(cpb.Endpoint(
                    task_id=ep.task_id, service_id=ep.service_id, network_id=ep.network_id,
                    address=ep.address, node_id=ep.node_id, name=ep.name, slot=ep.slot,
                    draining=ep.draining))
        return msg


def _route_pb(rec: RouteRec) -> cpb.ServiceRoute:
    ports = ports_to_pb(PortConfig(p.published, p.target, p.protocol, p.mode)  # type: ignore[arg-type]
                        for p in rec.ports)
    return cpb.ServiceRoute(
        id=rec.id, name=rec.name, endpoint_mode=endpoint_mode_to_pb(rec.endpoint_mode), ports=ports,
        networks=[cpb.ServiceRouteNetwork(network_id=n.network_id, vip=n.vip, aliases=n.aliases)
                  for n in rec.networks])


class Sink(Protocol):
    """Where a session's messages go (the dispatcher's outbox): put from any thread."""

    def put(self, item: Any) -> None: ...


class _NetSession:
    """What one node has been sent."""

    def __init__(self, node_id: str, out: Sink) -> None:
        self.node_id = node_id
        self.out = out
        self.nets: set[str] = set()
        self.routes: dict[str, RouteRec] = {}
        self.endpoints: dict[str, EndRec] = {}


class NetworkView:
    """The cluster-wide indexes and the sessions' sent state; see the module docstring."""

    def __init__(self, informer: Informer) -> None:
        self._lock = threading.Lock()
        self.networks: dict[str, NetRec] = {}
        self._names: dict[str, str] = {}  # network name -> id
        self.peers: dict[str, PeerRec] = {}
        self.routes: dict[str, RouteRec] = {}
        self._route_names: dict[str, tuple[str, ...]] = {}  # service id -> network names it names
        self._by_name: dict[str, set[str]] = defaultdict(set)  # network name -> services naming it
        self._services_on: dict[str, set[str]] = defaultdict(set)  # network id -> service ids
        self._ingress: dict[str, frozenset[str]] = {}  # ingress service id -> its network ids
        self._ingress_nets: Counter[str] = Counter()
        self._task_needs: dict[str, tuple[str, frozenset[str]]] = {}  # task id -> (node, networks)
        self._needs: dict[str, Counter[str]] = defaultdict(Counter)  # node id -> network id -> tasks
        self._task_eps: dict[str, dict[str, EndRec]] = {}  # task id -> its endpoints by key
        self._endpoints: dict[str, dict[str, EndRec]] = defaultdict(dict)  # network id -> key -> endpoint
        self._services: dict[str, Service] = {}
        self._sessions: dict[str, _NetSession] = {}
        informer.add_handler(self.on_change)
        self._seed(informer)

    def _seed(self, informer: Informer) -> None:
        for obj in [*informer.networks(), *informer.nodes(), *informer.services(), *informer.tasks()]:
            with self._lock:
                self._put(obj)

    # ---- sessions ------------------------------------------------------------------

    def start(self, node_id: str, out: Sink) -> cpb.NetworkState:
        """The full state for ``node_id``; from now on its changes go to ``out``."""
        with self._lock:
            session = _NetSession(node_id, out)
            self._sessions[node_id] = session
            session.nets = {n for n in self._nets_of(node_id) if n in self.networks}
            full = _Out(full=True)
            for net in sorted(session.nets):
                full.network(self.networks[net], net)
                for key, ep in self._endpoints.get(net, {}).items():
                    session.endpoints[key] = ep
                    full.endpoint(ep, key)
            for sid in self._relevant(session):
                route = self.routes[sid].within(session.nets)
                session.routes[sid] = route
                full.route(route, sid)
            for peer in self.peers.values():
                full.peer(peer, peer.node_id)
            return full.message()

    def stop(self, node_id: str, out: Sink) -> None:
        with self._lock:
            session = self._sessions.get(node_id)
            if session is not None and session.out is out:
                del self._sessions[node_id]

    def _nets_of(self, node_id: str) -> set[str]:
        nets = {n for n, count in self._needs.get(node_id, Counter()).items() if count > 0}
        return nets | {n for n, count in self._ingress_nets.items() if count > 0}

    def _relevant(self, session: _NetSession) -> list[str]:
        sids: set[str] = set(self._ingress)
        for net in session.nets:
            sids |= self._services_on.get(net, set())
        return sorted(s for s in sids if s in self.routes)

    # ---- changes --------------------------------------------------------------------

    def on_change(self, change: Change) -> None:
        with self._lock:
            outs: dict[str, _Out] = {}
            if change.type == "delete":
                self._delete(change.obj, outs)
            else:
                self._put(change.obj, outs)
            # A node's join is the same peer change for every session: one
            # message, shared (N joins cost N² puts, not N² messages made).
            shared: dict[object, cpb.DispatcherMessage] = {}
            for node_id, out in outs.items():
                session = self._sessions.get(node_id)
                if session is None or out.empty:
                    continue
                key = out.peers_only()
                msg = shared.get(key) if key is not None else None
                if msg is None:
                    msg = cpb.DispatcherMessage(network_state=out.message())
                    if key is not None:
                        shared[key] = msg
                session.out.put(msg)

    def _put(self, obj: object, outs: dict[str, _Out] | None = None) -> None:
        if isinstance(obj, Task):
            self._task(obj.id, obj, outs)
        elif isinstance(obj, Service):
            self._service(obj.id, obj, outs)
        elif isinstance(obj, Network):
            self._network(obj.id, obj, outs)
        elif isinstance(obj, Node):
            self._peer(obj.id, obj, outs)

    def _delete(self, obj: object, outs: dict[str, _Out]) -> None:
        if isinstance(obj, Task):
            self._task(obj.id, None, outs)
        elif isinstance(obj, Service):
            self._service(obj.id, None, outs)
        elif isinstance(obj, Network):
            self._network(obj.id, None, outs)
        elif isinstance(obj, Node):
            self._peer(obj.id, None, outs)

    def _out(self, outs: dict[str, _Out] | None, node_id: str) -> _Out:
        if outs is None:  # seeding: no session exists yet
            return _Out()
        found = outs.get(node_id)
        if found is None:
            found = outs[node_id] = _Out()
        return found

    # ---- per kind ---------------------------------------------------------------------

    def _peer(self, node_id: str, node: Node | None, outs: dict[str, _Out] | None) -> None:
        address = underlay_address(node) if node is not None else ""
        rec = PeerRec(node_id, node.index, address) if node is not None and node.index and address else None
        if self.peers.get(node_id) == rec:
            return
        if rec is None:
            self.peers.pop(node_id, None)
        else:
            self.peers[node_id] = rec
        for session in self._sessions.values():
            self._out(outs, session.node_id).peer(rec, node_id)

    def _network(self, ident: str, network: Network | None, outs: dict[str, _Out] | None) -> None:
        rec = NetRec(network.id, network.name, network.subnet, network.vni) if network is not None else None
        old = self.networks.get(ident)
        if old == rec:
            return  # e.g. rewritten as it was by a service's write
        if old is not None and self._names.get(old.name) == ident:
            del self._names[old.name]
        if rec is None:
            self.networks.pop(ident, None)
        else:
            self.networks[ident] = rec
            self._names[rec.name] = ident
        for session in self._sessions.values():
            if ident in session.nets and rec is not None:
                self._out(outs, session.node_id).network(rec, ident)
            else:
                self._sync_net(session, ident, outs)
        # Services name networks: those naming this one resolve differently now.
        for name in {n.name for n in (old, rec) if n is not None}:
            for sid in sorted(self._by_name.get(name, set())):
                service = self._services.get(sid)
                if service is not None:
                    self._service(sid, service, outs)

    def _service(self, sid: str, service: Service | None, outs: dict[str, _Out] | None) -> None:
        old_names = self._route_names.pop(sid, ())
        for name in old_names:
            self._by_name[name].discard(sid)
            if not self._by_name[name]:
                del self._by_name[name]
        if service is None:
            self._services.pop(sid, None)
            route = None
        else:
            self._services[sid] = service
            names = tuple(n.name for n in service.spec.networks)
            self._route_names[sid] = names
            for name in names:
                self._by_name[name].add(sid)
            route = self._route_of(service)
        old = self.routes.get(sid)
        if old == route:
            return
        for net in {n.network_id for n in old.networks} if old is not None else set():
            self._services_on[net].discard(sid)
        if route is None:
            self.routes.pop(sid, None)
        else:
            self.routes[sid] = route
            for n in route.networks:
                self._services_on[n.network_id].add(sid)
        before = self._ingress.pop(sid, frozenset())
        after = frozenset(n.network_id for n in route.networks) if route is not None and route.ingress \
            else frozenset()
        if route is not None and route.ingress:
            self._ingress[sid] = after
        self._ingress_nets.subtract(before)
        self._ingress_nets.update(after)
        changed_nets = before ^ after
        for session in self._sessions.values():
            for net in sorted(changed_nets):
                self._sync_net(session, net, outs)
            self._sync_route(session, sid, outs)

    def _route_of(self, service: Service) -> RouteRec:
        vips = {v.network_id: _ip(v.address) for v in service.vips}
        nets = []
        for attachment in service.spec.networks:
            net = self._names.get(attachment.name)
            if net is not None:
                nets.append(RouteNet(net, vips.get(net, ""), tuple(attachment.aliases)))
        ports = tuple(Port(p.published, p.target, p.protocol, p.mode) for p in service.spec.ports)
        return RouteRec(service.id, service.spec.name, service.spec.endpoint_mode, tuple(nets), ports)

    def _task(self, tid: str, task: Task | None, outs: dict[str, _Out] | None) -> None:
        # The networks its node needs.
        needs = (task.node_id, frozenset(n.network_id for n in task.networks)) \
            if task is not None and task.node_id and task.networks and assigned(task) else None
        old_needs = self._task_needs.get(tid)
        if needs != old_needs:
            if old_needs is not None:
                self._needs[old_needs[0]].subtract(old_needs[1])
            if needs is None:
                self._task_needs.pop(tid, None)
            else:
                self._task_needs[tid] = needs
                self._needs[needs[0]].update(needs[1])
            for node_id, nets in {old_needs, needs} - {None}:  # type: ignore[misc]
                session = self._sessions.get(node_id)
                if session is not None:
                    for net in sorted(nets):
                        self._sync_net(session, net, outs)
        # Its endpoints, while it runs on its node: serving while it
        # receives traffic (meant to run and, with a health check, healthy),
        # else draining (routable only: a task being stopped keeps the
        # connections made to it, one starting is reachable before it serves).
        eps: dict[str, EndRec] = {}
        if task is not None and task.node_id and task.status.state == TaskState.RUNNING:
            draining = not receives_traffic(task)
            for n in task.networks:
                ep = EndRec(task.id, task.service_id, n.network_id, _ip(n.address), task.node_id,
                            task.name, task.slot, draining)
                eps[ep.key] = ep
        old_eps = self._task_eps.get(tid, {})
        if eps == old_eps:
            return
        if eps:
            self._task_eps[tid] = eps
        else:
            self._task_eps.pop(tid, None)
        for key in sorted(old_eps.keys() | eps.keys()):
            rec, was = eps.get(key), old_eps.get(key)
            if rec == was:
                continue
            net = key.partition("/")[2]
            if rec is None:
                self._endpoints[net].pop(key, None)
                if not self._endpoints[net]:
                    del self._endpoints[net]
            else:
                self._endpoints[net][key] = rec
            for session in self._sessions.values():
                if net in session.nets:
                    self._sync_endpoint(session, key, rec, outs)

    # ---- one session, one key ----------------------------------------------------------

    def _sync_net(self, session: _NetSession, net: str, outs: dict[str, _Out] | None) -> None:
        should = net in self.networks and net in self._nets_of(session.node_id)
        if should == (net in session.nets):
            return
        out = self._out(outs, session.node_id)
        routes = set(self._services_on.get(net, set())) | {
            sid for sid, r in session.routes.items() if any(n.network_id == net for n in r.networks)}
        if should:
            session.nets.add(net)
            out.network(self.networks[net], net)
            for key, ep in self._endpoints.get(net, {}).items():
                self._sync_endpoint(session, key, ep, outs)
        else:
            session.nets.discard(net)
            out.network(None, net)
            for key in [k for k, ep in session.endpoints.items() if ep.network_id == net]:
                self._sync_endpoint(session, key, None, outs)
        for sid in sorted(routes):
            self._sync_route(session, sid, outs)

    def _sync_route(self, session: _NetSession, sid: str, outs: dict[str, _Out] | None) -> None:
        route = self.routes.get(sid)
        wanted = None
        if route is not None and (route.ingress or any(n.network_id in session.nets for n in route.networks)):
            wanted = route.within(session.nets)
        if session.routes.get(sid) == wanted:
            return
        if wanted is None:
            del session.routes[sid]
        else:
            session.routes[sid] = wanted
        self._out(outs, session.node_id).route(wanted, sid)

    def _sync_endpoint(self, session: _NetSession, key: str, rec: EndRec | None,
                       outs: dict[str, _Out] | None) -> None:
        wanted = rec if rec is not None and rec.network_id in session.nets else None
        if session.endpoints.get(key) == wanted:
            return
        if wanted is None:
            del session.endpoints[key]
        else:
            session.endpoints[key] = wanted
        self._out(outs, session.node_id).endpoint(wanted, key)


def merge_network_states(states: Iterable[cpb.NetworkState]) -> cpb.NetworkState:
    """Changes in order, as one message: each key's last change wins (an
    upsert then a removal is a removal, and the other way round). Within one
    message removals come first, as ``NetworkState.apply`` takes them."""
    tables: dict[str, dict[str, Any]] = {"networks": {}, "peers": {}, "services": {}, "endpoints": {}}
    keys = {"networks": lambda m: m.id, "peers": lambda m: m.node_id, "services": lambda m: m.id,
            "endpoints": lambda m: f"{m.task_id}/{m.network_id}"}
    for state in states:
        for name, table in tables.items():
            for ident in getattr(state, f"removed_{name}"):
                table.pop(ident, None)
                table[ident] = None
            for item in getattr(state, name):
                table.pop(keys[name](item), None)
                table[keys[name](item)] = item
    out = cpb.NetworkState()
    for name, table in tables.items():
        getattr(out, name).extend(v for v in table.values() if v is not None)
        getattr(out, f"removed_{name}").extend(k for k, v in table.items() if v is None)
    return out
