"""The private network of a local cluster: a bridge on the real host and one
network namespace per node, joined to it by a veth pair.

Addresses come from ``subnet`` (default 10.89.0.0/24): the bridge is .1, node
i is .(10+i). There is no default route in the node namespaces and the host
does not forward, so nothing leaves through the uplink.

``preflight`` says what on the host would stop the network from working
(an address in the subnet elsewhere, an interface or a namespace in use),
before anything is created; ``remove_node``/``remove_bridge`` are idempotent.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
from dataclasses import dataclass

NETNS_DIR = "/run/netns"


class HostNetError(Exception):
    pass


def _ip(*args: str, netns: str = "", check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = ["ip", *(["-n", netns] if netns else []), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise HostNetError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return proc


@dataclass
class NodeNet:
    name: str  # netns name
    address: str
    host_veth: str


class HostNet:
    def __init__(self, bridge: str = "orchup0", subnet: str = "10.89.0.0/24",
                 prefix: str = "orch-") -> None:
        self.bridge = bridge
        self.subnet = ipaddress.ip_network(subnet)
        self.prefix = prefix

    @property
    def gateway(self) -> str:
        return str(self.subnet.network_address + 1)

    def node(self, index: int) -> NodeNet:
        return NodeNet(name=f"{self.prefix}n{index}",
                       address=str(self.subnet.network_address + 10 + index),
                       host_veth=f"{self.bridge[:8]}n{index}")

    def preflight(self, nodes: int) -> None:
        """Raise HostNetError if this network cannot be made here as it is:
        the subnet overlaps an address on another interface, the bridge's
        name is taken by something else, a node's namespace has processes in
        it, or a node's host-side veth exists without its namespace. Leftovers
        of this same network (the bridge with its gateway, empty namespaces)
        are fine: they are reused or made again."""
        ours = False
        for ifname, addr in host_addresses():
            if ifname == self.bridge and addr == ipaddress.IPv4Interface(
                    f"{self.gateway}/{self.subnet.prefixlen}"):
                ours = True
            elif addr.network.overlaps(self.subnet):
                raise HostNetError(f"--subnet {self.subnet} overlaps {addr} on interface {ifname}: "
                                   "pick another --subnet")
        if link_exists(self.bridge) and not ours:
            raise HostNetError(f"--bridge {self.bridge}: an interface of that name exists and is not "
                               "this network's bridge: pick another --bridge")
        for index in range(1, nodes + 1):
            node = self.node(index)
            pids = netns_pids(node.name)
            if pids:
                raise HostNetError(f"network namespace {node.name} is in use (pids "
                                   f"{' '.join(map(str, sorted(pids)[:5]))}): pick another --prefix")
            if link_exists(node.host_veth) and not os.path.exists(netns_path(node.name)):
                raise HostNetError(f"interface {node.host_veth} exists (another cluster's bridge "
                                   f"starts with {self.bridge[:8]!r}?): pick another --bridge")

    def ensure_bridge(self) -> None:
        if not link_exists(self.bridge):
            _ip("link", "add", self.bridge, "type", "bridge")
            _ip("addr", "add", f"{self.gateway}/{self.subnet.prefixlen}", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add_node(self, index: int) -> NodeNet:
        node = self.node(index)
        if _ip("netns", "pids", node.name, check=False).returncode == 0:
            self.remove_node(index)
        _ip("netns", "add", node.name)
        _ip("link", "add", node.host_veth, "type", "veth", "peer", "name", "eth0",
            "netns", node.name)
        _ip("link", "set", node.host_veth, "master", self.bridge, "up")
        _ip("addr", "add", f"{node.address}/{self.subnet.prefixlen}", "dev", "eth0", netns=node.name)
        _ip("link", "set", "eth0", "up", netns=node.name)
        _ip("link", "set", "lo", "up", netns=node.name)
        # The node forwards to its own containers (published ports); this is
        # the namespace's sysctl, not the host's.
        subprocess.run(["ip", "netns", "exec", node.name, "sysctl", "-q", "-w",
                        "net.ipv4.ip_forward=1"], check=True)
        return node

    def cut(self, index: int) -> None:
        """Chaos: unplug a node (its link goes down)."""
        _ip("link", "set", self.node(index).host_veth, "down")

    def restore(self, index: int) -> None:
        _ip("link", "set", self.node(index).host_veth, "up")

    def link_up(self, index: int) -> bool:
        """Whether node ``index``'s host-side veth is up (not cut)."""
        proc = _ip("-j", "link", "show", "dev", self.node(index).host_veth, check=False)
        links = json.loads(proc.stdout or "[]") if proc.returncode == 0 else []
        return bool(links) and "UP" in links[0].get("flags", [])

    def set_netem(self, index: int, delay_ms: float, loss: float) -> None:
        """Chaos: delay every packet crossing node ``index``'s link by
        ``delay_ms`` and drop ``loss`` percent, in both directions (tc netem
        on the host-side veth, for what goes to the node, and on the node's
        eth0, for what it sends). NetemUnsupported if this kernel has no netem."""
        node = self.node(index)
        args = ["netem", "delay", f"{delay_ms:g}ms", *(["loss", f"{loss:g}%"] if loss else [])]
        for netns, dev in (("", node.host_veth), (node.name, "eth0")):
            proc = _tc("qdisc", "replace", "dev", dev, "root", *args, netns=netns)
            if proc.returncode != 0:
                self.clear_netem(index)
                if "unknown" in proc.stderr.lower():  # "Specified qdisc kind is unknown."
                    raise NetemUnsupported("this kernel has no netem qdisc (CONFIG_NET_SCH_NETEM)")
                raise HostNetError(f"tc qdisc replace dev {dev} root {' '.join(args)}: "
                                   f"{proc.stderr.strip()}")

    def clear_netem(self, index: int) -> None:
        """Remove what ``set_netem`` added (idempotent: a link without it is left alone)."""
        node = self.node(index)
        for netns, dev in (("", node.host_veth), (node.name, "eth0")):
            if "netem" in root_qdisc(dev, netns):
                _tc("qdisc", "del", "dev", dev, "root", netns=netns)

    def remove_node(self, index: int) -> None:
        node = self.node(index)
        _ip("link", "del", node.host_veth, check=False)
        _ip("netns", "del", node.name, check=False)

    def remove_bridge(self) -> None:
        _ip("link", "del", self.bridge, check=False)


def netns_path(name: str) -> str:
    return os.path.join(NETNS_DIR, name)


def netns_pids(name: str) -> set[int]:
    """The processes in network namespace ``name`` (what ``ip netns pids``
    says: every pid whose /proc/PID/ns/net is that namespace); empty if it
    does not exist."""
    try:
        st = os.stat(netns_path(name))
    except OSError:
        return set()
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ns = os.stat(f"/proc/{entry}/ns/net")
            except OSError:
                continue
            if (ns.st_dev, ns.st_ino) == (st.st_dev, st.st_ino):
                found.add(int(entry))
    return found


def link_exists(name: str) -> bool:
    return _ip("link", "show", "dev", name, check=False).returncode == 0


class NetemUnsupported(HostNetError):
    """The kernel has no netem qdisc."""


def _tc(*args: str, netns: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(["tc", *(["-n", netns] if netns else []), *args], capture_output=True, text=True)


def root_qdisc(dev: str, netns: str = "") -> str:
    """The kind of ``dev``'s root qdisc ("netem", "noqueue", ...); "" if the
    device (or its namespace) does not exist."""
    proc = _tc("-j", "qdisc", "show", "dev", dev, "root", netns=netns)
    if proc.returncode != 0:
        return ""
    qdiscs = json.loads(proc.stdout or "[]")
    return str(qdiscs[0].get("kind", "")) if qdiscs else ""


def host_addresses() -> list[tuple[str, ipaddress.IPv4Interface]]:
    """(interface, address/prefix) of every IPv4 address on this host."""
    proc = _ip("-j", "-4", "addr", "show", check=False)
    out = []
    for link in json.loads(proc.stdout or "[]"):
        for info in link.get("addr_info", []):
            if info.get("family") == "inet":
                out.append((link["ifname"], ipaddress.IPv4Interface(f"{info['local']}/{info['prefixlen']}")))
    return out
