"""Bringing ``lo`` up with two ioctls: what every non-host container needs,
cheap enough for the forked child and free of netlink libraries."""

from __future__ import annotations

import fcntl
import socket
import struct

from nodeagent.errors import SetupError

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1
_IFREQ = "16sH22x"  # struct ifreq: name[IFNAMSIZ], short flags, rest of the union


def link_up(sock: socket.socket, name: bytes) -> None:
    """Set IFF_UP on interface ``name`` (unless it is up) with SIOCGIFFLAGS
    and SIOCSIFFLAGS on ``sock``; OSError if either fails."""
    flags = struct.unpack(_IFREQ, fcntl.ioctl(sock, SIOCGIFFLAGS, struct.pack(_IFREQ, name, 0)))[1]
    if not flags & IFF_UP:
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack(_IFREQ, name, flags | IFF_UP))


def loopback_up() -> None:
    """Bring ``lo`` up (no netlink needed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            link_up(sock, b"lo")
        except OSError as exc:
            raise SetupError("loopback_up", {"ifname": "lo"}, exc.strerror or "", exc.errno or 0)
