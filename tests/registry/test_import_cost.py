"""The node agent and the CLI check references without loading httpx: only
image jobs (their own processes) and the control plane's pin load it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import sys, tempfile
import nodeagent.agent.daemon, nodeagent.agent.service, nodeagent.cluster.worker
import orch.cli, model.manifest
from nodeagent.images.store import ImageStore
from registry import names_registry, normalize, parse
from common.errors import NotFound

store = ImageStore(tempfile.mkdtemp())
for ref in ("127.0.0.1:5000/team/app:1", "app@sha256:" + "0" * 64, "busybox"):
    assert names_registry(ref) in (True, False) and normalize(ref)
    try:
        store.get(ref)
    except NotFound:
        pass
model.manifest.parse_manifest("services:\\n  web:\\n    image: 127.0.0.1:5000/site:1\\n")
print(" ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("httpx", "httpcore", "h11"))))
"""


def test_agent_and_cli_modules_do_not_load_httpx(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=60).stdout
    assert out.strip() == ""
