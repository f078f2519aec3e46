"""`orch stats` on the session's cluster: a CPU-burning service and a
memory-holding one, read through the control plane (each node once, every
running task with its node), against what the tasks' cgroups say; the table
form, and a clear error for a service that does not exist."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import LocalCluster, wait_for

BURN = "trap 'exit 0' TERM; while :; do :; done"
# Holds about 32 MiB for as long as it runs (a shell variable of that size).
HOLD = "trap 'exit 0' TERM; x=$(yes abcdefghijklmnopqrstuvwxyz | head -c 33554432); while :; do sleep 1; done"
LIMIT = 128 << 20


def _cgroup_memory(cid: str) -> int:
    """What the container's cgroup says it uses now (every agent of the
    local cluster runs on this host, under the same hierarchy)."""
    from nodeagent.runtime.cgroups import detect

    driver: Any = detect()
    if driver.version == 1:
        return int(Path(driver.hierarchies["memory"], "orch", cid, "memory.usage_in_bytes").read_text())
    return int(Path(str(driver.root), "orch", cid, "memory.current").read_text())


def _stats(cluster: LocalCluster, *services: str) -> list[dict[str, Any]]:
    docs: list[dict[str, Any]] = json.loads(
        cluster.orch("stats", *services, "--no-stream", "-o", "json").stdout)
    return docs


def test_stats_of_services_across_nodes(cluster: LocalCluster, tmp_path: Path) -> None:
    path = tmp_path / "stats.yaml"
    path.write_text(
        "services:\n"
        f"  stburn:\n    image: busybox\n    command: [\"sh\", \"-c\", \"{BURN}\"]\n"
        "    stop_grace_period: 1s\n    deploy: {replicas: 1}\n"
        f"  sthold:\n    image: busybox\n    command: [\"sh\", \"-c\", \"{HOLD}\"]\n"
        "    stop_grace_period: 1s\n"
        "    deploy: {replicas: 2, resources: {limits: {memory: 128Mi}}}\n")
    cluster.orch("deploy", "-f", str(path))
    try:
        wait_for(lambda: len(cluster.running("stburn")) == 1 and len(cluster.running("sthold")) == 2,
                 timeout=120)

        def sample() -> list[dict[str, Any]] | None:
            """A reading with every task, the holders holding, the burner
            busy (on a loaded machine it may get little of a core at times)."""
            docs = _stats(cluster, "stburn", "sthold")
            holding = [d for d in docs if d["service"] == "sthold" and d["memory_usage_bytes"] > 32 << 20]
            busy = [d for d in docs if d["service"] == "stburn" and (d["cpu_percent"] or 0) > 20]
            return docs if len(docs) == 3 and len(holding) == 2 and busy else None

        docs = wait_for(sample, timeout=90, interval=0.5)
        running = cluster.running("stburn") + cluster.running("sthold")
        # Every running task, named as the control plane names it, on the node `orch ps` shows.
        assert sorted((d["task"], d["node"]) for d in docs) == sorted(
            (f"{t['name']}.{t['id'][:8]}", t["node"]) for t in running)
        for doc in docs:
            assert doc["node"] in ("n1", "n2", "n3")
            for figure in ("network_rx_bytes", "network_tx_bytes", "block_read_bytes", "pids_current"):
                assert isinstance(doc[figure], int) and doc[figure] >= 0, (figure, doc)
            assert doc["pids_current"] >= 1 and doc["time"] > 0
            assert doc["cpu_percent"] is not None and doc["cpu_percent"] >= 0
        [burn] = [d for d in docs if d["service"] == "stburn"]
        assert burn["cpu_percent"] > 20, burn  # a busy loop: most of a core, given the chance
        for hold in (d for d in docs if d["service"] == "sthold"):
            assert hold["memory_limit_bytes"] == LIMIT
            assert hold["memory_percent"] == pytest.approx(hold["memory_usage_bytes"] / LIMIT * 100)
            now = _cgroup_memory(hold["id"])
            assert abs(hold["memory_usage_bytes"] - now) <= max(4 << 20, now // 10), (hold, now)

        table = cluster.orch("stats", "stburn", "--no-stream").stdout.splitlines()
        assert table[0].split() == ["TASK", "NODE", "CPU", "%", "MEM", "USAGE", "/", "LIMIT", "MEM", "%",
                                    "NET", "I/O", "BLOCK", "I/O", "PIDS"]
        assert len(table) == 2 and table[1].split()[:2] == [burn["task"], burn["node"]]
        # No names: every service's running tasks, these among them.
        assert {d["task"] for d in docs} <= {d["task"] for d in _stats(cluster)}
    finally:
        cluster.orch("rm", "stburn", "sthold", check=False)


def test_stats_of_an_unknown_service_is_a_one_line_error(cluster: LocalCluster) -> None:
    p = cluster.orch("stats", "no-such-service", "--no-stream", check=False)
    assert (p.returncode, p.stdout, p.stderr) == (1, "", "orch: error: no such service: no-such-service\n")
