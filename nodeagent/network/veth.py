"""The veth pair joining a container to the bridge.

The host end is named ``cfg.host_veth``, enslaved to the bridge and up; the
peer is created directly inside the container's network namespace (addressed
by a pid living in it) as ``eth0``, so it never appears on the host under a
name that could collide. The container side configures ``eth0`` itself (see
``inside.py``).

Invariant: ``detach`` is idempotent; deleting the host end deletes the peer.
"""

from __future__ import annotations

from nodeagent.errors import InvalidArgument
from nodeagent.network import rtnl
from nodeagent.network._netlink import index_of, netlink_step
from nodeagent.network.names import IFNAMSIZ
from nodeagent.network.rtnl import LinkSocket
from nodeagent.runtime.spec import NetworkConfig

CONTAINER_IFNAME = "eth0"


def attach_veth(links: LinkSocket, cfg: NetworkConfig, pid: int) -> None:
    """Create the pair: host end in ``cfg.bridge`` and up, peer ``eth0`` in pid's netns."""
    if not cfg.host_veth or len(cfg.host_veth) > IFNAMSIZ:
        raise InvalidArgument(f"host veth name {cfg.host_veth!r} must be 1..{IFNAMSIZ} chars")
    bridge = index_of(cfg.bridge)
    if bridge is None:
        raise InvalidArgument(f"bridge {cfg.bridge!r} does not exist; ensure the network first")
    args = {"ifname": cfg.host_veth, "bridge": cfg.bridge, "pid": pid}
    with netlink_step("veth_create", args):
        # One request: the kernel creates both ends, moves the peer into the
        # target namespace, enslaves the host end and brings it up.
        links.request(rtnl.veth_request(cfg.host_veth, CONTAINER_IFNAME, pid, bridge))


def detach_veth(links: LinkSocket, cfg: NetworkConfig) -> None:
    """Delete the host end if it is still there (it vanishes with the netns)."""
    if not cfg.host_veth:
        return
    index = index_of(cfg.host_veth)
    if index is None:
        return
    with netlink_step("veth_delete", {"ifname": cfg.host_veth}):
        links.delete_link(index)  # False: gone with its namespace since the lookup
