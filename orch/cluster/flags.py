"""The checks of ``orch up``'s flags, made before anything is created.

Pure: no I/O. Each failure is one line naming the flag, the value and the
limit it broke. What only the host can tell (ports in use, interfaces and
namespaces that exist, addresses already on the host) is checked next, by
``orch.cluster.local``, still before anything is created.

The limits follow from the cluster's layout:
- node i's agent gives its containers 10.88.i.0/24 (``NODE_SUBNETS``), so at
  most 254 nodes, and the cluster network must not overlap those subnets;
- on the cluster network (``--subnet``) the bridge is .1 and node i is
  .(10+i), so the subnet must hold 10 + N addresses below its broadcast;
- control-plane replica i listens on ``--port`` + i;
- etcd has an odd number of members, at most ``MAX_ETCD_MEMBERS`` (an even
  count survives no more failures than one member fewer, and raft's writes
  slow down with each member). A lone member takes free ports (nothing
  remembers its peer address); member i (from 0) of several listens for
  clients on ``--port`` + ``ETCD_CLIENT_OFFSET`` + i and for its peers on
  ``--port`` + ``ETCD_PEER_OFFSET`` + i, on loopback: fixed, because the
  members find each other by the peer addresses their data holds;
- interface names (the bridge; and, to keep them as short, the nodes'
  namespace names, PREFIX + "n" + i) fit Linux's 15 characters.
"""

from __future__ import annotations

import ipaddress
import re

MAX_NODES = 254
MAX_CONTROLPLANES = 9
MAX_ETCD_MEMBERS = 7
ETCD_CLIENT_OFFSET = 200  # past the control planes' metrics ports (--port + 100 + i)
ETCD_PEER_OFFSET = ETCD_CLIENT_OFFSET + 10
IFNAMSIZ = 15  # characters in a Linux interface name (IFNAMSIZ - 1)
NODE_SUBNETS = ipaddress.IPv4Network("10.88.0.0/16")
FIRST_NODE_HOST = 10  # node i is network address + 10 + i
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class FlagError(Exception):
    """A flag of ``orch up`` that cannot work; the message names it."""


def check_up_flags(nodes: int, controlplanes: int, port: int, registry: int | None, subnet: str,
                   bridge: str, prefix: str, etcd_members: int = 1) -> ipaddress.IPv4Network:
    """Raise FlagError for the first flag that cannot work; the parsed subnet."""
    if not 1 <= nodes <= MAX_NODES:
        raise FlagError(f"--nodes {nodes}: a cluster has 1 to {MAX_NODES} nodes")
    if not 1 <= controlplanes <= MAX_CONTROLPLANES:
        raise FlagError(f"--controlplanes {controlplanes}: a cluster has 1 to {MAX_CONTROLPLANES} "
                        "control-plane replicas")
    check_etcd_members(etcd_members)
    _check_ports(port, controlplanes, registry)
    _check_etcd_ports(port, etcd_members, registry)
    net = parse_subnet(subnet)
    if nodes > 1:
        _check_room(net, nodes)
    check_interface_name("--bridge", bridge)
    check_prefix(prefix, nodes)
    return net


def _check_ports(port: int, controlplanes: int, registry: int | None) -> None:
    if not 1 <= port <= 65535:
        raise FlagError(f"--port {port}: a port is 1 to 65535")
    last = port + controlplanes - 1
    if last > 65535:
        raise FlagError(f"--port {port} with --controlplanes {controlplanes}: replica "
                        f"{controlplanes} would listen on {last}, past 65535")
    if registry is None:
        return
    if not 1 <= registry <= 65535:
        raise FlagError(f"--registry {registry}: a port is 1 to 65535")
    if port <= registry <= last:
        raise FlagError(f"--registry {registry}: the control plane listens there "
                        f"(--port {port}" + (f" to {last})" if last > port else ")"))


def check_etcd_members(members: int) -> None:
    if not 1 <= members <= MAX_ETCD_MEMBERS or members % 2 == 0:
        raise FlagError(f"--etcd-members {members}: etcd runs 1, 3, 5 or 7 members (an even count "
                        "survives no more failures than one member fewer)")


def etcd_ports(port: int, members: int) -> list[tuple[int, int]]:
    """(client, peer) port of each etcd member of a cluster whose control
    plane listens on ``port``; none for a lone member (it takes free ones)."""
    if members == 1:
        return []
    return [(port + ETCD_CLIENT_OFFSET + i, port + ETCD_PEER_OFFSET + i) for i in range(members)]


def _check_etcd_ports(port: int, members: int, registry: int | None) -> None:
    ports = [p for pair in etcd_ports(port, members) for p in pair]
    if ports and max(ports) > 65535:
        raise FlagError(f"--port {port} with --etcd-members {members}: etcd would listen on "
                        f"{min(ports)} to {max(ports)}, past 65535")
    if registry in ports:
        raise FlagError(f"--registry {registry}: etcd listens there (--port {port} + "
                        f"{registry - port}, with --etcd-members {members})")


def parse_subnet(subnet: str) -> ipaddress.IPv4Network:
    """The cluster network: IPv4 in CIDR form, no host bits, a private kind of range."""
    try:
        net = ipaddress.IPv4Network(subnet)
    except ipaddress.NetmaskValueError:
        raise FlagError(f"--subnet {subnet}: bad prefix length (expected e.g. 10.89.0.0/24)")
    except ValueError as err:
        if "host bits set" in str(err):
            fixed = ipaddress.IPv4Network(subnet, strict=False)
            raise FlagError(f"--subnet {subnet}: has host bits set; did you mean {fixed}?")
        raise FlagError(f"--subnet {subnet}: not an IPv4 network in CIDR form (e.g. 10.89.0.0/24)")
    for what, bad in (("loopback", net.is_loopback), ("multicast", net.is_multicast),
                      ("link-local", net.is_link_local), ("reserved", net.is_reserved),
                      ("unspecified", net.network_address.is_unspecified),
                      ("public", net.is_global)):
        if bad:
            raise FlagError(f"--subnet {net}: a {what} range; use a private one such as 10.89.0.0/24")
    return net


def _check_room(net: ipaddress.IPv4Network, nodes: int) -> None:
    needed = FIRST_NODE_HOST + nodes  # host numbers up to this one, below the broadcast
    if needed > net.num_addresses - 2:
        prefix = 32
        while (1 << (32 - prefix)) - 2 < needed:
            prefix -= 1
        raise FlagError(f"--subnet {net}: too small for {nodes} nodes (node i is .{FIRST_NODE_HOST}+i, "
                        f"the last {net.network_address + needed}); use a /{prefix} or larger")
    if net.overlaps(NODE_SUBNETS):
        raise FlagError(f"--subnet {net}: overlaps {NODE_SUBNETS}, the nodes' container subnets")


def check_interface_name(flag: str, name: str) -> None:
    if len(name) > IFNAMSIZ or not _NAME.fullmatch(name):
        raise FlagError(f"{flag} {name!r}: an interface name is 1 to {IFNAMSIZ} letters, digits, "
                        "'_', '.' or '-', starting with a letter or digit")


def check_prefix(prefix: str, nodes: int) -> None:
    longest = f"{prefix}n{nodes}"
    if not _NAME.fullmatch(prefix):
        raise FlagError(f"--prefix {prefix!r}: letters, digits, '_', '.' or '-', "
                        "starting with a letter or digit")
    if len(longest) > IFNAMSIZ:
        raise FlagError(f"--prefix {prefix!r}: node namespace names ({longest}) would be longer "
                        f"than {IFNAMSIZ} characters; use a prefix of at most "
                        f"{IFNAMSIZ - len(longest) + len(prefix)}")
