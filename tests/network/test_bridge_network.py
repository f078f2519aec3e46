"""BridgeNetwork against the real kernel: bridge, veth, netns, nft.

Traffic goes only to loopback, to this host's own addresses, and to addresses
inside namespaces these tests create.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from netns_helpers import PYTHON, configure_container_side, nsexec, run_in_ns
from pyroute2 import IPRoute

from common.errors import Conflict
from nodeagent.network import BridgeNetwork
from nodeagent.network.nftables import table_name
from nodeagent.runtime.spec import NetworkConfig, PortMapping

MakeNs = Callable[[], int]

TCP_SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(8)
while True:
    c, peer = s.accept(); c.sendall(b"hello " + sys.argv[2].encode()); c.close()
"""

UDP_SERVER = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", int(sys.argv[1])))
while True:
    data, peer = s.recvfrom(100); s.sendto(b"udp " + data, peer)
"""


def start_container(net: BridgeNetwork, make_ns: MakeNs, cid: str) -> tuple[int, NetworkConfig]:
    pid = make_ns()
    cfg = net.allocate(cid)
    net.attach(cfg, pid)
    configure_container_side(pid, cfg)
    return pid, cfg


def start_server(procs: list, pid: int, code: str, *args: str) -> None:
    proc = subprocess.Popen(
        ["nsenter", f"--net=/proc/{pid}/ns/net", PYTHON, "-c", code, *args], text=True
    )
    procs.append(proc)


def tcp_get(addr: str, port: int, timeout: float = 5.0) -> bytes:
    """Connect (retrying while the server starts) and read until close."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((addr, port), timeout=1) as s:
                return s.recv(100)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def udp_ask(addr: str, port: int, payload: bytes, timeout: float = 5.0) -> bytes:
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.3)
        while True:
            s.sendto(payload, (addr, port))
            try:
                return s.recv(100)
            except OSError:
                if time.monotonic() > deadline:
                    raise


def host_address() -> str:
    """This host's own address on its default-route interface (a local address)."""
    with IPRoute() as ipr:
        routes = ipr.get_default_routes(family=socket.AF_INET)
        if not routes:
            pytest.skip("host has no IPv4 default route")
        oif = routes[0].get_attr("RTA_OIF")
        addrs = ipr.get_addr(index=oif, family=socket.AF_INET)
        return str(addrs[0].get_attr("IFA_ADDRESS"))


def cid(n: int) -> str:
    return os.urandom(32).hex()[:-2] + f"{n:02x}"


def test_ensure_is_idempotent_and_bridge_has_gateway(net: BridgeNetwork) -> None:
    net.ensure()
    out = subprocess.run(["ip", "-j", "addr", "show", net.bridge], capture_output=True, text=True)
    info = json.loads(out.stdout)[0]
    assert [(a["local"], a["prefixlen"]) for a in info["addr_info"] if a["family"] == "inet"] == [
        (net.gateway, 24)
    ]
    assert "UP" in info["flags"]
    with open(f"/proc/sys/net/ipv4/conf/{net.bridge}/route_localnet") as f:
        assert f.read().strip() == "1"
    rules = subprocess.run(
        ["nft", "-j", "list", "chain", "inet", table_name(net.bridge), "forward"],
        capture_output=True,
        text=True,
        check=True,
    )
    # The published-ports accept, the routing mesh's replies, then the two isolation drops.
    assert len([i for i in json.loads(rules.stdout)["nftables"] if "rule" in i]) == 4


def test_bridge_setup_runs_out_of_process(tmp_path: Path, bridge_name: str, subnet: str) -> None:
    """The supervisor's process never loads pyroute2 (every clone would copy
    its pages); a failed bridge step comes back as SetupError naming it."""
    code = f"""
import sys
from common.errors import SetupError
from nodeagent.network import BridgeNetwork
from nodeagent.runtime import LinuxRuntime
net = BridgeNetwork({str(tmp_path)!r}, {bridge_name!r}, {subnet!r})
LinuxRuntime(network=net)
net.ensure()
error = None
try:
    BridgeNetwork({str(tmp_path / "bad")!r}, "orch:x", {subnet!r}).ensure()
except SetupError as exc:
    error = exc
net.teardown()
print("pyroute2" in sys.modules, error)
"""
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, check=True)
    assert bridge_name not in os.listdir("/sys/class/net")
    loaded, error = out.stdout.strip().split(" ", 1)
    assert loaded == "False"
    assert error == ("container setup failed at step 'bridge_create' ({'ifname': 'orch:x'}): "
                     "Invalid argument")


def test_attach_gives_eth0_address_and_default_route(net: BridgeNetwork, make_ns: MakeNs) -> None:
    pid, cfg = start_container(net, make_ns, cid(1))
    addrs = json.loads(nsexec(pid, "ip", "-j", "addr", "show", "eth0").stdout)[0]
    assert [(a["local"], a["prefixlen"]) for a in addrs["addr_info"] if a["family"] == "inet"] == [
        (cfg.address, 24)
    ]
    assert "UP" in addrs["flags"]
    # Its MAC follows from its address (Docker's 02:42 scheme): the address's next holder has the same.
    assert addrs["address"] == "02:42:" + ":".join(f"{int(b):02x}" for b in cfg.address.split("."))
    assert "UP" in nsexec(pid, "ip", "link", "show", "lo").stdout
    route = nsexec(pid, "ip", "-j", "route", "show", "default").stdout
    assert json.loads(route)[0]["gateway"] == net.gateway
    master = json.loads(
        subprocess.run(
            ["ip", "-j", "link", "show", cfg.host_veth], capture_output=True, text=True
        ).stdout
    )[0]
    assert master["master"] == net.bridge and "UP" in master["flags"]
    net.detach(cfg)
    net.detach(cfg)  # idempotent
    assert not os.path.exists(f"/sys/class/net/{cfg.host_veth}")
    assert "eth0" not in nsexec(pid, "ip", "link").stdout


def test_neither_veth_end_has_ipv6(net: BridgeNetwork, make_ns: MakeNs) -> None:
    """The network is IPv4 only: the host end gets no link-local address
    (whose probes every new bridge port would flood to all the others). The
    container's end is its init's work: tests/runtime checks it."""
    if not os.path.exists("/proc/sys/net/ipv6"):
        pytest.skip("kernel without IPv6")
    _, cfg = start_container(net, make_ns, cid(1))
    host = json.loads(subprocess.run(["ip", "-j", "addr", "show", cfg.host_veth],
                                     capture_output=True, text=True, check=True).stdout)[0]
    assert [a for a in host["addr_info"] if a["family"] == "inet6"] == []
    assert "UP" in host["flags"]
    with open(f"/proc/sys/net/ipv6/conf/{cfg.host_veth}/disable_ipv6") as f:
        assert f.read().strip() == "1"
    net.detach(cfg)


def test_two_containers_reach_each_other(
    net: BridgeNetwork, make_ns: MakeNs, ns_procs: list
) -> None:
    pid_a, cfg_a = start_container(net, make_ns, cid(1))
    pid_b, cfg_b = start_container(net, make_ns, cid(2))
    assert cfg_a.address != cfg_b.address
    ping = nsexec(pid_a, "busybox", "ping", "-c1", "-W2", cfg_b.address, check=False)
    assert ping.returncode == 0, ping.stdout + ping.stderr
    start_server(ns_procs, pid_b, TCP_SERVER, "7000", "from b")
    client = (
        "import socket,time\n"
        "for _ in range(100):\n"
        f"    try: s=socket.create_connection(('{cfg_b.address}',7000),timeout=1); break\n"
        "    except OSError: time.sleep(0.05)\n"
        "print(s.recv(100).decode())"
    )
    out = nsexec(pid_a, PYTHON, "-c", client)
    assert out.stdout.strip() == "hello from b"


def test_published_ports_answer_on_loopback_and_host_address(
    net: BridgeNetwork, make_ns: MakeNs, ns_procs: list
) -> None:
    pid, cfg = start_container(net, make_ns, cid(1))
    hport = 20000 + int.from_bytes(os.urandom(2)) % 20000
    cfg.ports = [PortMapping(hport, 8080, "tcp"), PortMapping(hport, 5353, "udp")]
    start_server(ns_procs, pid, TCP_SERVER, "8080", "published")
    start_server(ns_procs, pid, UDP_SERVER, "5353")
    net.publish("c1", cfg)
    assert tcp_get("127.0.0.1", hport) == b"hello published"
    assert tcp_get(host_address(), hport) == b"hello published"
    assert udp_ask("127.0.0.1", hport, b"ping") == b"udp ping"
    assert udp_ask(host_address(), hport, b"pong") == b"udp pong"
    net.publish("c1", cfg)  # republish replaces, does not duplicate
    assert tcp_get("127.0.0.1", hport) == b"hello published"

    net.unpublish("c1")
    with pytest.raises(OSError):
        tcp_get("127.0.0.1", hport, timeout=0.3)
    listing = subprocess.run(
        ["nft", "list", "table", "inet", table_name(net.bridge)], capture_output=True, text=True
    ).stdout
    assert "dnat to" not in listing and "orch:c1" not in listing


def test_host_port_taken_by_other_container_conflicts(net: BridgeNetwork, make_ns: MakeNs) -> None:
    cfg_a = net.allocate("a" * 64)
    cfg_b = net.allocate("b" * 64)
    cfg_a.ports = [PortMapping(18080, 80)]
    cfg_b.ports = [PortMapping(18081, 80), PortMapping(18080, 80)]
    net.publish("a" * 64, cfg_a)
    with pytest.raises(Conflict, match="18080/tcp is already published by container aaaaaaaa"):
        net.publish("b" * 64, cfg_b)
    cfg_b.ports = [PortMapping(18080, 80, "udp")]  # other protocol: no conflict
    net.publish("b" * 64, cfg_b)
    net.unpublish("a" * 64)
    net.unpublish("a" * 64)  # idempotent
    listing = subprocess.run(
        ["nft", "list", "table", "inet", table_name(net.bridge)], capture_output=True, text=True
    ).stdout
    assert "orch:" + "a" * 64 not in listing and "orch:" + "b" * 64 in listing


def test_container_traffic_does_not_route_out(net: BridgeNetwork, make_ns: MakeNs) -> None:
    _, cfg = start_container(net, make_ns, cid(1))
    # No packet is sent: ask the host's routing decision for a packet from the
    # container to an outside address, and check the isolation rules exist.
    table = json.loads(
        subprocess.run(
            ["nft", "-j", "list", "table", "inet", table_name(net.bridge)],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )["nftables"]
    rules = [i["rule"] for i in table if "rule" in i]
    forward = [r for r in rules if r["chain"] == "forward"]
    text = json.dumps(forward)
    assert any(
        {"drop": None} in r["expr"] and net.bridge in json.dumps(r["expr"]) for r in forward
    ), text
    assert not any(
        "masquerade" in json.dumps(r["expr"]) and "127.0.0.0" not in json.dumps(r["expr"])
        for r in rules
    ), "no outbound masquerade"
    with open("/proc/sys/net/ipv4/ip_forward") as f:
        forwarding = f.read().strip() == "1"
    got = subprocess.run(
        ["ip", "route", "get", "198.51.100.7", "from", cfg.address, "iif", net.bridge],
        capture_output=True,
        text=True,
    )
    if not forwarding:
        assert got.returncode != 0 or "unreachable" in got.stdout or "prohibit" in got.stdout


def test_teardown_removes_leases(net: BridgeNetwork, make_ns: MakeNs) -> None:
    _, cfg = start_container(net, make_ns, cid(1))
    assert os.path.exists(net.leases.path)
    net.teardown()
    assert not os.path.exists(net.leases.path)
    assert not os.path.exists(f"/sys/class/net/{cfg.host_veth}")
    assert not os.path.exists(f"/sys/class/net/{net.bridge}")
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    assert table_name(net.bridge) not in tables
    net.teardown()  # idempotent


def test_isolation_blocks_forwarding_in_sandboxed_host(
    tmp_path: Path, bridge_name: str, subnet: str, make_ns: MakeNs
) -> None:
    """A whole stand-in host in its own net ns, with ip_forward=1 (set in that
    ns only) and an uplink to an 'outside' ns: a container pings the outside
    only when the isolation rules are flushed. Nothing touches the real host."""
    host, outside, container = make_ns(), make_ns(), make_ns()
    net = BridgeNetwork(str(tmp_path / "sandbox"), bridge=bridge_name, subnet=subnet)
    up = "orchup" + os.urandom(2).hex()
    nsexec(
        host,
        "ip",
        "link",
        "add",
        up,
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        f"/proc/{outside}/ns/net",
    )
    nsexec(host, "ip", "addr", "add", "10.198.0.1/24", "dev", up)
    nsexec(host, "ip", "link", "set", up, "up")
    nsexec(host, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    nsexec(outside, "ip", "addr", "add", "10.198.0.2/24", "dev", "eth0")
    nsexec(outside, "ip", "link", "set", "eth0", "up")
    nsexec(outside, "ip", "route", "add", "default", "via", "10.198.0.1")
    try:
        run_in_ns(host, net.ensure)
        cfg = net.allocate("c" * 64)
        run_in_ns(host, lambda: net.attach(cfg, container))
        configure_container_side(container, cfg)

        def ping_outside() -> int:
            return nsexec(
                container, "busybox", "ping", "-c1", "-W1", "10.198.0.2", check=False
            ).returncode

        assert ping_outside() != 0
        nsexec(host, "nft", "flush", "chain", "inet", table_name(bridge_name), "forward")
        assert ping_outside() == 0, "control: without the isolation rules the ping goes through"
        run_in_ns(host, net.ensure)
        assert ping_outside() != 0
    finally:
        run_in_ns(host, net.teardown)
