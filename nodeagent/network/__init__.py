"""Container networking on one node: a Linux bridge per network, veth pairs,
an address pool persisted under the state dir, and one nftables table per
bridge for published ports and isolation.

Public surface: :class:`BridgeNetwork` (the host side, in the supervisor).
The container side is set up inside the container's network namespace by
its init, from what :func:`~nodeagent.network.inside.container_side` says.

Invariants: container subnets never route out through the uplink (nft
forward drop, no outbound masquerade); ``teardown`` leaves the host as found.
Errors are :mod:`common.errors` kinds; kernel failures are ``SetupError``
naming the step and its arguments.
"""

from __future__ import annotations

from nodeagent.network.bridge_network import BridgeNetwork
from nodeagent.network.ipam import AddressPool, PoolExhausted

__all__ = [
    "AddressPool",
    "BridgeNetwork",
    "PoolExhausted",
]
