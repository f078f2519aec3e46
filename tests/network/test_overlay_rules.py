"""The overlay's pure parts: plans and the nft ruleset from a network state,
and the transaction between two rulesets (no kernel here; the kernel's side
is tests/network/test_overlay.py and test_overlay_table.py)."""

from __future__ import annotations

import dataclasses

from nodeagent.network.overlay.addressing import mesh_mark, router_address, vx_mac
from nodeagent.network.overlay.plan import Batch, Mirror, plan_network, service_rules
from nodeagent.network.overlay.ruleset import SCHEMA, TableState, build, parse, transaction
from nodeagent.network.state import (
    Endpoint,
    OverlayNetwork,
    Peer,
    PublishedPort,
    ServiceNetwork,
    ServiceRoute,
    endpoint_key,
)

APP = OverlayNetwork("net1", "app", "10.96.1.0/24", 4097)
DB = OverlayNetwork("net2", "db", "10.96.2.0/24", 4098)
PEERS = [Peer(f"n{i}", i, f"10.89.0.{10 + i}") for i in (1, 2, 3)]


def mirror(services: list[ServiceRoute], endpoints: list[Endpoint], me: str = "n1",
           networks: tuple[OverlayNetwork, ...] = (APP, DB)) -> Mirror:
    m = Mirror()
    m.apply(Batch(node_id=me, networks={n.id: n for n in networks}, peers={p.node_id: p for p in PEERS},
                  services={s.id: s for s in services},
                  endpoints={endpoint_key(e.task_id, e.network_id): e for e in endpoints}))
    return m


def web(*, ports: tuple[PublishedPort, ...] = (), mode: str = "vip") -> ServiceRoute:
    return ServiceRoute("web", "web", mode, (ServiceNetwork("net1", "10.96.1.2"),  # type: ignore[arg-type]
                                             ServiceNetwork("net2", "10.96.2.2")), ports)


def task(i: int, node: str, network: OverlayNetwork = APP, service: str = "web") -> Endpoint:
    base = network.subnet.rsplit(".", 1)[0]
    return Endpoint(f"t{i}", service, network.id, f"{base}.{10 + i}", node, f"web.{i}", i)


def table_of(m: Mirror) -> TableState:
    plans = [p for p in (plan_network(m, nid) for nid in m.networks) if p is not None]
    return build({sid: service_rules(m, sid) for sid in m.services}, plans)


# ---- plans -------------------------------------------------------------------------


def test_a_network_programs_the_peers_with_tasks_on_it() -> None:
    m = mirror([web()], [task(1, "n1"), task(2, "n2")])
    plan = plan_network(m, "net1")
    assert plan is not None
    assert (plan.name, plan.mac, plan.router, plan.local) == ("vx-4097", vx_mac(1, 4097), "169.254.0.1",
                                                            "10.89.0.11")
    assert plan.fdb == {vx_mac(2, 4097): "10.89.0.12"}  # n3 has no task there
    assert plan.neigh == {"10.96.1.12": vx_mac(2, 4097), router_address(2): vx_mac(2, 4097)}
    assert [r.mark for r in plan.returns] == [mesh_mark(2, 4097)]
    empty = plan_network(m, "net2")
    assert empty is not None and empty.fdb == {} and empty.neigh == {}


def test_a_network_with_a_published_port_programs_every_peer() -> None:
    m = mirror([web(ports=(PublishedPort(8080, 80),))], [task(1, "n1")])
    plan = plan_network(m, "net1")
    assert plan is not None
    assert plan.fdb == {vx_mac(2, 4097): "10.89.0.12", vx_mac(3, 4097): "10.89.0.13"}
    assert {r.gateway for r in plan.returns} == {"169.254.0.2", "169.254.0.3"}


def test_names_and_numbers_are_derived() -> None:
    assert vx_mac(1, 4097) == "02:4f:00:01:10:01"
    assert vx_mac(0x1234, 0x12345) == "02:4f:12:34:23:45"
    assert router_address(300) == "169.254.1.44"
    assert mesh_mark(3, 4097) == 0x40010003


def test_nothing_is_planned_before_this_node_is_known() -> None:
    m = mirror([web()], [task(1, "n1")], me="")
    assert plan_network(m, "net1") is None


def test_a_peer_with_an_index_out_of_range_is_left_out_and_said() -> None:
    m = mirror([web()], [task(1, "n1"), task(2, "n2")])
    m.apply(Batch(peers={"n2": Peer("n2", 70000, "10.89.0.12")}))
    problems: list[str] = []
    plan = plan_network(m, "net1", problems)
    assert plan is not None and plan.fdb == {} and "10.96.1.12" not in plan.neigh
    assert problems == ["node n2: index 70000 out of range 1..65534"]


def test_mirror_says_what_an_update_touched() -> None:
    m = mirror([web()], [task(1, "n1")])
    affected = m.apply(Batch(endpoints={"t2/net2": task(2, "n2", DB)}))
    assert (affected.networks, affected.services, affected.everything) == ({"net2"}, {"web"}, False)
    affected = m.apply(Batch(endpoints={"t2/net2": None}))
    assert affected.networks == {"net2"} and m.endpoints_on("net2") == []


# ---- the ruleset -------------------------------------------------------------------


def test_a_vip_balances_over_its_endpoints_on_that_network() -> None:
    m = mirror([web()], [task(1, "n1"), task(2, "n2"), task(3, "n3"), task(4, "n2", DB)])
    t = table_of(m)
    assert t.vips == {"10.96.1.2": "svc_10_96_1_2", "10.96.2.2": "svc_10_96_2_2"}
    assert t.chains["svc_10_96_1_2"].rules == (
        "numgen random mod 3 vmap { 0 : goto ep_10_96_1_11, 1 : goto ep_10_96_1_12, "
        "2 : goto ep_10_96_1_13 }",)
    assert t.chains["ep_10_96_1_12"].rules == ("ip saddr 10.96.1.12 meta mark set meta mark or 0x2000",
                                               "dnat to 10.96.1.12")
    assert t.chains["svc_10_96_2_2"].signature == ("ep_10_96_2_14",)
    assert t.vip_addrs == {"10.96.1.2", "10.96.2.2"}
    assert t.subnets == {"10.96.1.0/24", "10.96.2.0/24"}


def test_a_draining_task_stays_routable_but_out_of_the_vip_and_the_mesh() -> None:
    """A task being stopped (or not yet healthy): connections made to it keep their route."""
    draining = dataclasses.replace(task(2, "n2"), draining=True)
    m = mirror([web(ports=(PublishedPort(8080, 80),))], [task(1, "n3"), draining])
    plan = plan_network(m, "net1")
    assert plan is not None and plan.neigh["10.96.1.12"] == vx_mac(2, 4097)
    rules = service_rules(m, "web")
    assert rules.balanced == {"10.96.1.2": ("10.96.1.11",)}
    assert [r.addresses for r in rules.mesh] == [("10.96.1.11",)]


def test_a_vip_without_endpoints_is_only_refused_and_dnsrr_has_none() -> None:
    t = table_of(mirror([web()], []))
    assert t.vips == {} and t.vip_addrs == {"10.96.1.2", "10.96.2.2"}
    t = table_of(mirror([web(mode="dnsrr")], [task(1, "n2")]))
    assert t.vips == {} and t.vip_addrs == set()


def test_mesh_prefers_local_tasks_and_counts_a_task_once() -> None:
    ports = (PublishedPort(8080, 80), PublishedPort(53, 5353, "udp"))
    # t1 is on both networks: one replica, reached on the first network.
    endpoints = [task(1, "n2"), task(1, "n2", DB), task(2, "n3")]
    remote = table_of(mirror([web(ports=ports)], endpoints))
    assert remote.mesh == {("tcp", 8080): "mesh_tcp_8080", ("udp", 53): "mesh_udp_53"}
    assert remote.chains["mesh_tcp_8080"].signature == ("mep_tcp_10_96_1_11_80", "mep_tcp_10_96_1_12_80")
    assert remote.chains["mep_udp_10_96_1_11_5353"].rules[-1] == "meta l4proto udp dnat to 10.96.1.11:5353"
    local = table_of(mirror([web(ports=ports)], [*endpoints, task(3, "n1", DB)]))
    assert local.chains["mesh_tcp_8080"].signature == ("mep_tcp_10_96_2_13_80",)


def test_a_port_published_twice_goes_to_the_first_service() -> None:
    api = ServiceRoute("api", "api", networks=(ServiceNetwork("net2", "10.96.2.3"),),
                       ports=(PublishedPort(8080, 90),))
    m = mirror([web(ports=(PublishedPort(8080, 80),)), api], [task(1, "n1"), task(2, "n1", DB, "api")])
    problems: list[str] = []
    plans = [p for p in (plan_network(m, nid) for nid in m.networks) if p is not None]
    t = build({sid: service_rules(m, sid) for sid in m.services}, plans, problems)
    assert t.chains["mesh_tcp_8080"].signature == ("mep_tcp_10_96_2_12_90",)  # "api" < "web"
    assert problems == ["service web: port 8080/tcp is published by another service too; "
                        "the first keeps it"]


def test_overlapping_subnets_keep_the_first() -> None:
    wide = OverlayNetwork("net3", "wide", "10.96.0.0/16", 4099)
    m = mirror([], [], networks=(APP, wide))
    problems: list[str] = []
    plans = [p for p in (plan_network(m, nid) for nid in m.networks) if p is not None]
    assert build({}, plans, problems).subnets == {"10.96.1.0/24"}
    assert problems == ["subnet 10.96.0.0/16 overlaps 10.96.1.0/24; it is left out of the VIP rules"]


# ---- transactions -----------------------------------------------------------------


def test_the_first_transaction_makes_the_whole_table() -> None:
    t = table_of(mirror([web(ports=(PublishedPort(8080, 80),))], [task(1, "n1"), task(2, "n2")]))
    script = transaction(None, t)
    lines = script.splitlines()
    assert lines[:3] == ["add table ip orch_svc", "delete table ip orch_svc", "add table ip orch_svc"]
    assert f'comment "orch_svc schema {SCHEMA}"' in script
    assert "add element ip orch_svc vips { 10.96.1.2 : goto svc_10_96_1_2 }" in lines
    assert "add element ip orch_svc mesh { tcp . 8080 : goto mesh_tcp_8080 }" in lines
    assert "add element ip orch_svc mesh_peers { 02:4f:00:02:10:01 : 0x40010002, 02:4f:00:02:10:02 : " \
           "0x40020002, 02:4f:00:03:10:01 : 0x40010003, 02:4f:00:03:10:02 : 0x40020003 }" in lines
    # A chain exists before anything goes to it.
    steps = ("add chain ip orch_svc ep_10_96_1_12", "add chain ip orch_svc svc_10_96_1_2",
             "add element ip orch_svc vips { 10.96.1.2 : goto svc_10_96_1_2 }")
    order = [lines.index(step) for step in steps]
    assert order == sorted(order)
    assert transaction(t, t) == ""


def test_an_endpoint_going_rewrites_only_its_service_chain() -> None:
    before = table_of(mirror([web()], [task(1, "n1"), task(2, "n2"), task(3, "n2")]))
    after = table_of(mirror([web()], [task(1, "n1"), task(3, "n2")]))
    assert transaction(before, after).splitlines() == [
        "flush chain ip orch_svc svc_10_96_1_2",
        "add rule ip orch_svc svc_10_96_1_2 numgen random mod 2 vmap "
        "{ 0 : goto ep_10_96_1_11, 1 : goto ep_10_96_1_13 }",
        "flush chain ip orch_svc ep_10_96_1_12",
        "delete chain ip orch_svc ep_10_96_1_12",
    ]
    # The last task of a node going takes that node's entries with it.
    alone = table_of(mirror([web()], [task(1, "n1")]))
    assert "delete element ip orch_svc peer_addrs { 10.89.0.12 }" in transaction(after, alone).splitlines()


def test_a_service_going_drops_its_elements_before_its_chains() -> None:
    api = ServiceRoute("api", "api", networks=(ServiceNetwork("net2", "10.96.2.3"),))
    before = table_of(mirror([web(), api], [task(1, "n1"), task(2, "n1", DB, "api")]))
    after = table_of(mirror([web()], [task(1, "n1")]))
    assert transaction(before, after).splitlines() == [
        "delete element ip orch_svc vips { 10.96.2.3 }",
        "flush chain ip orch_svc svc_10_96_2_3",
        "delete chain ip orch_svc svc_10_96_2_3",
        "flush chain ip orch_svc ep_10_96_2_12",
        "delete chain ip orch_svc ep_10_96_2_12",
        "delete element ip orch_svc vip_addrs { 10.96.2.3 }",
    ]


def test_loopback_clients_leave_the_overlay_from_the_underlay_address() -> None:
    m = mirror([web(ports=(PublishedPort(8080, 80),))], [task(1, "n2")])
    plans = [p for p in (plan_network(m, nid) for nid in m.networks) if p is not None]
    t = build({"web": service_rules(m, "web")}, plans, snat="10.89.0.11")
    assert t.schema != SCHEMA  # the address is part of the layout
    assert ('add rule ip orch_svc postrouting oifname "vx-*" ip saddr 127.0.0.0/8 ct status dnat '
            "snat to 10.89.0.11") in transaction(None, t).splitlines()


def test_another_layout_rebuilds_the_table_in_one_transaction() -> None:
    t = table_of(mirror([web()], [task(1, "n1")]))
    old = TableState(schema="0" * 16, vips=dict(t.vips), chains=dict(t.chains))
    assert transaction(old, t).startswith("add table ip orch_svc\ndelete table ip orch_svc\n")


def test_the_kernels_listing_is_read_back_as_the_same_facts() -> None:
    t = table_of(mirror([web(ports=(PublishedPort(8080, 80),))], [task(1, "n1"), task(2, "n2")]))
    listing = {"nftables": [
        {"set": {"name": "subnets", "elem": [{"prefix": {"addr": "10.96.1.0", "len": 24}},
                                             {"prefix": {"addr": "10.96.2.0", "len": 24}}]}},
        {"set": {"name": "same_net", "elem": [
            {"concat": [{"prefix": {"addr": n, "len": 24}}, {"prefix": {"addr": n, "len": 24}}]}
            for n in ("10.96.1.0", "10.96.2.0")]}},
        {"set": {"name": "vip_addrs", "elem": sorted(t.vip_addrs)}},
        {"set": {"name": "peer_addrs", "elem": sorted(t.peer_addrs)}},
        {"map": {"name": "vips", "elem": [["10.96.1.2", {"goto": {"target": "svc_10_96_1_2"}}]]}},
        {"map": {"name": "mesh", "elem": [[{"concat": ["tcp", 8080]},
                                           {"goto": {"target": "mesh_tcp_8080"}}]]}},
        {"map": {"name": "mesh_peers", "elem": [[mac, mark] for mac, mark in t.mesh_peers.items()]}},
        *({"chain": {"name": name}} for name in (*t.chains, "refuse", "prerouting", "output", "postrouting",
                                                 "mangle", "unmark", "forward", "input", "local_out")),
        {"rule": {"chain": "prerouting", "comment": f"orch_svc schema {SCHEMA}", "expr": []}},
        *({"rule": {"chain": name, "expr": [_expr(chain.signature)]}} for name, chain in t.chains.items()),
    ]}
    assert transaction(parse(listing), t) == ""
    # A balancer the kernel has otherwise is rewritten, and only it.
    listing["nftables"][-1]["rule"]["expr"] = [_expr(("ep_10_96_1_11",))]  # type: ignore[index]
    changed = [name for name, chain in t.chains.items() if chain.signature != ("ep_10_96_1_11",)]
    assert transaction(parse(listing), t).splitlines()[0] == f"flush chain ip orch_svc {changed[-1]}"


def _expr(signature: tuple[object, ...]) -> dict[str, object]:
    if signature[0] == "dnat":
        return {"dnat": {"addr": signature[1], **({"port": signature[2]} if signature[2] else {})}}
    return {"vmap": {"key": {"numgen": {"mode": "random", "mod": len(signature), "offset": 0}},
                     "data": {"set": [[i, {"goto": {"target": t}}] for i, t in enumerate(signature)]}}}


def test_only_endpoints_that_appear_may_wait_for_the_next_pass() -> None:
    new = task(1, "n2")
    key = endpoint_key(new.task_id, new.network_id)
    assert Batch(endpoints={key: new}).only_new_endpoints()
    assert not Batch(endpoints={key: new, "gone/net1": None}).only_new_endpoints()  # a removal: at once
    assert not Batch(endpoints={key: new}, services={"web": web()}).only_new_endpoints()
    assert not Batch(endpoints={key: new}, networks={APP.id: APP}).only_new_endpoints()
    assert not Batch(endpoints={key: new}, peers={"n4": None}).only_new_endpoints()
    assert not Batch(node_id="n1", endpoints={key: new}).only_new_endpoints()
