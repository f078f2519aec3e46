"""Memory of the node agent and its helper (the supervisor), idle and with
100 idle containers. RSS is read from /proc/<pid>/status (VmRSS).

    python bench/agent_memory.py [N]     (root; default N=100)
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ORCH, agent, busybox_rootfs, rss_kib, tempdir


def pids(env: dict[str, str]) -> list[int]:
    import grpc

    from proto import agent_pb2, agent_pb2_grpc

    with grpc.insecure_channel("unix:" + env["ORCH_HOST"][len("unix://"):]) as ch:
        info = agent_pb2_grpc.AgentStub(ch).Info(agent_pb2.InfoRequest())
    return [info.agent_pid, info.supervisor_pid]


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    with tempdir() as tmp_s:
        tmp = Path(tmp_s)
        rootfs = busybox_rootfs(tmp / "rootfs")
        with agent(tmp / "agent") as env:
            subprocess.run([*ORCH, "image", "import", str(rootfs), "bench-busybox"], check=True,
                           env=env, capture_output=True)
            procs = pids(env)
            # Idle: the agent and supervisor as started, no container yet. Code
            # loaded on first use (bridge networking, the DNS redirect's
            # libnftables) shows in the first container's figure, and in the
            # average over all of them; the others' figure is what each costs.
            time.sleep(0.5)
            idle_each = [rss_kib(p) for p in procs]
            idle = sum(idle_each)
            first = idle
            for i in range(n):
                subprocess.run([*ORCH, "run", "-d", "--name", f"idle{i}", "bench-busybox",
                                "sleep", "3600"], env=env, check=True, capture_output=True)
                if i == 0:
                    time.sleep(0.5)
                    first = sum(rss_kib(p) for p in procs)
            time.sleep(1.0)
            loaded_each = [rss_kib(p) for p in procs]
            loaded = sum(loaded_each)
    print(f"agent_pid={procs[0]} supervisor_pid={procs[1]} containers={n}")
    print(f"agent_idle_kib={idle_each[0]} supervisor_idle_kib={idle_each[1]}")
    print(f"agent_loaded_kib={loaded_each[0]} supervisor_loaded_kib={loaded_each[1]}")
    print(f"rss_idle_kib={idle} rss_loaded_kib={loaded}")
    print(f"agent_idle_mib={idle / 1024:.1f}")
    print(f"first_container_kib={first - idle}")
    print(f"per_container_with_first_kib={(loaded - idle) / n:.1f}")
    print(f"per_container_kib={(loaded - first) / max(1, n - 1):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
