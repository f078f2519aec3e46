"""A stack's networks end to end (the session's cluster: real etcd, control
plane, three agents in network namespaces, real containers): the deploy makes
the stack's networks, every task gets an address on each of its networks,
and that address reaches its node (the container's request names it);
`orch network ls/inspect/rm` show and remove them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.cluster.conftest import LocalCluster, wait_for

LOOP = "trap 'exit 0' TERM; while true; do sleep 1; done"


def _inspect(cluster: LocalCluster, name: str) -> dict[str, Any]:
    [doc] = json.loads(cluster.orch("network", "inspect", name).stdout)
    return dict(doc)


def _container(cluster: LocalCluster, node: str, ref: str) -> dict[str, Any]:
    """The container as its node's agent shows it (`orch inspect` on that agent)."""
    run_dir = next(n["run_dir"] for n in cluster.record()["nodes"] if n["name"] == node)
    env = {**cluster.env, "ORCH_HOST": f"unix://{run_dir}/agent.sock"}
    out = subprocess.run([sys.executable, "-m", "orch", "inspect", ref], env=env, text=True,
                         capture_output=True, timeout=60, check=True).stdout
    [doc] = json.loads(out)
    return dict(doc)


def test_a_stack_gets_its_networks_and_each_task_its_address(cluster: LocalCluster, tmp_path: Path) -> None:
    stack = tmp_path / "netstack"  # the stack is named after the manifest's directory
    stack.mkdir()
    path = stack / "m.yaml"
    path.write_text(textwrap.dedent(f"""
        services:
          front:
            image: busybox
            command: ["sh", "-c", "{LOOP}"]
            stop_grace_period: 1s
            networks: [default, back]
            deploy: {{replicas: 2}}
          store:
            image: busybox
            command: ["sh", "-c", "{LOOP}"]
            stop_grace_period: 1s
            networks:
              back: {{aliases: [db]}}
            deploy: {{replicas: 2, endpoint_mode: dnsrr}}
        networks:
          back:
            labels: {{tier: back}}
    """))
    cluster.orch("deploy", "-f", str(path))
    try:
        listed = {n["name"]: n for n in json.loads(cluster.orch("network", "ls", "-o", "json").stdout)}
        assert {"netstack_default", "netstack_back"} <= set(listed)
        assert listed["netstack_back"]["labels"] == {"tier": "back"}
        assert listed["netstack_back"]["stack"] == "netstack"
        assert listed["netstack_back"]["vni"] >= 4096
        assert "netstack_back" in cluster.orch("network", "ls").stdout

        back = _inspect(cluster, "netstack_back")
        services = {s["name"]: s for s in back["services"]}
        assert services["front"]["vip"].endswith("/24") and services["store"]["vip"] == ""
        assert services["store"]["aliases"] == ["db"] and services["store"]["endpoint_mode"] == "dnsrr"
        members = [t for t in back["tasks"] if t["state"] == "running"]
        assert len(members) == 4
        addresses = [t["address"] for t in members] + [services["front"]["vip"]]
        assert len(set(addresses)) == 5  # no two share one, nor the VIP
        default = _inspect(cluster, "netstack_default")
        assert sorted(t["service"] for t in default["tasks"] if t["state"] == "running") == ["front", "front"]

        # Each task's addresses reached its node: its container was asked for them.
        for task in cluster.running("front") + cluster.running("store"):
            assert task["networks"], task
            ref = f"{task['service']}.{task['slot']}.{task['id'][:8]}"
            config = _container(cluster, task["node"], ref)["config"]
            asked = [(n["network_name"], n["address"], n["aliases"]) for n in config["networks"]]
            assert asked == [(n["network"], n["address"], n["aliases"]) for n in task["networks"]]
        assert [n["network"] for n in cluster.running("front")[0]["networks"]] == [
            "netstack_default", "netstack_back"]

        # A network in use cannot go; `orch rm` of a service leaves its networks.
        p = cluster.orch("network", "rm", "netstack_back", check=False)
        assert p.returncode == 1 and "network netstack_back is in use by service(s) front, store" in p.stderr
    finally:
        cluster.orch("rm", "front", check=False)
        cluster.orch("rm", "store", check=False)
    assert {"netstack_default", "netstack_back"} <= _names(cluster)
    # Once the tasks have ended, the networks can be removed.
    for name in ("netstack_back", "netstack_default"):
        wait_for(lambda name=name: cluster.orch("network", "rm", name, check=False).returncode == 0,
                 timeout=60)
    assert not _names(cluster) & {"netstack_default", "netstack_back"}


def _names(cluster: LocalCluster) -> set[str]:
    return {n["name"] for n in json.loads(cluster.orch("network", "ls", "-o", "json").stdout)}


def test_network_create_and_rm_from_the_cli(cluster: LocalCluster) -> None:
    created = cluster.orch("network", "create", "--subnet", "10.97.33.0/24", "--label", "a=b", "clinet")
    net_id = created.stdout.strip()
    try:
        doc = _inspect(cluster, "clinet")
        assert (doc["id"], doc["subnet"], doc["labels"], doc["services"], doc["tasks"]) == (
            net_id, "10.97.33.0/24", {"a": "b"}, [], [])
        p = cluster.orch("network", "create", "--subnet", "10.97.33.128/25", "other", check=False)
        assert p.returncode == 1
        assert "subnet 10.97.33.128/25 overlaps network clinet's 10.97.33.0/24" in p.stderr
    finally:
        cluster.orch("network", "rm", "clinet")
    p = cluster.orch("network", "inspect", "clinet", check=False)
    assert p.returncode == 1 and "no such network: clinet" in p.stderr
