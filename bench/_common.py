"""Helpers for the benchmark scripts: a busybox rootfs, a throwaway agent."""

from __future__ import annotations

import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _orch_command() -> list[str]:
    """The ``orch`` command a user runs: the console script beside this
    Python (scripts/setup writes it), else ``python -m orch``."""
    script = Path(sys.executable).with_name("orch")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "orch"]


ORCH = _orch_command()


def busybox_rootfs(dest: Path) -> Path:
    out = subprocess.run([str(ROOT / "examples/images/busybox.sh"), str(dest)], check=True,
                         capture_output=True, text=True).stdout.strip().splitlines()[-1]
    return Path(out)


@contextlib.contextmanager
def agent(tmp: Path) -> Iterator[dict[str, str]]:
    """A detached agent on its own state and run dirs; fully stopped after."""
    state, run = tmp / "state", tmp / "run"
    env = {**os.environ, "ORCH_HOST": f"unix://{run}/agent.sock"}
    subprocess.run([*ORCH, "agent", "--detach", "--state-dir", str(state), "--run-dir", str(run),
                    "--bridge", "orchb0", "--subnet", "10.213.0.0/24"],
                   check=True, env=env, capture_output=True)
    try:
        yield env
    finally:
        subprocess.run([*ORCH, "agent", "stop", "--all", "--state-dir", str(state),
                        "--run-dir", str(run)], env=env, capture_output=True)


def rss_kib(pid: int) -> int:
    """A process's resident memory (VmRSS), KiB; 0 once it has none."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far, user + system (/proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


def tempdir() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="orch-bench-")
