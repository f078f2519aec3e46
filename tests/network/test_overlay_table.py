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
