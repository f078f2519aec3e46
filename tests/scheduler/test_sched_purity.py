"""The scheduler is pure: importing all of it pulls in no I/O or cluster code."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = ("grpc", "pyetcd", "etcd3", "asyncio", "socket", "selectors", "subprocess", "threading",
             "controlplane", "nodeagent", "proto", "orch")

PROBE = """
import importlib, json, pkgutil, sys
import scheduler
for m in pkgutil.walk_packages(scheduler.__path__, "scheduler."):
    importlib.import_module(m.name)
print(json.dumps(sorted(sys.modules)))
"""


def test_scheduler_imports_nothing_impure() -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout)
    assert any(m.startswith("scheduler._") for m in loaded)
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert bad == [], f"scheduler must stay pure, but importing it loaded {bad}"
