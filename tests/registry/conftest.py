"""Fixtures: a real registry per test, stores, a busybox rootfs built once."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_helpers import Registry, run_registry

from nodeagent.images import ImageStore

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with run_registry(tmp_path / "registry") as reg:
        yield reg


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("busybox") / "rootfs"
    subprocess.run([str(ROOT / "examples/images/busybox.sh"), str(out)], check=True, capture_output=True)
    return out


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(str(tmp_path / "state-a"))


@pytest.fixture
def store2(tmp_path: Path) -> ImageStore:
    return ImageStore(str(tmp_path / "state-b"))
