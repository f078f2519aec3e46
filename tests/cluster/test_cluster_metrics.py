"""Metrics on the session's cluster: each control-plane replica's /metrics
(one leader; the CLI's calls timed by method; scheduling delays observed on
a deploy) and the agents' service discovery (/sd/agents), which lists every
node that joined and drops one that is down, and whose targets answer."""

from __future__ import annotations

import json
import os
import signal
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from orch.cluster.local import METRICS_PORT_OFFSET
from tests.cluster.conftest import LocalCluster, wait_for

LOOP = "trap 'exit 0' TERM; while true; do sleep 1; done"


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as reply:  # a control plane or agent of this cluster
        return str(reply.read().decode())


def _values(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(s.labels.items())): s.value for f in text_string_to_metric_families(text)
            for s in f.samples if s.name == name}


def _replicas(cluster: LocalCluster) -> list[str]:
    return [f"http://127.0.0.1:{cluster.port + i + METRICS_PORT_OFFSET}" for i in range(2)]


def test_control_planes_count_lead_and_time(cluster: LocalCluster, tmp_path: Path) -> None:
    path = tmp_path / "metered.yaml"
    path.write_text(f'services:\n  metered:\n    image: busybox\n    command: ["sh", "-c", "{LOOP}"]\n'
                    "    stop_grace_period: 1s\n    network_mode: bridge\n    deploy: {replicas: 3}\n")
    cluster.orch("deploy", "-f", str(path))
    try:
        texts = [_get(f"{base}/metrics") for base in _replicas(cluster)]
        assert sum(_values(t, "orch_manager_leader")[()] for t in texts) == 1
        for text in texts:
            assert _values(text, "orch_manager_nodes")[(("state", "ready"),)] == 3
            assert _values(text, "orch_manager_tasks")[(("state", "running"),)] >= 3
        # The CLI talks to the first replica: its Deploy was timed; the
        # dispatcher that took the reports observed their scheduling delay.
        assert _values(texts[0], "orch_api_request_seconds_count")[(("method", "Deploy"),)] >= 1
        assert sum(_values(t, "orch_dispatcher_scheduling_delay_seconds_count").get((), 0)
                   for t in texts) >= 3
        leader = next(t for t in texts if _values(t, "orch_manager_leader")[()] == 1)
        assert _values(leader, "orch_orchestrator_pass_seconds_count")[()] >= 1
        assert sum(_values(texts[0], "orch_store_request_seconds_count").values()) >= 1
    finally:
        cluster.orch("rm", "metered")


def test_agents_are_discovered_and_a_down_node_drops_out(cluster: LocalCluster) -> None:
    from orch.cluster.hostnet import HostNet
    from orch.cluster.local import ClusterRecord, agent_pid, restart_agent

    sd = f"{_replicas(cluster)[0]}/sd/agents"

    def targets() -> dict[str, str]:
        return {g["labels"]["node"]: g["targets"][0] for g in json.loads(_get(sd))}

    def all_three() -> dict[str, str] | None:
        now = targets()
        return now if len(now) == 3 else None

    found = wait_for(all_three)
    assert sorted(found) == ["n1", "n2", "n3"]
    for node, address in found.items():
        text = _get(f"http://{address}/metrics")  # the agent answers where discovery says
        assert "process_resident_memory_bytes" in text, node
    rec = ClusterRecord.load(str(cluster.run))
    victim = next(n for n in rec.nodes if n.name == "n3")
    net = HostNet(rec.bridge, rec.subnet, rec.prefix)
    os.kill(agent_pid(victim), signal.SIGKILL)
    net.cut(3)
    try:
        wait_for(lambda: sorted(targets()) == ["n1", "n2"], timeout=60)
    finally:
        net.restore(3)
        restart_agent(str(cluster.run), "n3")
    wait_for(lambda: sorted(targets()) == ["n1", "n2", "n3"], timeout=60)
