"""The hand-packed rtnetlink requests, read back by pyroute2's own decoder,
and one real request/ack round trip."""

from __future__ import annotations

import errno
import struct

import pytest
from pyroute2.netlink.rtnl.ifinfmsg import ifinfmsg

from nodeagent.network import rtnl


def decode(req: tuple[int, int, bytes]) -> ifinfmsg:
    kind, flags, body = req
    msg = ifinfmsg(struct.pack("=IHHII", 16 + len(body), kind, flags, 1, 0) + body)
    msg.decode()
    return msg


def test_veth_request_decodes_as_pyroute2_would_send_it() -> None:
    req = rtnl.veth_request("vethabc", "eth0", 4321, 7)
    assert req[0] == rtnl.RTM_NEWLINK and req[1] == rtnl.NLM_F_CREATE | rtnl.NLM_F_EXCL
    msg = decode(req)
    assert msg.get_attr("IFLA_IFNAME") == "vethabc"
    assert msg.get_attr("IFLA_MASTER") == 7
    assert msg["flags"] & rtnl.IFF_UP and msg["change"] & rtnl.IFF_UP
    info = msg.get_attr("IFLA_LINKINFO")
    assert info.get_attr("IFLA_INFO_KIND") == "veth"
    peer = info.get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer.get_attr("IFLA_IFNAME") == "eth0"
    assert peer.get_attr("IFLA_NET_NS_PID") == 4321


def test_veth_request_gives_the_peer_its_mac_when_asked() -> None:
    from nodeagent.network.veth import mac_for

    mac = mac_for("10.89.0.7")
    assert mac == bytes([0x02, 0x42, 10, 89, 0, 7]) and mac_for("") == b""
    peer = decode(rtnl.veth_request("vethabc", "eth0", 4321, 7, peer_mac=mac)).get_attr(
        "IFLA_LINKINFO").get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer.get_attr("IFLA_ADDRESS") == "02:42:0a:59:00:07"
    plain = decode(rtnl.veth_request("vethabc", "eth0", 4321, 7)).get_attr(
        "IFLA_LINKINFO").get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert plain.get_attr("IFLA_ADDRESS") is None


def test_veth_request_may_leave_the_host_end_down_and_up_request_raises_it() -> None:
    msg = decode(rtnl.veth_request("vethabc", "eth0", 4321, 7, up=False))
    assert not msg["flags"] & rtnl.IFF_UP and not msg["change"] & rtnl.IFF_UP
    kind, flags, _ = up = rtnl.up_request("vethabc")
    assert kind == rtnl.RTM_SETLINK and flags == 0
    msg = decode(up)
    assert msg.get_attr("IFLA_IFNAME") == "vethabc"
    assert msg["flags"] & rtnl.IFF_UP and msg["change"] & rtnl.IFF_UP


def test_attributes_are_padded_to_four_bytes() -> None:
    for name in ("a", "ab", "abc", "abcd"):
        assert len(rtnl.ifname(name)) % 4 == 0


def test_kernel_errors_come_back_as_oserror() -> None:
    links = rtnl.LinkSocket()
    try:
        # No interface has index 0x7fffffff: the kernel answers ENODEV, which
        # delete_link reports as "already gone".
        assert links.delete_link(0x7FFFFFFF) is False
        with pytest.raises(OSError) as err:
            links.request(rtnl.veth_request("orchtestveth0", "eth0", 0x7FFFFFF0, 1))
        assert err.value.errno in (errno.ESRCH, errno.ENODEV, errno.EINVAL)
    finally:
        links.close()


def test_veth_request_without_a_master_leaves_the_host_end_out_of_any_bridge() -> None:
    msg = decode(rtnl.veth_request("vn0123456789", "eth1", 4321, 0, up=False))
    assert msg.get_attr("IFLA_MASTER") is None
    peer = msg.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_DATA").get_attr("VETH_INFO_PEER")
    assert peer.get_attr("IFLA_IFNAME") == "eth1"


def test_host_route_request_decodes_as_a_link_scope_host_route() -> None:
    from pyroute2.netlink.rtnl.rtmsg import rtmsg

    kind, flags, body = rtnl.host_route_request("10.96.5.3", 42)
    assert kind == rtnl.RTM_NEWROUTE and flags == rtnl.NLM_F_CREATE | rtnl.NLM_F_REPLACE
    msg = rtmsg(struct.pack("=IHHII", 16 + len(body), kind, flags, 1, 0) + body)
    msg.decode()
    assert (msg["family"], msg["dst_len"], msg["table"], msg["scope"], msg["type"]) == (
        2, 32, 254, 253, 1)
    assert msg.get_attr("RTA_DST") == "10.96.5.3"
    assert msg.get_attr("RTA_OIF") == 42
    with pytest.raises(OSError):
        rtnl.host_route_request("10.96.5", 42)  # never a shorthand address
