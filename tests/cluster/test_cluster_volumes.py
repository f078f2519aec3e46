"""Node-local named volumes in the cluster (the session's real 3-node
cluster): a task keeps to the node that holds its volume's data across an
update, a plain drain of that node is refused, and while the node is gone
the task waits, saying why, until a drain with --allow-data-loss lets it
start elsewhere with an empty volume."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from tests.cluster.conftest import LocalCluster, wait_for
from tests.cluster.test_cluster import manifest

KEEPER = """
    name: vols
    services:
      keeper:
        image: busybox
        command: ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]
        stop_grace_period: 1s
        environment: [VERSION={version}]
        volumes: ["data:/data"]
        deploy:
          placement: {{constraints: ["node.labels.keeper == yes"]}}
    volumes:
      data:
"""


def _task(cluster: LocalCluster) -> dict[str, str]:
    return wait_for(lambda: next(iter(cluster.running("keeper")), None), timeout=30)


def test_a_task_keeps_to_the_node_of_its_volume_until_its_data_is_let_go(cluster: LocalCluster,
                                                                         tmp_path: Path) -> None:
    from orch.cluster.hostnet import HostNet
    from orch.cluster.local import ClusterRecord, agent_pid, restart_agent

    rec = ClusterRecord.load(str(cluster.run))
    victim = next(n for n in rec.nodes if n.name == "n3")
    net = HostNet(rec.bridge, rec.subnet, rec.prefix)
    cluster.orch("node", "label", "n3", "keeper=yes")
    cut = False
    try:
        cluster.orch("deploy", "--detach", "-f", manifest(tmp_path, KEEPER.format(version=1)))
        first = _task(cluster)
        assert first["node"] == "n3"
        cluster.orch("exec", first["id"], "sh", "-c", "echo kept > /data/f")
        # An update replaces the task on the node that holds the data; n2 could take it otherwise.
        cluster.orch("node", "label", "n2", "keeper=yes")
        cluster.orch("deploy", "-f", manifest(tmp_path, KEEPER.format(version=2)))
        second = _task(cluster)
        assert second["id"] != first["id"] and second["node"] == "n3"
        assert cluster.orch("exec", second["id"], "cat", "/data/f").stdout == "kept\n"
        # Were n3 to die, the plan says the task could not move, and why.
        plan = cluster.orch("plan", "--without", "n3", check=False)
        assert plan.returncode == 1 and "its node-local volumes' data is on n3" in plan.stdout, plan.stdout
        # A plain drain would leave the data behind: refused, saying so.
        refused = cluster.orch("node", "drain", "n3", check=False)
        assert refused.returncode == 1
        assert "node n3 holds the data of keeper.1." in refused.stderr
        assert "add --allow-data-loss" in refused.stderr
        # n3 is gone: the replacement waits for it, and says why.
        os.kill(agent_pid(victim), signal.SIGKILL)
        net.cut(3)
        cut = True

        def waiting() -> str | None:
            tasks = [t for t in cluster.tasks("keeper")
                     if t["desired"] == "running" and t["state"] == "pending"]
            return tasks[0]["message"] if tasks else None

        why = wait_for(waiting, timeout=30)
        assert "its node-local volumes' data is on n3" in why, why
        assert "orch node drain --allow-data-loss n3" in why, why
        # Letting the data go: it starts on n2, with an empty volume.
        cluster.orch("node", "drain", "--allow-data-loss", "n3")
        third = _task(cluster)
        assert third["node"] == "n2"
        assert cluster.orch("exec", third["id"], "ls", "/data").stdout == ""
    finally:
        if cut:
            net.restore(3)
            restart_agent(str(cluster.run), "n3")
            wait_for(lambda: {n["name"]: n["state"] for n in cluster.nodes()}["n3"] == "ready", timeout=60)
        cluster.orch("node", "activate", "n3", check=False)
        cluster.orch("rm", "keeper", check=False)
        for name in ("n2", "n3"):
            cluster.orch("node", "label", name, "keeper-", check=False)
