"""The cost of the agent's /metrics with N idle containers (default 100).

- ``scrape_ms_100``: the median wall time of 20 scrapes (GET /metrics on loopback);
- ``scrape_cpu_ms_100``: the agent's CPU time (user + system, /proc/<pid>/stat)
  over those 20 scrapes, per scrape;
- ``agent_rss_delta_mib``: the agent's RSS with metrics on minus with them
  off, each a fresh agent adopting the same N containers, after the same
  scrapes (with metrics) or the same wait (without).

    python bench/metrics.py [N]     (root)

Everything it starts (the agent, its supervisor, the containers, the
bridge) is stopped and removed at the end.
"""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ORCH, busybox_rootfs, cpu_seconds, rss_kib, tempdir

SCRAPES = 20
BRIDGE, SUBNET = "orchbm0", "10.219.0.0/24"


def agent_pid(run: Path) -> int:
    return int((run / "agent.lock").read_text().strip())


def scrape(port: int) -> bytes:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"/metrics answered {resp.status}: {body[:200]!r}")
        return body
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Agent:
    def __init__(self, tmp: Path) -> None:
        self.state, self.run = tmp / "state", tmp / "run"
        self.env = {**os.environ, "ORCH_HOST": f"unix://{self.run}/agent.sock"}

    def orch(self, *args: str) -> None:
        subprocess.run([*ORCH, *args], check=True, env=self.env, capture_output=True)

    def start(self, metrics_port: int = 0) -> int:
        self.orch("agent", "--detach", "--state-dir", str(self.state), "--run-dir", str(self.run),
                  "--bridge", BRIDGE, "--subnet", SUBNET, "--dns-upstream", "none",
                  *(["--metrics-listen", f"127.0.0.1:{metrics_port}"] if metrics_port else []))
        return agent_pid(self.run)

    def stop(self, everything: bool = False) -> None:
        """Stop the agent; its containers keep running unless ``everything``."""
        subprocess.run([*ORCH, "agent", "stop", *(["--all"] if everything else []),
                        "--state-dir", str(self.state), "--run-dir", str(self.run)],
                       env=self.env, capture_output=True)


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    with tempdir() as tmp_s:
        tmp = Path(tmp_s)
        rootfs = busybox_rootfs(tmp / "rootfs")
        agent = Agent(tmp / "agent")
        try:
            agent.start()
            agent.orch("image", "import", str(rootfs), "bench-busybox")
            for i in range(n):
                agent.orch("run", "-d", "--name", f"idle{i}", "bench-busybox", "sleep", "3600")
            agent.stop()

            # Without metrics: a fresh agent adopting the N containers.
            pid = agent.start()
            time.sleep(SCRAPES * 0.1 + 2.0)
            rss_off = rss_kib(pid)
            agent.stop()

            # With metrics: a fresh agent again, then the scrapes.
            port = free_port()
            pid = agent.start(port)
            time.sleep(1.0)
            scrape(port)  # the first: modules loaded on first use, the layers' walk started
            time.sleep(1.0)
            walls: list[float] = []
            cpu0 = cpu_seconds(pid)
            for _ in range(SCRAPES):
                t0 = time.perf_counter()
                body = scrape(port)
                walls.append(time.perf_counter() - t0)
                time.sleep(0.1)
            cpu = cpu_seconds(pid) - cpu0
            time.sleep(1.0)
            rss_on = rss_kib(pid)
            samples = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        finally:
            agent.stop(everything=True)
    print(f"containers={n} scrapes={SCRAPES} samples={samples} bytes={len(body)}")
    print(f"scrape_ms_{n}={statistics.median(walls) * 1000:.1f}")
    print(f"scrape_ms_max_{n}={max(walls) * 1000:.1f}")
    print(f"scrape_cpu_ms_{n}={cpu / SCRAPES * 1000:.1f}")
    print(f"agent_rss_off_kib={rss_off} agent_rss_on_kib={rss_on}")
    print(f"agent_rss_delta_mib={(rss_on - rss_off) / 1024:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
