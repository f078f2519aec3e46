"""The ``ip orch_svc`` table in a real (scratch) network namespace: every
transaction between random states is accepted by the kernel as one
transaction, and what the kernel then has reads back as the desired state
(a second transaction would change nothing)."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from overlay_helpers import in_netns

from nodeagent.network.overlay.plan import Batch, Mirror, plan_network, service_rules
from nodeagent.network.overlay.ruleset import TableState, build, transaction
from nodeagent.network.overlay.table import Nft
from nodeagent.network.state import (
    Endpoint,
    OverlayNetwork,
    Peer,
    PublishedPort,
    ServiceNetwork,
    ServiceRoute,
    endpoint_key,
)

NETWORKS = [OverlayNetwork(f"net{i}", f"n{i}", f"10.96.{i}.0/24", 4096 + i) for i in (1, 2, 3)]
PEERS = [Peer(f"n{i}", i, f"10.89.0.{10 + i}") for i in (1, 2, 3)]


@pytest.fixture(scope="module")
def scratch() -> Iterator[str]:
    name = f"orchv{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


@st.composite
def states(draw: st.DrawFn) -> TableState:
    networks = draw(st.lists(st.sampled_from(NETWORKS), min_size=1, max_size=3, unique=True))
    services: list[ServiceRoute] = []
    endpoints: list[Endpoint] = []
    for s in range(draw(st.integers(0, 4))):
        on = draw(st.lists(st.sampled_from(networks), min_size=1, max_size=len(networks), unique=True))
        ports = tuple(PublishedPort(8000 + s * 10 + j, 80, draw(st.sampled_from(["tcp", "udp"])))
                      for j in range(draw(st.integers(0, 2))))
        sid = f"s{s}"
        services.append(ServiceRoute(sid, sid, draw(st.sampled_from(["vip", "dnsrr"])),
                                     tuple(ServiceNetwork(n.id, f"10.96.{n.id[-1]}.{2 + s}") for n in on),
                                     ports))
        for t in draw(st.lists(st.integers(0, 5), unique=True, max_size=4)):
            node = draw(st.sampled_from(PEERS)).node_id
            for n in on:
                endpoints.append(Endpoint(f"{sid}.{t}", sid, n.id, f"10.96.{n.id[-1]}.{100 + s * 10 + t}",
                                          node, f"{sid}.{t}", t))
    m = Mirror()
    m.apply(Batch(node_id="n1", networks={n.id: n for n in networks}, peers={p.node_id: p for p in PEERS},
                  services={s.id: s for s in services},
                  endpoints={endpoint_key(e.task_id, e.network_id): e for e in endpoints}))
    plans = [p for p in (plan_network(m, nid) for nid in m.networks) if p is not None]
    return build({sid: service_rules(m, sid) for sid in m.services}, plans)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(states(), min_size=1, max_size=4))
def test_transactions_between_random_states_reach_them(scratch: str, sequence: list[TableState]) -> None:
    def run(table: Nft) -> None:
        table.delete()
        current: TableState | None = None
        for desired in sequence:
            table.apply(transaction(current, desired))
            read = table.read()
            assert read is not None
            assert transaction(read, desired) == ""
            current = read
        table.delete()

    # Through libnftables (a context kept across transactions, as the
    # overlay keeps it) and through the nft command.
    for library in (True, False):
        def one(library: bool = library) -> None:
            table = Nft()
            if not library:
                table.close()
            try:
                run(table)
            finally:
                table.close()

        in_netns(scratch, one)


def test_the_udp_flows_counter_counts_udp_flows_to_vips_only(scratch: str) -> None:
    """The table's ``udp_flows`` counter (the overlay skips its conntrack walk
    for VIPs while it is 0): a TCP connection to a VIP leaves it at 0, a UDP
    datagram to one counts, one to an address that is no VIP does not."""
    import socket

    net = NETWORKS[0]
    m = Mirror()
    m.apply(Batch(node_id="n1", networks={net.id: net}, peers={p.node_id: p for p in PEERS},
                  services={"s": ServiceRoute("s", "s", "vip", (ServiceNetwork(net.id, "10.96.1.2"),), ())},
                  endpoints={endpoint_key("s.1", net.id): Endpoint("s.1", "s", net.id, "10.96.1.100", "n1",
                                                                   "s.1", 1)}))
    plans = [p for p in (plan_network(m, nid) for nid in m.networks) if p is not None]
    desired = build({"s": service_rules(m, "s")}, plans)
    for args in (["link", "add", "d0", "type", "veth", "peer", "name", "d1"],
                 ["addr", "add", "10.96.1.1/24", "dev", "d0"], ["link", "set", "d0", "up"]):
        subprocess.run(["ip", "-n", scratch, *args], check=True)

    def run() -> list[int | None]:
        table = Nft()
        try:
            table.delete()
            table.apply(transaction(None, desired))
            seen = [table.udp_flows()]
            tcp = socket.socket()
            tcp.setblocking(False)
            tcp.connect_ex(("10.96.1.2", 80))
            tcp.close()
            seen.append(table.udp_flows())
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                udp.sendto(b"x", ("10.96.1.50", 53))  # no VIP
                seen.append(table.udp_flows())
                udp.sendto(b"x", ("10.96.1.2", 53))
                udp.sendto(b"y", ("10.96.1.2", 53))  # the same flow: counted once
            seen.append(table.udp_flows())
            table.delete()
            seen.append(table.udp_flows())
            return seen
        finally:
            table.close()

    try:
        assert in_netns(scratch, run) == [0, 0, 0, 1, None]
    finally:
        subprocess.run(["ip", "-n", scratch, "link", "del", "d0"], check=True)
