"""Overlay interfaces of real containers, on a real node: an agent in a
network namespace of its own (as `orch up`'s nodes are), containers asked
for with ``ContainerConfig.networks`` over its gRPC API, as the cluster's
executor asks.

- Each network is an interface ``ethK`` inside with its address; the node
  routes the address to the host end, which answers ARP for the subnet.
- Two containers of a network reach each other through the node.
- Stop, removal and a killed supervisor leave no link and no route.

And the DNS sockets' hand-over from a real supervisor to its client (the
agent's side), with a real container asking: ``test_dns_sockets_*``.

Traffic stays inside the namespaces these tests create; each namespace goes
at the end, and nothing of the agent is left (``orch agent stop --all``).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from nodeagent.runtime.spec import ContainerSpec, NetworkConfig, ProcessSpec, RootfsSpec
from nodeagent.supervisor import SupervisorClient
from proto import agent_pb2 as pb
from tests.agent.conftest import ROOT, Engine, busybox_rootfs
from tests.agent.test_engine import wait_for


def make_netns() -> str:
    name = "orchtn3" + secrets.token_hex(3)
    subprocess.run(["ip", "netns", "add", name], check=True)
    subprocess.run(["ip", "-n", name, "link", "set", "lo", "up"], check=True)
    return name


def in_netns(ns: str, *cmd: str) -> list[str]:
    return ["nsenter", f"--net=/run/netns/{ns}", "--", *cmd]


@dataclass
class Node(Engine):
    """An agent in network namespace ``ns``."""

    ns: str = ""
    tag: int = 0  # picks the test's subnets

    def start(self) -> None:
        subprocess.run(in_netns(self.ns, sys.executable, "-m", "orch", "agent", "--detach",
                                "--state-dir", str(self.state), "--run-dir", str(self.run),
                                "--bridge", self.bridge, "--subnet", self.subnet),
                       env=self.env, check=True, capture_output=True, timeout=60, cwd=ROOT)

    def sh(self, *cmd: str) -> str:
        """A command in the node's namespace; its output."""
        return subprocess.run(in_netns(self.ns, *cmd), capture_output=True, text=True,
                              check=True).stdout

    def run_container(self, name: str, *networks: tuple[str, str],
                      command: tuple[str, ...] = ("sleep", "300"), **fields: Any) -> dict[str, Any]:
        """Run a busybox container on ``networks`` ((name, address) each),
        over the agent's gRPC API; its inspect document."""
        import grpc

        from proto import agent_pb2_grpc

        cfg = pb.ContainerConfig(
            image="busybox", name=name, command=pb.StringList(values=list(command)),
            networks=[pb.NetworkAttachmentConfig(network_id=f"id-{n}", network_name=n, address=a,
                                                 aliases=[f"{name}-{n}"]) for n, a in networks],
            **fields)
        with grpc.insecure_channel(f"unix:{self.run}/agent.sock") as ch:
            events = list(agent_pb2_grpc.AgentStub(ch).Run(pb.RunRequest(config=cfg), timeout=60))
        return inspect(self, events[0].started.id)

    def route(self, address: str) -> str:
        return self.sh("ip", "-4", "route", "show", f"{address}/32").strip()

    def links(self) -> str:
        return self.sh("ip", "-o", "link")

    def sysctl(self, key: str) -> str:
        return self.sh("cat", f"/proc/sys/net/{key}").strip()


def inspect(engine: Engine, ref: str) -> dict[str, Any]:
    return json.loads(engine.orch("inspect", ref).stdout)[0]


def host_end(doc: dict[str, Any], k: int) -> str:
    return f"vn{doc['id'][:10]}{k}"


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Node]:
    if os.geteuid() != 0:
        pytest.skip("the agent needs root")
    tmp = tmp_path_factory.mktemp("overlay")
    tag = secrets.randbelow(200) + 20
    ns = make_netns()
    node = Node(state=tmp / "state", run=tmp / "run", bridge=f"orchv{secrets.token_hex(2)}",
                subnet=f"10.214.{tag}.0/24", env={**os.environ, "ORCH_HOST": f"unix://{tmp}/run/agent.sock"},
                ns=ns, tag=tag)
    try:
        node.start()
        node.orch("image", "import", str(busybox_rootfs(tmp / "busybox")), "busybox:latest")
        yield node
    finally:
        node.stop_all()
        subprocess.run(["ip", "netns", "del", ns], check=True)


def test_a_container_joins_two_networks_as_eth1_and_eth2(node: Node) -> None:
    t = node.tag
    doc = node.run_container("two", ("front", f"10.97.{t}.2/24"), ("back", f"10.98.{t}.2/16"))
    try:
        inside = node.orch("exec", "two", "ip", "-o", "-4", "addr").stdout.splitlines()
        assert any("eth1" in line and f"inet 10.97.{t}.2/24" in line for line in inside), inside
        assert any("eth2" in line and f"inet 10.98.{t}.2/16" in line for line in inside), inside
        routes = node.orch("exec", "two", "ip", "route").stdout
        assert "default via" in routes and "dev eth0" in routes.splitlines()[0]
        resolv = node.orch("exec", "two", "cat", "/etc/resolv.conf").stdout
        assert resolv == "nameserver 127.0.0.11\noptions ndots:0\n"
        for k, address in ((1, f"10.97.{t}.2"), (2, f"10.98.{t}.2")):
            veth = host_end(doc, k)
            assert node.route(address) == f"{address} dev {veth} proto static scope link"
            assert node.sysctl(f"ipv4/conf/{veth}/proxy_arp") == "1"
            assert node.sysctl(f"ipv4/conf/{veth}/forwarding") == "1"
        node.orch("stop", "-t", "1", "two")
        for k, address in ((1, f"10.97.{t}.2"), (2, f"10.98.{t}.2")):
            assert host_end(doc, k) not in node.links()
            assert node.route(address) == ""
    finally:
        node.orch("rm", "-f", "two", check=False)


def test_two_containers_of_a_network_reach_each_other_through_the_node(node: Node) -> None:
    t = node.tag
    node.run_container("srv", ("front", f"10.97.{t}.3/24"),
                       command=("httpd", "-f", "-p", "8080", "-h", "/etc"))
    node.run_container("cli", ("front", f"10.97.{t}.4/24"))
    try:
        assert node.orch("exec", "cli", "ping", "-c1", "-W3", f"10.97.{t}.3").returncode == 0
        page = node.orch("exec", "cli", "wget", "-qO-", f"http://10.97.{t}.3:8080/hostname").stdout
        assert page.strip() == inspect(node, "srv")["id"][:12]
        # The node does the routing: its host ends answer for the subnet.
        neigh = node.orch("exec", "cli", "ip", "neigh", "show", "dev", "eth1").stdout
        assert f"10.97.{t}.3 lladdr" in neigh
    finally:
        node.orch("rm", "-f", "srv", "cli", check=False)
    for address in (f"10.97.{t}.3", f"10.97.{t}.4"):
        assert node.route(address) == ""
    assert "vn" not in node.links()


def test_a_killed_supervisor_leaves_no_overlay_link_or_route(node: Node) -> None:
    """The new supervisor cleans the killed containers' host ends and
    routes; a container it restarts gets them again."""
    t = node.tag
    gone = node.run_container("gone", ("front", f"10.97.{t}.5/24"))
    back = node.run_container("back", ("front", f"10.97.{t}.6/24"), restart_policy="always")
    try:
        assert node.route(f"10.97.{t}.5") and node.route(f"10.97.{t}.6")
        old = node.info()["supervisor_pid"]
        os.kill(old, signal.SIGKILL)

        def settled() -> bool:
            with contextlib.suppress(Exception):
                if node.info()["supervisor_pid"] == old:
                    return False
                again = inspect(node, "back")
                return inspect(node, "gone")["state"] == "exited" and again["state"] == "running" \
                    and again["pid"] != back["pid"]
            return False

        wait_for(settled, timeout=60)
        assert node.route(f"10.97.{t}.5") == ""
        assert host_end(gone, 1) not in node.links()
        assert node.route(f"10.97.{t}.6") == f"10.97.{t}.6 dev {host_end(back, 1)} proto static scope link"
        assert f"inet 10.97.{t}.6/24" in node.orch("exec", "back", "ip", "-o", "-4", "addr").stdout
    finally:
        node.orch("rm", "-f", "gone", "back", check=False)
    assert node.route(f"10.97.{t}.6") == "" and "vn" not in node.links()


def test_bad_networks_are_refused_before_anything_runs(node: Node) -> None:
    import grpc

    with pytest.raises(grpc.RpcError) as err:
        node.run_container("bad", ("front", "10.97.0.0/24"))
    assert "not a host address of 10.97.0.0/24" in str(err.value.details())
    assert "bad" not in node.orch("ps", "-a").stdout


def test_a_failed_start_leaves_no_overlay_link_or_route(node: Node) -> None:
    import grpc

    t = node.tag
    with pytest.raises(grpc.RpcError) as err:
        node.run_container("nocmd", ("front", f"10.97.{t}.7/24"), command=("/no/such/binary",))
    assert "/no/such/binary" in str(err.value.details())
    try:
        assert inspect(node, "nocmd")["exit_code"] == 127
        assert node.route(f"10.97.{t}.7") == "" and "vn" not in node.links()
    finally:
        node.orch("rm", "-f", "nocmd", check=False)


# --- the DNS sockets' hand-over, from a real supervisor ------------------------------


@dataclass
class Taken:
    """What the client side received: each container's fds, as taken."""

    fds: dict[str, list[int]] = field(default_factory=dict)
    data: dict[str, dict[str, Any]] = field(default_factory=dict)
    cond: threading.Condition = field(default_factory=threading.Condition)

    def take(self, data: dict[str, Any], fds: list[int]) -> None:
        with self.cond:
            for fd in self.fds.pop(data["id"], []):
                os.close(fd)
            self.fds[data["id"]], self.data[data["id"]] = fds, data
            self.cond.notify_all()

    def wait(self, cid: str) -> list[int]:
        with self.cond:
            assert self.cond.wait_for(lambda: cid in self.fds, timeout=30), f"no sockets for {cid}"
            return self.fds[cid]

    def close(self) -> None:
        for fds in self.fds.values():
            for fd in fds:
                os.close(fd)
        self.fds.clear()


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A real supervisor (real runtime, bridge network) in a namespace of its own."""
    if os.geteuid() != 0:
        pytest.skip("the supervisor needs root")
    ns = make_netns()
    state, run = tmp_path / "state", tmp_path / "run"
    log = open(tmp_path / "supervisor.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen(in_netns(ns, sys.executable, "-m", "nodeagent.supervisor", "--state-dir",
                                     str(state), "--run-dir", str(run), "--bridge",
                                     f"orchd{secrets.token_hex(2)}", "--subnet",
                                     f"10.213.{secrets.randbelow(250)}.0/24"),
                            stdout=log, stderr=log, cwd=ROOT)
    try:
        wait_for(lambda: (run / "supervisor.sock").exists() or proc.poll() is not None)
        assert proc.poll() is None, (tmp_path / "supervisor.log").read_text()
        yield state, str(run / "supervisor.sock")
        client = SupervisorClient(str(run / "supervisor.sock"))
        with contextlib.suppress(Exception):
            client.call("shutdown", stop_containers=True, wait_timeout=60)
        client.close()
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        subprocess.run(["ip", "netns", "del", ns], check=True)


def record(state: Path, rootfs: Path, name: str, args: list[str], **network: Any) -> dict[str, Any]:
    cid = secrets.token_hex(32)
    spec = ContainerSpec(id=cid, name=name, hostname=name, bundle_dir=str(state / "containers" / cid),
                         rootfs=RootfsSpec(lower_dirs=[str(rootfs)], volatile=True),
                         process=ProcessSpec(args=args), network=NetworkConfig(**network),
                         cgroup_name=f"orch/{cid}")
    return {"spec": spec.to_dict(), "image": "busybox"}


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    return busybox_rootfs(tmp_path_factory.mktemp("bb"))


def answer(sock: socket.socket, query: bytes, peer: Any, address: str) -> str:
    """Answer a query from ``peer``: ``address`` for A, nothing else; its type."""
    from dnslib import QTYPE, RR, A, DNSRecord

    request = DNSRecord.parse(query)
    reply = request.reply()
    kind = QTYPE[request.q.qtype]
    if kind == "A":
        reply.add_answer(RR(request.q.qname, QTYPE.A, rdata=A(address), ttl=0))
    sock.sendto(bytes(reply.pack()), peer)
    return str(kind)


def test_dns_sockets_reach_the_client_and_carry_the_containers_queries(
        supervisor: tuple[Path, str], rootfs: Path) -> None:
    """A bridge container's resolver is 127.0.0.11: its query arrives on the
    UDP fd the client took from ``dns_sockets``, the answer sent back on it
    reaches the container; a TCP connection arrives on the TCP fd. A client
    that subscribes again gets the running container's sockets anew."""
    state, sock = supervisor
    taken = Taken()
    client = SupervisorClient(sock)
    client.take_fds("dns_sockets", taken.take)
    try:
        client.call("subscribe", events=["dns_sockets", "exited"])
        rec = client.call("run", record=record(
            state, rootfs, "asker", ["sh", "-c", "nslookup web.example; echo hi | nc 127.0.0.11 53;"
                                                 " sleep 300"], mode="bridge"))
        udp_fd, tcp_fd = taken.wait(rec["id"])
        data = taken.data[rec["id"]]
        assert (data["name"], data["network"], data["networks"]) == ("asker", "bridge", [])
        assert data["ip_address"] == rec["ip_address"]
        udp = socket.socket(fileno=os.dup(udp_fd))
        tcp = socket.socket(fileno=os.dup(tcp_fd))
        with udp, tcp:
            udp.settimeout(30)
            answered: set[str] = set()
            while answered != {"A", "AAAA"}:  # nslookup asks both, in either order
                query, peer = udp.recvfrom(512)
                answered.add(answer(udp, query, peer, "192.0.2.7"))
            tcp.settimeout(30)
            conn, _ = tcp.accept()
            with conn:
                conn.settimeout(30)
                assert conn.recv(10) == b"hi\n"
        logs = Path(rec["log_path"])
        wait_for(lambda: "192.0.2.7" in logs.read_text(), timeout=30)
        assert "web.example" in logs.read_text()

        # Subscribing again (an agent that connects again): the sockets again.
        second = Taken()
        again = SupervisorClient(sock)
        again.take_fds("dns_sockets", second.take)
        try:
            again.call("subscribe", events=["dns_sockets"])
            fds = second.wait(rec["id"])
            assert [os.fstat(fd).st_ino for fd in fds] == [os.fstat(fd).st_ino for fd in (udp_fd, tcp_fd)]
        finally:
            again.close()
            second.close()
        client.call("remove", id=rec["id"], force=True, wait_timeout=60)
    finally:
        client.close()
        taken.close()


def test_dns_sockets_of_a_container_with_a_network_name_it(supervisor: tuple[Path, str],
                                                           rootfs: Path) -> None:
    """No eth0 (network none) but an overlay network: sockets all the same,
    the event naming the network; a container without a network of its own
    gets none, and a client that does not ask for them gets none either."""
    from nodeagent.runtime.spec import NetworkAttachment

    state, sock = supervisor
    taken, other = Taken(), Taken()
    client, quiet = SupervisorClient(sock), SupervisorClient(sock)
    client.take_fds("dns_sockets", taken.take)
    quiet.take_fds("dns_sockets", other.take)
    try:
        client.call("subscribe", events=None)
        quiet.call("subscribe", events=["exited"])
        att = NetworkAttachment(network_id="id-front", network_name="front", address="10.97.9.2",
                                prefixlen=24, ifname="eth1", host_veth="", aliases=["api"])
        rec = record(state, rootfs, "overlaid", ["sleep", "300"], mode="none")
        cid = rec["spec"]["id"]
        rec["spec"]["network"]["attachments"] = [{**vars(att), "host_veth": f"vn{cid[:10]}1"}]
        client.call("run", record=rec)
        plain = client.call("run", record=record(state, rootfs, "plain", ["sleep", "300"], mode="none"))
        taken.wait(cid)
        assert taken.data[cid]["networks"] == [{"network_id": "id-front", "network_name": "front",
                                                "address": "10.97.9.2/24", "aliases": ["api"],
                                                "ifname": "eth1"}]
        assert plain["id"] not in taken.fds and other.fds == {}
        for ref in (cid, plain["id"]):
            client.call("remove", id=ref, force=True, wait_timeout=60)
    finally:
        client.close()
        quiet.close()
        taken.close()
        other.close()
