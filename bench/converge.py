"""Deploy 100 replicas of a busybox sleep service on `orch up --nodes 1` and
on `--nodes 3`; time until all run.

The clock runs around `orch deploy -f` without --detach, which returns once
every replica runs: the user's own wait. (Polling with one `orch ps` process
per check would take a core away from the cluster being measured.)

    python bench/converge.py [N]    (root)   -> prints replicas_per_s=X last (3 nodes)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._cluster import cluster, deploy, running


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    rates = {}
    for nodes in (1, 3):
        with cluster(nodes) as state:
            import time

            t0 = time.monotonic()
            deploy("sleepers", n, state, detach=False)
            elapsed = time.monotonic() - t0
            assert len(running("sleepers")) == n
            rates[nodes] = n / elapsed
            print(f"nodes={nodes} replicas={n} converge_s={elapsed:.2f} "
                  f"replicas_per_s_{nodes}node={rates[nodes]:.1f}")
    print(f"replicas_per_s={rates[3]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
