"""Independent stages build at the same time, in separate processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from nodeagent.images import ImageStore

CONTAINERFILE = """\
FROM busybox AS one
RUN echo one > /one.txt
FROM busybox AS two
RUN echo two > /two.txt
FROM busybox
COPY --from=one /one.txt /one.txt
COPY --from=two /two.txt /two.txt
"""


def test_independent_stages_build_concurrently(store: ImageStore, tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("RUN steps need root")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Containerfile").write_text(CONTAINERFILE)
    proc = subprocess.run([sys.executable, "-m", "nodeagent.images.build", "--state-dir", store.root,
                           "-t", "stages:1", str(context)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "building stages one, two concurrently" in out
    # The sequential pass finds both RUN steps already built by the stage processes.
    runs = [i for i, line in enumerate(out.splitlines()) if " RUN " in line]
    lines = out.splitlines()
    assert [lines[i + 1].split()[1] for i in runs] == ["CACHED", "CACHED"]
    image = store.get("stages:1")
    assert len(image.diff_ids) == len(store.get("busybox").diff_ids) + 2
