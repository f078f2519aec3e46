"""Fake cluster nodes and containers for the overlay's tests, made with ip(8).

A node is a network namespace joined to a bridge on the host, as ``orch up``
makes them (``orch.cluster.hostnet``), with its own ``orch0`` bridge and
that bridge's nft table (``nodeagent.network.nftables``), and an
:class:`Overlay` fed by the node's own :class:`NetworkStateHub` (the test
applies the same ``StateUpdate`` to every node, as the control plane would).
The overlay runs in threads of the test process that entered the node's
namespace (``setns`` is per thread, and threads inherit it).

A container is a ``sleep`` in a network namespace of its own with ``eth0``
on the node's ``orch0`` (default route there) and, per overlay network,
``ethK`` as the runtime attaches it: a veth whose host end is in no bridge,
with proxy ARP, forwarding, strict rp_filter and route_localnet, and the
node routing the container's ``address/32`` to it.

Traffic goes only to addresses inside these namespaces and to the host's
end of the test bridge.
"""

from __future__ import annotations

import contextlib
import ctypes
import ipaddress
import os
import secrets
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from netns_helpers import PYTHON

from nodeagent.network.overlay import Overlay
from nodeagent.network.state import (
    Endpoint,
    NetworkStateHub,
    OverlayNetwork,
    Peer,
    ServiceRoute,
    StateUpdate,
)
from orch.cluster.hostnet import HostNet, HostNetError, host_addresses, link_exists, netns_path

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

SERVER = """
import socket, sys, threading
name, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", port)); s.listen(128)
print("ready", flush=True)

def serve(c, peer):
    try:
        c.sendall(f"{name} {peer[0]}\\n".encode())
        if c.recv(100) == b"hold":  # keep the connection: echo until closed
            while (data := c.recv(100)):
                c.sendall(data)
    except OSError:
        pass
    c.close()

while True:
    threading.Thread(target=serve, args=s.accept(), daemon=True).start()
"""

CLIENT = """
import socket, sys
host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for _ in range(count):
    try:
        with socket.create_connection((host, port), timeout=float(sys.argv[4])) as c:
            c.sendall(b"bye")
            print(c.makefile().readline().strip() or "EMPTY", flush=True)
    except OSError as err:
        print(f"ERR {type(err).__name__} {err.errno}", flush=True)
"""


def in_netns(netns: str, fn: Callable[[], T]) -> T:
    """Run ``fn`` in a thread that entered network namespace ``netns``;
    threads it starts stay there."""
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            fd = os.open(netns_path(netns), os.O_RDONLY)
            try:
                if _libc.setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {netns}")
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=run, name=f"in-{netns}")
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return result[0]


def run(*cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: {proc.stderr.strip()}")
    return proc


def wait_for(what: str, condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@dataclass
class Node:
    index: int
    netns: str
    address: str
    hub: NetworkStateHub = field(default_factory=NetworkStateHub)
    overlay: Overlay | None = None

    @property
    def node_id(self) -> str:
        return f"node-{self.index}"

    @property
    def peer(self) -> Peer:
        return Peer(self.node_id, self.index, self.address)

    @property
    def bridge_gateway(self) -> str:
        return f"10.88.{self.index}.1"

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return run("ip", "-n", self.netns, *args, check=check)

    def sh(self, *cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return run("nsenter", f"--net={netns_path(self.netns)}", "--", *cmd, check=check, timeout=timeout)

    def start_overlay(self) -> Overlay:
        self.hub.state.node_id = self.node_id
        self.overlay = in_netns(self.netns, lambda: Overlay(self.hub, self.address))
        return self.overlay

    def stop_overlay(self, remove: bool = False) -> None:
        if self.overlay is not None:
            overlay, self.overlay = self.overlay, None
            overlay.close(remove=remove)

    def setup_bridge(self) -> None:
        """``orch0`` with its gateway and nft table, as the supervisor makes it."""
        from nodeagent.network import nftables

        self.ip("link", "add", "orch0", "type", "bridge")
        self.ip("addr", "add", f"{self.bridge_gateway}/24", "dev", "orch0")
        self.ip("link", "set", "orch0", "up")
        self.sh("sysctl", "-qw", "net.ipv4.conf.orch0.route_localnet=1")
        in_netns(self.netns, lambda: nftables.ensure_table("orch0"))


@dataclass
class Container:
    node: Node
    name: str
    proc: subprocess.Popen[bytes]
    eth0: str
    servers: list[subprocess.Popen[str]] = field(default_factory=list)
    host_ends: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def sh(self, *cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return run("nsenter", f"--net=/proc/{self.pid}/ns/net", "--", *cmd, check=check, timeout=timeout)

    def attach(self, k: int, address: str, prefixlen: int = 24) -> str:
        """``eth<k>`` on an overlay network, as the runtime attaches it."""
        host_end = f"vn{secrets.token_hex(4)}{k}"
        node = self.node
        node.ip("link", "add", host_end, "type", "veth", "peer", "name", f"eth{k}", "netns", str(self.pid))
        for key, value in (("ipv6/conf/{}/disable_ipv6", "1"), ("ipv4/conf/{}/proxy_arp", "1"),
                           ("ipv4/neigh/{}/proxy_delay", "0"), ("ipv4/conf/{}/forwarding", "1"),
                           ("ipv4/conf/{}/rp_filter", "1"), ("ipv4/conf/{}/route_localnet", "1")):
            node.sh("sysctl", "-qw", f"net.{key.format(host_end).replace('/', '.')}={value}")
        node.ip("link", "set", host_end, "up")
        node.ip("route", "add", f"{address}/32", "dev", host_end)
        self.sh("sysctl", "-qw", f"net.ipv6.conf.eth{k}.disable_ipv6=1")
        self.sh("ip", "addr", "add", f"{address}/{prefixlen}", "dev", f"eth{k}")
        self.sh("ip", "link", "set", f"eth{k}", "up")
        self.host_ends.append(host_end)
        return host_end

    def serve(self, port: int, name: str | None = None) -> None:
        """A TCP server answering ``"<name> <client address>"``; returns once it listens."""
        proc = subprocess.Popen(["nsenter", f"--net=/proc/{self.pid}/ns/net", "--", PYTHON, "-c", SERVER,
                                 name or self.name, str(port)], stdout=subprocess.PIPE, text=True)
        self.servers.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", f"server in {self.name} did not start"

    def connect(self, host: str, port: int, count: int = 1, timeout: float = 2.0) -> list[str]:
        return connect_from(self.sh, host, port, count, timeout)

    def ping(self, address: str) -> bool:
        return self.sh("busybox", "ping", "-c", "1", "-W", "1", address, check=False).returncode == 0

    def stop(self) -> None:
        procs: list[subprocess.Popen[str] | subprocess.Popen[bytes]] = [*self.servers, self.proc]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait()


def connect_from(sh: Callable[..., subprocess.CompletedProcess[str]], host: str, port: int,
                 count: int = 1, timeout: float = 2.0) -> list[str]:
    """``count`` connections, one after another: each one's answer, or ``ERR ...``."""
    out = sh(PYTHON, "-c", CLIENT, host, str(port), str(count), str(timeout),
             timeout=30 + count * timeout).stdout
    return out.splitlines()


class Cluster:
    """Nodes on a test bridge; everything goes in :meth:`close`."""

    def __init__(self, nodes: int) -> None:
        tag = secrets.token_hex(2)
        self.net = self._hostnet(tag)
        self.nodes: list[Node] = []
        self.containers: list[Container] = []
        self.state = StateUpdate(full=True)
        self.net.ensure_bridge()
        try:
            for i in range(1, nodes + 1):
                nn = self.net.add_node(i)
                node = Node(i, nn.name, nn.address)
                self.nodes.append(node)
                node.setup_bridge()
                node.hub.state.node_id = node.node_id
            self.state.peers = [n.peer for n in self.nodes]
            for node in self.nodes:
                node.start_overlay()
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _hostnet(tag: str) -> HostNet:
        taken = [a.network for _, a in host_addresses()]
        for _ in range(50):
            subnet = ipaddress.IPv4Network(f"10.{200 + secrets.randbelow(50)}.{secrets.randbelow(256)}.0/24")
            if not any(subnet.overlaps(t) for t in taken):
                net = HostNet(bridge=f"orchv{tag}", subnet=str(subnet), prefix=f"orchv{tag}-")
                try:
                    net.preflight(3)
                except HostNetError:
                    continue
                return net
        raise AssertionError("no free test subnet")

    @property
    def host_address(self) -> str:
        """The host's end of the test bridge: a client outside the overlay."""
        return self.net.gateway

    def container(self, node: Node, name: str) -> Container:
        proc = subprocess.Popen(["unshare", "--net", "sleep", "600"])
        own = os.readlink("/proc/self/ns/net")
        wait_for("unshare --net", lambda: os.readlink(f"/proc/{proc.pid}/ns/net") != own, 5)
        k = sum(1 for c in self.containers if c.node is node) + 2
        c = Container(node, name, proc, f"10.88.{node.index}.{k}")
        self.containers.append(c)
        host_end = f"vo{secrets.token_hex(4)}"
        node.ip("link", "add", host_end, "type", "veth", "peer", "name", "eth0", "netns", str(proc.pid))
        node.ip("link", "set", host_end, "master", "orch0", "up")
        c.sh("sysctl", "-qw", "net.ipv6.conf.eth0.disable_ipv6=1")
        c.sh("ip", "addr", "add", f"{c.eth0}/24", "dev", "eth0")
        c.sh("ip", "link", "set", "eth0", "up")
        c.sh("ip", "link", "set", "lo", "up")
        c.sh("ip", "route", "add", "default", "via", node.bridge_gateway)
        return c

    def apply(self, update: StateUpdate, nodes: list[Node] | None = None) -> None:
        """``update`` to every node's hub (as each node's session would), then
        wait until every overlay has programmed it."""
        targets = nodes if nodes is not None else self.nodes
        for node in targets:
            node.hub.apply(update)
        for node in targets:
            assert node.overlay is not None
            assert node.overlay.wait_synced(30), f"{node.netns}'s overlay did not sync"

    def close(self) -> None:
        failures: list[BaseException] = []
        for node in self.nodes:
            try:
                node.stop_overlay(remove=True)
            except BaseException as exc:
                failures.append(exc)
        for c in self.containers:
            c.stop()
        for i in range(1, len(self.nodes) + 1):
            self.net.remove_node(i)
        self.net.remove_bridge()
        for node in self.nodes:
            assert not os.path.exists(netns_path(node.netns)), f"{node.netns} left"
        assert not link_exists(self.net.bridge), f"{self.net.bridge} left"
        if failures:
            raise failures[0]


@contextlib.contextmanager
def cluster(nodes: int) -> Iterator[Cluster]:
    c = Cluster(nodes)
    try:
        yield c
    finally:
        c.close()


def net(n: int, name: str = "") -> OverlayNetwork:
    return OverlayNetwork(f"net{n}", name or f"app{n}", f"10.96.{n}.0/24", 4096 + n)


def ep(task: str, service: str, network: OverlayNetwork, host: int, node: Node, slot: int = 0) -> Endpoint:
    base = network.subnet.rsplit(".", 1)[0]
    return Endpoint(task, service, network.id, f"{base}.{host}", node.node_id, task, slot)


def service(sid: str, *networks: tuple[OverlayNetwork, str], **kw: object) -> ServiceRoute:
    from nodeagent.network.state import ServiceNetwork

    return ServiceRoute(sid, sid, networks=tuple(ServiceNetwork(n.id, vip) for n, vip in networks),
                        **kw)  # type: ignore[arg-type]
