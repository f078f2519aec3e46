"""The CLI as tests run it: ``python -m orch`` with an environment, its
output captured, an AssertionError with both streams when it fails."""

from __future__ import annotations

import subprocess
import sys


def run_orch(env: dict[str, str], *args: str, check: bool = True,
             timeout: float = 120) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "orch", *args], env=env, text=True,
                          capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"orch {' '.join(args)} -> {proc.returncode}\n"
                             f"stdout: {proc.stdout}\nstderr: {proc.stderr}")
    return proc
