"""Published ports: nft DNAT from a host port to the container's address.

A connection to ``host_port`` on any local address (127.0.0.1 included) is
DNAT'ed to ``address:container_port``: the ``prerouting`` chain catches packets
arriving from elsewhere, the ``output`` chain those made on this host; both
match ``fib daddr type local`` (or ``ip daddr host_ip`` when the mapping names
one). Loopback sources work because the bridge has ``route_localnet=1`` and
``postrouting`` masquerades 127.0.0.0/8 leaving via the bridge (see
``nftables.py``): Docker's behaviour with its userland proxy disabled.

Every rule carries the comment ``orch:<container id>:<proto>:<host port>``, so
``unpublish`` deletes exactly that container's rules and a host port held by
another container is detected (:class:`Conflict`).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from common.errors import Conflict, InvalidArgument
from nodeagent.network.nftables import FAMILY, list_rules, run_nft, table_name
from nodeagent.runtime.spec import PortMapping

NAT_CHAINS = ("prerouting", "output")


@dataclass(frozen=True)
class PublishedRule:
    chain: str
    handle: int
    container_id: str
    protocol: str
    host_port: int


def _tag(container_id: str, m: PortMapping) -> str:
    return f"orch:{container_id}:{m.protocol}:{m.host_port}"


def _parse_tag(comment: str) -> tuple[str, str, int] | None:
    parts = comment.split(":")
    if len(parts) != 4 or parts[0] != "orch" or not parts[3].isdigit():
        return None
    return parts[1], parts[2], int(parts[3])


def published_rules(bridge: str) -> list[PublishedRule]:
    """Every published-port rule in the bridge's table."""
    found = []
    for chain in NAT_CHAINS:
        for rule in list_rules(table_name(bridge), chain):
            tag = _parse_tag(str(rule.get("comment", "")))
            if tag is not None:
                found.append(PublishedRule(chain, int(rule["handle"]), *tag))
    return found


def validate(ports: list[PortMapping]) -> None:
    seen: set[tuple[str, int]] = set()
    for m in ports:
        if m.protocol not in ("tcp", "udp"):
            raise InvalidArgument(f"port {m.host_port}: protocol must be tcp or udp")
        for port in (m.host_port, m.container_port):
            if not 1 <= port <= 65535:
                raise InvalidArgument(f"port {port} out of range 1..65535")
        if m.host_ip:
            try:
                ipaddress.IPv4Address(m.host_ip)
            except ValueError:
                raise InvalidArgument(f"port {m.host_port}: host_ip {m.host_ip!r} is not IPv4")
        key = (m.protocol, m.host_port)
        if key in seen:
            raise InvalidArgument(f"host port {m.host_port}/{m.protocol} published twice")
        seen.add(key)


def publish(bridge: str, container_id: str, address: str, ports: list[PortMapping]) -> None:
    """Replace the container's published ports with ``ports`` in one atomic batch."""
    validate(ports)
    existing = published_rules(bridge)
    wanted = {(m.protocol, m.host_port) for m in ports}
    for r in existing:
        if r.container_id != container_id and (r.protocol, r.host_port) in wanted:
            raise Conflict(
                f"host port {r.host_port}/{r.protocol} is already published by "
                f"container {r.container_id[:12]}"
            )
    t = table_name(bridge)
    lines = [_delete(t, r) for r in existing if r.container_id == container_id]
    for m in ports:
        match = f"ip daddr {m.host_ip}" if m.host_ip else "fib daddr type local"
        for chain in NAT_CHAINS:
            lines.append(
                f"add rule {FAMILY} {t} {chain} meta nfproto ipv4 {match} "
                f"{m.protocol} dport {m.host_port} "
                f'dnat ip to {address}:{m.container_port} comment "{_tag(container_id, m)}"'
            )
    if lines:
        run_nft("\n".join(lines) + "\n", step="nft_publish")


def unpublish(bridge: str, container_id: str) -> None:
    """Delete every rule tagged with ``container_id``; nothing to do is fine."""
    t = table_name(bridge)
    lines = [_delete(t, r) for r in published_rules(bridge) if r.container_id == container_id]
    if lines:
        run_nft("\n".join(lines) + "\n", step="nft_unpublish")


def _delete(table: str, r: PublishedRule) -> str:
    return f"delete rule {FAMILY} {table} {r.chain} handle {r.handle}"
