"""The address allocator (controlplane.controllers.ipam), pure: subnets from the
pool, VNIs, and tasks' and VIPs' addresses, serial, never one in use."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane.controllers.ipam import (
    DEFAULT_POOL,
    MIN_VNI,
    AddressPool,
    Ipam,
    IpamError,
    check_subnet,
    next_subnet,
    next_vni,
    parse_pool,
)


def _ip(text: str) -> int:
    return int(ipaddress.IPv4Address(text.partition("/")[0]))


def test_the_pool_gives_the_first_free_24() -> None:
    pool = parse_pool(DEFAULT_POOL)
    assert str(next_subnet(pool, [])) == "10.96.0.0/24"
    assert str(next_subnet(pool, ["10.96.0.0/24", "10.96.2.0/24"])) == "10.96.1.0/24"
    # A larger subnet in the pool is skipped whole; one outside it is no obstacle.
    assert str(next_subnet(pool, ["10.96.0.0/22", "192.168.0.0/24"])) == "10.96.4.0/24"
    # A /32 (a node's address) blocks the /24 that holds it.
    assert str(next_subnet(pool, ["10.96.0.7/32"])) == "10.96.1.0/24"


def test_an_exhausted_pool_says_so() -> None:
    pool = parse_pool("10.200.0.0/23")
    with pytest.raises(IpamError, match=r"the network pool 10\.200\.0\.0/23 is exhausted"):
        next_subnet(pool, ["10.200.0.0/24", "10.200.1.0/24"])


@pytest.mark.parametrize(("text", "message"), [
    ("10.96.0.0/25", "it must hold a /24"),
    ("10.96.0.1/16", "invalid network pool"),
    ("nonsense", "invalid network pool"),
])
def test_bad_pools_are_refused(text: str, message: str) -> None:
    with pytest.raises(IpamError, match=message):
        parse_pool(text)


@pytest.mark.parametrize(("text", "message"), [
    ("10.96.5.0/24", "overlaps network a's 10.96.5.0/24"),
    ("10.96.0.0/16", "overlaps network a's 10.96.5.0/24"),
    ("10.96.5.128/25", "overlaps network a's 10.96.5.0/24"),
    ("10.96.5.1/24", "host bits are set; did you mean 10.96.5.0/24"),
    ("10.96.5.0/30", "the prefix must be /8 to /29"),
    ("10.0.0.0/7", "the prefix must be /8 to /29"),
    ("127.1.0.0/16", "overlaps 127.0.0.0/8"),
    ("169.254.0.0/24", "overlaps 169.254.0.0/16"),
    ("10.96.5.0", "give its prefix"),
    ("2001:db8::/64", "expected an IPv4 CIDR"),
])
def test_asked_subnets_must_be_valid_and_free(text: str, message: str) -> None:
    with pytest.raises(IpamError, match=message):
        check_subnet(text, {"a": "10.96.5.0/24"})


def test_an_asked_subnet_next_to_others_is_taken() -> None:
    assert str(check_subnet("10.96.6.0/24", {"a": "10.96.5.0/24"})) == "10.96.6.0/24"


def test_vnis_start_at_4096_and_take_the_lowest_free() -> None:
    assert next_vni([]) == MIN_VNI == 4096
    assert next_vni([4096, 4097, 4099]) == 4098


def test_addresses_skip_the_network_the_first_host_and_broadcast() -> None:
    pool = AddressPool("10.96.5.0/29")  # .0 network, .1 kept free, .7 broadcast
    given = [pool.allocate(lambda a: False) for _ in range(6)]
    assert given == ["10.96.5.2/29", "10.96.5.3/29", "10.96.5.4/29", "10.96.5.5/29", "10.96.5.6/29", None]


def test_allocation_is_serial_so_a_freed_address_comes_back_last() -> None:
    used: set[int] = set()
    pool = AddressPool("10.96.5.0/29")
    for _ in range(3):
        address = pool.allocate(used.__contains__)
        assert address is not None
        used.add(_ip(address))
        pool.settle()
    used.discard(_ip("10.96.5.2"))  # the first task ended
    assert pool.allocate(used.__contains__) == "10.96.5.5/29"  # the next after the last given
    pool.settle()
    used.add(_ip("10.96.5.5"))
    assert pool.allocate(used.__contains__) == "10.96.5.6/29"
    used.add(_ip("10.96.5.6"))
    pool.settle()
    assert pool.allocate(used.__contains__) == "10.96.5.2/29"  # wrapped round to the freed one


def test_a_reservation_holds_until_settled_and_a_release_gives_it_back() -> None:
    pool = AddressPool("10.96.5.0/29")
    first = pool.allocate(lambda a: False)
    second = pool.allocate(lambda a: False)
    assert first != second  # nothing stored yet: the reservation alone keeps them apart
    assert first is not None
    pool.release(_ip(first))
    assert _ip(first) not in pool.reserved


def test_a_new_leaders_pool_starts_after_the_highest_address_in_use() -> None:
    stored = {"net": {_ip("10.96.5.2"), _ip("10.96.5.9")}}
    ipam = Ipam(lambda net, a: a in stored[net], lambda net: stored[net])
    assert ipam.allocate("net", "10.96.5.0/24") == "10.96.5.10/24"


# ---- properties -------------------------------------------------------------------

OPS = st.lists(st.one_of(
    st.tuples(st.just("allocate"), st.integers(0, 3)),  # how many in one pass
    st.tuples(st.just("fail"), st.integers(0, 3)),  # a pass whose write failed
    st.tuples(st.just("free"), st.integers(0, 30)),  # a task ended or was deleted (by position)
    st.tuples(st.just("rebuild"), st.just(0)),  # a new leader
), max_size=60)


@settings(max_examples=300, deadline=None)
@given(ops=OPS, prefix=st.sampled_from([29, 28, 27]))
def test_no_address_is_ever_given_twice_while_held(ops: list[tuple[str, int]], prefix: int) -> None:
    """The store is the truth; a pass reserves, writes (or fails to), then settles."""
    subnet = f"10.96.5.0/{prefix}"
    net = ipaddress.IPv4Network(subnet)
    hosts = net.num_addresses - 3
    store: dict[int, str] = {}  # address -> owner
    owners = iter(range(10**6))
    ipam = Ipam(lambda _net, a: a in store, lambda _net: store.keys())
    for op, n in ops:
        if op in ("allocate", "fail"):
            made = []
            for _ in range(n):
                address = ipam.allocate("net", subnet)
                if address is None:
                    assert len(store) + len(made) == hosts  # only when every address is held
                    break
                value = _ip(address)
                assert value not in store and value not in made
                assert int(net.network_address) + 2 <= value < int(net.broadcast_address)
                made.append(value)
            if op == "allocate":
                store.update((value, f"t{next(owners)}") for value in made)
            ipam.settle()
        elif op == "free" and store:
            del store[sorted(store)[n % len(store)]]
        elif op == "rebuild":
            ipam = Ipam(lambda _net, a: a in store, lambda _net: store.keys())


@settings(max_examples=200, deadline=None)
@given(taken=st.lists(st.integers(0, 40), unique=True, max_size=20), sizes=st.lists(
    st.sampled_from([22, 23, 24, 25, 26]), max_size=20))
def test_pool_subnets_never_overlap(taken: list[int], sizes: list[int]) -> None:
    pool = parse_pool("10.96.0.0/18")
    existing = [str(ipaddress.IPv4Network((int(pool.network_address) + i * 512, size), strict=False))
                for i, size in zip(taken, sizes, strict=False)]
    subnet = next_subnet(pool, existing)
    assert subnet.subnet_of(pool) and subnet.prefixlen == 24
    assert not any(subnet.overlaps(ipaddress.IPv4Network(e)) for e in existing)
