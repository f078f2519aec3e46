"""Forwarding to the node's upstream resolvers: tiny dnslib servers on the
loopback of the node's namespace (where the DNS server's thread lives), so
no query ever leaves the machine."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from dnsfix import FRONT_ONLY, Node
from dnslib import QTYPE, RR, A, DNSRecord
from dnslib.server import DNSServer
from nshelp import addresses, in_netns, query, rcode

from nodeagent.dns.upstreams import Upstream
from nodeagent.network.state import NetworkStateHub


class Resolver:
    """``*.test`` names: 192.0.2.N, N counting the queries this upstream got;
    ``big.test`` is truncated over UDP and answered whole over TCP."""

    def __init__(self, mark: int) -> None:
        self.mark = mark
        self.asked: list[tuple[str, str]] = []
        self.lock = threading.Lock()

    def resolve(self, request: DNSRecord, handler: Any) -> DNSRecord:
        name = str(request.q.qname).rstrip(".")
        with self.lock:
            self.asked.append((name, handler.protocol))
        reply = request.reply()
        if not name.endswith(".test"):
            reply.header.rcode = 3  # NXDOMAIN
        elif name == "big.test" and handler.protocol == "udp":
            reply.header.tc = 1
        elif name == "big.test":
            for i in range(1, 6):
                reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(f"198.51.100.{i}"), ttl=60))
        else:
            reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(f"192.0.2.{self.mark}"), ttl=60))
        return reply


class Quiet:
    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


@pytest.fixture
def upstream(netns: Callable[[], str]) -> Iterator[Callable[[str, int, int], Resolver]]:
    servers: list[DNSServer] = []

    def start(ns: str, port: int, mark: int) -> Resolver:
        resolver = Resolver(mark)
        for tcp in (False, True):
            server = in_netns(ns, lambda tcp=tcp: DNSServer(resolver, "127.0.0.1", port, tcp=tcp,
                                                            logger=Quiet()))
            server.start_thread()
            servers.append(server)
        return resolver

    try:
        yield start
    finally:
        for server in servers:
            server.stop()
            server.server.server_close()


def test_unknown_names_go_upstream(make_node: Callable[..., Node], netns: Callable[[], str],
                                   upstream: Callable[[str, int, int], Resolver],
                                   hub: NetworkStateHub) -> None:
    node_ns = netns()
    resolver = upstream(node_ns, 5301, 1)
    node = make_node(hub, [Upstream("127.0.0.1", 5301)], node_ns=node_ns)
    c = node.container("c1", FRONT_ONLY)
    assert addresses(query(c, "www.example.test")) == ["192.0.2.1"]
    assert rcode(query(c, "nothing.invalid")) == "NXDOMAIN"  # the upstream's answer, passed on
    assert addresses(query(c, "tcp.example.test", tcp=True)) == ["192.0.2.1"]
    assert addresses(query(c, "api")) == ["10.96.1.2"]  # known names never go upstream
    assert ("api", "udp") not in resolver.asked and ("www.example.test", "udp") in resolver.asked


def test_a_truncated_answer_is_asked_again_over_tcp(make_node: Callable[..., Node],
                                                    netns: Callable[[], str],
                                                    upstream: Callable[[str, int, int], Resolver]) -> None:
    node_ns = netns()
    resolver = upstream(node_ns, 5302, 1)
    node = make_node(None, [Upstream("127.0.0.1", 5302)], node_ns=node_ns)
    c = node.container("c1", FRONT_ONLY)
    assert sorted(addresses(query(c, "big.test"))) == [f"198.51.100.{i}" for i in range(1, 6)]
    assert resolver.asked == [("big.test", "udp"), ("big.test", "tcp")]


def test_a_refusing_upstream_is_skipped(make_node: Callable[..., Node], netns: Callable[[], str],
                                        upstream: Callable[[str, int, int], Resolver]) -> None:
    node_ns = netns()
    upstream(node_ns, 5304, 2)
    # Nothing listens on 5303: the first attempt is refused, the second answers.
    node = make_node(None, [Upstream("127.0.0.1", 5303), Upstream("127.0.0.1", 5304)], node_ns=node_ns)
    c = node.container("c1", FRONT_ONLY)
    assert addresses(query(c, "x.test")) == ["192.0.2.2"]


def test_a_silent_upstream_times_out_then_the_next_answers(make_node: Callable[..., Node],
                                                           netns: Callable[[], str],
                                                           upstream: Callable[[str, int, int], Resolver]
                                                           ) -> None:
    node_ns = netns()
    upstream(node_ns, 5306, 3)

    def silent() -> socket.socket:  # bound, never read: queries to it go unanswered
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 5305))
        return s

    sink = in_netns(node_ns, silent)
    try:
        node = make_node(None, [Upstream("127.0.0.1", 5305), Upstream("127.0.0.1", 5306)],
                         forward_timeout=0.2, node_ns=node_ns)
        c = node.container("c1", FRONT_ONLY)
        assert addresses(query(c, "y.test")) == ["192.0.2.3"]
        # Two silent attempts in all: SERVFAIL, before the client's own timeout.
        lone = make_node(None, [Upstream("127.0.0.1", 5305)], forward_timeout=0.2, node_ns=node_ns)
        c2 = lone.container("c2", FRONT_ONLY)
        assert rcode(query(c2, "z.test", timeout=5)) == "SERVFAIL"
    finally:
        sink.close()
