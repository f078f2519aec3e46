"""The writable layer's size limit (``--storage-opt size=``) through the
engine: ``orch info`` names how the node keeps it (a project quota, or a
loop-mounted ext4 per container where the state dir has none), a container
that asks for one cannot write past it, and sizes that cannot be a limit
are refused. The loop filesystem goes with its container however it goes
(``orch rm``, a stop, a restart, a killed supervisor): no mount in any
mount namespace, no attached loop device and no file is left. The project
quota test skips where the kernel has no quotas."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from nodeagent.runtime import loopfs, quota
from orch.cli import runcmd
from orch.cli.client import CLIError
from proto import agent_pb2, agent_pb2_grpc
from tests.agent.conftest import Engine, busybox_rootfs
from tests.agent.test_engine import wait_for
from tests.loopfs import MountFailed, is_root, loop_filesystem, project_quota_filesystem

WRITE_16M = "dd if=/dev/zero of=/big bs=1M count=16 && sync"
NO_SPACE = "No space left on device"


@contextlib.contextmanager
def agent_on(state_root: Path, scratch: Path) -> Iterator[Engine]:
    """A real agent whose state dir lives under ``state_root``, with busybox
    imported; stopped with everything it made, whatever the test did."""
    tag = os.urandom(2).hex()
    run = Path(f"/run/orch-test-{tag}")
    eng = Engine(state=state_root / "state", run=run, bridge=f"orchq{tag}",
                 subnet=f"10.218.{int(tag[:2], 16)}.0/24",
                 env={**os.environ, "ORCH_HOST": f"unix://{run}/agent.sock"})
    try:
        eng.start()
        eng.orch("image", "import", str(busybox_rootfs(scratch / "busybox")), "busybox")
        yield eng
    finally:
        eng.stop_all()
        shutil.rmtree(run, ignore_errors=True)


def info(eng: Engine) -> dict[str, str]:
    return json.loads(eng.orch("info", "-o", "json").stdout)  # type: ignore[no-any-return]


def inspect(eng: Engine, ref: str) -> dict[str, Any]:
    return json.loads(eng.orch("inspect", ref).stdout)[0]  # type: ignore[no-any-return]


def on_loop(eng: Engine) -> bool:
    return info(eng)["storage_limit"].startswith("loop-mounted ext4 per container")


@pytest.fixture
def loop_devices() -> None:
    if not is_root():
        pytest.skip("the agent needs root")
    problem = loopfs.problem()
    if problem:
        pytest.skip(problem)


# ---- what is left of a container's layer filesystem -----------------------------------------

def layer_mounts(cid: str) -> list[str]:
    """Mounts of ``cid``'s layer filesystem in any process's mount namespace."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                found += [f"{entry}: {line}" for line in
                          Path(f"/proc/{entry}/mountinfo").read_text().splitlines()
                          if f"/{cid}/{loopfs.MOUNT} " in line]
    return found


def layer_devices(cid: str) -> list[str]:
    """Attached loop devices whose file is ``cid``'s layer image (deleted or not)."""
    return [f"{dev} {backing}" for dev, backing in loopfs.backing_files().items()
            if f"/{cid}/{loopfs.IMAGE}" in backing]


def layer_leftovers(eng: Engine, cid: str) -> list[str]:
    """Whatever of ``cid``'s layer filesystem exists: mounts, devices, files."""
    found = layer_mounts(cid) + layer_devices(cid)
    for base in (eng.state / "containers", eng.state / "containers" / ".trash"):
        if (base / cid / loopfs.IMAGE).exists():
            found.append(f"file {base / cid / loopfs.IMAGE}")
    return found


def host_mounts(cid: str) -> int:
    return sum(1 for line in Path("/proc/self/mountinfo").read_text().splitlines()
               if f"/{cid}/{loopfs.MOUNT} " in line)


def image(eng: Engine, cid: str) -> Path:
    return eng.state / "containers" / cid / loopfs.IMAGE


def assert_mounted_once(eng: Engine, cid: str, size: int) -> None:
    """The running container's layer: one mount here, one device, one file of ``size``."""
    assert host_mounts(cid) == 1
    assert len(layer_devices(cid)) == 1, layer_devices(cid)
    assert image(eng, cid).stat().st_size == size


def assert_kept_unmounted(eng: Engine, cid: str) -> None:
    """A stopped container's layer: its file only."""
    wait_for(lambda: layer_leftovers(eng, cid) == [f"file {image(eng, cid)}"])


def assert_gone(eng: Engine, cid: str) -> None:
    # A removed container's files are deleted once the removal is answered,
    # before the supervisor reads its next request (this ps).
    eng.orch("ps", "-a")
    wait_for(lambda: layer_leftovers(eng, cid) == [])
    assert not (eng.state / "containers" / cid).exists()


# ---- the CLI's option ------------------------------------------------------------------------

def test_storage_opt_takes_dockers_size_and_nothing_else() -> None:
    assert runcmd.storage_size([]) == 0
    assert runcmd.storage_size(["size=10G"]) == 10 << 30
    assert runcmd.storage_size(["size=512Mi"]) == 512 << 20
    for bad, message in (("size=lots", "expected a size"), ("size=-1", "expected a size"),
                         ("size", "KEY one of: size"), ("dm.basesize=10G", "KEY one of: size")):
        with pytest.raises(CLIError, match=message):
            runcmd.storage_size([bad])


# ---- on the normal state dir -----------------------------------------------------------------

def test_info_names_how_this_state_dir_keeps_a_storage_limit(engine: Engine) -> None:
    table = engine.orch("info").stdout
    for label in ("Version:", "State dir:", "Cgroup version:", "Containers:", "Images:",
                  "Storage limit:", "Default pids limit:"):
        assert f"\n{label}" in f"\n{table}", label
    assert f"State dir:          {engine.state}\n" in table
    got = info(engine)["storage_limit"]
    support = loopfs.detect(str(engine.state / "containers"))
    assert got == support.describe()
    mount = support.quota.mount
    assert mount is not None
    if support.quota.enforced:
        assert got == f"{mount.fstype} project quota on {mount.source} at {mount.mount_point}"
    elif loopfs.problem() is None:  # this kernel, which has no quotas
        assert got == ("loop-mounted ext4 per container (project quotas are not available: "
                       f"{engine.state}/containers is on {mount.describe()}, "
                       f"{'; '.join(support.quota.problems)})")


def test_sizes_that_cannot_be_a_limit_are_refused(engine: Engine) -> None:
    p = engine.orch("run", "--rm", "--name", "too-small", "--storage-opt", "size=512K", "busybox",
                    "true", check=False)
    assert p.returncode == 125
    assert "invalid storage size 524288: the smallest is 1048576 bytes (1 MiB)" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    config = agent_pb2.ContainerConfig(image="busybox", storage_size_bytes=-1,
                                       command=agent_pb2.StringList(values=["true"]))
    with grpc.insecure_channel(f"unix:{engine.run}/agent.sock") as ch, \
            pytest.raises(grpc.RpcError) as caught:
        agent_pb2_grpc.AgentStub(ch).Create(config, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "invalid storage size -1" in (caught.value.details() or "")
    names = [c["name"] for c in json.loads(engine.orch("ps", "-a", "-o", "json").stdout)]
    assert "too-small" not in names  # nothing half made


def test_a_container_cannot_write_past_its_limit(engine: Engine) -> None:
    """Through ``orch run``, ``exec``, ``stop`` and ``start`` and ``rm`` on
    the engine's own state dir (on this kernel, which has no quotas, a loop
    filesystem: then its mounts, devices and file are checked too)."""
    p = engine.orch("run", "--rm", "--network", "none", "--storage-opt", "size=8M", "busybox",
                    "sh", "-c", WRITE_16M, check=False)
    assert p.returncode != 0 and NO_SPACE in p.stdout + p.stderr, p
    # Without the option, nothing changes.
    engine.orch("run", "--rm", "--network", "none", "busybox", "sh", "-c", WRITE_16M)

    loop = on_loop(engine)
    cid = engine.orch("run", "-d", "--network", "none", "--storage-opt", "size=8M", "busybox",
                      "sleep", "300").stdout.strip()
    try:
        if loop:
            assert_mounted_once(engine, cid, 8 << 20)
        p = engine.orch("exec", cid, "sh", "-c", f"echo kept > /kept; {WRITE_16M}", check=False)
        assert p.returncode != 0 and NO_SPACE in p.stdout + p.stderr, p
        if loop:  # the host's file is no bigger than the limit
            assert image(engine, cid).stat().st_blocks * 512 <= 8 << 20

        engine.orch("stop", "-t", "1", cid)
        if loop:
            assert_kept_unmounted(engine, cid)
        engine.orch("start", cid)
        if loop:
            assert_mounted_once(engine, cid, 8 << 20)
        assert engine.orch("exec", cid, "cat", "/kept").stdout == "kept\n"  # the same layer
        engine.orch("exec", cid, "rm", "/big")
        p = engine.orch("exec", cid, "sh", "-c", WRITE_16M, check=False)
        assert p.returncode != 0 and NO_SPACE in p.stdout + p.stderr, p  # and the same limit
    finally:
        engine.orch("rm", "-f", cid)
    assert_gone(engine, cid)


def test_a_container_restarted_by_its_policy_keeps_its_layer_and_limit(engine: Engine) -> None:
    script = f"if [ -f /ran ]; then {WRITE_16M}; exit 3; fi; touch /ran; exit 1"
    cid = engine.orch("run", "-d", "--network", "none", "--restart", "on-failure:1",
                      "--storage-opt", "size=8M", "busybox", "sh", "-c", script).stdout.strip()
    def done() -> dict[str, Any] | None:
        doc = inspect(engine, cid)
        return doc if doc["state"] == "exited" and doc["restart_count"] == 1 else None

    try:
        doc = wait_for(done, timeout=30)
        assert doc["exit_code"] == 3  # the second run found /ran, and could not write 16 MiB
        logs = engine.orch("logs", cid)
        assert NO_SPACE in logs.stdout + logs.stderr
        if on_loop(engine):
            assert_kept_unmounted(engine, cid)
    finally:
        engine.orch("rm", "-f", cid)
    assert_gone(engine, cid)


# ---- where the state dir's filesystem has no project quotas ---------------------------------

def test_a_state_dir_without_project_quotas_gets_a_loop_filesystem_per_container(
        tmp_path: Path, loop_devices: None) -> None:
    with loop_filesystem(tmp_path / "fs", "xfs") as mnt, agent_on(mnt, tmp_path) as eng:
        limit = info(eng)["storage_limit"]
        assert limit.startswith("loop-mounted ext4 per container (project quotas are not "
                                f"available: {eng.state}/containers is on xfs (/dev/loop")
        assert limit.endswith(f" at {mnt}), mounted without pquota)")

        p = eng.orch("run", "--rm", "--network", "none", "--storage-opt", "size=8M", "busybox",
                     "sh", "-c", WRITE_16M, check=False)
        assert p.returncode != 0 and NO_SPACE in p.stdout + p.stderr, p
        # A read-only rootfs has no writable layer: any limit holds there.
        eng.orch("run", "--rm", "--network", "none", "--read-only", "--storage-opt", "size=8M",
                 "busybox", "true")
        eng.orch("run", "--rm", "--network", "none", "busybox", "sh", "-c", WRITE_16M)
        assert [b for b in loopfs.backing_files().values() if b.startswith(f"{eng.state}/")] == []


# ---- a supervisor killed while limited containers run ---------------------------------------

def test_a_killed_supervisors_layer_filesystems_are_cleaned_up(tmp_path: Path,
                                                               loop_devices: None) -> None:
    """The agent's new supervisor finds the dead one's containers killed with
    it: a stopped one's layer is unmounted and its device detached (its file
    is its layer, kept until ``rm``); one it restarts has its layer mounted
    once again, on one device."""
    with agent_on(tmp_path, tmp_path) as eng:
        if not on_loop(eng):
            pytest.skip("the state dir enforces project quotas: no loop filesystems")
        cids = {name: eng.orch("run", "-d", "--name", name, "--network", "none", *extra,
                               "--storage-opt", "size=8M", "busybox", "sh", "-c",
                               "echo kept >> /kept; exec sleep 300").stdout.strip()
                for name, extra in (("stays", []), ("comes-back", ["--restart", "always"]))}
        for cid in cids.values():
            assert_mounted_once(eng, cid, 8 << 20)
        old = eng.info()["supervisor_pid"]
        os.kill(old, signal.SIGKILL)

        def new_supervisor() -> int:
            with contextlib.suppress(Exception):
                pid = eng.info()["supervisor_pid"]
                return pid if pid != old else 0
            return 0

        wait_for(new_supervisor, timeout=30)
        wait_for(lambda: inspect(eng, "stays")["state"] == "exited", timeout=30)
        assert_kept_unmounted(eng, cids["stays"])
        wait_for(lambda: inspect(eng, "comes-back")["state"] == "running", timeout=30)
        assert_mounted_once(eng, cids["comes-back"], 8 << 20)
        wait_for(lambda: eng.orch("exec", "comes-back", "cat", "/kept").stdout == "kept\nkept\n")

        eng.orch("rm", "-f", *cids.values())
        for cid in cids.values():
            assert_gone(eng, cid)


# ---- where project quotas are enforced -----------------------------------------------------

@pytest.fixture
def enforcing(tmp_path: Path) -> Iterator[Path]:
    """A filesystem that enforces project quotas; skipped, with the kernel's
    reasons, where the kernel can do none."""
    if not is_root():
        pytest.skip("the agent needs root")
    with contextlib.ExitStack() as stack:
        try:
            mnt = stack.enter_context(project_quota_filesystem(tmp_path))
        except MountFailed as err:
            pytest.skip(str(err))
        yield mnt


def test_a_project_quota_keeps_the_limit_where_it_is_enforced(enforcing: Path, tmp_path: Path) -> None:
    with agent_on(enforcing, tmp_path) as eng:
        assert info(eng)["storage_limit"].endswith(f" project quota on {_source(enforcing)} "
                                                   f"at {enforcing}")
        cid = eng.orch("run", "-d", "--network", "none", "--storage-opt", "size=8M", "busybox",
                       "sleep", "300").stdout.strip()
        upper = eng.state / "containers" / cid / "upper"
        assert not image(eng, cid).exists()  # quotas first: no loop filesystem
        projid = quota.get_project(str(upper))
        assert projid and quota.usage(str(upper))[1] == 8 << 20
        before = _used(enforcing)

        p = eng.orch("exec", cid, "sh", "-c", WRITE_16M, check=False)
        assert p.returncode != 0
        assert "quota" in p.stderr.lower() or "no space" in p.stderr.lower(), p.stderr
        # The disk holds at most the limit more than before (plus the
        # filesystem's own bookkeeping), not the 16 MiB asked for.
        assert _used(enforcing) - before <= 9 << 20
        assert quota.usage(str(upper))[0] <= 8 << 20

        eng.orch("rm", "-f", cid)
        assert not upper.exists()
        # The limit went with the container, and its files with their charge
        # (deleted just after the reply).
        assert quota.project_usage(str(enforcing), projid)[1] == 0
        deadline = time.monotonic() + 30
        while quota.project_usage(str(enforcing), projid)[0] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert quota.project_usage(str(enforcing), projid) == (0, 0)

        # A container without the option writes what it likes.
        eng.orch("run", "--rm", "--network", "none", "busybox", "sh", "-c", WRITE_16M)


def _used(mnt: Path) -> int:
    st = os.statvfs(mnt)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def _source(mnt: Path) -> str:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split(" ")
        if fields[4] == str(mnt):
            return fields[fields.index("-", 6) + 2]
    raise AssertionError(f"{mnt} is not mounted")
