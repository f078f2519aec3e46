"""What the container's side of its network needs, for its init to set up.

The container's init (``orch-init``, ``nodeagent/runtime/orch-init/net.c``) runs the
set-up inside the new network namespace, before exec, with a socket and a
few ioctls: ``lo`` comes up; in bridge mode ``eth0`` (created by the parent,
see ``veth.py``) loses IPv6, gets its address and netmask, comes up, and the
default route points at the bridge gateway. IPv6 on eth0 is off before it
comes up (see ``veth.py``); ``lo`` keeps ``::1``. Failures name the steps
loopback_up, disable_ipv6, eth0_address, eth0_netmask, eth0_up and
default_route.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

from common.errors import InvalidArgument
from nodeagent.runtime.spec import NetworkConfig

CONTAINER_IFNAME = "eth0"


def container_side(cfg: NetworkConfig) -> Iterator[tuple[str, object]]:
    """The container side's set-up as ``orch-init`` entries (see
    ``nodeagent.runtime.native``)."""
    yield "net", cfg.mode
    if cfg.mode != "bridge":
        return
    if not (cfg.address and cfg.prefixlen and cfg.gateway):
        raise InvalidArgument("bridge network config lacks address, prefixlen or gateway")
    yield "ifname", CONTAINER_IFNAME
    yield "address", cfg.address
    yield "netmask", ipaddress.ip_network(f"0.0.0.0/{cfg.prefixlen}").netmask
    yield "gateway", cfg.gateway
