"""Kill an agent (SIGKILL) and cut its link; time until its replicas run
elsewhere, at the desired count.

    python bench/failover.py     (root)   -> prints failover_s=X last
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._cluster import RUN, cluster, deploy, running, wait


def main() -> int:
    from orch.cluster.hostnet import HostNet
    from orch.cluster.local import ClusterRecord, agent_pid

    with cluster(3) as state:
        deploy("ha", 6, state)
        wait(lambda: len(running("ha")) == 6)
        rec = ClusterRecord.load(RUN)
        victim = rec.nodes[2]
        moved = sum(1 for t in running("ha") if t["node"] == victim.name)
        t0 = time.monotonic()
        os.kill(agent_pid(victim), signal.SIGKILL)
        HostNet(rec.bridge, rec.subnet, rec.prefix).cut(3)
        elapsed = wait(lambda: len(tasks := running("ha")) == 6
                       and all(t["node"] != victim.name for t in tasks), timeout=120,
                       interval=0.05)
        del t0
        print(f"replicas_moved={moved}")
    print(f"failover_s={elapsed:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
