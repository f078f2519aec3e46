"""The agent's /metrics for real: an agent of its own serving them on its
bridge's gateway address, real containers, the cgroup files read beside it.

- the endpoint parses with prometheus_client's parser and has cAdvisor's
  names with the container's labels;
- the values match the cgroup files (within what an idle container moves);
- a memory hog's ``container_oom_events_total`` increases;
- a container cannot reach the metrics port (a port nothing fences is the
  control)."""

from __future__ import annotations

import http.client
import ipaddress
import json
import os
import secrets
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from nodeagent.runtime.cgroups import detect
from tests.agent.conftest import Engine, busybox_rootfs

T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {check}")
        time.sleep(0.1)


class MetricsAgent(Engine):
    metrics: tuple[str, int] = ("", 0)

    def scrape(self) -> dict[str, list[Any]]:
        """Sample name -> its samples, parsed by prometheus_client's parser."""
        from prometheus_client.parser import text_string_to_metric_families

        conn = http.client.HTTPConnection(*self.metrics, timeout=30)
        try:
            conn.request("GET", "/metrics")
            resp = conn.getresponse()
            body = resp.read().decode()
            assert resp.status == 200, body
        finally:
            conn.close()
        out: dict[str, list[Any]] = {}
        for family in text_string_to_metric_families(body):
            for sample in family.samples:
                out.setdefault(sample.name, []).append(sample)
        return out

    def of(self, samples: dict[str, list[Any]], name: str, container: str) -> list[Any]:
        return [s for s in samples.get(name, []) if s.labels.get("name") == container]

    def inspect(self, name: str) -> dict[str, Any]:
        rec: dict[str, Any] = json.loads(self.orch("inspect", name).stdout)[0]
        return rec


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MetricsAgent]:
    if os.geteuid() != 0:
        pytest.skip("the agent needs root")
    tmp = tmp_path_factory.mktemp("metrics")
    tag = secrets.token_hex(2)
    subnet = ipaddress.ip_network(f"10.216.{int(tag[:2], 16)}.0/24")
    gateway = str(subnet[1])
    run = Path(f"/run/orch-mtest-{tag}")
    eng = MetricsAgent(state=tmp / "state", run=run, bridge=f"orchm{tag}", subnet=str(subnet),
                       env={**os.environ, "ORCH_HOST": f"unix://{run}/agent.sock"})
    eng.metrics = (gateway, _free_port())
    try:
        # The agent fences the port and makes its bridge (with the gateway
        # address) before it binds: the metrics listen where containers would reach them.
        eng.orch("agent", "--detach", "--state-dir", str(eng.state), "--run-dir", str(run),
                 "--bridge", eng.bridge, "--subnet", eng.subnet, "--dns-upstream", "none",
                 "--metrics-listen", f"{gateway}:{eng.metrics[1]}")
        eng.orch("image", "import", str(busybox_rootfs(tmp / "busybox")), "busybox:latest")
        yield eng
    finally:
        eng.stop_all()
        subprocess.run(["rm", "-rf", str(run)], check=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cgroup_figures(cid: str) -> dict[str, float]:
    """memory usage (bytes) and CPU usage (s) from the container's cgroup files."""
    driver: Any = detect()
    group = f"orch/{cid}"
    if driver.version == 1:
        mem = Path(driver.hierarchies["memory"], group, "memory.usage_in_bytes").read_text()
        cpu_ns = Path(driver.hierarchies["cpuacct"], group, "cpuacct.usage").read_text()
        return {"memory": int(mem), "cpu": int(cpu_ns) / 1e9}
    base = Path(driver.root, group)
    stat = dict(line.split() for line in (base / "cpu.stat").read_text().splitlines())
    return {"memory": int((base / "memory.current").read_text()), "cpu": int(stat["usage_usec"]) / 1e6}


CADVISOR = ("container_cpu_usage_seconds_total", "container_cpu_user_seconds_total",
            "container_cpu_system_seconds_total", "container_cpu_cfs_periods_total",
            "container_cpu_cfs_throttled_periods_total", "container_cpu_cfs_throttled_seconds_total",
            "container_memory_usage_bytes", "container_memory_working_set_bytes", "container_memory_rss",
            "container_memory_cache", "container_memory_failcnt", "container_spec_memory_limit_bytes",
            "container_oom_events_total", "container_network_receive_bytes_total",
            "container_network_receive_packets_total", "container_network_receive_errors_total",
            "container_network_receive_packets_dropped_total", "container_network_transmit_bytes_total",
            "container_network_transmit_packets_total", "container_network_transmit_errors_total",
            "container_network_transmit_packets_dropped_total", "container_fs_usage_bytes",
            "container_start_time_seconds", "container_last_seen")


def test_metrics_have_cadvisor_names_and_match_the_cgroup_files(agent: MetricsAgent) -> None:
    name = "mx-idle"
    agent.orch("run", "-d", "--name", name, "--memory", "64m", "--cpus", "0.5",
               "-l", "com.example.tier=web", "busybox", "sleep", "300")
    try:
        rec = agent.inspect(name)
        # The layer's size comes from the metrics' one walker thread: it is
        # there once a scrape has asked for it.
        def with_layer() -> dict[str, list[Any]] | None:
            samples = agent.scrape()
            return samples if agent.of(samples, "container_fs_usage_bytes", name) else None

        samples = wait_for(with_layer)
        files = _cgroup_figures(rec["id"])
        missing = [m for m in CADVISOR if not agent.of(samples, m, name)]
        assert not missing, missing
        (cpu,) = agent.of(samples, "container_cpu_usage_seconds_total", name)
        assert cpu.labels["id"] == f"/orch/{rec['id']}"
        assert cpu.labels["image"] == "busybox:latest"
        assert cpu.labels["container_label_com_example_tier"] == "web"
        assert cpu.labels["node"] == socket.gethostname()
        assert (cpu.labels["service"], cpu.labels["task"], cpu.labels["slot"]) == ("", "", "")
        # An idle sleep: its figures barely move between the scrape and the reads.
        assert abs(cpu.value - files["cpu"]) < 0.05, (cpu.value, files)
        (mem,) = agent.of(samples, "container_memory_usage_bytes", name)
        assert abs(mem.value - files["memory"]) <= 1 << 20, (mem.value, files)
        (ws,) = agent.of(samples, "container_memory_working_set_bytes", name)
        assert 0 <= ws.value <= mem.value
        assert agent.of(samples, "container_spec_memory_limit_bytes", name)[0].value == 64 << 20
        assert agent.of(samples, "container_spec_cpu_quota", name)[0].value == 50000
        assert {s.labels["interface"] for s in agent.of(samples, "container_network_receive_bytes_total",
                                                        name)} == {"eth0"}
        started = agent.of(samples, "container_start_time_seconds", name)[0].value
        assert abs(started - rec["started_at"]) < 1e-3
        node = {s.name: s.value for s in samples["orch_node_allocated_memory_bytes"]}
        assert node["orch_node_allocated_memory_bytes"] >= 64 << 20
        running = [s for s in samples["orch_node_containers"] if s.labels["state"] == "running"]
        assert running[0].value >= 1
        assert samples["process_resident_memory_bytes"][0].value > 0  # the agent's own
    finally:
        agent.orch("rm", "-f", name, check=False)
    gone = agent.scrape()
    assert not agent.of(gone, "container_cpu_usage_seconds_total", name)


def test_a_memory_hogs_oom_events_increase(agent: MetricsAgent) -> None:
    name = "mx-hog"
    # The hog is a child: each one the kernel kills, the loop starts again,
    # and the container (its PID 1 loop) keeps running to be scraped.
    hog = "while true; do sh -c 'x=a; while true; do x=$x$x; done'; done"
    agent.orch("run", "-d", "--name", name, "--memory", "16m", "busybox", "sh", "-c", hog)
    try:
        first = wait_for(lambda: agent.of(agent.scrape(), "container_oom_events_total", name))[0].value

        def more() -> float | None:
            (sample,) = agent.of(agent.scrape(), "container_oom_events_total", name)
            return sample.value if sample.value > first else None

        assert wait_for(more) > first
    finally:
        agent.orch("rm", "-f", name, check=False)


def test_containers_cannot_reach_the_metrics_port(agent: MetricsAgent) -> None:
    gateway, port = agent.metrics
    control = socket.socket()
    control.bind((gateway, 0))  # an unfenced port on the same address: it must answer
    control.listen(4)
    stop = threading.Event()

    def accept() -> None:
        control.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = control.accept()
                conn.close()
            except OSError:
                continue

    threading.Thread(target=accept, daemon=True).start()
    agent.orch("run", "-d", "--name", "mx-probe", "busybox", "sleep", "300")
    try:
        def connects(p: int) -> bool:
            probe = agent.orch("exec", "mx-probe", "nc", "-w", "2", gateway, str(p), check=False)
            return probe.returncode == 0

        assert connects(control.getsockname()[1])
        assert not connects(port)
        assert agent.scrape()["orch_agent_supervisor_up"][0].value == 1  # the host still scrapes it
    finally:
        stop.set()
        control.close()
        agent.orch("rm", "-f", "mx-probe", check=False)
