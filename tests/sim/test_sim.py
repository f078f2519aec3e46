"""``orch sim``: the real control plane (four replicas, real etcd) against
200 simulated nodes in one process, driven through the real CLI.

A deploy of 2,000 tasks (20 services of 100 replicas, some held to a zone,
some one a node) converges: every slot runs exactly once, where its
constraints allow, as the store lists it. Killing 10 nodes moves their
tasks: once the control plane has marked them down, every slot runs
exactly once again, on the nodes left. ``orch down --purge`` leaves nothing.

Private names (dirs, ports) so it never meets a cluster a user has up.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orch.cluster import sweep
from proto import cluster_pb2 as cpb
from tests.orchcli import run_orch
from tests.ports import bindable

NODES = 200
SERVICES = 20
REPLICAS = 100
ZONES = 4
KILLED = 10
ZONED = range(0, 5)  # services held to one zone (50 nodes), at most 3 a node
SPREAD = range(5, 10)  # services at most one a node
HEALTHY = range(10, 13)  # services with a health check

pytestmark = pytest.mark.timeout(240)


@dataclass
class SimCluster:
    state: Path
    run: Path
    port: int
    env: dict[str, str]
    api: Any = None

    def orch(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return run_orch(self.env, *args, check=check, timeout=timeout)

    def tasks(self) -> list[Any]:
        return list(self.api.call("ListTasks", cpb.ListTasksRequest(), timeout=30).tasks)

    def nodes(self) -> list[Any]:
        return list(self.api.call("ListNodes", cpb.ListRequest(), timeout=30).nodes)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimCluster]:
    if os.geteuid() != 0:
        pytest.skip("orch sim, as orch up, needs root")
    from orch.cli.client import Cluster

    tag = secrets.token_hex(3)
    port = next(p for p in range(19100 + int(tag, 16) % 400 * 2, 19999)
                if all(bindable(p + d) for d in (0, 1, 2, 3, 50, 51, 52, 53, 100, 101, 102, 103)))
    run = Path(f"/run/orch-sim-{tag}")
    c = SimCluster(state=tmp_path_factory.mktemp("sim") / "state", run=run, port=port,
                   env={**os.environ, "ORCH_CLUSTER_RUN_DIR": str(run)})
    c.env.pop("ORCH_HOST", None)
    c.env.pop("ORCH_CLUSTER", None)
    try:
        out = c.orch("sim", "--nodes", str(NODES), "--zones", str(ZONES), "--cpus", "4", "--memory", "8Gi",
                     "--controlplanes", "4", "--state-dir", str(c.state), "--run-dir", str(run),
                     "--port", str(port)).stdout
        assert f"{NODES} node(s) ready" in out
        c.api = Cluster(f"unix://{run}/cp1.sock")
        yield c
    finally:
        if c.api is not None:
            c.api.close()
        proc = c.orch("down", "--run-dir", str(run), "--purge", check=False)
        assert proc.returncode == 0, f"orch down left things behind:\n{proc.stdout}{proc.stderr}"
        left = sweep.processes(sweep.Target(dirs=[str(c.state), str(run)]))
        assert not left, f"processes left: {left}"
        assert not run.exists() and not c.state.exists()


def manifest() -> str:
    # Every service on the stack's default network, as Compose has it: a /20 holds their addresses.
    lines = ["name: simtest", "networks:", "  default:", "    ipam:",
             "      config: [{subnet: 10.97.0.0/20}]", "services:"]
    for i in range(SERVICES):
        lines += [f"  s{i:02d}:", "    image: busybox", '    command: ["sleep", "3600"]']
        if i in HEALTHY:
            lines += ["    healthcheck:", '      test: ["CMD", "true"]']
        lines += ["    deploy:", f"      replicas: {REPLICAS}", "      resources:",
                  "        reservations: {cpus: '0.1', memory: 64Mi}"]
        if i in ZONED:
            lines += ["      placement:", f"        constraints: ['node.labels.zone == zone-{i % ZONES}']",
                      "        max_replicas_per_node: 3"]
        elif i in SPREAD:
            lines += ["      placement:", "        max_replicas_per_node: 1"]
    return "\n".join(lines) + "\n"


def check_placement(tasks: list[Any], nodes: list[Any], away: frozenset[str] = frozenset()) -> str:
    """"" if every slot of every service runs exactly once, where its placement
    allows and on none of the nodes ``away``; else what is not so yet."""
    zone = {n.id: n.labels.get("zone", "") for n in nodes}
    running = [t for t in tasks if t.status.state == cpb.TASK_STATE_RUNNING]
    wanted = [t for t in running if t.desired_state == cpb.TASK_STATE_RUNNING]
    if len(running) != SERVICES * REPLICAS or len(wanted) != len(running):
        return f"{len(running)} tasks running ({len(wanted)} of them desired running)"
    for i in range(SERVICES):
        mine = [t for t in running if t.service_name == f"s{i:02d}"]
        slots = Counter(t.slot for t in mine)
        if sorted(slots) != list(range(1, REPLICAS + 1)) or max(slots.values()) != 1:
            return f"s{i:02d}: slots {sorted(slots.items())[:5]}... not each of 1..{REPLICAS} once"
        per_node = Counter(t.node_id for t in mine)
        if away & set(per_node):
            return f"s{i:02d}: tasks still on a killed node"
        if i in ZONED:
            assert {zone[n] for n in per_node} == {f"zone-{i % ZONES}"}, f"s{i:02d} left its zone"
            assert max(per_node.values()) <= 3, f"s{i:02d}: more than 3 on a node"
        if i in SPREAD:
            assert max(per_node.values()) == 1, f"s{i:02d}: two on a node"
        if i in HEALTHY:
            assert {t.status.health for t in mine} == {"healthy"}
    return ""


def wait_settled(sim: SimCluster, away: frozenset[str] = frozenset(), timeout: float = 120) -> list[Any]:
    """Until the nodes ``away`` are down, every other node is ready, and
    ``check_placement`` finds nothing wrong; the tasks then. Fails with
    what was still wrong at the deadline.

    Settled, not just placed: while the control plane is busy (a 2,000-task
    deploy on two cores) its view of the stored heartbeats can lag past the
    node grace period, so a healthy node may be marked down for a moment and
    its tasks replaced; the counts must come out exact all the same."""
    deadline = time.monotonic() + timeout
    while True:
        nodes, tasks = sim.nodes(), sim.tasks()
        down = {n.id for n in nodes if n.state != cpb.NODE_STATE_READY}
        why = (f"nodes down: {len(down - away)} not killed, {len(away - down)} killed still up"
               if down != away else check_placement(tasks, nodes, away))
        if not why:
            return tasks
        assert time.monotonic() < deadline, f"not settled within {timeout} s: {why}"
        time.sleep(0.5)


def test_a_deploy_of_2000_tasks_converges(sim: SimCluster, tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(manifest())
    sim.orch("deploy", "-f", str(path), "--detach")
    tasks = wait_settled(sim)
    running = [t for t in tasks if t.status.state == cpb.TASK_STATE_RUNNING]
    assert len(running) == SERVICES * REPLICAS and len({t.node_id for t in running}) > NODES // 2


def test_killing_10_nodes_moves_their_tasks(sim: SimCluster) -> None:
    before = wait_settled(sim)
    by_name = {n.name: n.id for n in sim.nodes()}
    # Node i is in zone i mod 4 and starts its session on replica i mod 4: a step of 19 spreads the kills.
    names = [f"sim-{1 + 19 * k}" for k in range(KILLED)]
    killed_ids = frozenset(by_name[name] for name in names)
    moved = {t.id for t in before if t.node_id in killed_ids and t.status.state == cpb.TASK_STATE_RUNNING}
    assert moved

    out = sim.orch("sim", "--kill", ",".join(names), "--run-dir", str(sim.run)).stdout
    assert out.strip() == f"killed: {', '.join(names)}"

    after = {t.id: t for t in wait_settled(sim, killed_ids)}
    # The killed nodes' tasks ended (orphaned, or already deleted as history); their slots run elsewhere.
    assert all(after[tid].status.state != cpb.TASK_STATE_RUNNING for tid in moved if tid in after)
    status = json.loads(sim.orch("sim", "--status", "--run-dir", str(sim.run)).stdout)
    assert status["states"] == {"registered": NODES - KILLED, "killed": KILLED}
    assert status["killed"] == names


# ---- a simulated node's tasks, on a clock of the test's ---------------------------

class Timers:
    """``SimTasks``'s timers on a virtual clock: ``advance`` runs what falls due."""

    class Handle:
        def __init__(self) -> None:
            self.cancelled = False

        def cancel(self) -> None:
            self.cancelled = True

    def __init__(self) -> None:
        self.now = 0.0
        self.due: list[tuple[float, int, Callable[[], None], Timers.Handle]] = []
        self.woken = 0

    def later(self, delay: float, callback: Callable[[], None]) -> Timers.Handle:
        handle = Timers.Handle()
        self.due.append((self.now + delay, len(self.due), callback, handle))
        return handle

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while True:
            ready = sorted(d for d in self.due if d[0] <= self.now)
            if not ready:
                return
            self.due.remove(ready[0])
            if not ready[0][3].cancelled:
                ready[0][2]()


def sim_tasks(start_delay: float = 1.0, fail: float = 0.0) -> tuple[Any, Timers]:
    from nodeagent.sim.tasks import Behaviour, SimTasks

    timers = Timers()

    def woken() -> None:
        timers.woken += 1

    return SimTasks(Behaviour(start_delay, fail), timers.later, woken), timers


def task(tid: str, desired: Any = None, ports: bool = False, check: bool = False) -> Any:
    from model.health import HealthCheck
    from model.objects import PortConfig, ServiceSpec, Task, TaskState

    spec = ServiceSpec(name="web", image="busybox", ports=[PortConfig(8080, 80)] if ports else [],
                       healthcheck=HealthCheck(test=("CMD", "true")) if check else None)
    return Task(id=tid, service_id="s", service_name="web", slot=1, spec=spec,
                desired_state=desired if desired is not None else TaskState.RUNNING)


def sent(tasks: Any) -> dict[str, tuple[str, str]]:
    return {tid: (s.state.label(), s.health) for tid, s in tasks.take()}


def test_sim_tasks_run_after_the_start_delay_once_the_full_set_is_known() -> None:
    tasks, timers = sim_tasks(start_delay=1.0)
    tasks.assign({"a": task("a")}, [], full=False)
    timers.advance(5)
    assert sent(tasks) == {} and not tasks.running  # no full set yet
    tasks.assign({"a": task("a"), "b": task("b", check=True)}, [], full=True)
    assert set(tasks.starting) == {"a", "b"} and not tasks.settled()
    timers.advance(1.0)
    # "starting" was held back, and a start within its quiet time drops it (StatusQueue).
    assert sent(tasks) == {"a": ("running", ""), "b": ("running", "healthy")}
    assert tasks.running == {"a", "b"} and tasks.settled()
    tasks.assign({"a": task("a"), "b": task("b", check=True)}, [], full=True)
    assert sent(tasks) == {} and not tasks.starting  # started once


def test_sim_tasks_fail_the_share_told_to() -> None:
    from nodeagent.sim.tasks import START_FAILURE

    tasks, timers = sim_tasks(start_delay=0.0, fail=1.0)
    tasks.assign({"a": task("a")}, [], full=True)
    timers.advance(0)
    [(tid, status)] = tasks.take()
    assert (tid, status.state.label(), status.error) == ("a", "failed", START_FAILURE)
    tasks.assign({}, ["a"], full=False)
    assert tasks.reported == {}  # sent, final and no longer assigned: forgotten


def test_sim_tasks_stop_as_a_node_does() -> None:
    from model.objects import TaskState
    from nodeagent.cluster.reconcile import ENDPOINT_DRAIN

    tasks, timers = sim_tasks(start_delay=0.0)
    tasks.assign({t: task(t, ports=t == "web") for t in ("web", "job", "gone")}, [], full=True)
    timers.advance(0)
    assert len(sent(tasks)) == 3
    stop = TaskState.SHUTDOWN
    tasks.assign({"web": task("web", stop, ports=True), "job": task("job", stop)}, ["gone"], full=False)
    timers.advance(0)
    # Not assigned any more: stopped and forgotten, never reported; no endpoints: stopped at once.
    assert sent(tasks) == {"job": ("shutdown", "")} and "gone" not in tasks.reported
    timers.advance(ENDPOINT_DRAIN)  # one that receives traffic drains first
    assert sent(tasks) == {"web": ("shutdown", "")} and not tasks.running
