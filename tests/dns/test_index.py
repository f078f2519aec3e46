"""The name index (pure): it follows the hub's updates in O(changes) and
must always answer as a lookup computed from the whole state would."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import InvalidArgument
from nodeagent.dns.index import NameIndex
from nodeagent.dns.node import scope_from_event
from nodeagent.dns.scope import Attachment, ContainerScope
from nodeagent.dns.upstreams import Upstream, host_upstreams, parse_upstreams
from nodeagent.network.state import (
    Endpoint,
    NetworkState,
    NetworkStateHub,
    ServiceNetwork,
    ServiceRoute,
    StateUpdate,
)

NETS = ["n1", "n2"]
NAMES = ["api", "web", "db"]


def naive(state: NetworkState, scope: ContainerScope, qname: str) -> tuple[str, ...] | None:
    """The answer computed from the whole state, the slow way."""
    name = qname.rstrip(".").lower()
    for att in scope.networks:
        for candidate in (name, name[:-len("." + att.network_name)]
                          if name.endswith("." + att.network_name) else None):
            if candidate is None:
                continue
            found = _on(state, att.network_id, candidate)
            if found is not None:
                return found
    return None


def _on(state: NetworkState, net: str, name: str) -> tuple[str, ...] | None:
    def eps(sids: list[str]) -> set[str]:
        return {e.address for e in state.endpoints.values() if e.service_id in sids and e.network_id == net}

    svcs = [s for s in state.services.values() for sn in s.networks
            if sn.network_id == net and name in {s.name, *sn.aliases}]
    if svcs:
        vips = {sn.vip for s in svcs if s.endpoint_mode == "vip" for sn in s.networks
                if sn.network_id == net and sn.vip}
        return tuple(sorted(vips)) + tuple(sorted(eps([s.id for s in svcs if s.endpoint_mode == "dnsrr"])))
    tasks = {e.address for e in state.endpoints.values() if e.network_id == net and e.name == name}
    if tasks:
        return tuple(sorted(tasks))
    if name.startswith("tasks."):
        svcs = [s for s in state.services.values() for sn in s.networks
                if sn.network_id == net and name[6:] in {s.name, *sn.aliases}]
        if svcs:
            return tuple(sorted(eps([s.id for s in svcs])))
    return None


services = st.builds(
    ServiceRoute, id=st.sampled_from(["s1", "s2", "s3"]), name=st.sampled_from(NAMES),
    endpoint_mode=st.sampled_from(["vip", "dnsrr"]),
    networks=st.lists(st.builds(ServiceNetwork, network_id=st.sampled_from(NETS),
                                vip=st.sampled_from(["", "10.0.0.2", "10.0.0.3"]),
                                aliases=st.lists(st.sampled_from([*NAMES, "alias"]), max_size=2).map(tuple)),
                      max_size=2, unique_by=lambda sn: sn.network_id).map(tuple))
endpoints = st.builds(
    Endpoint, task_id=st.sampled_from(["t1", "t2", "t3", "t4"]),
    service_id=st.sampled_from(["s1", "s2", "s3"]),
    network_id=st.sampled_from(NETS), address=st.sampled_from([f"10.0.1.{i}" for i in range(1, 6)]),
    node_id=st.just("n"), name=st.sampled_from(["api.1.t1", "web.2.t2", "db.1.t3"]))
updates = st.builds(
    StateUpdate, full=st.booleans(), services=st.lists(services, max_size=3),
    removed_services=st.lists(st.sampled_from(["s1", "s2", "s3"]), max_size=2),
    endpoints=st.lists(endpoints, max_size=4),
    removed_endpoints=st.lists(st.sampled_from([f"t{i}/{n}" for i in range(1, 5) for n in NETS]), max_size=2))
QUERIES = ["api", "web.", "DB", "alias", "tasks.api", "tasks.alias", "api.1.t1", "web.n1", "nope",
           "tasks.db.n2", "api.n2"]
SCOPES = [ContainerScope(networks=(Attachment("n1", "n1"),)),
          ContainerScope(networks=(Attachment("n2", "n2"),)),
          ContainerScope(networks=(Attachment("n2", "n2"), Attachment("n1", "n1")))]


@settings(max_examples=300, deadline=None)
@given(st.lists(updates, min_size=1, max_size=6))
def test_the_index_answers_as_the_whole_state_does(batch: list[StateUpdate]) -> None:
    hub = NetworkStateHub()
    index = NameIndex()
    hub.apply(batch[0])
    hub.subscribe(index.follow)  # late: it is given everything there is
    for update in batch[1:]:
        hub.apply(update)
    for scope in SCOPES:
        for q in QUERIES:
            got = index.resolve(scope, q)
            assert (None if got is None else tuple(sorted(got.addresses))) == \
                (None if (want := naive(hub.state, scope, q)) is None else tuple(sorted(want))), (scope, q)


def test_local_containers_publish_only_where_they_are() -> None:
    index = NameIndex()
    index.set_container("a", ContainerScope("alpha", (Attachment("x", "x", "10.1.0.2", ("al",)),),
                                            publish=True))
    index.set_container("b", ContainerScope("beta", (Attachment("x", "x", "10.1.0.3"),)))  # publishes nothing
    on_x = ContainerScope(networks=(Attachment("x", "x"),))
    on_y = ContainerScope(networks=(Attachment("y", "y"),))
    assert index.resolve(on_x, "alpha").addresses == ("10.1.0.2",)  # type: ignore[union-attr]
    assert index.resolve(on_x, "AL.x.").addresses == ("10.1.0.2",)  # type: ignore[union-attr]
    assert index.resolve(on_x, "beta") is None
    assert index.resolve(on_y, "alpha") is None
    index.set_container("a", ContainerScope("alpha", (Attachment("x", "x", "10.1.0.9"),), publish=True))
    assert index.resolve(on_x, "alpha").addresses == ("10.1.0.9",)  # type: ignore[union-attr]
    assert index.resolve(on_x, "al") is None
    index.drop_container("a")
    assert index.resolve(on_x, "alpha") is None


def test_scope_from_the_supervisor_event() -> None:
    overlay = scope_from_event({
        "id": "c1", "name": "web.1.x", "bridge": "", "ip_address": "10.88.0.5",
        "networks": [{"network_id": "n1", "network_name": "front", "address": "10.96.1.7/24",
                      "aliases": ["w"], "ifname": "eth1"}]})
    assert overlay == ContainerScope("web.1.x", (Attachment("n1", "front", "10.96.1.7", ("w",)),))
    assert not overlay.publish
    engine = scope_from_event({"id": "c2", "name": "db", "bridge": "ob-1", "ip_address": "10.90.0.2",
                               "network_aliases": ["pg"], "networks": []},
                              lambda bridge: ("netid", "appnet") if bridge == "ob-1" else None)
    assert engine == ContainerScope("db", (Attachment("netid", "appnet", "10.90.0.2", ("pg",)),),
                                    publish=True)
    orphan = scope_from_event({"id": "c3", "name": "x", "bridge": "ob-gone", "ip_address": "10.90.0.3"},
                              lambda bridge: None)
    assert orphan == ContainerScope("x")


@pytest.mark.parametrize(("text", "want"), [
    ("none", []), ("NONE", []),
    ("1.1.1.1", [Upstream("1.1.1.1")]),
    ("10.0.0.1:5353, 2001:db8::1", [Upstream("10.0.0.1", 5353), Upstream("2001:db8::1")]),
    ("[2001:db8::1]:54", [Upstream("2001:db8::1", 54)]),
])
def test_dns_upstream_parses(text: str, want: list[Upstream]) -> None:
    assert parse_upstreams(text) == want


@pytest.mark.parametrize("text", ["", "dns.example", "1.2.3.4:0", "1.2.3.4:99999", "1.2.3.4,", "[::1",
                                  "1.2.3"])
def test_dns_upstream_refuses_with_the_bad_address(text: str) -> None:
    with pytest.raises(InvalidArgument, match="--dns-upstream"):
        parse_upstreams(text)


def test_host_upstreams_leave_out_loopback(tmp_path: pytest.TempPathFactory) -> None:
    conf = tmp_path / "resolv.conf"  # type: ignore[operator]
    conf.write_text("# comment\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\n"
                    "nameserver fe80::1%eth0\nsearch example\nnameserver bogus\n")
    assert host_upstreams(str(conf)) == [Upstream("10.0.0.2"), Upstream("fe80::1")]
    assert host_upstreams(str(conf) + ".missing") == []


def test_a_name_with_the_askers_own_domain_is_looked_up_without_it() -> None:
    hub = NetworkStateHub()
    index = NameIndex()
    hub.subscribe(index.follow)
    hub.apply(StateUpdate(services=[ServiceRoute("s1", "api", networks=(ServiceNetwork("n1", "10.0.0.2"),))]))
    scope = scope_from_event({"id": "c", "name": "client.1.x2", "hostname": "client.1.x2",
                              "networks": [{"network_id": "n1", "network_name": "front",
                                            "address": "10.0.0.9/24"}]})
    assert scope.domain == "1.x2"
    for name in ("api", "api.1.x2", "API.1.X2.", "api.front.1.x2"):
        assert index.resolve(scope, name).addresses == ("10.0.0.2",), name  # type: ignore[union-attr]
    for name in ("1.x2", "api.2.x2", "api.1"):
        assert index.resolve(scope, name) is None, name
