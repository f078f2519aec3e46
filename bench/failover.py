"""Failover on a 3-node local cluster, one figure a line:

- ``replicas_moved``, ``failover_s``: an agent killed (SIGKILL) and its link
  cut; time until its replicas run elsewhere, at the desired count;
- ``blip_reschedules``: tasks replaced after a 1 s partition of a node
  (``orch chaos partition --for 1s``; target 0);
- ``partition_failover_s``: a node partitioned (its agent alive); time until
  its replicas run elsewhere, at the desired count (target <= 2);
- ``supervisor_kill_recover_s``: a node's supervisor killed (SIGKILL; its
  containers die with it, its agent lives on); time until that node's tasks
  are replaced, in place or elsewhere, at the desired count. On a service of
  its own: the agent reports the tasks failed, and a failed task is replaced
  after its restart policy's delay, which doubles with each restart of its slot.

Between the faults ``orch chaos heal`` and a wait until every node is ready
and the desired count runs.

    python bench/failover.py     (root)   -> prints failover_s=X last
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._cluster import RUN, cluster, deploy, orch, running, wait

REPLICAS = 6


def nodes() -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in json.loads(orch("nodes", "-o", "json").stdout)}


def task_ids(name: str) -> set[str]:
    return {t["id"] for t in json.loads(orch("ps", "--all", name, "-o", "json").stdout)}


def settle(name: str) -> None:
    """Heal, then wait until every node is ready and ``name`` runs its count."""
    orch("chaos", "heal")
    wait(lambda: {n["state"] for n in nodes().values()} == {"ready"} and len(running(name)) == REPLICAS,
         timeout=120)


def busiest(name: str) -> tuple[str, set[str]]:
    """The node running most of ``name``'s tasks, and those tasks."""
    tasks = running(name)
    node = max({t["node"] for t in tasks}, key=lambda n: sum(1 for t in tasks if t["node"] == n))
    return node, {t["id"] for t in tasks if t["node"] == node}


def moved_off(name: str, node: str) -> bool:
    tasks = running(name)
    return len(tasks) == REPLICAS and all(t["node"] != node for t in tasks)


def blip(name: str) -> int:
    """A node cut off for 1 s: how many tasks were created meanwhile."""
    before = task_ids(name)
    node, _ = busiest(name)
    orch("chaos", "partition", node, "--for", "1s")
    wait(lambda: not (Path(RUN) / "chaos.json").exists(), timeout=30)  # its timer restored the link
    back = time.time()
    # Once every node's heartbeat after the link came back is stored, a node
    # monitor that was to mark it down has done so (and its tasks are replaced).
    wait(lambda: all(n["last_heartbeat"] > back for n in nodes().values()), timeout=60)
    wait(lambda: len(running(name)) == REPLICAS, timeout=60)
    return len(task_ids(name) - before)


def partition_failover(name: str) -> float:
    from orch.cluster import chaos

    node, _ = busiest(name)
    t0 = time.monotonic()
    chaos.partition(RUN, node)  # in process: the clock starts at the cut, not at an interpreter's start
    wait(lambda: moved_off(name, node), timeout=120, interval=0.02)
    return time.monotonic() - t0


def supervisor_kill_recover(name: str) -> float:
    from orch.cluster import sweep
    from orch.cluster.record import load_record, read_pid

    node, doomed = busiest(name)
    rec = next(n for n in load_record(RUN).nodes if n.name == node)
    sup = sweep.verified(read_pid(Path(rec.run_dir) / "supervisor.pid"), rec.run_dir)
    if not sup:
        raise SystemExit(f"no supervisor runs on {node}")
    t0 = time.monotonic()
    os.kill(sup, signal.SIGKILL)
    wait(lambda: len(tasks := running(name)) == REPLICAS and not doomed & {t["id"] for t in tasks},
         timeout=120, interval=0.02)
    return time.monotonic() - t0


def main() -> int:
    from orch.cluster.hostnet import HostNet
    from orch.cluster.local import ClusterRecord, agent_pid

    with cluster(3) as state:
        deploy("ha", REPLICAS, state)
        wait(lambda: len(running("ha")) == REPLICAS)
        rec = ClusterRecord.load(RUN)
        victim = rec.nodes[2]
        moved = sum(1 for t in running("ha") if t["node"] == victim.name)
        os.kill(agent_pid(victim), signal.SIGKILL)
        HostNet(rec.bridge, rec.subnet, rec.prefix).cut(3)
        elapsed = wait(lambda: len(tasks := running("ha")) == REPLICAS
                       and all(t["node"] != victim.name for t in tasks), timeout=120,
                       interval=0.05)
        print(f"replicas_moved={moved}")
        settle("ha")
        print(f"blip_reschedules={blip('ha')}", flush=True)
        settle("ha")
        print(f"partition_failover_s={partition_failover('ha'):.2f}", flush=True)
        settle("ha")
        deploy("sk", REPLICAS, state)
        wait(lambda: len(running("sk")) == REPLICAS)
        print(f"supervisor_kill_recover_s={supervisor_kill_recover('sk'):.2f}", flush=True)
        settle("sk")
    print(f"failover_s={elapsed:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
