"""Address pool: pure logic plus the locked lease file."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nodeagent.errors import AgentError, InvalidArgument
from nodeagent.network.ipam import AddressPool, LeaseFile, PoolExhausted, parse_subnet

NET = ipaddress.IPv4Network("10.199.7.0/29")  # hosts .1-.6; .1 is the gateway


def test_first_address_follows_gateway() -> None:
    pool = AddressPool(ipaddress.IPv4Network("10.88.0.0/16"))
    assert str(pool.allocate("a")) == "10.88.0.2"
    assert str(pool.allocate("b")) == "10.88.0.3"


def test_same_id_gets_same_address() -> None:
    pool = AddressPool(NET)
    assert pool.allocate("a") == pool.allocate("a")
    assert len(pool.leases) == 1


def test_exhaustion_raises_clear_error() -> None:
    pool = AddressPool(NET)
    for i in range(5):
        pool.allocate(f"c{i}")
    with pytest.raises(PoolExhausted, match=r"no free address left in 10\.199\.7\.0/29"):
        pool.allocate("one-too-many")
    assert issubclass(PoolExhausted, AgentError)


def test_release_frees_address_for_reuse() -> None:
    pool = AddressPool(NET)
    addr = pool.allocate("a")
    pool.release("a")
    pool.release("a")  # idempotent
    assert pool.allocate("b") == addr


@pytest.mark.parametrize("bad", ["10.0.0.1/24", "nonsense", "10.0.0.0/31", "fd00::/64"])
def test_bad_subnets_rejected(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_subnet(bad)


ops = st.lists(st.tuples(st.booleans(), st.integers(min_value=0, max_value=9)), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops=ops, prefix=st.integers(min_value=27, max_value=30))
def test_pool_invariants(ops: list[tuple[bool, int]], prefix: int) -> None:
    net = ipaddress.IPv4Network(f"10.199.9.0/{prefix}")
    pool = AddressPool(net)
    forbidden = {net.network_address, net.broadcast_address, net.network_address + 1}
    capacity = net.num_addresses - 3
    for is_alloc, n in ops:
        cid = f"c{n}"
        if is_alloc:
            try:
                addr = pool.allocate(cid)
            except PoolExhausted:
                assert cid not in pool.leases and len(pool.leases) == capacity
                continue
            assert addr in net and addr not in forbidden
            assert pool.leases[cid] == str(addr)
        else:
            pool.release(cid)
        values = list(pool.leases.values())
        assert len(values) == len(set(values)), "an address was handed out twice"


def test_lease_file_persists_and_removes(tmp_path: Path) -> None:
    lf = LeaseFile(str(tmp_path), "orchtest", NET)
    with lf.locked() as pool:
        a = pool.allocate("a")
    again = LeaseFile(str(tmp_path), "orchtest", NET)
    with again.locked() as pool:
        assert pool.allocate("a") == a
        assert pool.allocate("b") != a
    assert again.leases() == {"a": str(a), "b": "10.199.7.3"}
    again.remove()
    assert list(tmp_path.iterdir()) == []


def test_lease_file_for_other_subnet_is_refused(tmp_path: Path) -> None:
    with LeaseFile(str(tmp_path), "x", NET).locked() as pool:
        pool.allocate("a")
    with (
        pytest.raises(AgentError, match=r"not 10\.199\.8\.0/29"),
        LeaseFile(str(tmp_path), "x", ipaddress.IPv4Network("10.199.8.0/29")).locked(),
    ):
        pass
