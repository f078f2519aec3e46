"""A private local cluster for the cluster benchmarks (its own names, so it
never meets a cluster a user has up); always torn down with --purge."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench._common import ORCH

# $ORCH_BENCH_SLOT (0-9, default 0) picks another set of names, so two
# benchmarks can run side by side.
SLOT = int(os.environ.get("ORCH_BENCH_SLOT", "0") or 0) % 10
RUN = "/run/orch-bench-cluster" + (f"-{SLOT}" if SLOT else "")
ENV = {**os.environ, "ORCH_CLUSTER_RUN_DIR": RUN}
ENV.pop("ORCH_HOST", None)
ENV.pop("ORCH_CLUSTER", None)


def orch(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ORCH, *args], env=ENV, text=True,
                          capture_output=True, check=check)


def up_args(nodes: int, state: str) -> list[str]:
    return ["up", "--nodes", str(nodes), "--state-dir", state, "--run-dir", RUN, "--bridge",
            f"orchbench{SLOT}", "--prefix", f"ob{SLOT or ''}-", "--subnet", f"10.221.{SLOT * 16}.0/24",
            "--port", str(17900 + SLOT * 20)]


@contextlib.contextmanager
def cluster(nodes: int) -> Iterator[str]:
    state = tempfile.mkdtemp(prefix="orch-bench-")
    try:
        orch(*up_args(nodes, state))
        yield state
    finally:
        # Also after a failed `orch up` (which stops what it started, but
        # keeps its state dir): --purge removes the dir either way.
        orch("down", "--run-dir", RUN, "--purge", check=False)
        shutil.rmtree(state, ignore_errors=True)


def deploy(name: str, replicas: int, state: str, detach: bool = True) -> None:
    """A busybox sleep service (``sleep`` as PID 1 ignores SIGTERM, so a
    stop takes the 1 s grace and a SIGKILL; no bench times a stop)."""
    path = Path(state) / f"{name}.yaml"
    path.write_text(textwrap.dedent(f"""
        services:
          {name}:
            image: busybox
            command: ["sleep", "3600"]
            stop_grace_period: 1s
            deploy:
              replicas: {replicas}
    """))
    orch("deploy", "-f", str(path), *(["--detach"] if detach else []))


def running(name: str) -> list[dict[str, Any]]:
    out = orch("ps", name, "-o", "json").stdout
    return [t for t in json.loads(out) if t["state"] == "running" and t["desired"] == "running"]


def wait(pred: Any, timeout: float = 300, interval: float = 0.05) -> float:
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(interval)
    raise SystemExit("timed out")
