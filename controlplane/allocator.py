"""The leader's address allocator: each task's address on each of its networks,
and each service's VIP per network.

Made when a replica starts leading, from the informer: what is in use is the
informer's address index (tasks that are not terminal, services' VIPs), read
under its lock, so nothing is copied or kept in step here but the pools'
cursors and this pass's reservations (``controllers.ipam``).

The orchestrator calls it while it decides a pass, and ``settle`` once the
pass's write is in the cache (``Orchestrator._write`` waits for that): an
address is then either held by a stored task or service, or free again.
When a write's outcome is unknown (etcd unavailable: it may have been
applied), ``unsure`` keeps the reservations until the cache has caught up
with the store (``resync``).

Rules:
- a task is addressed when it has one attachment per network of its spec,
  in the spec's order; it keeps them for life (a restart is a new task);
- a task whose network is missing, or full, stays pending, with the reason;
- a service in vip mode has one VIP per network of its spec; in dnsrr mode
  none; VIPs of networks it left are dropped (and so freed).
"""

from __future__ import annotations

import dataclasses

import structlog

from controlplane.controllers.ipam import Ipam
from controlplane.store import Informer, Store
from model.objects import Network, Service, Task, TaskNetwork, VirtualIP

log = structlog.get_logger("orch.allocator")

__all__ = ["Allocator", "addressed"]


def addressed(task: Task) -> bool:
    """Whether ``task`` has its address on every network of its spec."""
    return len(task.networks) == len(task.spec.networks)


class Allocator:
    def __init__(self, informer: Informer) -> None:
        self.informer = informer
        self.ipam = Ipam(lambda net, address: informer.address_owner(net, address) is not None,
                         lambda net: informer.addresses_in_use(net).keys())
        self.unsure = False

    def _network(self, name: str) -> Network | None:
        return self.informer.network_named(name)

    def address(self, task: Task) -> Task | str:
        """``task`` with an address on each of its networks, or why it cannot have them yet."""
        if addressed(task):
            return task
        given: list[TaskNetwork] = []
        for attachment in task.spec.networks:
            network = self._network(attachment.name)
            problem = None
            if network is None:
                problem = f"waiting for network {attachment.name}, which does not exist"
            else:
                address = self.ipam.allocate(network.id, network.subnet)
                if address is None:
                    problem = f"network {network.name} ({network.subnet}) has no free address"
                else:
                    given.append(TaskNetwork(network_id=network.id, name=network.name, address=address,
                                             aliases=list(attachment.aliases)))
            if problem is not None:
                for done in given:
                    self.ipam.release(done.network_id, done.address)
                return problem
        return dataclasses.replace(task, networks=given)

    def vips(self, service: Service) -> Service:
        """``service`` with a VIP on each of its networks (vip mode; none in dnsrr
        mode); itself when nothing changes. A network that does not exist, or is
        full, gets none this time (logged)."""
        current = {v.network_id: v for v in service.vips}
        wanted: list[VirtualIP] = []
        if service.spec.endpoint_mode == "vip":
            for attachment in service.spec.networks:
                network = self._network(attachment.name)
                if network is None:
                    continue
                vip = current.get(network.id)
                if vip is None:
                    address = self.ipam.allocate(network.id, network.subnet)
                    if address is None:
                        log.warning("no free address for a service's VIP", service=service.spec.name,
                                    network=network.name, subnet=network.subnet)
                        continue
                    vip = VirtualIP(network_id=network.id, address=address)
                wanted.append(vip)
        if wanted == service.vips:
            return service
        return dataclasses.replace(service, vips=wanted)

    def settle(self, written: int = 0) -> None:
        """Forget the reservations of the last pass, whose write (at revision
        ``written``) is in the cache, or failed for sure. Kept while the cache
        is behind that write, or its outcome is unknown."""
        if not self.unsure and self.informer.revision >= written:
            self.ipam.settle()
            networks = self.informer.networks()
            if self.ipam.pools > len(networks):  # some were removed: drop their cursors
                self.ipam.forget(n.id for n in networks)

    def resync(self, store: Store) -> None:
        """After a write whose outcome is unknown: wait until the cache holds the
        store's current state, then forget the reservations. Raises StoreError
        while the store is unavailable (the reservations stay)."""
        if not self.unsure:
            return
        revision = store.revision()
        if self.informer.wait_revision(revision, 5.0):
            self.unsure = False
            self.ipam.settle()
            self.ipam.forget(n.id for n in self.informer.networks())
