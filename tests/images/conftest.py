"""Fixtures for image tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from images_helpers import make_rootfs


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    return make_rootfs(tmp_path / "rootfs")
