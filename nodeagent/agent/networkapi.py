"""The network half of the node-local API (engine mode): user-defined bridge
networks, as ``docker network create|ls|inspect|rm``.

The definitions are ``nodeagent.network.engine_networks``' (on disk, under
the agent's state dir); each network's bridge and nft table are made here
when it is created (``BridgeNetwork.ensure``, idempotent: the supervisor
ensures them again for a container, after a reboot too) and removed with
it. A container joins one with ``ContainerConfig.network = NAME``
(:func:`user_network` turns that into its bridge for the runtime spec) and
answers there, on the node's DNS server, to its name and
``network_aliases`` (``nodeagent.dns.node.scope_from_event``). The built-in modes
(``bridge``: the node's default bridge, ``host``, ``none``) are listed too
and never removed. Part of :class:`nodeagent.agent.service.AgentService`.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import grpc

from common.errors import FailedPrecondition, InvalidArgument
from nodeagent.agent.edge import handle_errors
from nodeagent.network.engine_networks import BUILTIN, EngineNetwork, EngineNetworks
from proto import agent_pb2 as pb

if TYPE_CHECKING:
    from nodeagent.agent.engine import Engine

__all__ = ["NetworkAPI", "user_network"]

# A DNS name: dot-separated labels of letters, digits, '-' and '_'.
ALIAS_RE = re.compile(r"(?=.{1,253}$)(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*")
MAX_ALIASES = 32


def user_network(networks: EngineNetworks | None,
                 cfg: pb.ContainerConfig) -> tuple[pb.ContainerConfig, str]:
    """``cfg`` with its user-defined network named by name (it may give an
    id prefix), and that network's bridge; ``cfg`` and "" for the built-in
    modes. NotFound for a network this node does not have."""
    if cfg.network in ("", *BUILTIN) or networks is None:
        if cfg.network_aliases:
            raise InvalidArgument("--network-alias needs a user-defined network (orch network create "
                                  "NAME; orch run --network NAME): on the default bridge names do not "
                                  "resolve")
        return cfg, ""
    net = networks.get(cfg.network)
    if len(cfg.network_aliases) > MAX_ALIASES:
        raise InvalidArgument(f"too many network aliases: {len(cfg.network_aliases)}; at most {MAX_ALIASES}")
    for alias in cfg.network_aliases:
        if not ALIAS_RE.fullmatch(alias):
            raise InvalidArgument(f"invalid network alias {alias!r}: use a DNS name (letters, digits, "
                                  "'-', '_', dot-separated)")
    named = pb.ContainerConfig()
    named.CopyFrom(cfg)
    named.network = net.name
    return named, net.bridge


def _to_pb(net: EngineNetwork) -> pb.EngineNetwork:
    return pb.EngineNetwork(id=net.id, name=net.name, driver="bridge", subnet=net.subnet,
                            gateway=net.gateway, bridge=net.bridge, created_at=net.created_at,
                            labels=net.labels)


class NetworkAPI:
    engine: Engine
    info: dict[str, Any]

    def _networks(self) -> EngineNetworks:
        if self.engine.networks is None:
            raise FailedPrecondition("user-defined networks are not available on this agent")
        networks: EngineNetworks = self.engine.networks
        return networks

    def _builtin(self) -> list[pb.EngineNetwork]:
        bridge, subnet = str(self.info.get("bridge", "")), str(self.info.get("subnet", ""))
        gateway = ""
        if subnet:
            import ipaddress

            gateway = str(ipaddress.IPv4Network(subnet).network_address + 1)
        return [pb.EngineNetwork(id="bridge", name="bridge", driver="bridge", subnet=subnet, gateway=gateway,
                                 bridge=bridge, builtin=True),
                pb.EngineNetwork(id="host", name="host", driver="host", builtin=True),
                pb.EngineNetwork(id="none", name="none", driver="null", builtin=True)]

    def _bridge_network(self, net: EngineNetwork) -> Any:
        from nodeagent.network import BridgeNetwork

        return BridgeNetwork(os.path.join(self.engine.state_dir, "network"), net.bridge, net.subnet)

    @handle_errors
    def CreateNetwork(self, request: pb.CreateNetworkRequest,
                      context: grpc.ServicerContext) -> pb.EngineNetwork:
        networks = self._networks()
        net = networks.create(request.name, request.subnet, dict(request.labels))
        try:
            self._bridge_network(net).ensure()
        except Exception:
            try:
                self._bridge_network(net).teardown()
            finally:
                networks.delete(net.id)
            raise
        return _to_pb(net)

    @handle_errors
    def ListNetworks(self, request: pb.ListNetworksRequest,
                     context: grpc.ServicerContext) -> pb.ListNetworksResponse:
        user = [_to_pb(n) for n in self._networks().all() if not n.removing]
        return pb.ListNetworksResponse(networks=self._builtin() + user)

    @handle_errors
    def InspectNetwork(self, request: pb.NetworkRef,
                       context: grpc.ServicerContext) -> pb.EngineNetworkDetails:
        builtin = next((n for n in self._builtin() if n.name == request.id), None)
        network = builtin or _to_pb(self._networks().get(request.id))
        return pb.EngineNetworkDetails(network=network, containers=[
            pb.NetworkEndpoint(container_id=rec["id"], name=rec["name"], address=rec.get("ip_address", ""),
                               aliases=(rec.get("config") or {}).get("networkAliases", []),
                               state=rec.get("state", ""))
            for rec in self._users(network.name)])

    @handle_errors
    def RemoveNetwork(self, request: pb.NetworkRef,
                      context: grpc.ServicerContext) -> pb.RemoveNetworkResponse:
        if request.id in BUILTIN:
            raise FailedPrecondition(f"{request.id} is a built-in network and cannot be removed")
        networks = self._networks()
        # Marked first: from now on no container can be created on it (see
        # engine_networks); then whoever is on it already is found.
        net = networks.mark_removing(request.id)
        users = self._users(net.name)
        if users:
            networks.mark_removing(net.id, removing=False)
            names = ", ".join(sorted(u["name"] for u in users)[:5])
            more = f" and {len(users) - 5} more" if len(users) > 5 else ""
            raise FailedPrecondition(f"network {net.name} is in use by container(s) {names}{more}: "
                                     "remove them first (orch rm -f NAME)")
        self._bridge_network(net).teardown()
        networks.delete(net.id)
        return pb.RemoveNetworkResponse(id=net.id)

    def _users(self, name: str) -> list[dict[str, Any]]:
        """The containers (in any state) on the network called ``name``."""
        def on(rec: dict[str, Any]) -> bool:
            network = str((rec.get("config") or {}).get("network") or "bridge")
            if name == "bridge":
                return network == "bridge" and rec.get("network") == "bridge"
            return network == name

        return [rec for rec in self.engine.containers(all=True) if on(rec)]
