"""Every name and number of the overlay, derived from (node index, VNI).

Nothing here is allocated on the node, so nothing has to be remembered
across an agent restart: a restarted agent recomputes the same names, MACs,
marks and tables, finds them in the kernel and leaves them alone.

- A network's VXLAN device is ``vx-<VNI>``.
- Its MAC is ``02:4f:`` + the node index (2 bytes) + the VNI's low 2 bytes
  (locally administered, unicast): no MAC ever travels, a node computes its
  peers' from the indexes the control plane sends.
- A node's router address is ``169.254.<index / 256>.<index % 256>``, on
  every one of its VXLAN devices (/32): the next hop that routing-mesh
  replies are sent to.
- The mesh mark of (peer, network) is ``MESH_MARK_TAG | (VNI & 0xfff) << 16 |
  index``: the ct mark of a connection that peer's routing mesh sent here
  over that network, the packet mark of its replies, and the number of the
  routing table that sends them back to the peer. Indexes are 1..65534 and
  VNIs are told apart by their low 12 bits (4096 networks from VNI 4096).
"""

from __future__ import annotations

import functools
import ipaddress

from nodeagent.network.nftables import MESH_MARK_MASK, MESH_MARK_TAG

__all__ = [
    "HAIRPIN_MARK",
    "MAC_PREFIX",
    "MAX_INDEX",
    "MESH_MARK_MASK",
    "MESH_MARK_TAG",
    "RULE_END",
    "RULE_GATE",
    "RULE_MESH",
    "VXLAN_OVERHEAD",
    "VXLAN_PORT",
    "VX_PREFIX",
    "chain_suffix",
    "is_mesh_mark",
    "mesh_mark",
    "router_address",
    "vx_mac",
    "vx_name",
]

VXLAN_PORT = 4789  # IANA's; the kernel's default is the older 8472
VXLAN_OVERHEAD = 50  # outer Ethernet 14 + IPv4 20 + UDP 8 + VXLAN 8
VX_PREFIX = "vx-"
MAC_PREFIX = "02:4f:"
MAX_INDEX = 0xFFFE  # 169.254.255.255 is the /16's broadcast address
NETWORK_BITS = 0xFFF

# Policy-routing rules (ip rule priorities, all before ``main`` at 32766):
# RULE_GATE sends every packet that carries no mesh mark straight to
# RULE_END, so the per-peer rules at RULE_MESH cost one rule for all other
# traffic however many peers there are.
RULE_GATE = 30000
RULE_MESH = 30001
RULE_END = 30002

# Packet mark bit of a connection DNAT'ed to its own source (a task reaching
# itself through its service's VIP): masqueraded, or the task would get a
# packet from its own address. Outside MESH_MARK_MASK, so the gate skips it.
HAIRPIN_MARK = 0x2000


def vx_name(vni: int) -> str:
    return f"{VX_PREFIX}{vni}"


def vx_mac(index: int, vni: int) -> str:
    _check_index(index)
    octets = (index >> 8, index & 0xFF, (vni >> 8) & 0xFF, vni & 0xFF)
    return MAC_PREFIX + ":".join(f"{b:02x}" for b in octets)


def router_address(index: int) -> str:
    _check_index(index)
    return f"169.254.{index >> 8}.{index & 0xFF}"


def mesh_mark(index: int, vni: int) -> int:
    _check_index(index)
    return MESH_MARK_TAG | (vni & NETWORK_BITS) << 16 | index


def is_mesh_mark(mark: int) -> bool:
    return mark & MESH_MARK_MASK == MESH_MARK_TAG


@functools.lru_cache(maxsize=1 << 16)
def chain_suffix(address: str) -> str:
    """``10.96.5.7`` -> ``10_96_5_7`` (nft chain names take no dots). Cached:
    a pass names every endpoint's chain, and parsing the address was a
    quarter of a pass's time."""
    return str(ipaddress.IPv4Address(address)).replace(".", "_")


def _check_index(index: int) -> None:
    if not 1 <= index <= MAX_INDEX:
        raise ValueError(f"node index {index} out of range 1..{MAX_INDEX}")
