"""Fixtures for build tests: a tmp ImageStore holding busybox (from
examples/images/busybox.sh), a LinuxRuntime on a unique cgroup parent, and a
context-dir helper. Everything is removed afterwards (containers are removed
by the build itself; the fixture checks the cgroup parent is empty)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from nodeagent.images.store import ImageStore
from tests.runtime_fixtures import cgroup_parent, runtime

__all__ = ["cgroup_parent", "runtime"]  # the container fixtures, shared with tests/runtime

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def busybox_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.geteuid() != 0:
        pytest.skip("build tests need root (they run containers)")
    if not os.path.exists("/bin/busybox"):
        pytest.skip("busybox-static is not installed")
    out = tmp_path_factory.mktemp("busybox") / "rootfs"
    res = subprocess.run([str(REPO / "examples/images/busybox.sh"), str(out)], capture_output=True,
                         text=True, check=True)
    return Path(res.stdout.strip())


@pytest.fixture
def store(tmp_path: Path, busybox_dir: Path) -> ImageStore:
    s = ImageStore(str(tmp_path / "state"))
    s.import_rootfs(str(busybox_dir), "busybox:latest")
    return s


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
