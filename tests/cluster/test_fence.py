"""Containers cannot reach orch's ports, and the node API on TCP serves the
control plane only: the session's real cluster (three nodes in network
namespaces), real containers probing with busybox nc."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from common.auth import bearer, read_token
from proto import agent_pb2 as pb
from proto import agent_pb2_grpc as pb_grpc
from tests.cluster.conftest import LocalCluster, wait_for
from tests.cluster.test_cluster import LOOP, manifest

PUBLISHED = 18093


def _connects(cluster: LocalCluster, task: str, host: str, port: int) -> bool:
    """Whether a TCP connection from inside ``task``'s container opens."""
    p = cluster.orch("exec", task, "nc", "-w", "2", host, str(port), check=False)
    return p.returncode == 0


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
        # The control: the node's own address answers on a published port.
        assert _connects(cluster, task, own_host, PUBLISHED), node
        gateway = cluster.orch("exec", task, "sh", "-c",
                               "ip route | awk '/^default/ {print $3}'").stdout.strip()
        assert gateway
        targets = [(gateway, int(nodes[node].rsplit(":", 1)[1]))]  # the node API via the bridge
        targets += [(addr.rsplit(":", 1)[0], int(addr.rsplit(":", 1)[1])) for addr in nodes.values()]
        targets += [(addr.rsplit(":", 1)[0], int(addr.rsplit(":", 1)[1])) for addr in controlplanes]
        targets += [(own_host, etcd_port), (rec["subnet"].rsplit(".", 1)[0] + ".1", etcd_port),
                    (gateway, etcd_port)]
        for host, port in targets:
            assert not _connects(cluster, task, host, port), f"{node}: {host}:{port} is reachable"


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
    rec = cluster.record()
    node = cluster.nodes()[0]
    state = next(n["state_dir"] for n in rec["nodes"] if n["name"] == node["name"])
    token = read_token(str(Path(state) / "node-api-token"))
    assert token not in json.dumps(cluster.nodes())  # the CLI never sees it
    with grpc.insecure_channel(node["address"]) as channel:
        stub = pb_grpc.AgentStub(channel)
        for metadata in (None, bearer("wrong")):
            with pytest.raises(grpc.RpcError) as err:
                list(stub.Logs(pb.LogsRequest(id="x"), metadata=metadata, timeout=10))
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        # With the token: what the control plane proxies is served ...
        with pytest.raises(grpc.RpcError) as err:
            stub.Stats(pb.ContainerRef(id="no-such-container"), metadata=bearer(token), timeout=10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        # ... and nothing that takes host paths or starts containers.
        calls = [(stub.Run, pb.RunRequest()), (stub.Build, pb.BuildRequest(context="/etc")),
                 (stub.ImportImage, pb.ImportImageRequest(source="/etc", ref="x")),
                 (stub.Shutdown, pb.ShutdownRequest()), (stub.List, pb.ListRequest())]
        for method, request in calls:
            with pytest.raises(grpc.RpcError) as err:
                reply = method(request, metadata=bearer(token), timeout=10)
                if hasattr(reply, "__iter__") and not hasattr(reply, "SerializeToString"):
                    list(reply)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED, method
