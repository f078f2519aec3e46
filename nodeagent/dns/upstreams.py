"""The node's upstream resolvers: ``orch agent --dns-upstream``.

``ADDR[,ADDR...]`` (an IPv4 address with an optional ``:PORT``, an IPv6
address, or ``[IPv6]:PORT``), ``none`` (no upstream: names the node does not
know get SERVFAIL at once; ``orch up``'s nodes, which must never send
traffic out), or nothing: the host's non-loopback resolvers from
/etc/resolv.conf (loopback ones are the host's own stub resolvers, which a
node's network namespace may not share). Pure parsing, no I/O beyond
reading resolv.conf.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from common.errors import InvalidArgument

__all__ = ["NONE", "Upstream", "host_upstreams", "parse_upstreams", "resolve_upstreams"]

NONE = "none"
RESOLV_CONF = "/etc/resolv.conf"


@dataclass(frozen=True)
class Upstream:
    host: str  # an IP address (IPv6 without brackets)
    port: int = 53

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_upstreams(text: str) -> list[Upstream]:
    """``--dns-upstream``'s value; InvalidArgument naming the bad address."""
    if text.strip().lower() == NONE:
        return []
    out = []
    for item in (s.strip() for s in text.split(",")):
        if not item:
            raise InvalidArgument(f"--dns-upstream {text!r}: an empty address; expected "
                                  "ADDR[:PORT][,ADDR[:PORT]...] or none")
        out.append(_one(item, text))
    return out


def _one(item: str, text: str) -> Upstream:
    host, port = item, "53"
    if item.startswith("["):
        host, sep, rest = item[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise _bad(item, text)
        port = rest[1:] or "53"
    elif item.count(":") == 1:
        host, _, port = item.partition(":")
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise _bad(item, text) from None
    if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
        raise _bad(item, text)
    return Upstream(str(addr), int(port))


def _bad(item: str, text: str) -> InvalidArgument:
    return InvalidArgument(f"--dns-upstream {text!r}: {item!r} is not an IP address with an optional "
                           "port (1.2.3.4, 1.2.3.4:5353, 2001:db8::1, [2001:db8::1]:5353); or none")


def host_upstreams(path: str = RESOLV_CONF) -> list[Upstream]:
    """The host's resolvers, minus loopback ones (as ``specbuild.host_nameservers``)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) < 2 or parts[0] != "nameserver":
                    continue
                try:
                    addr = ipaddress.ip_address(parts[1].split("%")[0])
                except ValueError:
                    continue
                if not addr.is_loopback:
                    out.append(Upstream(str(addr)))
    except OSError:
        pass
    return out


def resolve_upstreams(text: str) -> list[Upstream]:
    """``--dns-upstream`` as given (``""``: the host's)."""
    return parse_upstreams(text) if text.strip() else host_upstreams()
