"""The rtnetlink requests on a container's start/remove path, packed by hand.

Creating and deleting a container's veth pairs (and routing an overlay
address to one) happens once per container, so it is the hot path of a
rollout. pyroute2's ``IPRoute`` spends ~5 ms of CPU
per request (message objects, an asyncio round trip); these requests are a
few dozen bytes of ``struct`` on a plain netlink socket and cost ~0.1 ms. The
bridge, set up once per node, stays on pyroute2 in a helper process (``bridge``).

Wire format (``linux/netlink.h``, ``linux/rtnetlink.h``): a 16-byte
``nlmsghdr``, a 16-byte ``ifinfomsg`` (links) or 12-byte ``rtmsg`` (routes), then attributes, each a 4-byte
header (length, type) and a payload padded to 4 bytes; nested attributes
carry attributes as payload. The kernel answers with ``NLMSG_ERROR`` holding
0 (the ack) or a negative errno.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import struct

NETLINK_ROUTE = 0
NLMSG_ERROR = 2
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_SETLINK = 19
RTM_NEWROUTE = 24
IFF_UP = 0x1

RTA_DST = 1
RTA_OIF = 4
RT_TABLE_MAIN = 254
RTPROT_STATIC = 4
RT_SCOPE_LINK = 253
RTN_UNICAST = 1

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MASTER = 10
IFLA_LINKINFO = 18
IFLA_NET_NS_PID = 19
IFLA_INFO_KIND = 1
IFLA_INFO_DATA = 2
VETH_INFO_PEER = 1
NLA_F_NESTED = 0x8000

_NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_IFINFOMSG = struct.Struct("=BxHiII")  # family, pad, type, index, flags, change
_RTMSG = struct.Struct("=BBBBBBBBI")  # family, dst_len, src_len, tos, table, protocol, scope, type, flags
_NLATTR = struct.Struct("=HH")


def attr(kind: int, payload: bytes) -> bytes:
    """One attribute, padded to 4 bytes."""
    length = _NLATTR.size + len(payload)
    return _NLATTR.pack(length, kind) + payload + b"\0" * (-length % 4)


def nested(kind: int, *attrs: bytes) -> bytes:
    return attr(kind | NLA_F_NESTED, b"".join(attrs))


def ifname(name: str) -> bytes:
    return attr(IFLA_IFNAME, name.encode() + b"\0")


def u32(kind: int, value: int) -> bytes:
    return attr(kind, struct.pack("=I", value))


def ifinfomsg(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFOMSG.pack(socket.AF_UNSPEC, 0, index, flags, change)


def veth_request(host: str, peer: str, peer_pid: int, master: int,
                 up: bool = True, peer_mac: bytes = b"") -> tuple[int, int, bytes]:
    """RTM_NEWLINK for a veth pair: ``host`` enslaved to ``master`` (none
    if 0; and up, unless ``up`` is False), ``peer`` created inside the network
    namespace of ``peer_pid``, with the MAC ``peer_mac`` if given (else the
    kernel's random one)."""
    peer_info = (ifinfomsg() + ifname(peer) + u32(IFLA_NET_NS_PID, peer_pid)
                 + (attr(IFLA_ADDRESS, peer_mac) if peer_mac else b""))
    flags = IFF_UP if up else 0
    body = (ifinfomsg(flags=flags, change=flags) + ifname(host)
            + (u32(IFLA_MASTER, master) if master else b"")
            + nested(IFLA_LINKINFO,
                     attr(IFLA_INFO_KIND, b"veth"),
                     nested(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_info))))
    return RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, body


def up_request(name: str) -> tuple[int, int, bytes]:
    """RTM_SETLINK bringing the link named ``name`` up."""
    return RTM_SETLINK, 0, ifinfomsg(flags=IFF_UP, change=IFF_UP) + ifname(name)


def delete_request(index: int) -> tuple[int, int, bytes]:
    return RTM_DELLINK, 0, ifinfomsg(index=index)


def host_route_request(address: str, oif: int) -> tuple[int, int, bytes]:
    """RTM_NEWROUTE for ``address/32 dev <oif> scope link`` in the main
    table, replacing a route to the same address (an address handed out
    again while its previous holder's link is still going away)."""
    body = (_RTMSG.pack(socket.AF_INET, 32, 0, 0, RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_LINK,
                        RTN_UNICAST, 0)
            + attr(RTA_DST, socket.inet_pton(socket.AF_INET, address)) + u32(RTA_OIF, oif))
    return RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, body


class LinkSocket:
    """A netlink route socket that sends one request at a time and waits for
    its ack. Not thread-safe (the supervisor is single-threaded)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC,
                                   NETLINK_ROUTE)
        self._sock.bind((0, 0))
        self._seq = itertools.count(1)

    def request(self, req: tuple[int, int, bytes]) -> None:
        """Send and wait for the ack; OSError(errno) if the kernel refused."""
        msg_type, flags, body = req
        seq = next(self._seq)
        header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), msg_type,
                                NLM_F_REQUEST | NLM_F_ACK | flags, seq, 0)
        self._sock.send(header + body)
        while True:
            data = self._sock.recv(65536)
            offset = 0
            while offset + _NLMSGHDR.size <= len(data):
                length, kind, _, got_seq, _ = _NLMSGHDR.unpack_from(data, offset)
                if kind == NLMSG_ERROR and got_seq == seq:
                    (code,) = struct.unpack_from("=i", data, offset + _NLMSGHDR.size)
                    if code:
                        raise OSError(-code, os.strerror(-code))
                    return
                offset += max(length + (-length % 4), _NLMSGHDR.size)

    def delete_link(self, index: int) -> bool:
        """Delete a link; False if it was already gone."""
        try:
            self.request(delete_request(index))
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                return False
            raise
        return True

    def close(self) -> None:
        self._sock.close()
