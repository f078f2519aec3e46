"""Network setup run INSIDE the container's network namespace.

Called in the forked child after it entered the new net ns and before exec, so
it must stay fast and must not depend on host state: loopback comes up with two
ioctls; in bridge mode ``eth0`` (created by the parent, see ``veth.py``) loses
IPv6, gets its address, comes up, and the default route points at the bridge
gateway. The requests are packed in the parent (:func:`container_side`).

Invariant: any failure raises :class:`SetupError`; the caller must not exec.
"""

from __future__ import annotations

import fcntl
import ipaddress
import socket
import struct
from collections.abc import Callable
from typing import Any

from nodeagent.errors import InvalidArgument, SetupError
from nodeagent.network.loopback import link_up, loopback_up
from nodeagent.network.veth import CONTAINER_IFNAME, disable_ipv6
from nodeagent.runtime.spec import NetworkConfig

SIOCSIFADDR = 0x8916
SIOCSIFNETMASK = 0x891C
SIOCADDRT = 0x890B
RTF_UP, RTF_GATEWAY = 0x1, 0x2
# struct rtentry (linux/route.h), native layout: pad1, dst, gateway, genmask,
# flags, pad2, pad3, pad4, metric, dev, mtu, window, irtt.
_RTENTRY = "@L16s16s16sHhLPhPLLH0L"  # 0L: trailing padding, sizeof == 120


def _sockaddr_in(ip: str) -> bytes:
    return struct.pack("=H2s4s8x", socket.AF_INET, b"\0\0", socket.inet_aton(ip))


def _ifreq_addr(ifname: str, ip: str) -> bytes:
    return struct.pack("16s16s8x", ifname.encode(), _sockaddr_in(ip))


def configure_container_side(cfg: NetworkConfig) -> None:
    """lo up; in bridge mode also eth0 address, eth0 up, default route via gateway."""
    container_side(cfg)()


def container_side(cfg: NetworkConfig) -> Callable[[], None]:
    """The container side's set-up as a call for the forked container init,
    with every request packed here, in the parent: the child makes a socket,
    one write and six ioctls (about a millisecond in all, where a netlink
    library's set-up alone costs more). IPv6 on eth0 is off before it comes
    up (see ``veth.py``); ``lo`` keeps ``::1``."""
    if cfg.mode != "bridge":
        return loopback_up
    if not (cfg.address and cfg.prefixlen and cfg.gateway):
        raise InvalidArgument("bridge network config lacks address, prefixlen or gateway")
    netmask = str(ipaddress.ip_network(f"0.0.0.0/{cfg.prefixlen}").netmask)
    name = CONTAINER_IFNAME
    any_addr = _sockaddr_in("0.0.0.0")
    route = struct.pack(_RTENTRY, 0, any_addr, _sockaddr_in(cfg.gateway), any_addr,
                        RTF_UP | RTF_GATEWAY, 0, 0, 0, 0, 0, 0, 0, 0)
    address = (SIOCSIFADDR, _ifreq_addr(name, cfg.address), "eth0_address",
               {"ifname": name, "address": f"{cfg.address}/{cfg.prefixlen}"})
    mask = (SIOCSIFNETMASK, _ifreq_addr(name, netmask), "eth0_netmask",
            {"ifname": name, "netmask": netmask})
    ifname = name.encode()
    default_route = (SIOCADDRT, route, "default_route", {"gateway": cfg.gateway})

    def configure() -> None:
        loopback_up()
        disable_ipv6(name)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            _ioctl(sock, *address)
            _ioctl(sock, *mask)
            _step("eth0_up", {"ifname": name}, link_up, sock, ifname)
            _ioctl(sock, *default_route)

    return configure


def _ioctl(sock: socket.socket, request: int, arg: bytes, step: str, args: dict[str, str]) -> bytes:
    return bytes(_step(step, args, fcntl.ioctl, sock, request, arg))


def _step(step: str, args: dict[str, str], fn: Callable[..., Any], *call_args: Any) -> Any:
    """``fn(*call_args)``, its OSError raised as the SetupError of ``step``."""
    try:
        return fn(*call_args)
    except OSError as exc:
        raise SetupError(step, args, exc.strerror or str(exc), exc.errno or 0)
