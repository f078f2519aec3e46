"""Fixtures: a real registry per test (plain, or with htpasswd Basic auth), stores,
a busybox rootfs built once."""

from __future__ import annotations

import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_helpers import Registry, run_registry

from nodeagent.images import ImageStore

ROOT = Path(__file__).resolve().parents[2]


with warnings.catch_warnings():
    # crypt is deprecated in 3.11 but present; its bcrypt ($2b$) is what htpasswd auth reads.
    warnings.simplefilter("ignore", DeprecationWarning)
    import crypt


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    with run_registry(tmp_path / "registry") as reg:
        yield reg


@pytest.fixture
def auth_registry(tmp_path: Path) -> Iterator[Registry]:
    """docker-registry wanting alice:s3cret (Basic, htpasswd)."""
    line = crypt.crypt("s3cret", crypt.mksalt(crypt.METHOD_BLOWFISH))
    if not line or not line.startswith("$2"):
        pytest.skip("no bcrypt in this libc's crypt(); Basic auth is covered by test_registry_mock")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(f"alice:{line}\n")
    with run_registry(tmp_path / "auth-registry", htpasswd=htpasswd) as reg:
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
