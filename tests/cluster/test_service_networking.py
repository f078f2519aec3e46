"""Service networking end to end, on the session's cluster (real etcd, control
planes, three agents in network namespaces, real containers): a client on n1
calls a service by name and reaches its replicas on n2 and n3 over the
overlay; `tasks.SERVICE` lists them; a published port answers on every node,
prefers a local replica, and the server sees the client's own address either
way; two networks cannot reach each other; DNS and the VIP follow a scale
down, a drain and a killed node, after which no request fails; and nothing a
network added stays behind once it is removed.

The servers are busybox httpd with a CGI script that prints the caller's
address (``REMOTE_ADDR``) and the answering task's hostname, so every answer
says who asked and who answered. (Debian's busybox wget crashes with ``-T``:
``timeout`` bounds it instead.)
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import signal
import socket
import subprocess
import textwrap
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.cluster.conftest import LocalCluster, wait_for

LOOP = "trap 'exit 0' TERM; while true; do sleep 1; done"

WHO_SERVER = textwrap.indent(textwrap.dedent("""\
    command:
      - sh
      - -c
      - |
        mkdir -p /www/cgi-bin
        echo '#!/bin/sh' > /www/cgi-bin/who
        echo 'echo Content-Type: text/plain; echo; echo "$REMOTE_ADDR $(hostname)"' >> /www/cgi-bin/who
        chmod +x /www/cgi-bin/who
        exec httpd -f -p 9000 -h /www
    stop_grace_period: 1s
"""), "    ")


def _stack(tmp: Path, name: str, body: str) -> str:
    """A manifest in a directory named after its stack."""
    d = tmp / name
    d.mkdir()
    path = d / "stack.yaml"
    path.write_text(body)
    return str(path)


def _client(constraint: str = "node.hostname == n1", networks: str = "") -> str:
    return textwrap.dedent(f"""\
          client:
            image: busybox
            command: ["sh", "-c", "{LOOP}"]
            stop_grace_period: 1s
            deploy:
              placement:
                constraints: ["{constraint}"]
        """) + networks


def _api(replicas: int, extra: str = "") -> str:
    return ("  api:\n    image: busybox\n" + WHO_SERVER + textwrap.indent(textwrap.dedent(f"""\
        deploy:
          replicas: {replicas}
          placement:
            constraints: ["node.hostname != n1"]
        """), "    ") + extra)


def _exec(cluster: LocalCluster, task: str, script: str, check: bool = True,
          timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return cluster.orch("exec", task, "sh", "-c", script, check=check, timeout=timeout)


def _who(lines: str) -> list[tuple[str, str]]:
    """(caller address, answering hostname) per answer; a failed request is ("FAIL", "")."""
    out = []
    for line in lines.splitlines():
        if line.strip() == "FAIL":
            out.append(("FAIL", ""))
        elif line.strip():
            addr, _, host = line.strip().partition(" ")
            out.append((addr.strip("[]").removeprefix("::ffff:"), host))
    return out


def _requests(cluster: LocalCluster, task: str, url: str, count: int) -> list[tuple[str, str]]:
    script = (f"for i in $(seq {count}); do timeout 5 wget -q -O- {url} || echo FAIL; done")
    return _who(_exec(cluster, task, script, timeout=60 + count * 6).stdout)


def _hostname(task: dict[str, Any]) -> str:
    return f"{task['service']}.{task['slot']}.{task['id'][:8]}"


def _address(task: dict[str, Any], network: str) -> str:
    return next(n["address"].partition("/")[0] for n in task["networks"] if n["network"] == network)


def _lookup(cluster: LocalCluster, task: str, name: str) -> set[str]:
    """The addresses `nslookup NAME` gets in the task's container (none: empty)."""
    proc = _exec(cluster, task, f"nslookup {name}", check=False)
    answers = proc.stdout.split("\n\n", 1)[-1]  # past the server's own lines
    return set(re.findall(r"Address:\s*(\d+\.\d+\.\d+\.\d+)\s*$", answers, re.M))


def _netns(cluster: LocalCluster, node: str) -> str:
    return next(n["netns"] for n in cluster.record()["nodes"] if n["name"] == node)


def _vip_endpoints(cluster: LocalCluster, node: str, vip: str) -> set[str]:
    """The task addresses the VIP's chain in ``node``'s nftables sends to (what
    the kernel has, not what the agent believes)."""
    chain = "svc_" + vip.replace(".", "_")
    proc = subprocess.run(["ip", "netns", "exec", _netns(cluster, node), "nft", "list", "chain", "ip",
                           "orch_svc", chain], capture_output=True, text=True)
    return {m.replace("_", ".") for m in re.findall(r"goto ep_(\d+_\d+_\d+_\d+)", proc.stdout)}


def _wait_endpoints(cluster: LocalCluster, node: str, network: str, service: str) -> None:
    """Until ``node``'s kernel sends the service's VIP to exactly its running
    tasks: a deploy returns once they run, and a node programs their
    endpoints a moment later (new ones are gathered, see the overlay)."""
    vip = _vip(cluster, network, service)
    wait_for(lambda: _vip_endpoints(cluster, node, vip)
             == {_address(t, network) for t in cluster.running(service)})


def _vip(cluster: LocalCluster, network: str, service: str) -> str:
    [doc] = json.loads(cluster.orch("network", "inspect", network).stdout)
    return str(next(s["vip"] for s in doc["services"] if s["name"] == service).partition("/")[0])


def _node_address(cluster: LocalCluster, node: str) -> str:
    return str(next(n["address"] for n in cluster.nodes() if n["name"] == node).rpartition(":")[0])


def _get(url: str) -> tuple[str, str]:
    with urllib.request.urlopen(url, timeout=10) as reply:  # a node of this cluster
        [answer] = _who(reply.read().decode())
    return answer


def _uplink_address() -> str | None:
    """This host's address on its default route's interface (none: no uplink)."""
    routes = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "default"], capture_output=True,
                                       text=True).stdout or "[]")
    if not routes:
        return None
    addrs = json.loads(subprocess.run(["ip", "-j", "-4", "addr", "show", "dev", routes[0]["dev"]],
                                      capture_output=True, text=True).stdout or "[]")
    infos = [a["local"] for link in addrs for a in link.get("addr_info", [])]
    return infos[0] if infos else None


def test_by_name_over_the_overlay_and_the_routing_mesh_keep_the_callers_address(
        cluster: LocalCluster, tmp_path: Path) -> None:
    port = cluster.port + 61
    path = _stack(tmp_path, "svcnet", "services:\n" + _api(4, f'    ports: ["{port}:9000"]\n')
                  + textwrap.indent(_client(), "  "))
    cluster.orch("deploy", "-f", path)
    try:
        api = cluster.running("api")
        [client] = cluster.running("client")
        assert {t["node"] for t in api} == {"n2", "n3"} and client["node"] == "n1"
        by_host = {_hostname(t): t for t in api}
        me = _address(client, "svcnet_default")
        _wait_endpoints(cluster, "n1", "svcnet_default", "api")

        # By name: the VIP spreads 60 requests over the replicas on both other nodes,
        # and each server sees the client's own overlay address.
        answers = _requests(cluster, "client.1", "http://api:9000/cgi-bin/who", 60)
        assert len(answers) == 60 and ("FAIL", "") not in answers, answers
        assert {addr for addr, _ in answers} == {me}
        assert {by_host[host]["node"] for _, host in answers} == {"n2", "n3"}
        assert _lookup(cluster, "client.1", "api") == {_vip(cluster, "svcnet_default", "api")}
        assert _lookup(cluster, "client.1", "tasks.api") == {_address(t, "svcnet_default") for t in api}

        # The routing mesh: every node answers; n1 has no replica, so a remote one
        # answers there; n2 and n3 answer with their own. The server sees this
        # host's address on the cluster's bridge in both cases: no SNAT.
        caller = str(next(ipaddress.ip_network(cluster.subnet).hosts()))
        answering = {"n1": {"n2", "n3"}, "n2": {"n2"}, "n3": {"n3"}}
        for node, expected in answering.items():
            for _ in range(4):
                addr, host = _get(f"http://{_node_address(cluster, node)}:{port}/cgi-bin/who")
                assert addr == caller, (node, addr)
                assert by_host[host]["node"] in expected, (node, host)

        # Nothing routes to the host's uplink: a listener on its address sees no connection.
        uplink = _uplink_address()
        if uplink is not None:
            _no_connection_from(cluster, "client.1", uplink)
    finally:
        cluster.orch("rm", "api", "client", check=False)


def _no_connection_from(cluster: LocalCluster, task: str, address: str) -> None:
    seen: list[Any] = []
    with socket.socket() as listener:
        listener.bind((address, 0))
        listener.listen()
        listener.settimeout(0.2)
        port = listener.getsockname()[1]
        done = threading.Event()

        def accept() -> None:
            while not done.is_set():
                try:
                    seen.append(listener.accept()[1])
                except OSError:
                    continue

        t = threading.Thread(target=accept, daemon=True)
        t.start()
        try:
            proc = _exec(cluster, task, f"echo hi | nc -w 2 {address} {port}; echo rc=$?", check=False)
        finally:
            done.set()
            t.join()
    assert "rc=0" not in proc.stdout, proc.stdout
    assert not seen, f"a container reached the host's uplink address {address}: {seen}"


def test_two_networks_are_isolated_both_ways(cluster: LocalCluster, tmp_path: Path) -> None:
    def who(name: str, networks: str) -> str:
        return f"  {name}:\n    image: busybox\n    networks: {networks}\n" + WHO_SERVER

    alpha_yaml, beta_yaml = who("alpha", "{a: {aliases: [first]}}"), who("beta", "[b]")
    path = _stack(tmp_path, "iso", "services:\n" + alpha_yaml + beta_yaml
                  + textwrap.indent(_client("node.hostname != n3", "  networks: [a, b]\n"), "  ")
                  + "networks:\n  a: {}\n  b: {}\n")
    cluster.orch("deploy", "-f", path)
    try:
        [alpha], [beta] = cluster.running("alpha"), cluster.running("beta")
        [client] = cluster.running("client")
        _wait_endpoints(cluster, client["node"], "iso_a", "alpha")
        _wait_endpoints(cluster, client["node"], "iso_b", "beta")
        a_addr, b_addr = _address(alpha, "iso_a"), _address(beta, "iso_b")
        a_vip, b_vip = _vip(cluster, "iso_a", "alpha"), _vip(cluster, "iso_b", "beta")
        # The control: a task on both networks reaches both services, by name and address.
        for url in ("http://alpha:9000/cgi-bin/who", "http://beta:9000/cgi-bin/who",
                    f"http://{a_addr}:9000/cgi-bin/who", f"http://{b_vip}:9000/cgi-bin/who"):
            assert ("FAIL", "") not in _requests(cluster, "client.1", url, 2), url
        assert _lookup(cluster, "client.1", "first") == {a_vip}  # a service alias, on its network
        # Names are scoped per network, and neither side reaches the other's
        # task or VIP by address.
        assert _lookup(cluster, "alpha.1", "beta") == set()
        assert _lookup(cluster, "beta.1", "alpha") == set()
        assert _lookup(cluster, "beta.1", "first") == set()
        for task, target in (("alpha.1", b_addr), ("alpha.1", b_vip), ("beta.1", a_addr), ("beta.1", a_vip)):
            out = _exec(cluster, task, f"timeout 2 wget -q -O- http://{target}:9000/cgi-bin/who; echo rc=$?",
                        check=False).stdout
            assert "rc=0" not in out, (task, target, out)
    finally:
        cluster.orch("rm", "alpha", "beta", "client", check=False)


def _converged(cluster: LocalCluster, vip: str) -> bool:
    """DNS (`tasks.api` from the client) and the VIP's chain on the client's
    node list exactly the running replicas."""
    want = {_address(t, "conv_default") for t in cluster.running("api")}
    return (_lookup(cluster, "client.1", "tasks.api") == want
            and _vip_endpoints(cluster, "n1", vip) == want)


def _all_answer(cluster: LocalCluster, count: int = 30) -> set[str]:
    answers = _requests(cluster, "client.1", "http://api:9000/cgi-bin/who", count)
    assert len(answers) == count and ("FAIL", "") not in answers, answers
    return {host for _, host in answers}


def test_dns_and_vip_follow_scale_down_drain_and_a_killed_node(cluster: LocalCluster,
                                                              tmp_path: Path) -> None:
    from orch.cluster.hostnet import HostNet
    from orch.cluster.local import ClusterRecord, agent_pid, restart_agent

    path = _stack(tmp_path, "conv", "services:\n" + _api(4) + textwrap.indent(_client(), "  "))
    cluster.orch("deploy", "-f", path)
    rec = ClusterRecord.load(str(cluster.run))
    cut = False
    try:
        vip = _vip(cluster, "conv_default", "api")
        wait_for(lambda: _converged(cluster, vip), timeout=30)
        assert _all_answer(cluster) <= {_hostname(t) for t in cluster.running("api")}

        def follow(what: str) -> None:
            t0 = time.monotonic()
            wait_for(lambda: _converged(cluster, vip), timeout=30, interval=0.05)
            print(f"{what}: DNS and VIP followed in {time.monotonic() - t0:.2f} s")
            live = {_hostname(t) for t in cluster.running("api")}
            assert _all_answer(cluster) <= live

        cluster.orch("scale", "api=2")
        follow("scale down")
        assert len(cluster.running("api")) == 2

        cluster.orch("scale", "api=4")
        wait_for(lambda: len(cluster.running("api")) == 4)
        drained = "n3"
        cluster.orch("node", "drain", drained)
        try:
            wait_for(lambda: {t["node"] for t in cluster.running("api")} == {"n2"}
                     and len(cluster.running("api")) == 4, timeout=60)
            follow("drain")
        finally:
            cluster.orch("node", "activate", drained)

        # Kill n2's agent and cut its link: its replicas move to n3, and once
        # the control plane has moved them, nothing is sent to n2's any more.
        victim = next(n for n in rec.nodes if n.name == "n2")
        net = HostNet(rec.bridge, rec.subnet, rec.prefix)
        os.kill(agent_pid(victim), signal.SIGKILL)
        net.cut(2)
        cut = True
        wait_for(lambda: {t["node"] for t in cluster.running("api")} == {"n3"}
                 and len(cluster.running("api")) == 4, timeout=60, interval=0.1)
        follow("killed node")
    finally:
        if cut:
            net.restore(2)
            restart_agent(str(cluster.run), "n2")
            wait_for(lambda: {n["name"]: n["state"] for n in cluster.nodes()}["n2"] == "ready")
        cluster.orch("rm", "api", "client", check=False)


def _traces(cluster: LocalCluster, vni: int, addresses: set[str]) -> list[str]:
    """What a network left on the nodes: its VXLAN device, routes to its
    addresses, nft rules naming them."""
    found = []
    for node in cluster.record()["nodes"]:
        ns = ["ip", "netns", "exec", node["netns"]]
        links = subprocess.run([*ns, "ip", "-o", "link"], capture_output=True, text=True).stdout
        routes = subprocess.run([*ns, "ip", "-4", "route", "show", "table", "all"], capture_output=True,
                                text=True).stdout
        table = subprocess.run([*ns, "nft", "list", "table", "ip", "orch_svc"], capture_output=True,
                               text=True).stdout
        if f"vx-{vni}:" in links or f"vx-{vni}@" in links:
            found.append(f"{node['name']}: vx-{vni}")
        for a in addresses:
            named = re.compile(rf"\b{re.escape(a)}\b")
            pairs = (("route to", routes), ("nft names", table))
            found += [f"{node['name']}: {what} {a}" for what, text in pairs
                      if named.search(text)]
    return found


def test_nothing_stays_after_rm_and_network_rm(cluster: LocalCluster, tmp_path: Path) -> None:
    path = _stack(tmp_path, "gone", "services:\n" + _api(2, '    networks: [back]\n')
                  + textwrap.indent(_client(networks="  networks: [back]\n"), "  ")
                  + "networks:\n  back: {}\n")
    cluster.orch("deploy", "-f", path)
    [doc] = json.loads(cluster.orch("network", "inspect", "gone_back").stdout)
    vni = doc["vni"]
    addresses = {t["address"].partition("/")[0] for t in doc["tasks"]}
    addresses |= {s["vip"].partition("/")[0] for s in doc["services"] if s["vip"]}
    _wait_endpoints(cluster, "n1", "gone_back", "api")
    assert _requests(cluster, "client.1", "http://api:9000/cgi-bin/who", 2)[0][0] != "FAIL"
    assert _traces(cluster, vni, addresses), "the network's device, routes and rules exist while in use"
    cluster.orch("rm", "api", "client")
    # Once its tasks have ended no node has their routes or rules; the device
    # stays until the network is removed.
    wait_for(lambda: not [t for t in _traces(cluster, vni, addresses) if "vx-" not in t], timeout=60)
    wait_for(lambda: cluster.orch("network", "rm", "gone_back", check=False).returncode == 0, timeout=60)
    wait_for(lambda: not _traces(cluster, vni, addresses), timeout=30)
