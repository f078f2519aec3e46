"""The ``ip orch_svc`` nftables table: built from the plans, read back from
the kernel, and the one atomic transaction that turns one into the other.
Pure: text and JSON in, text out (``table`` runs it).

Layout (kube-proxy's nftables mode, for VIPs that forward every port)::

    set subnets      every overlay subnet               (interval)
    set same_net     SUBNET . SUBNET for each network   (interval concatenation)
    set vip_addrs    every VIP: one still addressed after DNAT had no endpoint
    set peer_addrs   the underlay addresses VXLAN may come from
    map vips         VIP : goto svc_<VIP>
    map mesh         proto . published port : goto mesh_<proto>_<port>
    map mesh_peers   a peer's vx MAC : the mesh mark of (peer, network)
    counter udp_flows  UDP flows balanced by a VIP (their first packets): while
                     it is 0, no UDP flow to a VIP needs forgetting

    chain svc_<VIP>          numgen random mod N vmap { i : goto ep_<address> }
    chain ep_<address>       hairpin mark if it is its own client; dnat to address
    chain mesh_<proto>_<p>   numgen random mod N vmap { i : goto mep_<proto>_<address>_<port> }
    chain mep_...            hairpin mark; dnat to address:port

    prerouting  nat dstnat    overlay sources: ip daddr vmap @vips; published
                              ports on local addresses: vmap @mesh
    output      nat -100      the node's own connections: the same
    postrouting nat srcnat    masquerade hairpins and loopback clients (those
                              leaving on a vx device: SNAT to the node's
                              underlay address, which every peer routes)
    mangle      filter, prerouting, mangle:
                              a connection arriving on a vx device from
                              outside every overlay subnet was sent by a
                              peer's mesh: ct mark from its source MAC;
                              replies of such connections: meta mark = ct
                              mark (policy routing sends them back); the
                              rest from vx devices is dropped; reverse-path
                              check of overlay sources (strict)
    unmark      filter, postrouting: a packet leaving on a vx device loses its
                              mesh mark, because VXLAN routes its outer packet
                              with the inner one's mark: the policy rule would
                              send it back into the overlay (and it is lost)
    forward     filter        MSS clamp to the overlay's MTU; isolation:
                              within one network's subnet, established,
                              DNAT'ed by this node's mesh, or marked by a
                              peer's; VIPs without endpoints refused
    input       filter        VXLAN only from peers; nothing new from the
                              overlay to the node itself
    local_out   filter, output: VIPs without endpoints refused

Invariants: a chain's name says what it is for (a VIP, an address, a
port), so a changed service rewrites only its own chains and map
elements; the base chains carry a digest of the layout (``schema``), and a
table with another digest is rebuilt whole, in the same transaction.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from nodeagent.network.overlay.addressing import (
    HAIRPIN_MARK,
    MESH_MARK_MASK,
    MESH_MARK_TAG,
    VX_PREFIX,
    VXLAN_PORT,
    chain_suffix,
)
from nodeagent.network.overlay.plan import LinkPlan, ServiceRules

__all__ = ["FAMILY", "TABLE", "UDP_FLOWS", "Chain", "TableState", "balanced_udp", "build", "lost_udp",
           "parse", "transaction"]

FAMILY = "ip"
TABLE = "orch_svc"
_T = f"{FAMILY} {TABLE}"
VX = json.dumps(VX_PREFIX + "*")
MESH = f"ct mark and {MESH_MARK_MASK:#x} == {MESH_MARK_TAG:#x}"
NOT_MESH = f"ct mark and {MESH_MARK_MASK:#x} != {MESH_MARK_TAG:#x}"

SETS = (
    ("set", "subnets", "type ipv4_addr; flags interval;"),
    ("set", "same_net", "type ipv4_addr . ipv4_addr; flags interval;"),
    ("set", "vip_addrs", "type ipv4_addr;"),
    ("set", "peer_addrs", "type ipv4_addr;"),
    ("map", "vips", "type ipv4_addr : verdict;"),
    ("map", "mesh", "type inet_proto . inet_service : verdict;"),
    ("map", "mesh_peers", "type ether_addr : mark;"),
)

UDP_FLOWS = "udp_flows"  # the named counter (see the layout above)
_COUNT_UDP = f'meta l4proto udp ip daddr @vip_addrs counter name "{UDP_FLOWS}"'

BaseChains = tuple[tuple[str, str, tuple[str, ...]], ...]

# (name, hook spec or "", rules). The first rule of prerouting carries the digest.
BASE_CHAINS: BaseChains = (
    ("refuse", "", (
        "meta l4proto tcp reject with tcp reset",
        "reject",
    )),
    ("prerouting", "type nat hook prerouting priority dstnat; policy accept;", (
        f"ip saddr @subnets {_COUNT_UDP}",
        "ip saddr @subnets ip daddr vmap @vips",
        "fib daddr type local meta l4proto . th dport vmap @mesh",
    )),
    ("output", "type nat hook output priority -100; policy accept;", (
        _COUNT_UDP,
        "ip daddr vmap @vips",
        "fib daddr type local meta l4proto . th dport vmap @mesh",
    )),
    ("postrouting", "type nat hook postrouting priority srcnat; policy accept;", (
        f"meta mark and {HAIRPIN_MARK:#x} == {HAIRPIN_MARK:#x} masquerade",
        "ip saddr 127.0.0.0/8 ct status dnat masquerade",
    )),
    ("mangle", "type filter hook prerouting priority mangle; policy accept;", (
        f"iifname {VX} ct state new ip saddr != @subnets ct mark set ether saddr map @mesh_peers",
        f"ct direction reply {MESH} meta mark set ct mark",
        f"iifname {VX} ct direction original ip saddr != @subnets {NOT_MESH} drop",
        "ct direction original ip saddr @subnets fib saddr . iif oif missing drop",
    )),
    ("unmark", "type filter hook postrouting priority mangle; policy accept;", (
        f"oifname {VX} meta mark and {MESH_MARK_MASK:#x} == {MESH_MARK_TAG:#x} meta mark set 0",
    )),
    ("forward", "type filter hook forward priority filter; policy accept;", (
        f"oifname {VX} tcp flags syn / syn,rst tcp option maxseg size set rt mtu",
        "ip saddr != @subnets ip daddr != @subnets accept",
        "ct state established,related accept",
        "ip daddr @vip_addrs jump refuse",
        "ip saddr . ip daddr @same_net accept",
        "ct status dnat ip saddr != @subnets accept",
        f"iifname {VX} {MESH} accept",
        'counter drop comment "orch overlay isolation"',
    )),
    ("input", "type filter hook input priority filter; policy accept;", (
        f"udp dport {VXLAN_PORT} ip saddr != @peer_addrs drop",
        "ct state established,related accept",
        f"iifname {VX} drop",
        "ip saddr @subnets drop",
    )),
    ("local_out", "type filter hook output priority filter; policy accept;", (
        "ip daddr @vip_addrs jump refuse",
    )),
)
BASE_NAMES = frozenset(name for name, _, _ in BASE_CHAINS)
SCHEMA_PREFIX = "orch_svc schema "
K = TypeVar("K", str, tuple[str, int])
# Bumped when the service chains are rendered differently: part of the digest.
RENDER_VERSION = "1"


def base_chains(snat: str = "") -> BaseChains:
    """The base chains; with ``snat``, loopback clients of the mesh that
    leave on a vx device are SNAT'ed to it (masquerade would pick whichever
    address the device list offers first, not necessarily one peers route)."""
    if not snat:
        return BASE_CHAINS
    loopback = f"oifname {VX} ip saddr 127.0.0.0/8 ct status dnat snat to {snat}"
    return tuple((name, hook, (loopback, *rules) if name == "postrouting" else rules)
                 for name, hook, rules in BASE_CHAINS)


def schema(snat: str = "") -> str:
    text = RENDER_VERSION + repr(SETS) + UDP_FLOWS + repr(base_chains(snat))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


SCHEMA = schema()


@dataclass(frozen=True)
class Chain:
    """A chain of one VIP, endpoint or published port. ``signature`` is what
    can be compared with the kernel's copy: the goto targets of a balancing
    chain in order, or a leaf's ``("dnat", address, port)``."""

    signature: tuple[Any, ...]
    rules: tuple[str, ...] = ()


@dataclass
class TableState:
    """The table as comparable facts: what should be (``build``) or what the
    kernel has (``parse``, where chains have signatures but no rule text)."""

    schema: str = SCHEMA
    snat: str = ""  # the loopback clients' source on vx devices (see base_chains)
    subnets: set[str] = field(default_factory=set)
    same_net: set[tuple[str, str]] = field(default_factory=set)
    vip_addrs: set[str] = field(default_factory=set)
    peer_addrs: set[str] = field(default_factory=set)
    mesh_peers: dict[str, int] = field(default_factory=dict)  # vx MAC -> mark
    vips: dict[str, str] = field(default_factory=dict)  # VIP -> chain
    mesh: dict[tuple[str, int], str] = field(default_factory=dict)  # (proto, port) -> chain
    chains: dict[str, Chain] = field(default_factory=dict)


# ---- building ---------------------------------------------------------------------


def build(services: Mapping[str, ServiceRules], plans: Iterable[LinkPlan],
          problems: list[str] | None = None, snat: str = "") -> TableState:
    """The table for these services and networks. Conflicts (overlapping
    subnets, a port published by two services) keep the first by id and
    are said in ``problems``. ``snat``: see :func:`base_chains`."""
    problems = problems if problems is not None else []
    state = TableState(schema=schema(snat), snat=snat)
    plans = sorted(plans, key=lambda p: p.network_id)
    state.subnets = _disjoint([p.subnet for p in plans], problems)
    state.same_net = {(s, s) for s in state.subnets}
    for plan in plans:
        state.peer_addrs.update(plan.fdb.values())
        for ret in plan.returns:
            state.mesh_peers[ret.mac] = ret.mark
    for sid in sorted(services):
        rules = services[sid]
        state.vip_addrs.update(rules.vips)
        for vip, addresses in rules.balanced.items():
            targets = [_add_leaf(state, f"ep_{chain_suffix(a)}", _ep_rules(a), a, 0) for a in addresses]
            state.vips[vip] = _add_balancer(state, f"svc_{chain_suffix(vip)}", targets)
        for route in rules.mesh:
            key = (route.protocol, route.published)
            if key in state.mesh:
                problems.append(f"service {sid}: port {route.published}/{route.protocol} is published "
                                "by another service too; the first keeps it")
                continue
            targets = [_add_leaf(state, f"mep_{route.protocol}_{chain_suffix(a)}_{route.target}",
                                 _mep_rules(a, route.protocol, route.target), a, route.target)
                       for a in route.addresses]
            state.mesh[key] = _add_balancer(state, f"mesh_{route.protocol}_{route.published}", targets)
    return state


def _disjoint(subnets: list[str], problems: list[str]) -> set[str]:
    kept: list[ipaddress.IPv4Network] = []
    for text in subnets:
        net = ipaddress.IPv4Network(text, strict=False)
        clash = next((k for k in kept if k.overlaps(net)), None)
        if clash is not None:
            problems.append(f"subnet {net} overlaps {clash}; it is left out of the VIP rules")
            continue
        kept.append(net)
    return {str(n) for n in kept}


def _add_leaf(state: TableState, name: str, rules: tuple[str, ...], address: str, port: int) -> str:
    state.chains[name] = Chain(("dnat", address, port), rules)
    return name


def _add_balancer(state: TableState, name: str, targets: list[str]) -> str:
    state.chains[name] = Chain(tuple(targets), (_numgen(targets),))
    return name


def _numgen(targets: list[str]) -> str:
    choices = ", ".join(f"{i} : goto {t}" for i, t in enumerate(targets))
    return f"numgen random mod {len(targets)} vmap {{ {choices} }}"


def _ep_rules(address: str) -> tuple[str, ...]:
    return (f"ip saddr {address} meta mark set meta mark or {HAIRPIN_MARK:#x}",
            f"dnat to {address}")


def _mep_rules(address: str, protocol: str, port: int) -> tuple[str, ...]:
    return (f"ip saddr {address} meta mark set meta mark or {HAIRPIN_MARK:#x}",
            f"meta l4proto {protocol} dnat to {address}:{port}")


# ---- the transaction --------------------------------------------------------------


def transaction(current: TableState | None, desired: TableState) -> str:
    """The ``nft -f`` script that turns ``current`` (None: no table) into
    ``desired`` in one atomic transaction; "" when nothing differs. Only what
    differs is touched, unless the layout differs: then the table is made
    anew (in the same transaction)."""
    if current is None or current.schema != desired.schema:
        return _create(desired)
    out: list[str] = []
    _elements(out, "add", "subnets", sorted(desired.subnets - current.subnets))
    _elements(out, "add", "same_net", [f"{a} . {b}" for a, b in sorted(desired.same_net - current.same_net)])
    _elements(out, "add", "vip_addrs", sorted(desired.vip_addrs - current.vip_addrs))
    _elements(out, "add", "peer_addrs", sorted(desired.peer_addrs - current.peer_addrs))
    stale_peers = sorted(m for m, v in current.mesh_peers.items() if desired.mesh_peers.get(m) != v)
    _elements(out, "delete", "mesh_peers", stale_peers)
    _elements(out, "add", "mesh_peers", [f"{m} : {v:#x}" for m, v in sorted(desired.mesh_peers.items())
                                         if current.mesh_peers.get(m) != v])
    # Leaves before the chains that go to them; new map elements after both.
    for leaves in (True, False):
        for name, chain in sorted(desired.chains.items()):
            if _is_leaf(name) != leaves:
                continue
            old = current.chains.get(name)
            if old is None:
                out.append(f"add chain {_T} {name}")
            elif old.signature != chain.signature:
                out.append(f"flush chain {_T} {name}")
            else:
                continue
            out.extend(f"add rule {_T} {name} {rule}" for rule in chain.rules)
    _verdicts(out, "vips", current.vips, desired.vips, _vip_key)
    _verdicts(out, "mesh", current.mesh, desired.mesh, _mesh_key)
    for leaves in (False, True):  # now unreferenced: balancers first, then their leaves
        for name in sorted(set(current.chains) - set(desired.chains)):
            if _is_leaf(name) == leaves:
                out += [f"flush chain {_T} {name}", f"delete chain {_T} {name}"]
    _elements(out, "delete", "subnets", sorted(current.subnets - desired.subnets))
    _elements(out, "delete", "same_net",
              [f"{a} . {b}" for a, b in sorted(current.same_net - desired.same_net)])
    _elements(out, "delete", "vip_addrs", sorted(current.vip_addrs - desired.vip_addrs))
    _elements(out, "delete", "peer_addrs", sorted(current.peer_addrs - desired.peer_addrs))
    return "".join(line + "\n" for line in out)


def _create(desired: TableState) -> str:
    out = [f"add table {_T}", f"delete table {_T}", f"add table {_T}"]
    for kind, name, spec in SETS:
        out.append(f"add {kind} {_T} {name} {{ {spec} }}")
    out.append(f"add counter {_T} {UDP_FLOWS}")
    for name, hook, rules in base_chains(desired.snat):
        out.append(f"add chain {_T} {name}" + (f" {{ {hook} }}" if hook else ""))
        for i, rule in enumerate(rules):
            comment = f' comment "{SCHEMA_PREFIX}{desired.schema}"' if name == "prerouting" and i == 0 else ""
            out.append(f"add rule {_T} {name} {rule}{comment}")
    empty = TableState(schema=desired.schema, snat=desired.snat)
    return "".join(line + "\n" for line in out) + transaction(empty, desired)


def _elements(out: list[str], verb: str, name: str, items: list[str]) -> None:
    if items:
        out.append(f"{verb} element {_T} {name} {{ {', '.join(items)} }}")


def _verdicts(out: list[str], name: str, current: Mapping[K, str], desired: Mapping[K, str],
              fmt: Callable[[K], str]) -> None:
    """Map elements ``key : goto chain``: the stale ones deleted, the new added."""
    stale = sorted(k for k, v in current.items() if desired.get(k) != v)
    _elements(out, "delete", name, [fmt(k) for k in stale])
    fresh = sorted(k for k, v in desired.items() if current.get(k) != v)
    _elements(out, "add", name, [f"{fmt(k)} : goto {desired[k]}" for k in fresh])


def _vip_key(vip: str) -> str:
    return vip


def _mesh_key(key: tuple[str, int]) -> str:
    return f"{key[0]} . {key[1]}"


def _is_leaf(name: str) -> bool:
    return name.startswith(("ep_", "mep_"))


# ---- what UDP flows were balanced to -------------------------------------------------


def balanced_udp(state: TableState | None) -> dict[tuple[str, int], set[str]]:
    """Where the table balances UDP flows, and to which addresses: each VIP
    (it forwards every port) as ``(VIP, 0)``, each UDP port of the mesh as
    ``("", port)`` (it is published on every local address)."""
    if state is None:
        return {}
    out = {(vip, 0): _targets(state, chain) for vip, chain in state.vips.items()}
    out.update((("", port), _targets(state, chain)) for (proto, port), chain in state.mesh.items()
               if proto == "udp")
    return out


def lost_udp(current: TableState | None, desired: TableState | None) -> dict[tuple[str, int], set[str]]:
    """The addresses each destination of :func:`balanced_udp` balances to in
    ``current`` and no longer in ``desired``: whose UDP flows from there
    must be forgotten (see ``overlay.conntrack``)."""
    after = balanced_udp(desired)
    return {dest: lost for dest, addresses in balanced_udp(current).items()
            if (lost := addresses - after.get(dest, set()))}


def _targets(state: TableState, chain: str) -> set[str]:
    """The addresses a balancing chain DNATs to (none for a chain not understood)."""
    balancer = state.chains.get(chain)
    out: set[str] = set()
    for leaf in balancer.signature if balancer is not None else ():
        target = state.chains.get(leaf) if isinstance(leaf, str) else None
        if target is not None and target.signature[:1] == ("dnat",):
            out.add(str(target.signature[1]))
    return out


# ---- reading the kernel's ---------------------------------------------------------


def parse(listing: Mapping[str, Any]) -> TableState:
    """The table from ``nft -j list table ip orch_svc``. What cannot be
    understood gets a signature nothing desired has, so it is rewritten."""
    state = TableState(schema="")
    rules: dict[str, list[list[dict[str, Any]]]] = {}
    for item in listing.get("nftables", []):
        if "set" in item or "map" in item:
            _parse_set(state, item.get("set") or item["map"])
        elif "chain" in item:
            rules.setdefault(item["chain"]["name"], [])
        elif "rule" in item:
            rule = item["rule"]
            rules.setdefault(rule["chain"], []).append(rule.get("expr", []))
            comment = str(rule.get("comment", ""))
            if rule["chain"] == "prerouting" and comment.startswith(SCHEMA_PREFIX):
                state.schema = comment[len(SCHEMA_PREFIX):]
    if set(BASE_NAMES) - set(rules):
        state.schema = ""  # a base chain is missing: rebuild
    for name, exprs in rules.items():
        if name not in BASE_NAMES:
            state.chains[name] = Chain(_signature(exprs))
    return state


def _parse_set(state: TableState, obj: Mapping[str, Any]) -> None:
    name, elems = obj.get("name"), obj.get("elem", [])
    if name == "subnets":
        state.subnets = {_prefix(e) for e in elems}
    elif name == "same_net":
        state.same_net = {(_prefix(e["concat"][0]), _prefix(e["concat"][1])) for e in elems
                          if isinstance(e, dict) and "concat" in e}
    elif name in ("vip_addrs", "peer_addrs"):
        setattr(state, name, {str(e) for e in elems if isinstance(e, str)})
    elif name == "mesh_peers":
        state.mesh_peers = {str(k): int(v) for k, v in elems}
    elif name == "vips":
        state.vips = {str(k): _goto(v) for k, v in elems}
    elif name == "mesh":
        state.mesh = {(str(k["concat"][0]), int(k["concat"][1])): _goto(v) for k, v in elems}


def _prefix(elem: Any) -> str:
    if isinstance(elem, dict) and "prefix" in elem:
        return f"{elem['prefix']['addr']}/{elem['prefix']['len']}"
    return f"{elem}/32" if isinstance(elem, str) else repr(elem)


def _goto(verdict: Any) -> str:
    if isinstance(verdict, dict) and "goto" in verdict:
        return str(verdict["goto"]["target"])
    return repr(verdict)


def _signature(rules: list[list[dict[str, Any]]]) -> tuple[Any, ...]:
    for exprs in rules:
        for expr in exprs:
            if "vmap" in expr:
                return _vmap_targets(expr["vmap"])
            if "dnat" in expr:
                dnat = expr["dnat"]
                return ("dnat", str(dnat.get("addr", "")), int(dnat.get("port", 0)))
    return ("?",)


def _vmap_targets(vmap: Mapping[str, Any]) -> tuple[Any, ...]:
    numgen = vmap.get("key", {}).get("numgen", {})
    pairs = vmap.get("data", {}).get("set", [])
    try:
        targets = {int(k): _goto(v) for k, v in pairs}
    except (TypeError, ValueError):
        return ("?",)
    if numgen.get("mode") != "random" or sorted(targets) != list(range(int(numgen.get("mod", -1)))):
        return ("?",)
    return tuple(targets[i] for i in range(len(targets)))
