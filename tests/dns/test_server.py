"""The node's DNS server against real sockets in real network namespaces:
each "container" is a namespace with sockets bound to 127.0.0.11:53, and
every query is asked from inside it."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

from dnsfix import BACK, BACK_ONLY, FRONT, FRONT_ONLY, Node, on
from dnslib import DNSRecord
from nshelp import addresses, in_netns, query, rcode

from nodeagent.dns.scope import Attachment, ContainerScope
from nodeagent.network.state import Endpoint, NetworkStateHub, ServiceNetwork, ServiceRoute, StateUpdate


def wait_for(check: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def test_service_vip_tasks_aliases_and_task_names(make_node: Callable[..., Node],
                                                  hub: NetworkStateHub) -> None:
    node = make_node(hub)
    c = node.container("c1", FRONT_ONLY)
    assert addresses(query(c, "api")) == ["10.96.1.2"]
    assert addresses(query(c, "api.")) == ["10.96.1.2"]
    assert addresses(query(c, "API")) == ["10.96.1.2"]
    assert addresses(query(c, "backend")) == ["10.96.1.2"]
    assert addresses(query(c, "api.front")) == ["10.96.1.2"]
    assert sorted(addresses(query(c, "tasks.api"))) == ["10.96.1.11", "10.96.1.12"]
    assert sorted(addresses(query(c, "tasks.backend"))) == ["10.96.1.11", "10.96.1.12"]
    assert addresses(query(c, "api.2.t-api2")) == ["10.96.1.12"]
    reply = query(c, "api")
    assert reply.rr[0].ttl == 0 and reply.header.aa


def test_aaaa_and_other_types_of_known_names_are_empty(make_node: Callable[..., Node],
                                                       hub: NetworkStateHub) -> None:
    node = make_node(hub)
    c = node.container("c1", FRONT_ONLY)
    for qtype in ("AAAA", "MX", "TXT"):
        reply = query(c, "api", qtype)
        assert rcode(reply) == "NOERROR" and not reply.rr, qtype


def test_names_are_scoped_per_network(make_node: Callable[..., Node], hub: NetworkStateHub) -> None:
    node = make_node(hub)
    front = node.container("c-front", FRONT_ONLY)
    back = node.container("c-back", BACK_ONLY)
    both = node.container("c-both", on((BACK, "back"), (FRONT, "front")))
    # api is on both networks: each asker gets its own network's VIP.
    assert addresses(query(front, "api")) == ["10.96.1.2"]
    assert addresses(query(back, "api")) == ["10.96.2.2"]
    assert sorted(addresses(query(back, "tasks.api"))) == ["10.96.2.11", "10.96.2.12"]
    # The alias exists on front only; web and db each on one network.
    for ns, name in ((back, "backend"), (back, "web"), (back, "web.1.t-web1"), (front, "db"),
                     (front, "tasks.db"), (back, "api.front")):
        assert rcode(query(ns, name)) == "SERVFAIL", (ns, name)
    # On two networks, the first that knows a name answers.
    assert addresses(query(both, "api")) == ["10.96.2.2"]
    assert addresses(query(both, "web")) == ["10.96.1.3"]
    assert addresses(query(both, "api.front")) == ["10.96.1.2"]


def test_dnsrr_answers_the_endpoints_shuffled(make_node: Callable[..., Node],
                                              hub: NetworkStateHub) -> None:
    node = make_node(hub)
    c = node.container("c1", BACK_ONLY)
    orders = {tuple(addresses(query(c, "db"))) for _ in range(40)}
    assert {tuple(sorted(o)) for o in orders} == {("10.96.2.21", "10.96.2.22", "10.96.2.23")}
    assert len(orders) > 1  # 40 answers in one order of six: (1/6)^39


def test_unknown_names_get_servfail_at_once_without_upstreams(make_node: Callable[..., Node],
                                                             hub: NetworkStateHub) -> None:
    node = make_node(hub)
    c = node.container("c1", FRONT_ONLY)
    # A timeout well under one forwarding attempt's: the answer does not wait for anyone.
    for name in ("example.org", "nope", "tasks.nope"):
        assert rcode(query(c, name, timeout=1.0)) == "SERVFAIL"
        assert rcode(query(c, name, tcp=True, timeout=1.0)) == "SERVFAIL"


def test_tcp_queries(make_node: Callable[..., Node], hub: NetworkStateHub) -> None:
    node = make_node(hub)
    c = node.container("c1", FRONT_ONLY)
    assert addresses(query(c, "api", tcp=True)) == ["10.96.1.2"]

    def two_on_one_connection() -> list[list[str]]:
        with socket.create_connection(("127.0.0.11", 53), timeout=5) as s:
            answers = []
            msgs = [DNSRecord.question(n).pack() for n in ("api", "web")]
            s.sendall(b"".join(len(m).to_bytes(2, "big") + m for m in msgs))
            buf = b""
            while len(answers) < 2:
                buf += s.recv(4096)
                while len(buf) >= 2 and len(buf) - 2 >= int.from_bytes(buf[:2], "big"):
                    n = int.from_bytes(buf[:2], "big")
                    answers.append(addresses(DNSRecord.parse(buf[2:2 + n])))
                    buf = buf[2 + n:]
            return answers

    assert in_netns(c, two_on_one_connection) == [["10.96.1.2"], ["10.96.1.3"]]


def test_a_large_answer_is_cut_for_udp_and_whole_over_tcp(make_node: Callable[..., Node]) -> None:
    hub = NetworkStateHub()
    hub.apply(StateUpdate(full=True, services=[ServiceRoute("s", "many", "dnsrr", (ServiceNetwork(FRONT),))],
                          endpoints=[Endpoint(f"t{i}", "s", FRONT, f"10.96.1.{i}", "n1", f"many.{i}.t{i}", i)
                                     for i in range(10, 110)]))
    node = make_node(hub)
    c = node.container("c1", FRONT_ONLY)
    udp = query(c, "many")
    assert udp.header.tc and 0 < len(addresses(udp)) < 100 and len(udp.pack()) <= 512
    assert len(set(addresses(query(c, "many", tcp=True)))) == 100


def test_answers_follow_the_state(make_node: Callable[..., Node], hub: NetworkStateHub) -> None:
    node = make_node(hub)
    c = node.container("c1", FRONT_ONLY)
    hub.apply(StateUpdate(endpoints=[Endpoint("t-api3", "s-api", FRONT, "10.96.1.13", "n3",
                                              "api.3.t-api3", 3)]))
    wait_for(lambda: "10.96.1.13" in addresses(query(c, "tasks.api")), "a new endpoint")
    hub.apply(StateUpdate(removed_endpoints=["t-api1/" + FRONT]))
    wait_for(lambda: sorted(addresses(query(c, "tasks.api"))) == ["10.96.1.12", "10.96.1.13"],
             "a removed endpoint")
    hub.apply(StateUpdate(services=[ServiceRoute("s-api", "api", networks=(
        ServiceNetwork(FRONT, "10.96.1.2", ("renamed",)),))]))
    wait_for(lambda: addresses(query(c, "renamed")) == ["10.96.1.2"], "a new alias")
    assert rcode(query(c, "backend")) == "SERVFAIL"
    hub.apply(StateUpdate(removed_services=["s-api"]))
    wait_for(lambda: rcode(query(c, "api")) == "SERVFAIL", "a removed service")
    hub.apply(StateUpdate(full=True))
    wait_for(lambda: rcode(query(c, "web")) == "SERVFAIL", "an emptied state")


def test_engine_containers_resolve_each_other_by_name_and_alias(make_node: Callable[..., Node]) -> None:
    node = make_node()

    def engine(name: str, network: str, address: str, *aliases: str) -> ContainerScope:
        return ContainerScope(name=name, publish=True,
                              networks=(Attachment(network, network, address, aliases),))

    a = node.container("a", engine("alpha", "n-app", "10.90.1.2", "db", "cache"))
    b = node.container("b", engine("beta", "n-app", "10.90.1.3", "cache"))
    other = node.container("c", engine("gamma", "n-other", "10.90.2.2"))
    plain = node.container("d", ContainerScope(name="delta"))  # the default bridge: no names
    assert addresses(query(b, "alpha")) == ["10.90.1.2"]
    assert addresses(query(b, "db")) == ["10.90.1.2"]
    assert addresses(query(a, "beta.n-app")) == ["10.90.1.3"]
    assert addresses(query(a, "alpha")) == ["10.90.1.2"]  # its own name too, as Docker
    assert sorted(addresses(query(a, "cache"))) == ["10.90.1.2", "10.90.1.3"]
    for ns in (other, plain):
        assert rcode(query(ns, "alpha")) == "SERVFAIL"
    assert rcode(query(a, "gamma")) == "SERVFAIL"
    assert rcode(query(plain, "delta")) == "SERVFAIL"
    node.dns.remove_container("a")
    wait_for(lambda: rcode(query(b, "alpha")) == "SERVFAIL", "a removed container's name")
    assert addresses(query(b, "cache")) == ["10.90.1.3"]


def test_removing_a_container_closes_its_sockets(make_node: Callable[..., Node],
                                                 hub: NetworkStateHub) -> None:
    node = make_node(hub)
    c = node.container("c1", FRONT_ONLY)
    assert addresses(query(c, "api")) == ["10.96.1.2"]
    node.dns.remove_container("c1")

    def port_free() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:
                s.bind(("127.0.0.11", 53))
            except OSError:
                return False
            return True

    wait_for(lambda: in_netns(c, port_free), "the container's UDP socket to close")


def test_bad_queries_are_refused_and_the_server_goes_on(make_node: Callable[..., Node],
                                                       hub: NetworkStateHub) -> None:
    node = make_node(hub)
    c = node.container("c1", FRONT_ONLY)

    def send_raw(data: bytes) -> bytes | None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            s.sendto(data, ("127.0.0.11", 53))
            try:
                return s.recv(512)
            except TimeoutError:
                return None

    junk = DNSRecord.question("api").pack()[:14]  # a header and half a name
    reply = in_netns(c, lambda: send_raw(junk))
    assert reply is not None and reply[:2] == junk[:2] and reply[3] & 0x0F == 1  # FORMERR
    assert in_netns(c, lambda: send_raw(b"\x01")) is None
    notify = DNSRecord.question("api")
    notify.header.opcode = 4
    reply = in_netns(c, lambda: send_raw(notify.pack()))
    assert reply is not None and DNSRecord.parse(reply).header.rcode == 4  # NOTIMP
    assert addresses(query(c, "api")) == ["10.96.1.2"]


def test_busybox_nslookup_with_sockets_bound_before_loopback_is_up(make_node: Callable[..., Node],
                                                                   hub: NetworkStateHub) -> None:
    """As the supervisor makes them: bound with IP_FREEBIND while the
    container's lo is still down; busybox connects its UDP socket, so a reply
    must come from 127.0.0.11 itself."""
    node = make_node(hub)
    ns = node.make_ns()
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "down"], check=True)

    def early_sockets() -> tuple[int, int]:
        made = []
        for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
            s = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)
            s.setsockopt(socket.SOL_IP, 15, 1)  # IP_FREEBIND
            s.bind(("127.0.0.11", 53))
            made.append(s)
        made[1].listen(4)
        return made[0].detach(), made[1].detach()

    udp, tcp = in_netns(ns, early_sockets)
    node.dns.add_container("bb", udp, tcp, FRONT_ONLY)
    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
    out = subprocess.run(["ip", "netns", "exec", ns, "busybox", "nslookup", "api", "127.0.0.11"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "10.96.1.2" in out.stdout
    assert sorted(addresses(query(ns, "tasks.api"))) == ["10.96.1.11", "10.96.1.12"]
