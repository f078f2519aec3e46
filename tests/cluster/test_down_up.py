"""`orch down` keeps the state and `orch up` brings the same cluster back: the
same tasks run again, none of them counted as failed, and deploying the same
manifest again is a quiet success. Its own small cluster (the shared one
must stay up for the other tests)."""

from __future__ import annotations

import os
import secrets
import subprocess
from pathlib import Path

import pytest

from tests.cluster.conftest import LocalCluster, wait_for
from tests.cluster.test_cluster import manifest


def test_down_then_up_brings_the_same_tasks_back(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("a local cluster needs root")
    tag = secrets.token_hex(2)
    c = LocalCluster(state=tmp_path / "state", run=Path(f"/run/orch-du-{tag}"), bridge=f"orchd{tag}",
                     prefix=f"od{tag}-", subnet=f"10.219.{100 + int(tag[:2], 16) % 100}.0/24",
                     port=19100 + int(tag, 16) % 800,
                     env={**os.environ, "ORCH_CLUSTER_RUN_DIR": f"/run/orch-du-{tag}"})
    c.env.pop("ORCH_HOST", None)
    c.env.pop("ORCH_CLUSTER", None)

    def up() -> None:
        c.orch("up", "--nodes", "2", "--state-dir", str(c.state), "--run-dir", str(c.run),
               "--bridge", c.bridge, "--prefix", c.prefix, "--subnet", c.subnet, "--port", str(c.port))

    # PID 1 ignores SIGTERM here: `orch down` kills it after the grace period
    # (exit 137), which must not count as the task failing.
    path = manifest(tmp_path, """
        services:
          sleeper:
            image: busybox
            command: ["sleep", "1000"]
            stop_grace_period: 1s
            deploy:
              replicas: 4
    """)
    up()
    try:
        c.orch("deploy", "-f", path)
        before = {t["id"] for t in c.running("sleeper")}
        assert len(before) == 4
        c.down(purge=False)
        up()
        wait_for(lambda: {t["id"] for t in c.running("sleeper")} == before)
        assert [t for t in c.tasks("sleeper") if t["state"] == "failed"] == []
        again = c.orch("deploy", "-f", path)
        assert again.stdout.splitlines()[-1] == "sleeper: 4/4 running"
        assert {t["id"] for t in c.running("sleeper")} == before
    finally:
        c.down(purge=True)
        subprocess.run(["rm", "-rf", str(c.run)], check=False)
