"""The private network of a local cluster: a bridge on the real host and one
network namespace per node, joined to it by a veth pair.

Addresses come from ``subnet`` (default 10.89.0.0/24): the bridge is .1, node
i is .(10+i). There is no default route in the node namespaces and the host
does not forward, so nothing leaves through the uplink.
"""

from __future__ import annotations

import ipaddress
import subprocess
from dataclasses import dataclass


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

    def ensure_bridge(self) -> None:
        if _ip("link", "show", self.bridge, check=False).returncode != 0:
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

    def remove_node(self, index: int) -> None:
        node = self.node(index)
        _ip("link", "del", node.host_veth, check=False)
        _ip("netns", "del", node.name, check=False)

    def remove_bridge(self) -> None:
        _ip("link", "del", self.bridge, check=False)
