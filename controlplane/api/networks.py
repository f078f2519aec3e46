"""The API's networks: create, list, get and remove overlay networks, the
networks a deploy makes for its stack, and what a service write that names
networks must compare.

Safety across control-plane replicas, at the store:
- every network create and remove is a guarded write (``keys.NETWORKS_GUARD``):
  it compares the guard at the revision read, after this replica's cache has
  reached that revision, so the name, subnet and VNI checked against the cache
  were checked against every network there is; two replicas creating networks
  at once serialise, the later one retries on a fresh cache;
- a service that names networks is written with each of them rewritten as it
  was (compared and put in the same transaction, ``touch``): a removal that
  read the network before fails its own compare and looks again, finding the
  service. So no service ever names a network that is gone, and a network in
  use (by a service, or by a task not yet ended) is never removed.

Errors are ``NetworkRefused`` (a gRPC code and a one-line message); the
servicer ends the call with them.
"""

from __future__ import annotations

import ipaddress
import secrets
import time
from typing import TYPE_CHECKING

import grpc
import structlog

from controlplane.controllers.ipam import IpamError, check_subnet, next_subnet, next_vni
from controlplane.store import NETWORKS_GUARD, Informer, Kind, Op, Store, StoreConflict
from model.networks import check_network_name
from model.objects import Network, ServiceSpec, Task

from .lookups import read_own_write

if TYPE_CHECKING:
    from model.manifest import NetworkDef

log = structlog.get_logger("orch.api")

__all__ = ["NetworkRefused", "Networks"]

ATTEMPTS = 8  # guarded writes a busy cluster may lose before the call is refused ABORTED
RETRY_PAUSE = 0.05


class NetworkRefused(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _node_hosts(informer: Informer) -> list[str]:
    """Nodes' underlay addresses as /32 subnets: no overlay may cover one."""
    out = []
    for node in informer.nodes():
        host = node.address.rpartition(":")[0].strip("[]")
        try:
            out.append(str(ipaddress.IPv4Network(host)))
        except ValueError:
            continue
    return out


class Networks:
    """Overlay networks through ``store``; checks against ``informer``; new subnets from ``pool``."""

    def __init__(self, store: Store, informer: Informer, pool: ipaddress.IPv4Network) -> None:
        self.store = store
        self.informer = informer
        self.pool = pool

    # ---- reads -------------------------------------------------------------------

    def find(self, ref: str) -> Network:
        found = self.informer.get(Kind.NETWORK, ref)
        if not isinstance(found, Network):
            found = self.informer.network_named(ref)
        if found is None:
            raise NetworkRefused(grpc.StatusCode.NOT_FOUND, f"no such network: {ref}")
        return found

    def users(self, network: Network) -> tuple[list[str], list[Task]]:
        """The services that name ``network``, and the tasks on it that have not ended."""
        services = sorted(s.spec.name for s in self.informer.services()
                          if any(n.name == network.name for n in s.spec.networks))
        tasks = [t for t in self.informer.tasks() if not t.status.state.terminal
                 and any(n.network_id == network.id for n in t.networks)]
        return services, tasks

    # ---- writes --------------------------------------------------------------------

    def _guard(self) -> int:
        """The guard's revision, once this replica's cache holds every network up to it."""
        revision = self.store.meta_version(NETWORKS_GUARD)
        if not self.informer.wait_revision(revision, 5.0):
            raise NetworkRefused(grpc.StatusCode.UNAVAILABLE,
                                 "this control plane's view of the cluster is behind; try again")
        return revision

    def create(self, name: str, subnet: str = "", labels: dict[str, str] | None = None,
               stack: str = "") -> Network:
        try:
            check_network_name(name)
        except ValueError as err:
            raise NetworkRefused(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        for _ in range(ATTEMPTS):
            guard = self._guard()
            existing = self.informer.networks()
            if any(n.name == name for n in existing):
                raise NetworkRefused(grpc.StatusCode.ALREADY_EXISTS, f"network {name} already exists")
            network = Network(id=secrets.token_hex(12), name=name, subnet=self._subnet(subnet, existing),
                              vni=next_vni(n.vni for n in existing), stack=stack, labels=dict(labels or {}),
                              created_at=time.time())
            try:
                [created] = self.store.write_guarded([Op.create(network)], guard=(NETWORKS_GUARD, guard))
            except StoreConflict:
                time.sleep(RETRY_PAUSE)  # another network write came first: decide again
                continue
            assert isinstance(created, Network)
            log.info("network created", method="CreateNetwork", network=name, network_id=created.id,
                     subnet=created.subnet, vni=created.vni, stack=stack)
            return read_own_write(self.informer, created)
        raise NetworkRefused(grpc.StatusCode.ABORTED, f"networks kept changing; network {name} not "
                                                      "created: try again")

    def _subnet(self, asked: str, existing: list[Network]) -> str:
        try:
            if asked:
                hosts = {f"node address {h.split('/')[0]}": h for h in _node_hosts(self.informer)}
                return str(check_subnet(asked, {**{n.name: n.subnet for n in existing}, **hosts}))
            return str(next_subnet(self.pool, [n.subnet for n in existing] + _node_hosts(self.informer)))
        except IpamError as err:
            code = grpc.StatusCode.INVALID_ARGUMENT if asked else grpc.StatusCode.RESOURCE_EXHAUSTED
            raise NetworkRefused(code, str(err))

    def remove(self, ref: str) -> Network:
        """Remove a network no service names and no living task is on."""
        for _ in range(ATTEMPTS):
            network = self.find(ref)
            services, tasks = self.users(network)
            if services:
                raise NetworkRefused(grpc.StatusCode.FAILED_PRECONDITION,
                                     f"network {network.name} is in use by service(s) {', '.join(services)}: "
                                     "remove them first (orch rm)")
            if tasks:
                names = ", ".join(t.name for t in tasks[:5])
                raise NetworkRefused(grpc.StatusCode.FAILED_PRECONDITION,
                                     f"network {network.name} is in use by task(s) {names}, which are "
                                     "still stopping: try again once they have ended")
            try:
                self.store.write_guarded([Op.delete(network)],
                                         guard=(NETWORKS_GUARD, self.store.meta_version(NETWORKS_GUARD)))
            except StoreConflict:
                time.sleep(RETRY_PAUSE)  # it changed (a service named it meanwhile): look again
                continue
            log.info("network removed", method="RemoveNetwork", network=network.name, network_id=network.id)
            read_own_write(self.informer, network, self.store.revision())
            return network
        raise NetworkRefused(grpc.StatusCode.ABORTED, f"network {ref} kept changing; not removed: try again")

    def ensure(self, wanted: NetworkDef, stack: str, path: str) -> Network:
        """A stack's network as its manifest defines it: the existing one, as it
        is (an external network must exist; one the manifest configures must
        have the subnet it asks for), or a new one. Errors name the manifest's line."""
        where = f"{path}:{wanted.line}: {wanted.field}: " if wanted.line else f"{path}: {wanted.field}: "
        for _ in range(ATTEMPTS):
            existing = self.informer.network_named(wanted.name)
            if wanted.external:
                if existing is None:
                    raise NetworkRefused(grpc.StatusCode.FAILED_PRECONDITION,
                                         f"{where}external network {wanted.name} does not exist: create it "
                                         f"with orch network create {wanted.name}")
                return existing
            if existing is not None:
                if wanted.subnet and existing.subnet != wanted.subnet:
                    raise NetworkRefused(grpc.StatusCode.FAILED_PRECONDITION,
                                         f"{where}network {wanted.name} exists with subnet "
                                         f"{existing.subnet}, not {wanted.subnet}: remove it first (orch "
                                         "network rm, once no service uses it), or ask for its subnet")
                return existing
            try:
                return self.create(wanted.name, wanted.subnet, wanted.labels, stack)
            except NetworkRefused as err:
                if err.code == grpc.StatusCode.ALREADY_EXISTS:
                    continue  # another deploy of this stack made it meanwhile: take it
                raise NetworkRefused(err.code, where + err.message)
        raise NetworkRefused(grpc.StatusCode.ABORTED, f"{where}network {wanted.name} kept changing; "
                                                      "try again")

    # ---- services ------------------------------------------------------------------

    def touch(self, spec: ServiceSpec) -> list[Op]:
        """The ops a write of ``spec`` carries: each network it names, rewritten as
        read (see the module docstring). NetworkRefused naming one that does not exist."""
        ops: dict[str, Op] = {}
        for attachment in spec.networks:
            network = self.informer.network_named(attachment.name)
            if network is None:
                raise NetworkRefused(grpc.StatusCode.INVALID_ARGUMENT,
                                     f"service {spec.name}: network {attachment.name} does not exist: create "
                                     f"it (orch network create {attachment.name}), or deploy a manifest "
                                     "that defines it")
            ops.setdefault(network.id, Op.update(network))
        return list(ops.values())

