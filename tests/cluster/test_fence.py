"""Containers cannot reach orch's ports, and the node API on TCP serves the
control plane only: the session's real cluster (three nodes in network
namespaces), real containers probing with busybox nc."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from common import pki, tls
from common.identity import JOIN_PORT_OFFSET
from controlplane.trust import issue_local, load_ca
from proto import agent_pb2 as pb
from proto import agent_pb2_grpc as pb_grpc
from tests.cluster.conftest import LocalCluster, wait_for
from tests.cluster.test_cluster import LOOP, manifest

PUBLISHED = 18093


def _reachable(cluster: LocalCluster, task: str, targets: list[tuple[str, int]]) -> list[str]:
    """Which of ``targets`` a TCP connection from inside ``task``'s
    container opens to: all tried at once (each waits up to 2 s)."""
    probes = " ".join(f"(nc -w 2 {host} {port} </dev/null >/dev/null 2>&1 && echo {host}:{port}) &"
                      for host, port in targets)
    p = cluster.orch("exec", task, "sh", "-c", f"{probes} wait", check=False)
    return p.stdout.split()


@pytest.fixture(scope="module")
def probes(cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """One probing container per node (task id by node name), and a web
    server publishing PUBLISHED on every node (the control that connections
    do open where nothing forbids them)."""
    path = manifest(tmp_path_factory.mktemp("fence"), f"""
        services:
          probe:
            image: busybox
            command: ["sh", "-c", "{LOOP}"]
            stop_grace_period: 1s
            deploy:
              mode: global
          fenceweb:
            image: busybox
            command: ["httpd", "-f", "-p", "80"]
            stop_grace_period: 1s
            ports: ["{PUBLISHED}:80"]
            deploy:
              mode: global
    """)
    cluster.orch("deploy", "-f", path)
    try:
        tasks = wait_for(lambda: {t["node"]: t["id"] for t in cluster.running("probe")}
                         if len(cluster.running("probe")) == 3 else None)
        yield tasks
    finally:
        cluster.orch("rm", "probe", check=False)
        cluster.orch("rm", "fenceweb", check=False)


def test_containers_cannot_reach_any_orch_port(cluster: LocalCluster, probes: dict[str, str]) -> None:
    rec = cluster.record()
    nodes = {n["name"]: n["address"] for n in cluster.nodes()}
    etcd_port = int(rec["etcd_endpoint"].rsplit(":", 1)[1])
    controlplanes = [listen[-1] for listen in rec["listens"]]  # the address agents use
    for node, task in probes.items():
        own_host = nodes[node].rsplit(":", 1)[0]
        # The control: the node's own address answers on a published port
        # (and the probe sees it, among targets that do not answer).
        control = [(own_host, PUBLISHED), (own_host, 1)]
        assert _reachable(cluster, task, control) == [f"{own_host}:{PUBLISHED}"], node
        gateway = cluster.orch("exec", task, "sh", "-c",
                               "ip route | awk '/^default/ {print $3}'").stdout.strip()
        assert gateway
        targets = [(gateway, int(nodes[node].rsplit(":", 1)[1]))]  # the node API via the bridge
        targets += [(addr.rsplit(":", 1)[0], int(addr.rsplit(":", 1)[1])) for addr in nodes.values()]
        targets += [(addr.rsplit(":", 1)[0], int(addr.rsplit(":", 1)[1])) for addr in controlplanes]
        targets += [(addr.rsplit(":", 1)[0], int(addr.rsplit(":", 1)[1]) + JOIN_PORT_OFFSET)
                    for addr in controlplanes]  # the join ports
        targets += [(own_host, etcd_port), (rec["subnet"].rsplit(".", 1)[0] + ".1", etcd_port),
                    (gateway, etcd_port)]
        assert _reachable(cluster, task, targets) == [], f"{node}: reachable from a container"


def test_orch_ports_cannot_be_published(cluster: LocalCluster, tmp_path: Path) -> None:
    port = int(cluster.nodes()[0]["address"].rsplit(":", 1)[1])
    path = manifest(tmp_path, f"""
        services:
          hijack:
            image: busybox
            command: ["httpd", "-f", "-p", "80"]
            ports: ["{port}:80"]
    """)
    p = cluster.orch("deploy", "-f", path, check=False, timeout=60)
    try:
        assert p.returncode == 1
        assert f"host port {port}/tcp is reserved for orch" in p.stderr
    finally:
        cluster.orch("rm", "hijack", check=False)


def test_the_node_api_on_tcp_serves_only_the_control_plane(cluster: LocalCluster) -> None:
    """Mutual TLS with a control plane's certificate of this cluster's CA,
    and only what the control plane proxies: a plaintext caller, a node's or
    a user's certificate, or another CA's, is refused before any handler."""
    rec = cluster.record()
    node = cluster.nodes()[0]
    ca = load_ca(rec["pki_dir"])
    assert ca is not None
    with grpc.insecure_channel(node["address"]) as channel:  # no TLS at all
        with pytest.raises(grpc.RpcError) as err:
            pb_grpc.AgentStub(channel).Stats(pb.ContainerRef(id="x"), timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    other = pki.new_ca("other", time.time())
    for issuer, role, code in ((ca, "node", grpc.StatusCode.PERMISSION_DENIED),
                               (ca, "user", grpc.StatusCode.PERMISSION_DENIED),
                               (other, "controlplane", grpc.StatusCode.UNAVAILABLE)):
        cert, key = issue_local(issuer, f"probe-{role}", role)
        with tls.secure_channel(node["address"], ca.cert_pem, cert, key, "node") as channel:
            with pytest.raises(grpc.RpcError) as err:
                pb_grpc.AgentStub(channel).Stats(pb.ContainerRef(id="no-such-container"), timeout=10)
            assert err.value.code() == code, (role, err.value.details())
    cert, key = issue_local(ca, "probe-cp", "controlplane")
    with tls.secure_channel(node["address"], ca.cert_pem, cert, key, "node") as channel:
        stub = pb_grpc.AgentStub(channel)
        # What the control plane proxies is served ...
        with pytest.raises(grpc.RpcError) as err:
            stub.Stats(pb.ContainerRef(id="no-such-container"), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        # ... and nothing that takes host paths or starts containers.
        calls = [(stub.Run, pb.RunRequest()), (stub.Build, pb.BuildRequest(context="/etc")),
                 (stub.ImportImage, pb.ImportImageRequest(source="/etc", ref="x")),
                 (stub.Shutdown, pb.ShutdownRequest()), (stub.List, pb.ListRequest())]
        for method, request in calls:
            with pytest.raises(grpc.RpcError) as err:
                reply = method(request, timeout=10)
                if hasattr(reply, "__iter__") and not hasattr(reply, "SerializeToString"):
                    list(reply)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
