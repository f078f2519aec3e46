"""cgroup v1 driver: writers against a temp-dir layout (separate and co-mounted
cpu,cpuacct), and limits enforced by this host's real v1 hierarchies."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from common.errors import FailedPrecondition, InvalidArgument, NotFound, SetupError
from nodeagent.runtime.cgroups import CgroupStats, V1Driver, remove_parent_if_empty
from nodeagent.runtime.cgroups._base import CPU_PERIOD_US
from nodeagent.runtime.cgroups.v1 import V1Cgroup
from nodeagent.runtime.spec import Resources

V1_UNLIMITED = "9223372036854771712"
V1_FILES = {
    "cpu": {"cgroup.procs": "", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "-1",
            "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\n"},
    "cpuacct": {"cgroup.procs": "", "cpuacct.usage": "0"},
    "memory": {"cgroup.procs": "", "memory.limit_in_bytes": V1_UNLIMITED,
               "memory.memsw.limit_in_bytes": V1_UNLIMITED, "memory.usage_in_bytes": "0",
               "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n"},
    "pids": {"cgroup.procs": "", "pids.max": "max", "pids.current": "0"},
}


def make_fake_v1(root: Path, name: str, layout: str = "separate") -> dict[str, Path]:
    """Hierarchy dirs with the group's files pre-created (as the kernel does on
    mkdir). layout: "separate", "symlinked" (cpu,cpuacct + links) or "comounted"."""
    dirs: dict[str, Path] = {}
    if layout == "separate":
        dirs = {c: root / c for c in V1_FILES}
    else:
        joint = root / "cpu,cpuacct"
        dirs = {"cpu": joint, "cpuacct": joint, "memory": root / "memory", "pids": root / "pids"}
        if layout == "symlinked":
            joint.mkdir(parents=True)
            (root / "cpu").symlink_to("cpu,cpuacct")
            (root / "cpuacct").symlink_to("cpu,cpuacct")
    groups: dict[str, Path] = {}
    for controller, hierarchy in dirs.items():
        group = hierarchy / name
        group.mkdir(parents=True, exist_ok=True)
        for filename, content in V1_FILES[controller].items():
            (group / filename).write_text(content)
        groups[controller] = group
    return groups


@pytest.mark.parametrize("layout", ["separate", "symlinked", "comounted"])
def test_create_writes_exact_values(tmp_path: Path, layout: str) -> None:
    groups = make_fake_v1(tmp_path, "orch/c1", layout)
    driver = V1Driver(str(tmp_path))
    assert set(driver.hierarchies) == {"cpu", "cpuacct", "memory", "pids"}
    driver.create("orch/c1", Resources(memory_bytes=64 << 20, cpus=0.5, pids_limit=100))
    assert (groups["cpu"] / "cpu.cfs_period_us").read_text() == "100000"
    assert (groups["cpu"] / "cpu.cfs_quota_us").read_text() == "50000"
    assert (groups["memory"] / "memory.limit_in_bytes").read_text() == str(64 << 20)
    assert (groups["memory"] / "memory.memsw.limit_in_bytes").read_text() == str(64 << 20)
    assert (groups["pids"] / "pids.max").read_text() == "100"


def test_add_process_writes_each_hierarchy_once(tmp_path: Path) -> None:
    groups = make_fake_v1(tmp_path, "orch/c1", "symlinked")
    group = V1Driver(str(tmp_path)).create("orch/c1", Resources())
    group.add_process(4242)
    for directory in set(groups.values()):
        assert (directory / "cgroup.procs").read_text() == "4242"
    (groups["memory"] / "cgroup.procs").write_text("5\n3\n")
    assert group.procs() == [3, 5, 4242]


def test_self_join_uses_tasks_in_each_hierarchy(tmp_path: Path) -> None:
    groups = make_fake_v1(tmp_path, "orch/c1", "comounted")
    group = V1Driver(str(tmp_path)).create("orch/c1", Resources())
    files = group.self_join_files()
    assert sorted(files) == sorted(str(d / "tasks") for d in set(groups.values()))


def test_create_without_limits_writes_unlimited(tmp_path: Path) -> None:
    groups = make_fake_v1(tmp_path, "orch/c1")
    driver = V1Driver(str(tmp_path))
    driver.create("orch/c1", Resources(memory_bytes=1 << 20, cpus=1.5, pids_limit=4))
    driver.create("orch/c1", Resources())
    assert (groups["cpu"] / "cpu.cfs_quota_us").read_text() == "-1"
    assert (groups["memory"] / "memory.limit_in_bytes").read_text() == "-1"
    assert (groups["memory"] / "memory.memsw.limit_in_bytes").read_text() == "-1"
    assert (groups["pids"] / "pids.max").read_text() == "max"


def test_a_new_group_gets_only_the_wanted_limits(
        tmp_path: Path, kernel_cgroupfs: Callable[..., list[str]]) -> None:
    """A group this call creates already has no limits (the kernel's
    defaults): only what is asked for is written."""
    groups = make_fake_v1(tmp_path, "orch/c1")
    written = kernel_cgroupfs(lambda d: V1_FILES[d.parent.parent.name])
    V1Driver(str(tmp_path)).create("orch/c2", Resources(pids_limit=8))
    assert written == ["pids.max"]
    assert (groups["pids"].parent / "c2" / "pids.max").read_text() == "8"
    written.clear()
    V1Driver(str(tmp_path)).create("orch/c2", Resources())  # it exists now: reset all
    assert sorted(written) == sorted(["cpu.cfs_period_us", "cpu.cfs_quota_us", "pids.max",
                                      "memory.limit_in_bytes", "memory.memsw.limit_in_bytes"])


def test_without_swap_accounting_only_the_limit_is_written(tmp_path: Path) -> None:
    groups = make_fake_v1(tmp_path, "orch/c1")
    (groups["memory"] / "memory.memsw.limit_in_bytes").unlink()
    V1Driver(str(tmp_path)).create("orch/c1", Resources(memory_bytes=1 << 24))
    assert (groups["memory"] / "memory.limit_in_bytes").read_text() == str(1 << 24)
    assert not (groups["memory"] / "memory.memsw.limit_in_bytes").exists()


def test_stats_parsing(tmp_path: Path) -> None:
    groups = make_fake_v1(tmp_path, "orch/c1")
    (groups["memory"] / "memory.usage_in_bytes").write_text("4096\n")
    (groups["memory"] / "memory.limit_in_bytes").write_text("33554432\n")
    (groups["memory"] / "memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n")
    (groups["cpuacct"] / "cpuacct.usage").write_text("987654321\n")
    (groups["cpu"] / "cpu.stat").write_text(
        "nr_periods 11\nnr_throttled 4\nthrottled_time 123456\nnr_bursts 0\nburst_time 0\n")
    (groups["pids"] / "pids.current").write_text("2\n")
    (groups["pids"] / "pids.max").write_text("10\n")
    group = V1Driver(str(tmp_path)).open("orch/c1")
    stats = group.stats()
    assert stats.memory_usage_bytes == 4096
    assert stats.memory_limit_bytes == 32 << 20
    assert stats.cpu_usage_ns == 987654321
    assert (stats.cpu_nr_periods, stats.cpu_nr_throttled, stats.cpu_throttled_ns) == (11, 4, 123456)
    assert (stats.pids_current, stats.pids_limit) == (2, 10)
    assert stats.oom_kills == 3 == group.oom_kills()


def test_stats_unlimited_and_old_kernel_oom_control(tmp_path: Path) -> None:
    groups = make_fake_v1(tmp_path, "orch/c1")
    # Kernels before 4.13 have no oom_kill line.
    (groups["memory"] / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\n")
    stats = V1Driver(str(tmp_path)).open("orch/c1").stats()
    assert stats.memory_limit_bytes is None
    assert stats.pids_limit is None
    assert stats.oom_kills == 0


def test_limit_for_missing_hierarchy_is_an_error(tmp_path: Path) -> None:
    make_fake_v1(tmp_path, "orch/c1")
    os.rename(tmp_path / "pids", tmp_path / "unused")
    driver = V1Driver(str(tmp_path))
    driver.create("orch/c1", Resources(memory_bytes=1 << 24))  # no pids limit: fine
    with pytest.raises(SetupError, match="pids"):
        driver.create("orch/c1", Resources(pids_limit=5))


def test_invalid_values_and_missing_groups(tmp_path: Path) -> None:
    make_fake_v1(tmp_path, "orch")
    driver = V1Driver(str(tmp_path))
    with pytest.raises(InvalidArgument, match="cpus"):
        driver.create("orch/c1", Resources(cpus=0))
    with pytest.raises(InvalidArgument, match="memory_bytes"):
        driver.create("orch/c1", Resources(memory_bytes=-5))
    with pytest.raises(InvalidArgument, match="pids_limit"):
        driver.create("orch/c1", Resources(pids_limit=0))
    with pytest.raises(NotFound):
        driver.open("orch/c1")
    with pytest.raises(FailedPrecondition):
        V1Driver(str(tmp_path / "empty"))


# --- real kernel: this host's v1 hierarchies -------------------------------

CGROOT = "/sys/fs/cgroup"


class Harness:
    """Creates groups under a random parent and starts processes in them; the
    fixture's finalizer kills and removes everything even if a test fails."""

    def __init__(self) -> None:
        self.driver = V1Driver(CGROOT)
        self.parent = f"orchtest-{secrets.token_hex(4)}"
        self.children: list[subprocess.Popen[bytes]] = []
        self.groups: list[V1Cgroup] = []

    def group(self, resources: Resources) -> V1Cgroup:
        group = self.driver.create(f"{self.parent}/{secrets.token_hex(4)}", resources)
        self.groups.append(group)
        return group

    def start(self, group: V1Cgroup, argv: list[str]) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside ``group``: a gate shell waits on stdin until it
        has been added, so nothing runs (or allocates) outside the group."""
        child = subprocess.Popen(
            ["/bin/sh", "-c", 'read go; exec "$@"', "gate", *argv],
            stdin=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        self.children.append(child)
        group.add_process(child.pid)
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        child.stdin.close()
        return child

    def cleanup(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.kill()
            child.wait()
            if child.stderr:
                child.stderr.close()
        for group in self.groups:
            group.kill_all()
            group.remove()
        assert remove_parent_if_empty(self.driver, self.parent)
        for hierarchy in self.driver.hierarchies.values():
            assert not os.path.exists(os.path.join(hierarchy, self.parent))


@pytest.fixture
def v1() -> Iterator[Harness]:
    if os.geteuid() != 0 or not os.path.isdir(os.path.join(CGROOT, "memory")):
        pytest.skip("needs root and cgroup v1 hierarchies at " + CGROOT)
    harness = Harness()
    try:
        yield harness
    finally:
        harness.cleanup()


def test_real_memory_limit_oom_kills(v1: Harness) -> None:
    group = v1.group(Resources(memory_bytes=32 << 20))
    hog = "chunks = []\nwhile True:\n    chunks.append(b'x' * (1 << 20))\n"
    child = v1.start(group, [sys.executable, "-c", hog])
    assert child.wait(timeout=30) == -9
    assert group.oom_kills() >= 1
    stats = group.stats()
    assert stats.oom_kills >= 1
    assert stats.memory_limit_bytes == 32 << 20


def test_real_memory_limit_can_be_raised_and_lowered(v1: Harness) -> None:
    # Exercises the limit/memsw write order the kernel insists on.
    group = v1.group(Resources(memory_bytes=16 << 20))
    memdir = os.path.join(v1.driver.hierarchies["memory"], group.name)
    for value in (64 << 20, 8 << 20, None, 16 << 20):
        v1.driver.create(group.name, Resources(memory_bytes=value))
        assert group.stats().memory_limit_bytes == value
        memsw = Path(memdir, "memory.memsw.limit_in_bytes").read_text().strip()
        assert memsw == (V1_UNLIMITED if value is None else str(value))


def test_real_pids_limit_stops_fork_bomb(v1: Harness) -> None:
    group = v1.group(Resources(pids_limit=10))
    child = v1.start(group, ["/bin/sh", "-c", "for i in $(seq 50); do sleep 3 & done; wait"])
    peak = 0
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline and child.poll() is None:
        stats = group.stats()
        peak = max(peak, stats.pids_current)
        time.sleep(0.02)
    assert 1 <= peak <= 10
    assert group.stats().pids_limit == 10
    group.kill_all()
    child.wait(timeout=5)
    assert child.stderr is not None
    assert b"fork" in child.stderr.read().lower()
    assert group.procs() == []


def _stats_once(group: V1Cgroup, condition: Callable[[CgroupStats], bool]) -> CgroupStats:
    deadline = time.monotonic() + 20
    while not condition(stats := group.stats()):
        assert time.monotonic() < deadline, f"condition not met in time: {stats}"
        time.sleep(0.02)
    return stats


def test_real_cpu_quota_throttles(v1: Harness) -> None:
    group = v1.group(Resources(cpus=0.2))
    child = v1.start(group, ["/bin/sh", "-c", "while :; do :; done"])
    before = _stats_once(group, lambda s: s.cpu_nr_throttled >= 2)  # the loop runs into its quota
    after = _stats_once(group, lambda s: s.cpu_nr_periods >= before.cpu_nr_periods + 10)
    # Its share of the periods it ran in, counted in the kernel's periods rather than wall time.
    periods_ns = (after.cpu_nr_periods - before.cpu_nr_periods) * CPU_PERIOD_US * 1000
    share = (after.cpu_usage_ns - before.cpu_usage_ns) / periods_ns
    assert after.cpu_nr_throttled > before.cpu_nr_throttled
    assert after.cpu_throttled_ns > 0
    assert 0.05 < share <= 0.35
    child.kill()


def test_real_kill_all_and_remove(v1: Harness) -> None:
    group = v1.group(Resources())
    child = v1.start(group, ["/bin/sh", "-c", "sleep 60 & sleep 60 & sleep 60 & wait"])
    deadline = time.monotonic() + 5
    while len(group.procs()) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(group.procs()) == 4
    assert not group.try_remove()  # in use: nothing removed, no waiting
    assert len(group.procs()) == 4
    with pytest.raises(FailedPrecondition, match="busy"):
        group.remove()  # live processes: retries, then says what is left
    assert v1.driver.open(group.name).procs() == group.procs()
    assert not remove_parent_if_empty(v1.driver, v1.parent)  # a child group remains
    group.kill_all()
    assert group.procs() == []
    assert child.wait(timeout=5) == -9
    assert group.try_remove()
    group.remove()  # idempotent
    assert group.try_remove()
    for hierarchy in v1.driver.hierarchies.values():
        assert not os.path.exists(os.path.join(hierarchy, group.name))
    with pytest.raises(NotFound):
        v1.driver.open(group.name)


def test_parents_go_with_their_last_child(v1: Harness) -> None:
    """orch's parent groups (``orch``, ``orch/build``) do not outlive the groups
    in them: removing the last child prunes every ancestor left empty, and a
    create makes them again."""
    top = f"{v1.parent}-prune"
    a = v1.driver.create(f"{top}/build/a", Resources())
    b = v1.driver.create(f"{top}/build/b", Resources())
    roots = list(dict.fromkeys(v1.driver.hierarchies.values()))
    a.remove()
    assert all(os.path.isdir(os.path.join(r, top, "build")) for r in roots)  # b is still there
    assert b.try_remove()
    assert not any(os.path.exists(os.path.join(r, top)) for r in roots)
    again = v1.driver.create(f"{top}/build/c", Resources())
    assert all(os.path.isdir(os.path.join(r, top, "build", "c")) for r in roots)
    again.remove()
    assert not any(os.path.exists(os.path.join(r, top)) for r in roots)
