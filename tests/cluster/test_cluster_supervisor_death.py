"""A node's supervisor killed with -9: its containers die with it, the node's
agent starts a new supervisor and reports their tasks failed at once, and the
control plane replaces them: exactly as many real containers run as there are
replicas, none twice, none orphaned. Then `orch down --purge` leaves nothing.

Its own small cluster (2 nodes, 1 control plane, private names, ports and
subnet), so it can run beside the session's. Containers are counted on the
host, by cgroup: a container's PID 1 is the process of its ``orch/<id>`` group
that is pid 1 of its own pid namespace."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.agent.test_supervisor_death import cgroup_dirs
from tests.cluster.conftest import LocalCluster, wait_for
from tests.cluster.test_cluster import looping

REPLICAS = 6


@pytest.fixture
def small_cluster(tmp_path: Path) -> Iterator[LocalCluster]:
    if os.geteuid() != 0:
        pytest.skip("a local cluster needs root")
    tag = secrets.token_hex(2)
    c = LocalCluster(state=tmp_path / "state", run=Path(f"/run/orch-sd-{tag}"), bridge=f"orchx{tag}",
                     prefix=f"ox{tag}-", subnet=f"10.222.{100 + int(tag[:2], 16) % 100}.0/24",
                     port=20100 + int(tag, 16) % 800,
                     env={**os.environ, "ORCH_CLUSTER_RUN_DIR": f"/run/orch-sd-{tag}"})
    c.env.pop("ORCH_HOST", None)
    c.env.pop("ORCH_CLUSTER", None)
    c.orch("up", "--nodes", "2", "--controlplanes", "1", "--state-dir", str(c.state),
           "--run-dir", str(c.run), "--bridge", c.bridge, "--prefix", c.prefix,
           "--subnet", c.subnet, "--port", str(c.port))
    try:
        yield c
    finally:
        c.down(purge=True)
        subprocess.run(["rm", "-rf", str(c.run)], check=False)


def live(pid: int) -> tuple[int, str] | None:
    """(parent pid, /proc/PID/status) of a live process; None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else (int(fields[1]), status)


def container_processes() -> dict[str, list[int]]:
    """Every live process in an ``orch/<id>`` cgroup on this host, by id."""
    found: dict[str, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{entry}/cgroup").read_text().splitlines():
                _, _, path = line.split(":", 2)
                parent, _, cid = path.rpartition("/")
                if parent.endswith("/orch") and len(cid) == 64 and live(int(entry)):
                    found.setdefault(cid, []).append(int(entry))
                    break
    return found


def pid1(pids: list[int]) -> int | None:
    """The one of ``pids`` that is pid 1 of its pid namespace."""
    for pid in pids:
        info = live(pid)
        if info is None:
            continue
        nspid = next((line.split()[1:] for line in info[1].splitlines()
                      if line.startswith("NSpid:")), [])
        if nspid and nspid[-1] == "1":
            return pid
    return None


def node_containers(c: LocalCluster) -> dict[str, dict[str, str]]:
    """Each node's containers as its state dir holds them: id -> task id."""
    out: dict[str, dict[str, str]] = {}
    for node in c.record()["nodes"]:
        tasks = {}
        for record in Path(node["state_dir"], "containers").glob("*/record.json"):
            last = record.read_text().strip().splitlines()[-1]
            tasks[record.parent.name] = json.loads(last)["spec"]["labels"].get("orch.task", "")
        out[node["name"]] = tasks
    return out


def real_pid1s(c: LocalCluster) -> dict[str, list[tuple[str, int]]]:
    """Per node, (task id, PID 1) of each container really running there."""
    procs = container_processes()
    out: dict[str, list[tuple[str, int]]] = {}
    for node, containers in node_containers(c).items():
        out[node] = [(task, pid) for cid, task in containers.items()
                     if (pid := pid1(procs.get(cid, []))) is not None]
    return out


def supervisor_pid(node: dict[str, Any]) -> int:
    with contextlib.suppress(OSError, ValueError):
        return int(Path(node["run_dir"], "supervisor.pid").read_text())
    return 0


def test_a_killed_node_supervisor_is_replaced_and_its_tasks_exactly_once(
        small_cluster: LocalCluster, tmp_path: Path) -> None:
    c = small_cluster
    c.orch("deploy", "-f", looping(tmp_path, "steady", REPLICAS))
    wait_for(lambda: len(c.running("steady")) == REPLICAS)
    nodes = {n["name"]: n for n in c.record()["nodes"]}
    victim = next(name for name, count in c.per_node("steady").items() if count)
    old = supervisor_pid(nodes[victim])
    doomed = {t["id"] for t in c.running("steady") if t["node"] == victim}
    assert old and doomed
    os.kill(old, signal.SIGKILL)

    # The node reports those tasks failed, with the reason; replacements run.
    error = f"killed: its supervisor (pid {old}) died"

    def failed() -> set[str]:
        # --all: the failed tasks are replaced at once (the node's fault, no
        # restart delay), so the current ones no longer include them.
        every = json.loads(c.orch("ps", "steady", "--all", "-o", "json").stdout)
        return {t["id"] for t in every if t["state"] == "failed" and error in t.get("error", "")}

    assert wait_for(lambda: failed() == doomed and doomed, timeout=60)

    def converged() -> dict[str, list[tuple[str, int]]] | None:
        store = c.running("steady")
        real = real_pid1s(c)
        tasks = [task for pairs in real.values() for task, _ in pairs]
        if len(store) == REPLICAS and sorted(tasks) == sorted(t["id"] for t in store):
            return real
        return None

    real = wait_for(converged, timeout=60)
    # Exactly REPLICAS PID 1s on the host, one per running task, none twice.
    tasks = [task for pairs in real.values() for task, _ in pairs]
    assert len(tasks) == len(set(tasks)) == REPLICAS
    assert not doomed & set(tasks)
    # Each is its node's current supervisor's child: none with parent 1.
    for name, pairs in real.items():
        sup = supervisor_pid(nodes[name])
        assert sup and (name != victim or sup != old)
        for _, pid in pairs:
            info = live(pid)
            assert info is not None and info[0] == sup, (name, pid, info and info[0], sup)
    ours = {cid for cids in node_containers(c).values() for cid in cids}
    procs = container_processes()
    orphans = [pid for cid in ours for pid in procs.get(cid, []) if (live(pid) or (0, ""))[0] == 1]
    assert orphans == []
    # The node's agent served on: it never left the cluster.
    assert {n["name"]: n["state"] for n in c.nodes()} == {"n1": "ready", "n2": "ready"}

    agents = {name: int(Path(n["run_dir"], "agent.lock").read_text()) for name, n in nodes.items()}
    sups = {name: supervisor_pid(n) for name, n in nodes.items()}
    c.down(purge=True)
    # Nothing of theirs is left: no process, no cgroup, no mount.
    procs = container_processes()
    assert [cid for cid in ours if cid in procs] == []
    assert [pid for pid in (*agents.values(), *sups.values()) if live(pid)] == []
    assert [d for cid in ours for d in cgroup_dirs(cid)] == []
    state = str(c.state)
    mounts = [line for entry in os.listdir("/proc") if entry.isdigit()
              for line in _mountinfo(entry) if state in line]
    assert mounts == []


def _mountinfo(pid: str) -> list[str]:
    try:
        return Path(f"/proc/{pid}/mountinfo").read_text().splitlines()
    except OSError:
        return []
