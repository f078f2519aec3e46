"""A real local cluster for the cluster tests: etcd, one control plane and
three agents, each agent in its own network namespace, all driven through
the real CLI. Private names (bridge, netns prefix, subnet, ports, dirs) so
it never meets a cluster a user has up; `orch down --purge` at the end must
leave nothing."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class LocalCluster:
    state: Path
    run: Path
    bridge: str
    prefix: str
    subnet: str
    port: int
    env: dict[str, str]

    def orch(self, *args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "orch", *args], env=self.env, text=True,
                              capture_output=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"orch {' '.join(args)} -> {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def up(self, nodes: int = 3, controlplanes: int = 2) -> None:
        self.orch("up", "--nodes", str(nodes), "--controlplanes", str(controlplanes),
                  "--state-dir", str(self.state), "--run-dir", str(self.run), "--bridge", self.bridge,
                  "--prefix", self.prefix, "--subnet", self.subnet, "--port", str(self.port),
                  "--registry", str(self.port + 40), "--monitoring", str(self.port + 70))

    def down(self, purge: bool = True) -> None:
        """`orch down`, which must leave nothing: a down that lists leftovers
        (it keeps the record, so it can run again) gets one more try, then
        fails the test that owns the cluster."""
        args = ("down", "--run-dir", str(self.run), *(["--purge"] if purge else []))
        proc = self.orch(*args, check=False)
        if proc.returncode != 0 and (self.run / "cluster.json").exists():
            proc = self.orch(*args, check=False)
        assert proc.returncode == 0, f"orch down left things behind:\n{proc.stdout}{proc.stderr}"

    def record(self) -> dict[str, Any]:
        return json.loads((self.run / "cluster.json").read_text())

    def tasks(self, service: str = "") -> list[dict[str, Any]]:
        out = self.orch("ps", *([service] if service else []), "-o", "json").stdout
        return json.loads(out)

    def running(self, service: str) -> list[dict[str, Any]]:
        return [t for t in self.tasks(service) if t["state"] == "running" and t["desired"] == "running"]

    def nodes(self) -> list[dict[str, Any]]:
        return json.loads(self.orch("nodes", "-o", "json").stdout)

    def per_node(self, service: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for t in self.running(service):
            counts[t["node"]] = counts.get(t["node"], 0) + 1
        return counts

    def heartbeats_after(self, moment: float, timeout: float = 30.0) -> list[dict[str, Any]]:
        """Wait until the control plane has recorded a heartbeat of every node
        stamped after ``moment`` (``time.time()``; the dispatcher stamps a beat
        when it arrives), and return the nodes then. Every agent then has a live
        session with a running control plane, and whatever it sent before that
        beat has been applied. "Nothing changes over a heartbeat window" waits
        for this instead of sleeping. Fails the test if a node is down meanwhile."""
        def beaten() -> list[dict[str, Any]] | None:
            nodes = self.nodes()
            down = [n["name"] for n in nodes if n["state"] == "down"]
            assert not down, f"nodes went down: {down}"
            return nodes if all(n["last_heartbeat"] > moment for n in nodes) else None

        result: list[dict[str, Any]] = wait_for(beaten, timeout=timeout)
        return result


def wait_for(fn: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s (last: {last!r})")


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    if os.geteuid() != 0:
        pytest.skip("a local cluster needs root")
    tag = secrets.token_hex(2)
    tmp = tmp_path_factory.mktemp("cluster")
    third = 100 + int(tag[:2], 16) % 100
    c = LocalCluster(state=tmp / "state", run=Path(f"/run/orch-ct-{tag}"), bridge=f"orchc{tag}",
                     prefix=f"oc{tag}-", subnet=f"10.220.{third}.0/24", port=17000 + int(tag, 16) % 2000,
                     env={**os.environ, "ORCH_CLUSTER_RUN_DIR": f"/run/orch-ct-{tag}"})
    c.env.pop("ORCH_HOST", None)
    c.env.pop("ORCH_CLUSTER", None)
    c.up(3)
    try:
        yield c
    finally:
        c.down(purge=True)
        subprocess.run(["rm", "-rf", str(c.run)], check=False)
