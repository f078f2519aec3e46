"""The veth pairs joining a container to the bridge and to overlay networks.

The bridge's: the host end is named ``cfg.host_veth``, enslaved to the bridge
and up; the peer is created directly inside the container's network namespace
(addressed by a pid living in it) as ``eth0``, so it never appears on the host
under a name that could collide. The container's init configures ``eth0``
itself (see ``inside.py``).

An overlay network's (:func:`attach_overlay`): the peer is ``ethK`` inside,
which the init gives the container's address and prefix (on-link: it ARPs
for every address of the subnet); the host end is in no bridge, has
``proxy_arp`` (it answers those ARPs with its own MAC, with no delay) and
``forwarding``, strict reverse-path filtering (a container cannot send from
an address the node does not route to it), and the node routes the
container's ``address/32`` to it. So every packet between containers of a
network goes through the node's routing (and its nftables): to another
host end, or over the network's VXLAN device. The container's default
route stays on ``eth0``. Everything that attach adds (the sysctls, the
/32 route) belongs to the host end and goes with it. Host ends are named
``vn`` + 10 characters of the container id + K (``specbuild``), eth0's
``vo`` + 10 (``names``).

Neither end has IPv6: the network is IPv4 only (as Docker does for a
network without IPv6). An end with IPv6 would get a link-local address,
whose duplicate-address probe and multicast reports every new bridge port
floods to all the others: work on every container start that grows with the
number of containers.

Invariant: ``detach`` is idempotent; deleting the host end deletes the peer.
"""

from __future__ import annotations

import errno
import os
import socket

from common.errors import InvalidArgument, SetupError
from nodeagent.network import rtnl
from nodeagent.network._netlink import index_of, netlink_step
from nodeagent.network.inside import CONTAINER_IFNAME
from nodeagent.network.names import IFNAMSIZ
from nodeagent.network.rtnl import LinkSocket
from nodeagent.runtime.spec import NetworkAttachment, NetworkConfig

# The host end's settings for an overlay interface (see the module docstring).
OVERLAY_SYSCTLS: tuple[tuple[str, bytes], ...] = (
    ("ipv4/conf/{}/proxy_arp", b"1"),
    ("ipv4/neigh/{}/proxy_delay", b"0"),  # else a broadcast ARP waits up to 0.8 s
    ("ipv4/conf/{}/forwarding", b"1"),
    ("ipv4/conf/{}/rp_filter", b"1"),
)


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
        links.request(rtnl.veth_request(cfg.host_veth, CONTAINER_IFNAME, pid, bridge, up=False,
                                        peer_mac=mac_for(cfg.address)))
    disable_ipv6(cfg.host_veth)
    with netlink_step("veth_up", args):
        links.request(rtnl.up_request(cfg.host_veth))


def mac_for(address: str) -> bytes:
    """eth0's MAC, derived from its IPv4 address as Docker does (02:42 and the
    address's four bytes; locally administered). An address handed out again
    (a rollout's replacement, on the same node) keeps its MAC, so the node's
    and the other containers' neighbour entries for it stay right: with a new
    random MAC, they would send to the old one, which no port has any more,
    until each entry went stale and was probed again (seconds; a health
    probe from the node timed out meanwhile)."""
    if not address:
        return b""
    return b"\x02\x42" + socket.inet_aton(address)


def detach_veth(links: LinkSocket, cfg: NetworkConfig) -> None:
    """Delete the host end if it is still there (it vanishes with the netns)."""
    if not cfg.host_veth:
        return
    index = index_of(cfg.host_veth)
    if index is None:
        return
    with netlink_step("veth_delete", {"ifname": cfg.host_veth}):
        links.delete_link(index)  # False: gone with its namespace since the lookup


def attach_overlay(links: LinkSocket, att: NetworkAttachment, pid: int) -> None:
    """Create ``att``'s pair: ``att.ifname`` in pid's netns, the host end
    ``att.host_veth`` set up and routed to (see the module docstring)."""
    if not att.host_veth or len(att.host_veth) > IFNAMSIZ:
        raise InvalidArgument(f"host veth name {att.host_veth!r} must be 1..{IFNAMSIZ} chars")
    args = {"ifname": att.host_veth, "peer": att.ifname, "pid": pid}
    with netlink_step("veth_create", args):
        links.request(rtnl.veth_request(att.host_veth, att.ifname, pid, 0, up=False))
    disable_ipv6(att.host_veth)
    for template, value in OVERLAY_SYSCTLS:
        key = template.format(att.host_veth)
        write_sysctl(key, value, "overlay_sysctl", {"ifname": att.host_veth, "sysctl": key})
    with netlink_step("veth_up", args):
        links.request(rtnl.up_request(att.host_veth))
    index = index_of(att.host_veth)
    route = {"address": f"{att.address}/32", "ifname": att.host_veth}
    with netlink_step("overlay_route", route):
        if index is None:  # gone with the container's namespace since it was made
            raise OSError(errno.ENODEV, os.strerror(errno.ENODEV))
        links.request(rtnl.host_route_request(att.address, index))


def detach_overlay(links: LinkSocket, att: NetworkAttachment) -> None:
    """Delete ``att``'s host end if it is still there: its peer, its /32
    route and its settings go with it."""
    index = index_of(att.host_veth) if att.host_veth else None
    if index is None:
        return
    with netlink_step("veth_delete", {"ifname": att.host_veth}):
        links.delete_link(index)


def disable_ipv6(name: str) -> None:
    """Turn IPv6 off on interface ``name`` of the caller's network namespace
    (before it is up, so it never starts). A kernel without IPv6 has nothing
    to turn off. (The container's end is its init's work, see ``inside.py``.)"""
    write_sysctl(f"ipv6/conf/{name}/disable_ipv6", b"1", "disable_ipv6", {"ifname": name},
                 missing_ok=True)


def write_sysctl(key: str, value: bytes, step: str, args: dict[str, object],
                 missing_ok: bool = False) -> None:
    """Write ``/proc/sys/net/<key>`` of the caller's network namespace; a
    failure is a SetupError naming ``step`` and ``args``, but a key that does
    not exist is fine with ``missing_ok``."""
    try:
        fd = os.open(f"/proc/sys/net/{key}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value)
        finally:
            os.close(fd)
    except OSError as exc:
        if missing_ok and exc.errno == errno.ENOENT:
            return
        raise SetupError(step, args, exc.strerror or str(exc), exc.errno or 0)
