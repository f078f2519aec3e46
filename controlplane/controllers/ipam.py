"""Address management: networks' subnets and VNIs, tasks' addresses and services' VIPs.

Pure decisions, no I/O; what is in use is an argument, so the store stays the
one truth (the informer's address index) and a leader that starts rebuilds
nothing but cursors.

- Subnets: a network gets the first /24 of the cluster's pool that overlaps
  no other network's subnet, or the subnet it asks for if that overlaps none;
  VNIs: the lowest unused from ``MIN_VNI``. The caller makes the choice safe
  across control-plane replicas (the store's networks guard).
- Addresses (``AddressPool``, one per network): serial, as swarmkit's IPAM:
  each allocation takes the next free address after the last one given,
  wrapping around, so an address just freed (a task that ended) is the last to
  be given again. The network address, ``.1`` and the broadcast address are
  never given (``model.networks.host_bounds``).
- Within a pass, an address given is *reserved* until the write holding it is
  in the cache (``settle``): two tasks of one pass never share one, and one
  whose write failed is free again.

Invariant (tested as a property): under any sequence of allocations, frees,
settles and rebuilds, no address is given while the store or a reservation
holds it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

from model.networks import host_bounds, parse_subnet

__all__ = [
    "DEFAULT_POOL",
    "MAX_VNI",
    "MIN_VNI",
    "NETWORK_PREFIX",
    "AddressPool",
    "Ipam",
    "IpamError",
    "check_subnet",
    "next_subnet",
    "next_vni",
    "parse_pool",
]

DEFAULT_POOL = "10.96.0.0/11"
NETWORK_PREFIX = 24  # the size of a network taken from the pool
MIN_VNI = 4096
MAX_VNI = (1 << 24) - 1

InUse = Callable[[int], bool]


class IpamError(ValueError):
    """A subnet or pool that cannot be used, or none left; the message says which and why."""


def parse_pool(text: str) -> ipaddress.IPv4Network:
    """The cluster's pool (``--network-pool``): IPv4, holding at least one /24."""
    try:
        pool = ipaddress.IPv4Network(text, strict=True)
    except ValueError as err:
        raise IpamError(f"invalid network pool {text!r}: {err}; expected an IPv4 CIDR such as "
                        f"{DEFAULT_POOL}") from None
    if pool.prefixlen > NETWORK_PREFIX:
        raise IpamError(f"invalid network pool {text!r}: it must hold a /{NETWORK_PREFIX} at least "
                        f"(a prefix of /{NETWORK_PREFIX} or less)")
    return pool


def _subnets(existing: Iterable[str]) -> list[ipaddress.IPv4Network]:
    out = []
    for text in existing:
        try:
            out.append(ipaddress.IPv4Network(text))
        except ValueError:
            continue  # not ours to judge here: it holds nothing a new subnet could overlap
    return out


def check_subnet(text: str, existing: dict[str, str]) -> ipaddress.IPv4Network:
    """A subnet a network asks for: valid, and overlapping none of ``existing``
    (network name -> subnet)."""
    try:
        subnet = parse_subnet(text)
    except ValueError as err:
        raise IpamError(str(err)) from None
    for name, other in sorted(existing.items()):
        for net in _subnets([other]):
            if subnet.overlaps(net):
                raise IpamError(f"subnet {subnet} overlaps network {name}'s {net}")
    return subnet


def next_subnet(pool: ipaddress.IPv4Network, existing: Iterable[str]) -> ipaddress.IPv4Network:
    """The first /24 of ``pool`` that overlaps none of the ``existing`` subnets."""
    taken = sorted(_subnets(existing), key=lambda n: int(n.network_address))
    size = 1 << (32 - NETWORK_PREFIX)
    candidate = int(pool.network_address)
    end = int(pool.broadcast_address)
    while candidate + size - 1 <= end:
        block = ipaddress.IPv4Network((candidate, NETWORK_PREFIX))
        clash = next((n for n in taken if n.overlaps(block)), None)
        if clash is None:
            return block
        # Jump past the clash (a big subnet may cover many blocks), aligned to a block.
        after = int(clash.broadcast_address) + 1
        candidate = max(candidate + size, (after + size - 1) // size * size)
    raise IpamError(f"the network pool {pool} is exhausted: every /{NETWORK_PREFIX} of it is taken; "
                    "remove networks, or start the control plane with a larger --network-pool")


def next_vni(existing: Iterable[int]) -> int:
    taken = set(existing)
    vni = MIN_VNI
    while vni in taken:
        vni += 1
    if vni > MAX_VNI:
        raise IpamError("no VXLAN network identifier is left")
    return vni


def _format(address: int, prefix: int) -> str:
    return f"{ipaddress.IPv4Address(address)}/{prefix}"


class AddressPool:
    """One network's addresses: serial allocation over what ``in_use`` says is
    taken, plus this pass's reservations."""

    def __init__(self, subnet: str, last: int | None = None) -> None:
        net = ipaddress.IPv4Network(subnet)
        self.prefix = net.prefixlen
        self.first, self.last_host = host_bounds(net)
        # The last address given (the cursor); the next one tried is after it.
        self.cursor = self.first - 1 if last is None or not self.first <= last <= self.last_host else last
        self.reserved: set[int] = set()
        # Found full in this pass: the tasks that wait for it do not each scan it again.
        self.full = False

    @property
    def size(self) -> int:
        return max(0, self.last_host - self.first + 1)

    def allocate(self, in_use: InUse) -> str | None:
        """The next free address as ``"IP/prefix"``, reserved; None when every one is taken."""
        if self.full:
            return None
        for step in range(1, self.size + 1):
            candidate = self.first + (self.cursor - self.first + step) % self.size
            if candidate in self.reserved or in_use(candidate):
                continue
            self.reserved.add(candidate)
            self.cursor = candidate
            return _format(candidate, self.prefix)
        self.full = True
        return None

    def release(self, address: int) -> None:
        """Give back a reservation whose write will not happen."""
        self.reserved.discard(address)

    def settle(self) -> None:
        """The writes of this pass are in the cache (or failed): forget the reservations."""
        self.reserved.clear()
        self.full = False


class Ipam:
    """The leader's pools, one per network, made when first needed: the cursor
    starts after the highest address in use, so a new leader does not hand out
    at once what its predecessor freed last."""

    def __init__(self, in_use: Callable[[str, int], bool], used: Callable[[str], Iterable[int]]) -> None:
        self._in_use = in_use  # (network id, address) -> taken in the store
        self._used = used  # network id -> the addresses taken in the store
        self._pools: dict[str, tuple[str, AddressPool]] = {}  # network id -> (subnet, pool)

    @property
    def pools(self) -> int:
        return len(self._pools)

    def pool(self, network_id: str, subnet: str) -> AddressPool:
        found = self._pools.get(network_id)
        if found is None or found[0] != subnet:
            taken = list(self._used(network_id))
            pool = AddressPool(subnet, max(taken) if taken else None)
            self._pools[network_id] = found = (subnet, pool)
        return found[1]

    def allocate(self, network_id: str, subnet: str) -> str | None:
        return self.pool(network_id, subnet).allocate(lambda a: self._in_use(network_id, a))

    def release(self, network_id: str, address: str) -> None:
        found = self._pools.get(network_id)
        if found is not None:
            found[1].release(int(ipaddress.IPv4Address(address.partition("/")[0])))

    def settle(self) -> None:
        for _, pool in self._pools.values():
            pool.settle()

    def forget(self, keep: Iterable[str]) -> None:
        """Drop the pools of networks not in ``keep`` (removed networks)."""
        wanted = set(keep)
        for network_id in [n for n in self._pools if n not in wanted]:
            del self._pools[network_id]
