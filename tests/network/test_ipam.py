"""Address pool: pure logic plus the locked lease file."""

from __future__ import annotations

import ipaddress
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.errors import AgentError, InvalidArgument
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


def test_lease_changes_are_appended_not_replaced(tmp_path: Path) -> None:
    lf = LeaseFile(str(tmp_path), "x", NET)
    with lf.locked() as pool:
        pool.allocate("a")
    inode = os.stat(lf.path).st_ino
    with lf.locked() as pool:
        pool.allocate("b")
    with lf.locked() as pool:
        pool.release("a")
    assert os.stat(lf.path).st_ino == inode  # no file was replaced
    lines = Path(lf.path).read_text().splitlines()
    assert len(lines) == 3
    assert json.loads(lines[2]) == {"set": {}, "del": ["a"]}
    assert LeaseFile(str(tmp_path), "x", NET).leases() == {"b": "10.199.7.3"}


def test_a_change_by_another_process_is_seen(tmp_path: Path) -> None:
    mine, theirs = LeaseFile(str(tmp_path), "x", NET), LeaseFile(str(tmp_path), "x", NET)
    with mine.locked() as pool:
        pool.allocate("a")
    with theirs.locked() as pool:
        assert pool.allocate("b") == ipaddress.IPv4Address("10.199.7.3")
    with mine.locked() as pool:  # its cached leases are stale: it reads again
        assert pool.allocate("c") == ipaddress.IPv4Address("10.199.7.4")
    assert theirs.leases() == {"a": "10.199.7.2", "b": "10.199.7.3", "c": "10.199.7.4"}


def test_a_torn_last_line_is_ignored_then_rewritten(tmp_path: Path) -> None:
    lf = LeaseFile(str(tmp_path), "x", NET)
    with lf.locked() as pool:
        pool.allocate("a")
    with open(lf.path, "a") as f:
        f.write('{"set": {"b": "10.19')  # a crash mid-write
    fresh = LeaseFile(str(tmp_path), "x", NET)
    assert fresh.leases() == {"a": "10.199.7.2"}
    with fresh.locked() as pool:
        pool.allocate("c")
    assert Path(lf.path).read_text().count("\n") == 1  # one whole snapshot
    assert LeaseFile(str(tmp_path), "x", NET).leases() == {"a": "10.199.7.2", "c": "10.199.7.3"}


def test_an_older_single_document_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "ipam-x.json"
    path.write_text(json.dumps({"subnet": str(NET), "leases": {"a": "10.199.7.2"}}))  # no newline
    lf = LeaseFile(str(tmp_path), "x", NET)
    with lf.locked() as pool:
        assert pool.allocate("b") == ipaddress.IPv4Address("10.199.7.3")
    assert LeaseFile(str(tmp_path), "x", NET).leases() == {"a": "10.199.7.2", "b": "10.199.7.3"}


def test_the_journal_is_compacted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(LeaseFile, "COMPACT_BYTES", 512)
    lf = LeaseFile(str(tmp_path), "x", NET)
    for i in range(40):
        with lf.locked() as pool:
            pool.allocate(f"c{i % 3}")
            pool.release(f"c{(i + 1) % 3}")
        assert os.path.getsize(lf.path) < 512 + 100
    assert LeaseFile(str(tmp_path), "x", NET).leases() == lf.leases()
