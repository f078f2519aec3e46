"""A container's overlay interfaces and DNS sockets, through the real runtime.

Each test runs as a node of its own: the test's thread enters a fresh
network namespace (``netns.entered``) for its length, so the bridge, the
host ends, their /32 routes and settings are made there, and traffic goes
only between the namespaces this test creates. The namespace goes at the end.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common.errors import SetupError
from nodeagent.network import BridgeNetwork
from nodeagent.runtime import Container, LinuxRuntime, Stdio, netns
from nodeagent.runtime.spec import ContainerSpec, NetworkAttachment, NetworkConfig
from tests.runtime.test_runtime_linux import run, sh

Spec = Callable[..., ContainerSpec]


@pytest.fixture
def node(cgroup_parent: str, tmp_path: Path) -> Iterator[tuple[LinuxRuntime, BridgeNetwork]]:
    """A runtime with a bridge network, in a network namespace of its own."""
    name = "orchtn3" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        with netns.entered(f"/run/netns/{name}"):
            subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
            net = BridgeNetwork(str(tmp_path / "net"), bridge="orchtb" + secrets.token_hex(2),
                                subnet="10.88.7.0/24")
            net.ensure()
            rt = LinuxRuntime(network=net)
            try:
                yield rt, net
            finally:
                for live in list(rt._live.values()):
                    assert live.handle is not None
                    rt.remove(live.handle)
                net.teardown()
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)


def attachment(cid: str, k: int, cidr: str) -> NetworkAttachment:
    address, _, prefixlen = cidr.partition("/")
    return NetworkAttachment(network_id=f"net{k}", network_name=f"front{k}", address=address,
                             prefixlen=int(prefixlen), ifname=f"eth{k}", host_veth=f"vn{cid[:10]}{k}")


def with_networks(spec: ContainerSpec, net: BridgeNetwork | None, *addresses: str,
                  mode: str = "bridge") -> ContainerSpec:
    if mode == "bridge":
        assert net is not None
        spec.network = net.allocate(spec.id)
    else:
        spec.network = NetworkConfig(mode=mode)  # type: ignore[arg-type]
    spec.network.attachments = [attachment(spec.id, k, a) for k, a in enumerate(addresses, 1)]
    return spec


def sysctl(key: str) -> str:
    with open(f"/proc/sys/net/{key}") as f:
        return f.read().strip()


def link_exists(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


def routes_to(address: str) -> str:
    return subprocess.run(["ip", "-4", "route", "show", f"{address}/32"], capture_output=True,
                          text=True, check=True).stdout


def start(rt: LinuxRuntime, spec: ContainerSpec) -> Container:
    c = rt.create(spec, Stdio())
    rt.start(c)
    return c


def run_until(rt: LinuxRuntime, spec: ContainerSpec, marker: str, while_running: Callable[[], None]) -> str:
    """Start the container, read its output up to ``marker``, call
    ``while_running`` (it still runs), then kill and remove it; its output."""
    r, w = os.pipe()
    try:
        c = rt.create(spec, Stdio(stdout=w, stderr=w))
    finally:
        os.close(w)
    out = b""
    try:
        rt.start(c)
        while not out.endswith(marker.encode()):
            chunk = os.read(r, 65536)
            assert chunk, f"the container ended before {marker!r}: {out.decode()}"
            out += chunk
        while_running()
        rt.kill(c, signal.SIGKILL)
        assert rt.wait(c, timeout=30) is not None, "container did not exit"
    finally:
        os.close(r)
        rt.remove(c)
    return out.decode()


def test_two_networks_configure_both_sides(node: tuple[LinuxRuntime, BridgeNetwork],
                                           make_spec: Spec) -> None:
    """eth1 and eth2 inside with their addresses, on-link subnets, loose
    reverse-path filtering and no IPv6; the default route stays on eth0; the
    node routes each address to its host end, which has proxy ARP (without
    delay), forwarding and strict reverse-path filtering. Removal leaves no
    link and no route."""
    rt, net = node
    spec = with_networks(sh(make_spec, "ip -o -4 addr; ip route; cat /etc/resolv.conf;"
                                       " for i in eth1 eth2; do"
                                       " cat /proc/sys/net/ipv4/conf/$i/rp_filter"
                                       " /proc/sys/net/ipv6/conf/$i/disable_ipv6; done;"
                                       " echo END; exec sleep 600"),
                         net, "10.97.1.2/24", "10.98.1.2/16")
    atts = spec.network.attachments

    def node_side() -> None:
        for att in atts:
            assert f"dev {att.host_veth}" in routes_to(att.address)
            assert sysctl(f"ipv4/conf/{att.host_veth}/proxy_arp") == "1"
            assert sysctl(f"ipv4/neigh/{att.host_veth}/proxy_delay") == "0"
            assert sysctl(f"ipv4/conf/{att.host_veth}/forwarding") == "1"
            assert sysctl(f"ipv4/conf/{att.host_veth}/rp_filter") == "1"
            out = subprocess.run(["ip", "-o", "link", "show", att.host_veth], capture_output=True,
                                 text=True, check=True).stdout
            assert "master" not in out and "UP" in out

    # The node's side is looked at while the container runs: once it has
    # exited, its namespace (and with it each pair) goes whenever the kernel
    # gets to it.
    out = run_until(rt, spec, "END\n", node_side)
    net.release(spec.id)
    assert "inet 10.97.1.2/24" in out and "inet 10.98.1.2/16" in out
    assert "10.97.1.0/24 dev eth1" in out and "10.98.0.0/16 dev eth2" in out
    assert f"default via {net.gateway} dev eth0" in out
    assert "nameserver 127.0.0.11\noptions ndots:0\n" in out
    assert out.rstrip().endswith("2\n1\n2\n1\nEND")
    for att in atts:
        assert not link_exists(att.host_veth)
        assert routes_to(att.address) == ""
    assert not link_exists(spec.network.host_veth)


def test_containers_of_a_network_reach_each_other_through_the_node(
        node: tuple[LinuxRuntime, BridgeNetwork], make_spec: Spec) -> None:
    """Two containers on one network: the one's ARP for the other is
    answered by its host end, and the node routes between the host ends."""
    rt, net = node
    server = start(rt, with_networks(make_spec(["sleep", "300"]), net, "10.97.2.3/24"))
    try:
        client = with_networks(sh(make_spec, "ping -c1 -W3 10.97.2.3 >/dev/null && echo reached;"
                                             " ip neigh show dev eth1"),
                               net, "10.97.2.4/24")
        code, out = run(rt, client)
        net.release(client.id)
    finally:
        rt.remove(server)
        net.release(server.spec.id)
    assert code == 0, out
    assert out.startswith("reached\n"), out
    # The neighbour answering for the peer is the client's own host end.
    assert "10.97.2.3 lladdr" in out


def test_network_none_with_a_network_has_only_its_overlay_interface(
        node: tuple[LinuxRuntime, BridgeNetwork], make_spec: Spec) -> None:
    rt, _ = node
    spec = with_networks(sh(make_spec, "ip -o -4 addr; ip -o link | grep -c eth0; cat /etc/resolv.conf"),
                         None, "10.97.3.2/24", mode="none")
    code, out = run(rt, spec)
    assert code == 0, out
    assert "inet 10.97.3.2/24" in out
    assert "\n0\n" in out  # no eth0
    assert "nameserver 127.0.0.11" in out


def test_a_failed_attach_leaves_no_link_or_route(node: tuple[LinuxRuntime, BridgeNetwork],
                                                 make_spec: Spec) -> None:
    """The second network's pair cannot be made (its interface's name is
    the first one's): the start fails at veth_create naming it, and the
    first network's link and route, and eth0's link, are gone."""
    rt, net = node
    spec = with_networks(make_spec(["true"]), net, "10.97.4.2/24", "10.98.4.2/24")
    second = spec.network.attachments[1]
    second.ifname = "eth1"
    try:
        with pytest.raises(SetupError) as err:
            rt.create(spec, Stdio())
    finally:
        net.release(spec.id)
    assert err.value.step == "veth_create" and second.host_veth in str(err.value)
    first = spec.network.attachments[0]
    assert not link_exists(first.host_veth) and routes_to(first.address) == ""
    assert not link_exists(second.host_veth)
    assert not link_exists(spec.network.host_veth)
    assert spec.id not in rt._live


def test_dns_sockets_serve_the_container_until_its_process_exits(
        node: tuple[LinuxRuntime, BridgeNetwork], make_spec: Spec) -> None:
    """The runtime's DNS sockets are reached at 127.0.0.11:53 in the
    container's namespace: what it sends there arrives on them, what is sent
    back reaches it. They close once its process has exited."""
    rt, net = node
    spec = with_networks(make_spec(["sleep", "300"]), net, "10.97.5.2/24")
    c = start(rt, spec)
    try:
        fds = rt.dns_fds(c)
        assert len(fds) == 2
        udp = socket.socket(fileno=os.dup(fds[0]))
        tcp = socket.socket(fileno=os.dup(fds[1]))
        try:
            assert (udp.type, udp.getsockname()[0]) == (socket.SOCK_DGRAM, "127.0.0.11")
            assert (tcp.type, tcp.getsockname()[0]) == (socket.SOCK_STREAM, "127.0.0.11")
            ask = subprocess.Popen(
                ["nsenter", f"--net=/proc/{c.pid}/ns/net", sys.executable, "-c",
                 "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM);"
                 "s.settimeout(10); s.connect(('127.0.0.11', 53)); s.send(b'ping');"
                 "print(s.recv(100).decode())"], stdout=subprocess.PIPE, text=True)
            udp.setblocking(True)
            udp.settimeout(10)
            data, peer = udp.recvfrom(100)
            udp.sendto(b"pong " + data, peer)
            assert ask.communicate(timeout=10)[0] == "pong ping\n"
        finally:
            udp.close()
            tcp.close()
        rt.stop(c, timeout=0)
        assert rt.dns_fds(c) == []
        for fd in fds:
            with pytest.raises(OSError):
                os.fstat(fd)
    finally:
        rt.remove(c)
        net.release(spec.id)


def test_attachments_need_their_own_namespace(make_spec: Spec, cgroup_parent: str) -> None:
    from common.errors import InvalidArgument

    spec = make_spec(["true"])
    spec.network = NetworkConfig(mode="host")
    spec.network.attachments = [attachment(uuid.uuid4().hex, 1, "10.97.6.2/24")]
    with pytest.raises(InvalidArgument, match="own network namespace"):
        LinuxRuntime().create(spec, Stdio())


INHERIT = "/proc/sys/net/core/devconf_inherit_init_net"


@pytest.fixture
def inherit_from_creator() -> Iterator[None]:
    """New namespaces copy their settings from their creator's (3), not from
    the host's, until the host's value comes back. (Set before the node's
    namespace is entered: the setting is the host's alone.)"""
    if not os.path.exists(INHERIT):
        pytest.skip("this kernel has no devconf_inherit_init_net")
    with open(INHERIT) as f:
        before = f.read().strip()
    with open(INHERIT, "w") as f:
        f.write("3")
    try:
        yield
    finally:
        with open(INHERIT, "w") as f:
            f.write(before)


def test_strict_reverse_path_filtering_does_not_cut_the_overlay(
        inherit_from_creator: None, node: tuple[LinuxRuntime, BridgeNetwork], make_spec: Spec) -> None:
    """In a container whose namespace starts strict (a node that filters
    strictly, as some hosts do), the overlay interface gets loose filtering
    (the node's ARP for it comes from an address it reaches via eth0), eth0
    stays strict, and the overlay works."""
    rt, net = node
    for scope in ("all", "default"):  # the node's own namespace, which goes with the test
        with open(f"/proc/sys/net/ipv4/conf/{scope}/rp_filter", "w") as f:
            f.write("1")
    server = start(rt, with_networks(make_spec(["sleep", "300"]), net, "10.97.7.3/24"))
    try:
        client = with_networks(sh(make_spec, "for i in all eth0 eth1; do"
                                             " cat /proc/sys/net/ipv4/conf/$i/rp_filter; done;"
                                             " ping -c1 -W3 10.97.7.3 >/dev/null && echo reached"),
                               net, "10.97.7.4/24")
        code, out = run(rt, client)
        net.release(client.id)
    finally:
        rt.remove(server)
        net.release(server.spec.id)
    assert code == 0, out
    assert out.split() == ["0", "1", "2", "reached"]
