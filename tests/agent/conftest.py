"""A real agent (and supervisor) on a private state dir, run dir, bridge and
subnet, driven through the real CLI. Torn down with `orch agent stop --all`,
after which nothing of it may remain on the host."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Engine:
    state: Path
    run: Path
    bridge: str
    subnet: str
    env: dict[str, str]

    def orch(self, *args: str, check: bool = True, timeout: float = 60,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([sys.executable, "-m", "orch", *args], env=self.env, text=True,
                              capture_output=True, timeout=timeout, input=input)
        if check and proc.returncode != 0:
            raise AssertionError(f"orch {' '.join(args)} -> {proc.returncode}\n"
                                 f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
        return proc

    def start(self) -> None:
        # No upstream resolvers: names the node's DNS server does not know
        # fail at once, and no query ever leaves the machine.
        self.orch("agent", "--detach", "--state-dir", str(self.state), "--run-dir", str(self.run),
                  "--bridge", self.bridge, "--subnet", self.subnet, "--dns-upstream", "none")

    def stop_all(self) -> None:
        self.orch("agent", "stop", "--all", "--state-dir", str(self.state),
                  "--run-dir", str(self.run), check=False)

    def info(self) -> dict[str, int]:
        import grpc

        from proto import agent_pb2, agent_pb2_grpc

        with grpc.insecure_channel(f"unix:{self.run}/agent.sock") as ch:
            info = agent_pb2_grpc.AgentStub(ch).Info(agent_pb2.InfoRequest(), timeout=10)
        return {"agent_pid": info.agent_pid, "supervisor_pid": info.supervisor_pid}


def busybox_rootfs(dest: Path) -> Path:
    out = subprocess.run([str(ROOT / "examples/images/busybox.sh"), str(dest)], check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return Path(out)


@pytest.fixture(scope="session")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    if os.geteuid() != 0:
        pytest.skip("the agent needs root")
    tmp = tmp_path_factory.mktemp("engine")
    tag = secrets.token_hex(2)
    eng = Engine(state=tmp / "state", run=Path(f"/run/orch-test-{tag}"), bridge=f"orcht{tag}",
                 subnet=f"10.215.{int(tag[:2], 16)}.0/24",
                 env={**os.environ, "ORCH_HOST": f"unix:///run/orch-test-{tag}/agent.sock"})
    eng.start()
    rootfs = busybox_rootfs(tmp / "busybox")
    eng.orch("image", "import", str(rootfs), "busybox:latest")
    try:
        yield eng
    finally:
        eng.stop_all()
        subprocess.run(["rm", "-rf", str(eng.run)], check=False)
