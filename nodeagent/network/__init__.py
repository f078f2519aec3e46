"""Container networking on one node: a Linux bridge per network, veth pairs,
an address pool persisted under the state dir, and one nftables table per
bridge for published ports and isolation.

Public surface: :class:`BridgeNetwork` (parent side, in the supervisor),
:func:`configure_container_side` and :func:`loopback_up` (child side, inside
the container's network namespace before exec).

Invariants: container subnets never route out through the uplink (nft
forward drop, no outbound masquerade); ``teardown`` leaves the host as found.
Errors are :mod:`nodeagent.errors` kinds; kernel failures are ``SetupError``
naming the step and its arguments.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from nodeagent.network.bridge_network import BridgeNetwork
from nodeagent.network.ipam import AddressPool, PoolExhausted
from nodeagent.network.loopback import loopback_up

if TYPE_CHECKING:
    from nodeagent.network.inside import configure_container_side


def __getattr__(name: str) -> Any:
    # pyroute2 costs ~10 MB and ~100 ms to import: only a process that sets up
    # bridge networking loads it (see bridge_network).
    if name == "configure_container_side":
        from nodeagent.network.inside import configure_container_side

        return configure_container_side
    raise AttributeError(name)


__all__ = [
    "AddressPool",
    "BridgeNetwork",
    "PoolExhausted",
    "configure_container_side",
    "loopback_up",
]
