"""Every bridge network of a node, behind the one object the supervisor and
the runtime hold: the default bridge (``orch0``) and the user-defined ones
of engine mode (``engine_networks``).

Each call names its bridge (a container's ``NetworkConfig.bridge``; ""
for the default) and goes to that bridge's :class:`BridgeNetwork`, made on
first use from the definition the agent wrote. A bridge that is not the
default must be a defined network not being removed, or the call is
refused (``NotFound``): a container is never attached to a bridge that the
agent is tearing down, and never recreates one it has removed.

``protect`` fences orch's ports off on every bridge, now and when a user
bridge is first ensured; ``teardown`` (``orch agent stop --all``) removes
every bridge and table, the user networks' included, and keeps their
definitions: they come back with the next container on them.
"""

from __future__ import annotations

import os
from typing import Any

from common.errors import AgentError, NotFound
from nodeagent.network.bridge_network import BridgeNetwork
from nodeagent.network.engine_networks import EngineNetworks
from nodeagent.runtime.spec import NetworkConfig

__all__ = ["BridgeNetworks"]


class BridgeNetworks:
    def __init__(self, state_dir: str, bridge: str = "orch0", subnet: str = "10.88.0.0/16") -> None:
        self.state_dir = state_dir  # the network state dir (leases, definitions' parent)
        self.default = BridgeNetwork(state_dir, bridge, subnet)
        self.bridge = self.default.bridge
        self.subnet = self.default.subnet
        self.gateway = self.default.gateway
        # The definitions live in the agent's state dir, whose "network"
        # subdirectory this is.
        self.defined = EngineNetworks(os.path.dirname(state_dir.rstrip("/")), subnet)
        self._user: dict[str, BridgeNetwork] = {}
        self._ensured: set[str] = set()  # user bridges ensured (and protected) by this process
        self._published: dict[str, str] = {}  # container id -> the bridge its ports are on

    @property
    def protected(self) -> list[int]:
        return self.default.protected

    def of(self, bridge: str = "") -> BridgeNetwork:
        """The bridge network of that name ("": the default)."""
        if not bridge or bridge == self.default.bridge:
            return self.default
        net = self.defined.by_bridge(bridge)
        if net is None or net.removing:
            self._user.pop(bridge, None)
            self._ensured.discard(bridge)
            raise NotFound(f"bridge {bridge!r} belongs to no network of this node (removed?)")
        found = self._user.get(bridge)
        if found is None or str(found.subnet) != net.subnet:
            found = self._user[bridge] = BridgeNetwork(self.state_dir, bridge, net.subnet)
            self._ensured.discard(bridge)
        return found

    def ensure(self, bridge: str = "") -> None:
        net = self.of(bridge)
        net.ensure()
        if net is not self.default and net.bridge not in self._ensured:
            if self.default.protected:
                net.protect(self.default.protected)
            self._ensured.add(net.bridge)

    def allocate(self, container_id: str, bridge: str = "") -> NetworkConfig:
        return self.of(bridge).allocate(container_id)

    def release(self, container_id: str, bridge: str = "") -> None:
        try:
            net = self.of(bridge)
        except NotFound:
            return  # its network is gone, and its leases with it
        net.release(container_id)

    def attach(self, cfg: NetworkConfig, pid: int) -> None:
        self.of(cfg.bridge).attach(cfg, pid)

    def detach(self, cfg: NetworkConfig) -> None:
        # Also for a bridge whose network went away meanwhile: the veth goes.
        self._any(cfg.bridge).detach(cfg)

    def publish(self, container_id: str, cfg: NetworkConfig) -> None:
        self.of(cfg.bridge).publish(container_id, cfg)
        if cfg.ports:
            self._published[container_id] = cfg.bridge

    def unpublish(self, container_id: str, bridge: str | None = None) -> None:
        """The container's published ports go, on ``bridge`` or the one it
        published on; not known (a container of an earlier supervisor): on
        every bridge (only containers with ports get here)."""
        if bridge is None:
            bridge = self._published.get(container_id)
        if bridge is None:
            for net in self._every():
                net.unpublish(container_id)
        else:
            self._any(bridge).unpublish(container_id)
        self._published.pop(container_id, None)

    def protect(self, ports: list[int]) -> None:
        self.default.protect(ports)
        for bridge in self._ensured:
            self._user[bridge].protect(ports)

    def teardown(self) -> None:
        """Every bridge and table (the default's lease file too); user
        networks' definitions stay."""
        errors: list[Exception] = []
        for net in self._every():
            try:
                net.teardown()
            except Exception as exc:  # the others still go
                errors.append(exc)
        self._user.clear()
        self._ensured.clear()
        if errors:
            raise errors[0]

    def _every(self) -> list[BridgeNetwork]:
        """The default bridge and every defined network's (an unreadable
        definitions file leaves those made so far)."""
        try:
            for net in self.defined.all():
                if net.bridge not in self._user:
                    self._user[net.bridge] = BridgeNetwork(self.state_dir, net.bridge, net.subnet)
        except AgentError:
            pass
        return [*self._user.values(), self.default]

    def _any(self, bridge: str) -> BridgeNetwork:
        """``of(bridge)``, or a stand-in for a bridge no longer defined
        (detaching or unpublishing what is left of it needs no definition)."""
        try:
            return self.of(bridge)
        except NotFound:
            return BridgeNetwork(self.state_dir, bridge, self.default.subnet.exploded)

    def __getattr__(self, name: str) -> Any:
        # Whatever else a bridge network offers (its overlay attachments among
        # them) is the node's, not one bridge's: the default's object has it.
        if name.startswith("__") or name == "default":
            raise AttributeError(name)
        return getattr(self.default, name)
