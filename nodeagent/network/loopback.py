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
IFREQ_FLAGS = "16sH22x"  # struct ifreq: name[IFNAMSIZ], short flags, rest of the union


def loopback_up() -> None:
    """Bring ``lo`` up with SIOCGIFFLAGS/SIOCSIFFLAGS (no netlink needed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            req = struct.pack(IFREQ_FLAGS, b"lo", 0)
            flags = struct.unpack(IFREQ_FLAGS, fcntl.ioctl(sock, SIOCGIFFLAGS, req))[1]
            if not flags & IFF_UP:
                fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack(IFREQ_FLAGS, b"lo", flags | IFF_UP))
        except OSError as exc:
            raise SetupError("loopback_up", {"ifname": "lo"}, exc.strerror or "", exc.errno or 0)
