"""User-defined bridge networks of one node (engine mode), as Docker's
``docker network create``: each its own Linux bridge, subnet and nft table
(the ``BridgeNetwork`` machinery), isolated from the default bridge and
from each other both ways (each table drops whatever crosses its bridge's
edge), and containers on it resolve each other by name and alias through
the node's DNS server.

The definitions live in one small JSON file under the agent's state dir
(``<state>/network/engine-networks.json``), written whole (temp file and
rename) under a lock file, so they outlast agent restarts and the
supervisor reads them as the agent last wrote them. The agent writes; the
supervisor only reads (``bridges.BridgeNetworks`` finds a container's
bridge there).

Names: ``[A-Za-z0-9][A-Za-z0-9_.-]*``, at most 64 characters; ``bridge``,
``host`` and ``none`` are the built-in modes. Ids: 64 hex digits; a
network is named by its name, its id or a unique id prefix. Bridge:
``ob-`` and the id's first 12 digits (within IFNAMSIZ). Subnets: given, or
the first free /24 of ``AUTO_POOL``; never overlapping the default bridge's,
another network's, or a route of this network namespace.

A removal is two-phase: the network is marked ``removing`` first (a
container create naming it is refused from then on), then the agent checks
that no container uses it, and only then tears the bridge down and drops
the definition (or clears the mark). Since the supervisor handles a create
and the agent's list one at a time, a create either came before the list
(and is seen there) or after the mark (and is refused).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import os
import re
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from common.errors import AgentError, Conflict, InvalidArgument, NotFound

__all__ = ["AUTO_POOL", "BUILTIN", "EngineNetwork", "EngineNetworks", "bridge_name"]

BUILTIN = ("bridge", "host", "none")
AUTO_POOL = "10.90.0.0/16"  # /24s for networks created without --subnet
AUTO_PREFIX = 24
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
FILE = "engine-networks.json"


@dataclass(frozen=True)
class EngineNetwork:
    id: str
    name: str
    subnet: str
    bridge: str
    created_at: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    removing: bool = False

    @property
    def gateway(self) -> str:
        return str(ipaddress.IPv4Network(self.subnet).network_address + 1)


def bridge_name(network_id: str) -> str:
    return "ob-" + network_id[:12]


class EngineNetworks:
    """The node's user-defined networks, on disk under ``state_dir``/network."""

    def __init__(self, state_dir: str, default_subnet: str = "10.88.0.0/16") -> None:
        self.dir = os.path.join(state_dir, "network")
        self.path = os.path.join(self.dir, FILE)
        self.default_subnet = default_subnet

    # ---- reads (no lock: the file is replaced whole) ------------------------

    def all(self) -> list[EngineNetwork]:
        return sorted(self._read().values(), key=lambda n: n.name)

    def get(self, ref: str) -> EngineNetwork:
        """The network named ``ref`` (its name, id or a unique id prefix)."""
        return _find(self._read(), ref)

    def by_bridge(self, bridge: str) -> EngineNetwork | None:
        return next((n for n in self._read().values() if n.bridge == bridge), None)

    # ---- writes --------------------------------------------------------------

    def create(self, name: str, subnet: str = "", labels: dict[str, str] | None = None,
               taken: list[ipaddress.IPv4Network] | None = None) -> EngineNetwork:
        """A new network's definition (its bridge is the caller's to make).
        ``taken``: subnets in use on this node besides the networks' own
        (default: the routes of this network namespace)."""
        check_name(name)
        with self._locked() as nets:
            if any(n.name == name for n in nets.values()):
                raise Conflict(f"network {name!r} already exists")
            used = [ipaddress.IPv4Network(self.default_subnet)]
            used += [ipaddress.IPv4Network(n.subnet) for n in nets.values()]
            used += taken if taken is not None else routed_subnets()
            net = _pick_subnet(subnet, used)
            nid = os.urandom(32).hex()
            created = EngineNetwork(nid, name, str(net), bridge_name(nid), time.time(), dict(labels or {}))
            nets[nid] = created
        return created

    def mark_removing(self, ref: str, removing: bool = True) -> EngineNetwork:
        """Mark (or unmark) the network as being removed; it, as marked."""
        with self._locked() as nets:
            net = _find(nets, ref, removing_ok=True)
            nets[net.id] = EngineNetwork(**{**asdict(net), "removing": removing})
            return nets[net.id]

    def delete(self, network_id: str) -> None:
        with self._locked() as nets:
            nets.pop(network_id, None)

    # ---- the file ------------------------------------------------------------

    def _read(self) -> dict[str, EngineNetwork]:
        try:
            with open(self.path) as f:
                raw = json.load(f)
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise AgentError(f"cannot read the networks in {self.path}: {exc}") from None
        out = {}
        for item in raw.get("networks", []):
            try:
                net = EngineNetwork(**item)
            except TypeError as exc:
                raise AgentError(f"cannot read the networks in {self.path}: {exc}") from None
            out[net.id] = net
        return out

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, EngineNetwork]]:
        """The networks under an exclusive lock; written back if changed."""
        os.makedirs(self.dir, mode=0o700, exist_ok=True)
        fd = os.open(self.path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            nets = self._read()
            before = dict(nets)
            yield nets
            if nets != before:
                data = json.dumps({"networks": [asdict(n) for n in nets.values()]}, indent=1)
                tmp = self.path + ".tmp"
                with open(tmp, "w") as f:
                    f.write(data + "\n")
                os.replace(tmp, self.path)
        finally:
            os.close(fd)


def check_name(name: str) -> None:
    if name in BUILTIN:
        raise InvalidArgument(f"network name {name!r} is a built-in network mode; choose another name")
    if not NAME_RE.fullmatch(name):
        raise InvalidArgument(f"invalid network name {name!r}: 1 to 64 letters, digits, '_', '.' or '-', "
                              "starting with a letter or digit")


def _find(nets: dict[str, EngineNetwork], ref: str, removing_ok: bool = False) -> EngineNetwork:
    found = next((n for n in nets.values() if n.name == ref), None)
    if found is None and ref:
        by_id = [n for n in nets.values() if n.id.startswith(ref.lower())]
        if len(by_id) > 1:
            raise InvalidArgument(f"network id prefix {ref!r} is ambiguous: give more of it, or the name")
        found = by_id[0] if by_id else None
    if found is None:
        raise NotFound(f"network {ref!r} not found (see orch network ls)")
    if found.removing and not removing_ok:
        raise NotFound(f"network {found.name!r} is being removed")
    return found


def _pick_subnet(subnet: str, used: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    if subnet:
        net = _parse(subnet)
        clash = next((u for u in used if net.overlaps(u)), None)
        if clash is not None:
            raise Conflict(f"--subnet {subnet}: overlaps {clash}, already in use on this node")
        return net
    for net in ipaddress.IPv4Network(AUTO_POOL).subnets(new_prefix=AUTO_PREFIX):
        if not any(net.overlaps(u) for u in used):
            return net
    raise Conflict(f"no free /{AUTO_PREFIX} left in {AUTO_POOL}: remove networks, or give --subnet")


def _parse(subnet: str) -> ipaddress.IPv4Network:
    try:
        net = ipaddress.IPv4Network(subnet, strict=True)
    except ValueError as exc:
        raise InvalidArgument(f"invalid --subnet {subnet!r}: {exc} (expected CIDR such as 10.91.0.0/24)")
    if not 8 <= net.prefixlen <= 29:
        raise InvalidArgument(f"invalid --subnet {subnet!r}: the prefix must be /8 to /29")
    if net.is_loopback or net.is_link_local or net.is_multicast or net.is_reserved or net.is_unspecified:
        raise InvalidArgument(f"invalid --subnet {subnet!r}: loopback, link-local, multicast and reserved "
                              "ranges cannot be container networks")
    return net


def routed_subnets(path: str = "/proc/net/route") -> list[ipaddress.IPv4Network]:
    """The destinations of this network namespace's IPv4 routes (main
    table), default route excepted: a new network must not shadow them."""
    out: list[ipaddress.IPv4Network] = []
    try:
        with open(path) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        cols = line.split()
        if len(cols) < 8:
            continue
        dest, mask = int(cols[1], 16), int(cols[7], 16)
        if mask == 0:
            continue  # the default route
        # /proc/net/route prints host byte order (little-endian here).
        addr = ipaddress.IPv4Address(dest.to_bytes(4, "little"))
        prefix = bin(mask).count("1")
        with contextlib.suppress(ValueError):
            out.append(ipaddress.IPv4Network(f"{addr}/{prefix}", strict=False))
    return out
