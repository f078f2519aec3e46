"""The names a node's DNS server knows, per network.

Two sources, one index:
- the cluster's state (``nodeagent.network.state``, followed as a listener
  of the node's ``NetworkStateHub``): on each network a service is on, its
  name and aliases (its VIP there, or in ``dnsrr`` mode its endpoints),
  ``tasks.NAME`` (its endpoints there) and each task's name;
- this node's containers that publish their names (``ContainerScope``:
  engine-mode user-defined networks): their name and aliases -> their
  address on that network.

A name is looked up on the asker's networks in order; the first network
that knows it answers (:meth:`NameIndex.resolve`). ``NAME.NETWORK`` looks
``NAME`` up on that one network; a name ending in the asker's own domain
(``ContainerScope.domain``) is also looked up without it. A name on a network the asker is not on
does not resolve: names are scoped per network.

The index keeps its own tables, updated in O(changes) by each hub update
(under the hub's lock, then its own), so a lookup on the DNS server's
thread never reads the hub's dicts while they change. Thread-safe. No I/O.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from nodeagent.dns.scope import ContainerScope, normalize
from nodeagent.network.state import Changes, Endpoint, NetworkState, ServiceNetwork, ServiceRoute

__all__ = ["NameIndex", "Resolution"]

TASKS_PREFIX = "tasks."

Key = tuple[str, str]  # (network id, name or address)


@dataclass(frozen=True)
class Resolution:
    """A known name's addresses (maybe none: a service without running
    tasks is still known, and answered without addresses)."""

    addresses: tuple[str, ...]
    spread: bool = False  # several equal choices: answer them in a random order


class NameIndex:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._services: dict[str, ServiceRoute] = {}
        self._svc_by_name: dict[Key, set[str]] = {}  # (network, name or alias) -> service ids
        self._svc_nets: dict[Key, ServiceNetwork] = {}  # (service id, network) -> it there
        self._endpoints: dict[str, Endpoint] = {}  # endpoint key -> endpoint
        self._eps_by_svc: dict[Key, dict[str, str]] = {}  # (service, network) -> task -> address
        self._tasks_by_name: dict[Key, dict[str, str]] = {}  # (network, task name) -> task -> address
        self._scopes: dict[str, ContainerScope] = {}  # local containers publishing names
        self._ctr_by_name: dict[Key, dict[str, str]] = {}  # (network, name) -> container -> address

    # ---- the cluster's state -------------------------------------------

    def follow(self, state: NetworkState, changes: Changes) -> None:
        """A ``NetworkStateHub`` listener: take in what ``changes`` names."""
        with self._lock:
            for sid in changes.services:
                self._drop_service(sid)
                svc = state.services.get(sid)
                if svc is not None:
                    self._add_service(svc)
            for key in changes.endpoints:
                self._drop_endpoint(key)
                ep = state.endpoints.get(key)
                if ep is not None and not ep.draining:  # DNS answers serving tasks only
                    self._add_endpoint(key, ep)

    def _add_service(self, svc: ServiceRoute) -> None:
        self._services[svc.id] = svc
        for sn in svc.networks:
            self._svc_nets[(svc.id, sn.network_id)] = sn
            for name in _service_names(svc, sn):
                self._svc_by_name.setdefault((sn.network_id, name), set()).add(svc.id)

    def _drop_service(self, sid: str) -> None:
        svc = self._services.pop(sid, None)
        if svc is None:
            return
        for sn in svc.networks:
            self._svc_nets.pop((sid, sn.network_id), None)
            for name in _service_names(svc, sn):
                _discard(self._svc_by_name, (sn.network_id, name), sid)

    def _add_endpoint(self, key: str, ep: Endpoint) -> None:
        self._endpoints[key] = ep
        self._eps_by_svc.setdefault((ep.service_id, ep.network_id), {})[ep.task_id] = ep.address
        if ep.name:
            self._tasks_by_name.setdefault((ep.network_id, normalize(ep.name)), {})[ep.task_id] = ep.address

    def _drop_endpoint(self, key: str) -> None:
        ep = self._endpoints.pop(key, None)
        if ep is None:
            return
        _discard(self._eps_by_svc, (ep.service_id, ep.network_id), ep.task_id)
        if ep.name:
            _discard(self._tasks_by_name, (ep.network_id, normalize(ep.name)), ep.task_id)

    # ---- this node's containers ----------------------------------------

    def set_container(self, cid: str, scope: ContainerScope) -> None:
        """The container's names (if it publishes them) resolve from now on."""
        with self._lock:
            self._drop_container(cid)
            self._scopes[cid] = scope
            for att in scope.networks:
                for name in scope.names(att):
                    self._ctr_by_name.setdefault((att.network_id, name), {})[cid] = att.address

    def drop_container(self, cid: str) -> None:
        with self._lock:
            self._drop_container(cid)

    def _drop_container(self, cid: str) -> None:
        scope = self._scopes.pop(cid, None)
        if scope is None:
            return
        for att in scope.networks:
            for name in scope.names(att):
                _discard(self._ctr_by_name, (att.network_id, name), cid)

    # ---- lookups -----------------------------------------------------------

    def resolve(self, scope: ContainerScope, qname: str) -> Resolution | None:
        """What ``qname`` is for a container with ``scope``; None if unknown there."""
        name = normalize(qname)
        if not name:
            return None
        names = [name]
        domain = "." + normalize(scope.domain) if scope.domain else ""
        if domain and name.endswith(domain) and len(name) > len(domain):
            names.append(name[:-len(domain)])  # a search domain its resolver appended
        with self._lock:
            for att in scope.networks:
                suffix = "." + normalize(att.network_name) if att.network_name else ""
                for candidate in names:
                    found = self._on_network(att.network_id, candidate)
                    if found is None and suffix not in ("", ".") and candidate.endswith(suffix):
                        found = self._on_network(att.network_id, candidate[:-len(suffix)])
                    if found is not None:
                        return found
        return None

    def _on_network(self, net: str, name: str) -> Resolution | None:
        containers = self._ctr_by_name.get((net, name))
        if containers:
            return Resolution(tuple(sorted(set(containers.values()))), spread=True)
        sids = self._svc_by_name.get((net, name))
        if sids:
            return self._service_answer(sorted(sids), net)
        tasks = self._tasks_by_name.get((net, name))
        if tasks:
            return Resolution(tuple(sorted(set(tasks.values()))))
        if name.startswith(TASKS_PREFIX):
            sids = self._svc_by_name.get((net, name[len(TASKS_PREFIX):]))
            if sids:
                return Resolution(self._endpoint_addresses(sorted(sids), net), spread=True)
        return None

    def _service_answer(self, sids: list[str], net: str) -> Resolution:
        """VIP services: their VIPs there; ``dnsrr`` ones: their endpoints there."""
        vips: list[str] = []
        rr: list[str] = []
        for sid in sids:
            sn = self._svc_nets.get((sid, net))
            if self._services[sid].endpoint_mode == "dnsrr":
                rr.append(sid)
            elif sn is not None and sn.vip:
                vips.append(sn.vip)
        addresses = tuple(sorted(set(vips))) + self._endpoint_addresses(rr, net)
        return Resolution(addresses, spread=len(addresses) > 1)

    def _endpoint_addresses(self, sids: list[str], net: str) -> tuple[str, ...]:
        found: set[str] = set()
        for sid in sids:
            found.update(self._eps_by_svc.get((sid, net), {}).values())
        return tuple(sorted(found))


def _service_names(svc: ServiceRoute, sn: ServiceNetwork) -> set[str]:
    return {normalize(n) for n in (svc.name, *sn.aliases) if n}


def _discard(table: dict[Key, set[str]] | dict[Key, dict[str, str]], key: Key, member: str) -> None:
    """Take ``member`` out of ``table[key]``, and the key once it is empty."""
    entry = table.get(key)
    if entry is None:
        return
    if isinstance(entry, set):
        entry.discard(member)
    else:
        entry.pop(member, None)
    if not entry:
        del table[key]
