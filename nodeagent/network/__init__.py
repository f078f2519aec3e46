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

from nodeagent.network.bridge_network import BridgeNetwork
from nodeagent.network.inside import configure_container_side, loopback_up
from nodeagent.network.ipam import AddressPool, PoolExhausted

__all__ = [
    "AddressPool",
    "BridgeNetwork",
    "PoolExhausted",
    "configure_container_side",
    "loopback_up",
]
