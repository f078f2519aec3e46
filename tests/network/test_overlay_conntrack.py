"""Forgetting the UDP flows a VIP or a mesh port balanced to an endpoint
that left it: which flows those are (from the table's facts), and that
only they are deleted, and read from the kernel, in a namespace full of
other UDP flows (as a node's is: VXLAN's own datagrams make one entry per
inner connection). Reading all of them took seconds under load, in the
overlay thread, and held back the removals that came after it: a rolling
update's retired tasks got connections until they were killed."""

from __future__ import annotations

import secrets
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
from overlay_helpers import in_netns

from nodeagent.network.overlay.conntrack import forget_udp_flows
from nodeagent.network.overlay.plan import MeshRoute, ServiceRules
from nodeagent.network.overlay.ruleset import balanced_udp, build, lost_udp

VIP, GONE, STAYS = "10.96.9.2", "10.96.9.9", "10.96.9.10"
MESH_PORT = 30053
OTHERS = 2000  # UDP flows of nobody's VIP
# The namespace's own stand-in for the table: a VIP whose ports 5353-5355
# go to GONE and 5356-5357 to STAYS, TCP port 7000 to GONE, and a mesh port.
NAT = f"""
table ip orch_cttest {{
  chain out {{
    type nat hook output priority -100;
    ip daddr {VIP} udp dport 5353-5355 dnat to {GONE}
    ip daddr {VIP} udp dport 5356-5357 dnat to {STAYS}
    ip daddr {VIP} tcp dport 7000 dnat to {GONE}
    udp dport {MESH_PORT} dnat to {GONE}:53
  }}
}}
"""


def rules(vip: tuple[str, ...], mesh: tuple[str, ...], tcp: tuple[str, ...] = ()) -> ServiceRules:
    routes = [MeshRoute("udp", MESH_PORT, 53, mesh)] if mesh else []
    routes += [MeshRoute("tcp", 8080, 80, tcp)] if tcp else []
    return ServiceRules(vips=(VIP,), balanced={VIP: vip} if vip else {}, mesh=tuple(routes))


def test_what_each_destination_balanced_and_lost() -> None:
    before = build({"web": rules((GONE, STAYS), (GONE, STAYS), (GONE,))}, [])
    assert balanced_udp(before) == {(VIP, 0): {GONE, STAYS}, ("", MESH_PORT): {GONE, STAYS}}
    after = build({"web": rules((STAYS,), (STAYS,))}, [])  # GONE drains: out of the VIP and the mesh
    assert lost_udp(before, after) == {(VIP, 0): {GONE}, ("", MESH_PORT): {GONE}}
    assert lost_udp(after, before) == {}  # a new endpoint loses nobody anything
    assert lost_udp(after, after) == {}
    assert lost_udp(after, build({}, [])) == {(VIP, 0): {STAYS}, ("", MESH_PORT): {STAYS}}
    assert lost_udp(after, None) == lost_udp(after, build({}, []))  # the table removed
    assert lost_udp(None, after) == {}


@pytest.fixture
def scratch() -> Iterator[str]:
    name = f"orchc{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
        for address in (VIP, GONE, STAYS):
            subprocess.run(["ip", "-n", name, "addr", "add", f"{address}/32", "dev", "lo"], check=True)
        subprocess.run(["ip", "netns", "exec", name, "nft", "-f", "-"], input=NAT, text=True, check=True)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


Flow = tuple[str, str, int, str]  # protocol, sent to, its port, answered from


def _flows() -> list[Flow]:
    """The conntrack entries of the calling thread's namespace."""
    from pyroute2 import Conntrack

    with Conntrack() as ct:
        return [("udp" if e.tuple_orig.proto == socket.IPPROTO_UDP else "tcp", e.tuple_orig.daddr,
                 e.tuple_orig.dport, e.tuple_reply.saddr) for e in ct.dump_entries()
                if e.tuple_orig.proto in (socket.IPPROTO_UDP, socket.IPPROTO_TCP)]


def _send(address: str, port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(b"x", (address, port))


def test_only_the_lost_endpoints_balanced_udp_flows_are_read_and_deleted(
        scratch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from pyroute2 import Conntrack

    read: list[Any] = []
    dump = Conntrack.dump_entries

    def counting(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
        for entry in dump(self, *args, **kwargs):
            read.append(entry)
            yield entry

    def scenario() -> tuple[list[Flow], int, list[Flow]]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for port in range(20000, 20000 + OTHERS):
                s.sendto(b"x", ("127.0.0.1", port))
        for port in range(5353, 5358):
            _send(VIP, port)
        _send("127.0.0.1", MESH_PORT)
        _send(GONE, 9999)  # straight to its address: nothing balanced it
        with socket.socket() as listener:
            listener.bind((GONE, 7000))
            listener.listen()
            with socket.create_connection((VIP, 7000)):  # TCP through the VIP: it stays
                before = _flows()
                monkeypatch.setattr(Conntrack, "dump_entries", counting)
                try:
                    deleted = forget_udp_flows({(VIP, 0): {GONE}, ("", MESH_PORT): {GONE}})
                finally:
                    monkeypatch.undo()
                after = _flows()
        return before, deleted, after

    before, deleted, after = in_netns(scratch, scenario)
    balanced = {("udp", VIP, 5353, GONE), ("udp", VIP, 5354, GONE), ("udp", VIP, 5355, GONE),
                ("udp", "127.0.0.1", MESH_PORT, GONE)}
    assert balanced <= set(before) and len(before) == OTHERS + 5 + 1 + 1 + 1
    assert deleted == len(balanced)
    assert set(after) == set(before) - balanced
    # The kernel filtered: what came to be decoded was sent to the VIP or the mesh port.
    assert {(e.tuple_orig.daddr, e.tuple_orig.dport) for e in read} <= (
        {(VIP, p) for p in range(5353, 5358)} | {("127.0.0.1", MESH_PORT)})
