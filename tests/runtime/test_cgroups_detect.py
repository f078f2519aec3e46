"""Driver detection: fake layouts for each case, and the real host (hybrid with
an empty unified hierarchy, so v1)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.errors import FailedPrecondition
from nodeagent.runtime.cgroups import V1Driver, V2Driver, detect


def test_unified_root_is_v2(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids\n")
    driver = detect(str(tmp_path))
    assert isinstance(driver, V2Driver)
    assert driver.version == 2
    assert driver.root == str(tmp_path)


def test_v1_layout_is_v1(tmp_path: Path) -> None:
    for controller in ("cpu", "cpuacct", "memory", "pids"):
        (tmp_path / controller).mkdir()
    driver = detect(str(tmp_path))
    assert isinstance(driver, V1Driver)
    assert driver.version == 1


def test_hybrid_with_empty_unified_is_v1(tmp_path: Path) -> None:
    (tmp_path / "cpu,cpuacct").mkdir()
    (tmp_path / "memory").mkdir()
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("\n")
    driver = detect(str(tmp_path))
    assert isinstance(driver, V1Driver)
    assert driver.hierarchies["cpuacct"] == str(tmp_path / "cpu,cpuacct")


def test_unified_with_controllers_and_no_v1_is_v2_there(tmp_path: Path) -> None:
    (tmp_path / "systemd").mkdir()  # name=systemd only: no resource controller
    (tmp_path / "unified").mkdir()
    (tmp_path / "unified" / "cgroup.controllers").write_text("cpu memory pids\n")
    driver = detect(str(tmp_path))
    assert isinstance(driver, V2Driver)
    assert driver.root == str(tmp_path / "unified")


def test_nothing_usable(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match="no usable cgroup"):
        detect(str(tmp_path))


def test_this_host_is_v1() -> None:
    if not os.path.isdir("/sys/fs/cgroup/memory"):
        pytest.skip("this test describes the hybrid v1 host")
    driver = detect()
    assert isinstance(driver, V1Driver)
    assert {"cpu", "cpuacct", "memory", "pids"} <= set(driver.hierarchies)
