"""The veth pair joining a container to the bridge.

The host end is named ``cfg.host_veth``, enslaved to the bridge and up; the
peer is created directly inside the container's network namespace (addressed
by a pid living in it) as ``eth0``, so it never appears on the host under a
name that could collide. The container's init configures ``eth0`` itself (see
``inside.py``).

Neither end has IPv6: the network is IPv4 only (as Docker does for a
network without IPv6). An end with IPv6 would get a link-local address,
whose duplicate-address probe and multicast reports every new bridge port
floods to all the others: work on every container start that grows with the
number of containers.

Invariant: ``detach`` is idempotent; deleting the host end deletes the peer.
"""

from __future__ import annotations

import os

from common.errors import InvalidArgument, SetupError
from nodeagent.network import rtnl
from nodeagent.network._netlink import index_of, netlink_step
from nodeagent.network.inside import CONTAINER_IFNAME
from nodeagent.network.names import IFNAMSIZ
from nodeagent.network.rtnl import LinkSocket
from nodeagent.runtime.spec import NetworkConfig


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
        # target namespace and enslaves the host end; it comes up once its
        # IPv6 is off.
        links.request(rtnl.veth_request(cfg.host_veth, CONTAINER_IFNAME, pid, bridge, up=False))
    disable_ipv6(cfg.host_veth)
    with netlink_step("veth_up", args):
        links.request(rtnl.up_request(cfg.host_veth))


def disable_ipv6(name: str) -> None:
    """Turn IPv6 off on interface ``name`` of the caller's network namespace
    (before it is up, so it never starts). A kernel without IPv6 has nothing
    to turn off. (The container's end is its init's work, see ``inside.py``.)"""
    try:
        fd = os.open(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, b"1")
        finally:
            os.close(fd)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise SetupError("disable_ipv6", {"ifname": name}, exc.strerror or str(exc), exc.errno or 0)


def detach_veth(links: LinkSocket, cfg: NetworkConfig) -> None:
    """Delete the host end if it is still there (it vanishes with the netns)."""
    if not cfg.host_veth:
        return
    index = index_of(cfg.host_veth)
    if index is None:
        return
    with netlink_step("veth_delete", {"ifname": cfg.host_veth}):
        links.delete_link(index)  # False: gone with its namespace since the lookup
