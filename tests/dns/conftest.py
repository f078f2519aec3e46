"""Fixtures for the DNS server's tests: real network namespaces (a "node"
whose loopback carries the upstream resolvers, and "containers" with their
127.0.0.11:53 sockets), a real server, a real ``NetworkStateHub``.

Everything is removed afterwards, and checked: no namespace left.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from dnsfix import Node, sample_hub
from nshelp import add_netns, del_netns, in_netns, netns_names

from nodeagent.dns.node import NodeDns
from nodeagent.dns.upstreams import Upstream
from nodeagent.network.state import NetworkStateHub


@pytest.fixture
def netns() -> Iterator[Callable[[], str]]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    made: list[str] = []

    def make() -> str:
        name = add_netns()
        made.append(name)
        return name

    try:
        yield make
    finally:
        for name in made:
            del_netns(name)
        assert not set(made) & netns_names()


@pytest.fixture
def hub() -> NetworkStateHub:
    return sample_hub()


@pytest.fixture
def make_node(netns: Callable[[], str]) -> Iterator[Callable[..., Node]]:
    servers: list[NodeDns] = []

    def make(hub: NetworkStateHub | None = None, upstreams: list[Upstream] | None = None,
             forward_timeout: float | None = None, node_ns: str | None = None) -> Node:
        ns = node_ns or netns()
        dns = NodeDns(upstreams or [], hub, forward_timeout=forward_timeout)
        servers.append(dns)
        in_netns(ns, dns.server)  # its thread (and forwarded queries) live in the node's namespace
        return Node(ns, dns, netns)

    try:
        yield make
    finally:
        for dns in servers:
            dns.close()
