"""cgroup v2 driver: writers and readers against a temp-dir fake cgroupfs, plus
group lifecycle (procs, cgroup.kill, rmdir) on this host's real unified
hierarchy when it is mounted (it carries no controllers on hybrid hosts)."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.errors import InvalidArgument, NotFound, SetupError
from nodeagent.runtime.cgroups import V2Driver, remove_parent_if_empty
from nodeagent.runtime.spec import Resources

GROUP_FILES = {
    "cgroup.controllers": "",
    "cgroup.subtree_control": "",
    "cgroup.procs": "",
    "cgroup.events": "populated 0\nfrozen 0\n",
    "memory.max": "max",
    "memory.swap.max": "max",
    "memory.current": "0",
    "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    "cpu.max": "max 100000",
    "cpu.stat": "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"
    "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\n",
    "pids.max": "max",
    "pids.current": "0",
}


def make_fake_v2(root: Path, name: str, available: str = "cpu memory pids io") -> Path:
    """A fake unified hierarchy: root files plus every level of ``name`` with
    the files a real cgroupfs shows once cpu, memory and pids are delegated."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text(available + "\n")
    (root / "cgroup.subtree_control").write_text("")
    (root / "cgroup.procs").write_text("1\n")
    (root / "cpu.stat").write_text("usage_usec 0\n")
    directory = root
    for part in name.split("/"):
        directory = directory / part
        directory.mkdir(exist_ok=True)
        for filename, content in GROUP_FILES.items():
            (directory / filename).write_text(content)
        (directory / "cgroup.controllers").write_text(available + "\n")
    return directory


def test_create_writes_exact_values(tmp_path: Path) -> None:
    leaf = make_fake_v2(tmp_path, "orch/c1")
    driver = V2Driver(str(tmp_path))
    group = driver.create("orch/c1", Resources(memory_bytes=64 << 20, cpus=0.5, pids_limit=100))
    assert group.name == "orch/c1"
    assert (leaf / "memory.max").read_text() == str(64 << 20)
    assert (leaf / "memory.swap.max").read_text() == "0"
    assert (leaf / "cpu.max").read_text() == "50000 100000"
    assert (leaf / "pids.max").read_text() == "100"
    # Delegation down the ancestors, never on the leaf itself; io is not wanted.
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (tmp_path / "orch" / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (leaf / "cgroup.subtree_control").read_text() == ""


def test_create_enables_only_available_and_missing_controllers(tmp_path: Path) -> None:
    make_fake_v2(tmp_path, "orch/c1", available="cpu pids")
    (tmp_path / "orch" / "cgroup.subtree_control").write_text("cpu\n")
    V2Driver(str(tmp_path)).create("orch/c1", Resources())
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu +pids"
    assert (tmp_path / "orch" / "cgroup.subtree_control").read_text() == "+pids"


def test_create_without_limits_restores_max(tmp_path: Path) -> None:
    leaf = make_fake_v2(tmp_path, "orch/c1")
    driver = V2Driver(str(tmp_path))
    driver.create("orch/c1", Resources(memory_bytes=1 << 30, cpus=2, pids_limit=5))
    driver.create("orch/c1", Resources())  # idempotent, declarative
    assert (leaf / "memory.max").read_text() == "max"
    assert (leaf / "memory.swap.max").read_text() == "max"
    assert (leaf / "cpu.max").read_text() == "max 100000"
    assert (leaf / "pids.max").read_text() == "max"


def test_a_new_group_gets_only_the_wanted_limits(
        tmp_path: Path, kernel_cgroupfs: Callable[..., list[str]]) -> None:
    """A group this call creates already has no limits: only what is asked
    for is written."""
    make_fake_v2(tmp_path, "orch")
    written = kernel_cgroupfs(lambda d: GROUP_FILES)
    V2Driver(str(tmp_path)).create("orch/c2", Resources(memory_bytes=1 << 20))
    assert sorted(w for w in written if w != "cgroup.subtree_control") == ["memory.max",
                                                                          "memory.swap.max"]
    assert (tmp_path / "orch" / "c2" / "memory.max").read_text() == str(1 << 20)


def test_missing_controller_files_fine_without_limits(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("")
    (tmp_path / "cgroup.subtree_control").write_text("")
    group = V2Driver(str(tmp_path)).create("orch/c1", Resources())
    assert (tmp_path / "orch" / "c1").is_dir()
    assert group.procs() == []


def test_limit_for_missing_controller_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu")
    (tmp_path / "cgroup.subtree_control").write_text("")
    with pytest.raises(SetupError) as info:
        V2Driver(str(tmp_path)).create("orch/c1", Resources(memory_bytes=1 << 20))
    assert "memory.max" in info.value.message
    assert info.value.errno == 2


@pytest.mark.parametrize(
    ("resources", "field"),
    [
        (Resources(memory_bytes=-1), "memory_bytes"),
        (Resources(memory_bytes=0), "memory_bytes"),
        (Resources(cpus=0), "cpus"),
        (Resources(cpus=-0.5), "cpus"),
        (Resources(cpus=float("nan")), "cpus"),
        (Resources(pids_limit=0), "pids_limit"),
        (Resources(pids_limit=-3), "pids_limit"),
    ],
)
def test_invalid_resources_rejected_before_any_write(
    tmp_path: Path, resources: Resources, field: str
) -> None:
    make_fake_v2(tmp_path, "orch")
    with pytest.raises(InvalidArgument, match=field):
        V2Driver(str(tmp_path)).create("orch/c1", resources)
    assert not (tmp_path / "orch" / "c1").exists()


@pytest.mark.parametrize("name", ["", "/orch/x", "orch/../../etc", "orch//x", "orch/.", "orch/"])
def test_invalid_names_rejected(tmp_path: Path, name: str) -> None:
    driver = V2Driver(str(tmp_path))
    with pytest.raises(InvalidArgument):
        driver.create(name, Resources())
    with pytest.raises(InvalidArgument):
        driver.open(name)


def test_stats_parsing(tmp_path: Path) -> None:
    leaf = make_fake_v2(tmp_path, "orch/c1")
    (leaf / "memory.current").write_text("12345678\n")
    (leaf / "memory.max").write_text("67108864\n")
    (leaf / "cpu.stat").write_text(
        "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\ncore_sched.force_idle_usec 0\n"
        "nr_periods 40\nnr_throttled 7\nthrottled_usec 2500\nnr_bursts 0\nburst_usec 0\n"
    )
    (leaf / "pids.current").write_text("3\n")
    (leaf / "pids.max").write_text("10\n")
    (leaf / "memory.events").write_text(
        "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\noom_group_kill 0\n"
    )
    stats = V2Driver(str(tmp_path)).open("orch/c1").stats()
    assert stats.memory_usage_bytes == 12345678
    assert stats.memory_limit_bytes == 64 << 20
    assert stats.cpu_usage_ns == 1_500_000
    assert (stats.cpu_nr_periods, stats.cpu_nr_throttled) == (40, 7)
    assert stats.cpu_throttled_ns == 2_500_000
    assert (stats.pids_current, stats.pids_limit) == (3, 10)
    assert stats.oom_kills == 2


def test_stats_unlimited_is_none(tmp_path: Path) -> None:
    make_fake_v2(tmp_path, "orch/c1")
    stats = V2Driver(str(tmp_path)).open("orch/c1").stats()
    assert stats.memory_limit_bytes is None
    assert stats.pids_limit is None
    assert stats.oom_kills == 0


def test_oom_kills_parsing(tmp_path: Path) -> None:
    leaf = make_fake_v2(tmp_path, "orch/c1")
    group = V2Driver(str(tmp_path)).open("orch/c1")
    assert group.oom_kills() == 0
    (leaf / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 5\n")
    assert group.oom_kills() == 5


def test_add_process_and_procs(tmp_path: Path) -> None:
    leaf = make_fake_v2(tmp_path, "orch/c1")
    group = V2Driver(str(tmp_path)).open("orch/c1")
    group.add_process(4242)
    assert (leaf / "cgroup.procs").read_text() == "4242"
    (leaf / "cgroup.procs").write_text("7\n9\n")
    assert group.procs() == [7, 9]


def test_self_join_is_through_procs(tmp_path: Path) -> None:
    leaf = make_fake_v2(tmp_path, "orch/c1")
    group = V2Driver(str(tmp_path)).open("orch/c1")
    assert group.self_join_files() == [str(leaf / "cgroup.procs")]


def test_open_and_stats_of_missing_group(tmp_path: Path) -> None:
    make_fake_v2(tmp_path, "orch")
    driver = V2Driver(str(tmp_path))
    with pytest.raises(NotFound):
        driver.open("orch/nope")
    group = driver.create("orch/gone", Resources())  # no control files: an empty dir
    group.remove()
    with pytest.raises(NotFound):
        group.stats()
    with pytest.raises(NotFound):
        driver.open("orch/gone")


@given(cpus=st.floats(min_value=0, max_value=64, exclude_min=True, allow_nan=False))
def test_cpus_map_to_quota_over_100ms(cpus: float) -> None:
    from nodeagent.runtime.cgroups.v2.cpu import max_value

    quota, period = max_value(cpus).split()
    assert period == "100000"
    assert int(quota) == max(1000, round(cpus * 100000))
    assert int(quota) >= 1000


@given(memory=st.integers(min_value=1, max_value=1 << 50), pids=st.integers(1, 1 << 22))
def test_memory_and_pids_written_verbatim(tmp_path_factory: pytest.TempPathFactory,
                                          memory: int, pids: int) -> None:
    root = tmp_path_factory.mktemp("v2")
    leaf = make_fake_v2(root, "orch/c1")
    V2Driver(str(root)).create("orch/c1", Resources(memory_bytes=memory, pids_limit=pids))
    assert (leaf / "memory.max").read_text() == str(memory)
    assert (leaf / "pids.max").read_text() == str(pids)


# --- real kernel: the unified hierarchy (no controllers on this hybrid host) ---

UNIFIED = "/sys/fs/cgroup/unified"


@pytest.fixture
def real_v2():
    if os.geteuid() != 0 or not os.path.exists(os.path.join(UNIFIED, "cgroup.procs")):
        pytest.skip("needs root and a cgroup2 mount at " + UNIFIED)
    driver = V2Driver(UNIFIED)
    parent = f"orchtest-{secrets.token_hex(4)}"
    children: list[subprocess.Popen[bytes]] = []
    yield driver, parent, children
    for child in children:
        if child.poll() is None:
            child.kill()
        child.wait()
    for entry in sorted(Path(UNIFIED, parent).glob("*"), reverse=True):
        if entry.is_dir():
            group = driver.open(f"{parent}/{entry.name}")
            group.kill_all()
            group.remove()
    assert remove_parent_if_empty(driver, parent)
    assert not os.path.exists(os.path.join(UNIFIED, parent))


def test_real_v2_lifecycle_with_cgroup_kill(real_v2) -> None:
    driver, parent, children = real_v2
    group = driver.create(f"{parent}/c1", Resources())
    # A shell with background children: cgroup.kill must take the whole tree.
    child = subprocess.Popen(["/bin/sh", "-c", "read go; sleep 60 & sleep 60 & wait"],
                             stdin=subprocess.PIPE)
    children.append(child)
    group.add_process(child.pid)
    assert child.stdin is not None
    child.stdin.write(b"go\n")
    child.stdin.close()
    assert child.pid in group.procs()
    assert not remove_parent_if_empty(driver, parent)  # a child group remains
    assert not group.try_remove()  # in use
    group.kill_all()
    assert group.procs() == []
    assert child.wait(timeout=5) == -9
    assert group.try_remove()
    group.remove()  # idempotent
    assert group.try_remove()
    assert not os.path.exists(os.path.join(UNIFIED, parent, "c1"))
    with pytest.raises(NotFound):
        driver.open(f"{parent}/c1")
