"""Network setup run INSIDE the container's network namespace.

Called in the forked child after it entered the new net ns and before exec, so
it must stay fast and must not depend on host state: loopback comes up with two
ioctls; in bridge mode ``eth0`` (created by the parent, see ``veth.py``) gets
its address, comes up, and the default route points at the bridge gateway.

Invariant: any failure raises :class:`SetupError`; the caller must not exec.
"""

from __future__ import annotations

import asyncio
import socket

from pyroute2 import IPRoute

from nodeagent.errors import InvalidArgument, SetupError
from nodeagent.network._netlink import netlink_step
from nodeagent.network.loopback import loopback_up
from nodeagent.network.veth import CONTAINER_IFNAME
from nodeagent.runtime.spec import NetworkConfig

# pyroute2 runs its requests on an asyncio loop; creating the default loop
# policy is the slowest part of a first IPRoute(). Doing it at import, in the
# long-lived parent, means every forked child inherits it ready-made.
asyncio.get_event_loop_policy()


def configure_container_side(cfg: NetworkConfig) -> None:
    """lo up; in bridge mode also eth0 address, eth0 up, default route via gateway."""
    loopback_up()
    if cfg.mode != "bridge":
        return
    if not (cfg.address and cfg.prefixlen and cfg.gateway):
        raise InvalidArgument("bridge network config lacks address, prefixlen or gateway")
    try:
        index = socket.if_nametoindex(CONTAINER_IFNAME)  # an ioctl, cheaper than a link dump
    except OSError as exc:
        raise SetupError("eth0_lookup", {"ifname": CONTAINER_IFNAME}, str(exc), exc.errno or 0)
    with IPRoute() as ipr:
        addr = {"ifname": CONTAINER_IFNAME, "address": f"{cfg.address}/{cfg.prefixlen}"}
        with netlink_step("eth0_address", addr):
            ipr.addr("add", index=index, address=cfg.address, prefixlen=cfg.prefixlen)
        with netlink_step("eth0_up", {"ifname": CONTAINER_IFNAME}):
            ipr.link("set", index=index, state="up")
        with netlink_step("default_route", {"gateway": cfg.gateway}):
            ipr.route("add", dst="0.0.0.0/0", gateway=cfg.gateway, oif=index)
