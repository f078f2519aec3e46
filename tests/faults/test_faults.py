"""Faults, driven through `orch chaos` on a cluster of this module's own (3
nodes, 2 control-plane replicas, private names, ports and subnet): an agent
or a supervisor killed, a node partitioned (healed, or coming back by
itself), a 1 s blip, the leader killed during a 100-replica deploy, `orch
down` and `orch up` on the kept state. Each ends with the same checks: the
desired counts exactly, and on the host exactly one container per running
task, none for a task the store does not have running. `orch down` undoes
every verb; `orch down --purge` at the end leaves nothing.

Containers are counted by the kernel: the live processes of each
``orch/<id>`` cgroup, for the container ids in the nodes' state dirs."""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cluster.conftest import LocalCluster, wait_for
from tests.cluster.test_cluster import looping, spread_without
from tests.cluster.test_cluster_supervisor_death import container_processes, live

HEX64 = re.compile(r"[0-9a-f]{64}")
REPLICAS = 6
OUTAGE = 30.0  # seconds a node is partitioned before it is healed


@pytest.fixture(scope="module")
def fc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    if os.geteuid() != 0:
        pytest.skip("a local cluster needs root")
    tag = secrets.token_hex(2)
    run = f"/run/orch-ft-{tag}"
    c = LocalCluster(state=tmp_path_factory.mktemp("faults") / "state", run=Path(run), bridge=f"orchf{tag}",
                     prefix=f"of{tag}-", subnet=f"10.223.{100 + int(tag[:2], 16) % 100}.0/24",
                     port=21000 + int(tag, 16) % 800, env={**os.environ, "ORCH_CLUSTER_RUN_DIR": run})
    c.env.pop("ORCH_HOST", None)
    c.env.pop("ORCH_CLUSTER", None)
    up(c)
    try:
        yield c
    finally:
        if (c.run / "cluster.json").exists():
            c.down(purge=True)
        subprocess.run(["rm", "-rf", str(c.run)], check=False)


def up(c: LocalCluster) -> None:
    c.orch("up", "--nodes", "3", "--controlplanes", "2", "--state-dir", str(c.state), "--run-dir", str(c.run),
           "--bridge", c.bridge, "--prefix", c.prefix, "--subnet", c.subnet, "--port", str(c.port))


def chaos(c: LocalCluster, *args: str) -> str:
    return c.orch("chaos", *args).stdout


def states(c: LocalCluster) -> dict[str, str]:
    return {n["name"]: n["state"] for n in c.nodes()}


def record(c: LocalCluster) -> dict[str, Any]:
    path = c.run / "chaos.json"
    return json.loads(path.read_text()) if path.exists() else {}


# ---- the checks every scenario ends with ---------------------------------------------------

def containers(c: LocalCluster) -> dict[str, str] | None:
    """Every container of the cluster's nodes: id -> its task (None while a
    record is being written)."""
    out = {}
    for path in [*c.state.glob("nodes/*/containers/*/record.json"),
                 *c.state.glob("nodes/*/containers/.trash/*/record.json")]:
        with contextlib.suppress(FileNotFoundError):
            lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
            try:
                out[path.parent.name] = json.loads(lines[-1])["spec"]["labels"].get("orch.task", "")
            except (ValueError, IndexError, KeyError):
                return None
    return out


def live_tasks(c: LocalCluster) -> list[str] | None:
    """The task of each container of the cluster with a live process on the host."""
    ours = containers(c)
    if ours is None:
        return None
    procs = container_processes()
    return [task for cid, task in ours.items() if any(live(pid) for pid in procs.get(cid, []))]


def converged(c: LocalCluster, expected: dict[str, int], timeout: float = 60) -> None:
    """Wait until each service runs exactly its count, every node is ready,
    and the host runs exactly one container per running task, none other."""
    def check() -> tuple[int, int] | str:
        nodes = states(c)
        if set(nodes.values()) != {"ready"}:
            return f"nodes {nodes}"
        store = [t for t in c.tasks() if t["state"] == "running" and t["desired"] == "running"]
        counts = {s: sum(1 for t in store if t["service"] == s) for s in expected}
        if counts != expected or len(store) != sum(expected.values()):
            return f"running {counts}, {len(store)} in all"
        real = live_tasks(c)
        if real is None or sorted(real) != sorted(t["id"] for t in store):
            dup = sorted({t for t in real or [] if (real or []).count(t) > 1})
            stray = sorted(set(real or []) - {t["id"] for t in store})
            missing = sorted({t["id"] for t in store} - set(real or []))
            return f"duplicates {dup}, not running in the store {stray}, without a process {missing}"
        return (len(store), len(real))

    last: Any = None

    def ok() -> bool:
        nonlocal last
        last = check()
        return isinstance(last, tuple)

    try:
        wait_for(ok, timeout=timeout, interval=0.2)
    except AssertionError:
        raise AssertionError(f"not converged within {timeout} s: {last}")


def deploy(c: LocalCluster, tmp: Path, name: str, replicas: int = REPLICAS) -> set[str]:
    c.orch("deploy", "-f", looping(tmp, name, replicas))
    converged(c, {name: replicas})
    return {t["id"] for t in c.running(name)}


def remove(c: LocalCluster, name: str) -> None:
    c.orch("rm", name)
    converged(c, {})


def victim_of(c: LocalCluster, service: str) -> str:
    return max(c.per_node(service).items(), key=lambda kv: kv[1])[0]


def moved_off(c: LocalCluster, service: str, node: str, replicas: int = REPLICAS) -> None:
    """Wait until the node is down and its tasks run elsewhere."""
    wait_for(lambda: states(c)[node] == "down", timeout=30, interval=0.1)
    wait_for(lambda: spread_without(c.per_node(service), replicas, node), timeout=30, interval=0.1)


# ---- scenarios ------------------------------------------------------------------------------

def test_bad_input_is_one_line_and_exit_1(fc: LocalCluster, tmp_path: Path) -> None:
    cases = [(["kill", "n9"], "no node 'n9' in the cluster of"),
             (["partition", "n1", "--for", "soon"], "--for 'soon': expected a duration"),
             (["partition", "n1", "--for", "0s"], "--for '0s'"),
             (["slow", "n1", "--delay=-5ms"], "--delay '-5ms'"),
             (["slow", "n1", "--delay", "10ms", "--loss", "120%"], "--loss '120%'"),
             (["slow", "n1", "--delay", "0"], "would change nothing")]
    for args, words in cases:
        p = fc.orch("chaos", *args, check=False)
        assert p.returncode == 1 and p.stderr.startswith("orch: error: ") and words in p.stderr, p.stderr
        assert p.stderr.count("\n") == 1 and "Traceback" not in p.stderr
    nowhere = {**fc.env, "ORCH_CLUSTER_RUN_DIR": str(tmp_path / "none")}
    p = subprocess.run([sys.executable, "-m", "orch", "chaos", "heal"], env=nowhere, text=True,
                       capture_output=True)
    assert p.returncode == 1 and p.stderr.startswith("orch: error: no cluster is up ("), p.stderr
    assert record(fc) == {}  # nothing was done


def test_killed_agent_is_replaced_then_healed(fc: LocalCluster, tmp_path: Path) -> None:
    deploy(fc, tmp_path, "ka")
    node = victim_of(fc, "ka")
    out = chaos(fc, "kill", node)
    assert re.fullmatch(rf"{node}: agent killed \(pid \d+\)\n", out), out
    assert record(fc)["killed"] == {node: "agent"}
    moved_off(fc, "ka", node)  # its containers still run: the node's agent is gone, not its supervisor
    out = chaos(fc, "heal")
    assert out == f"{node}: agent restarted\n"
    assert record(fc) == {}
    converged(fc, {"ka": REPLICAS})  # the node's old containers are gone: none twice
    remove(fc, "ka")


def test_killed_supervisor_then_the_agent_back(fc: LocalCluster, tmp_path: Path) -> None:
    deploy(fc, tmp_path, "ks")
    node = victim_of(fc, "ks")
    lines = chaos(fc, "kill", node, "--supervisor").splitlines()
    assert lines[0].startswith(f"{node}: agent killed") and lines[1].startswith(f"{node}: supervisor killed")
    moved_off(fc, "ks", node)
    assert chaos(fc, "heal", node) == f"{node}: agent restarted (and a new supervisor)\n"
    converged(fc, {"ks": REPLICAS})
    remove(fc, "ks")


def test_partition_then_heal(fc: LocalCluster, tmp_path: Path) -> None:
    """Cut off for 30 s (its timer would end it only later), then healed:
    heal restores the link and ends the timer; the node comes back and stops
    the containers whose tasks moved."""
    deploy(fc, tmp_path, "pt")
    node = victim_of(fc, "pt")
    out = chaos(fc, "partition", node, "--for", "90s")
    cut = time.monotonic()
    assert out.startswith(f"{node}: link cut for 90s (back by itself at "), out
    timer = record(fc)["partitions"][node]["timer_pid"]
    assert live(timer) and not link_up(fc, node)
    moved_off(fc, "pt", node)
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - cut)))  # the outage itself
    assert not link_up(fc, node) and states(fc)[node] == "down"
    assert chaos(fc, "heal") == f"{node}: link restored\n"
    assert link_up(fc, node) and not live(timer) and record(fc) == {}
    converged(fc, {"pt": REPLICAS})
    remove(fc, "pt")


def test_a_partition_ends_by_itself(fc: LocalCluster, tmp_path: Path) -> None:
    """Long enough for the node to go down; nobody runs another command."""
    deploy(fc, tmp_path, "pe")
    node = victim_of(fc, "pe")
    chaos(fc, "partition", node, "--for", "5s")
    moved_off(fc, "pe", node)
    wait_for(lambda: link_up(fc, node) and record(fc) == {}, timeout=30, interval=0.1)
    converged(fc, {"pe": REPLICAS})
    remove(fc, "pe")


def test_a_one_second_blip_reschedules_nothing(fc: LocalCluster, tmp_path: Path) -> None:
    before = deploy(fc, tmp_path, "blip")
    node = victim_of(fc, "blip")
    chaos(fc, "partition", node, "--for", "1s")
    wait_for(lambda: link_up(fc, node) and record(fc) == {}, timeout=10, interval=0.05)
    fc.heartbeats_after(time.time())  # every node beats again, and none went down meanwhile
    every = json.loads(fc.orch("ps", "--all", "-o", "json", "blip").stdout)
    assert {t["id"] for t in every} == before  # no task was replaced
    converged(fc, {"blip": REPLICAS})
    remove(fc, "blip")


def test_slow_link_then_heal(fc: LocalCluster, tmp_path: Path) -> None:
    deploy(fc, tmp_path, "sl", 3)
    out = chaos(fc, "slow", "n2", "--delay", "100ms", "--loss", "1%")
    assert out.startswith("n2: link slowed, 100ms each way, 1% lost ("), out
    assert delayed(fc, "n2") and not delayed(fc, "n1")
    # A lower bound, not a timing: the SYN and the SYN-ACK are each held 100 ms.
    assert connect_time(fc, "n2") >= 0.2
    fc.heartbeats_after(time.time())  # slow, but up
    assert chaos(fc, "heal", "n2") == "n2: link no longer slowed\n"
    assert not delayed(fc, "n2") and record(fc) == {}
    converged(fc, {"sl": 3})
    remove(fc, "sl")


def test_leader_killed_during_a_100_replica_deploy(fc: LocalCluster, tmp_path: Path) -> None:
    fc.orch("deploy", "--detach", "-f", looping(tmp_path, "hundred", 100))
    out = chaos(fc, "kill-leader")
    assert re.fullmatch(r"controlplane cp[12] \(the leader, pid \d+\) killed: another replica takes over\n",
                        out), out
    killed = int(out.split()[1][2:])
    converged(fc, {"hundred": 100}, timeout=120)
    assert chaos(fc, "heal") == f"controlplane cp{killed} restarted\n"
    converged(fc, {"hundred": 100})
    remove(fc, "hundred")


def test_etcd_killed_then_healed(fc: LocalCluster, tmp_path: Path) -> None:
    pytest.importorskip("orch.cluster.etcdchaos")
    deploy(fc, tmp_path, "ek", 3)
    out = chaos(fc, "kill-etcd", "1")
    assert out.startswith("etcd member 1 (") and out.endswith(" killed\n"), out
    out = chaos(fc, "heal")
    assert out.startswith("etcd member 1 (") and " started again " in out, out
    converged(fc, {"ek": 3})
    remove(fc, "ek")


def test_down_undoes_every_verb_and_up_brings_the_tasks_back(fc: LocalCluster, tmp_path: Path) -> None:
    deploy(fc, tmp_path, "kept")
    chaos(fc, "slow", "n1", "--delay", "50ms")
    chaos(fc, "partition", "n2", "--for", "120s")
    chaos(fc, "kill", "n3")
    chaos(fc, "kill-leader")
    helpers = [record(fc)["slow"]["n1"]["pid"], record(fc)["partitions"]["n2"]["timer_pid"]]
    assert helpers[1] and all(live(pid) for pid in helpers if pid)
    fc.down(purge=False)
    assert [pid for pid in helpers if pid and live(pid)] == []
    assert not fc.run.exists()  # no chaos.json left behind either
    assert not network_left(fc)
    up(fc)
    for node in ("n1", "n2", "n3"):
        assert link_up(fc, node) and not delayed(fc, node)
    converged(fc, {"kept": REPLICAS})
    remove(fc, "kept")


def test_down_purge_leaves_nothing(fc: LocalCluster) -> None:
    """Last: the module's cluster goes, and nothing of it stays."""
    ids = {p.name for p in fc.state.glob("nodes/*/containers/**/*") if HEX64.fullmatch(p.name)}
    fc.down(purge=True)
    assert leftovers(fc, ids) == []


# ---- what the kernel says ------------------------------------------------------------------

def _node_index(node: str) -> int:
    return int(node[1:])


def link_up(c: LocalCluster, node: str) -> bool:
    dev = f"{c.bridge[:8]}n{_node_index(node)}"
    out = subprocess.run(["ip", "-j", "link", "show", "dev", dev], capture_output=True, text=True).stdout
    return "UP" in (json.loads(out or "[{}]")[0].get("flags", []))


def connect_time(c: LocalCluster, node: str) -> float:
    """Seconds a TCP connect to the node's agent takes, from the host."""
    address = next(n["address"] for n in c.record()["nodes"] if n["name"] == node)
    start = time.monotonic()
    with socket.create_connection((address, 7701), timeout=10):
        return time.monotonic() - start


def delayed(c: LocalCluster, node: str) -> bool:
    """netem on the node's link, or the queue rules in its namespace."""
    dev = f"{c.bridge[:8]}n{_node_index(node)}"
    netns = f"{c.prefix}{node}"
    qdiscs = subprocess.run(["tc", "qdisc", "show", "dev", dev], capture_output=True, text=True).stdout
    qdiscs += subprocess.run(["tc", "-n", netns, "qdisc", "show", "dev", "eth0"], capture_output=True,
                             text=True).stdout
    rules = subprocess.run(["nsenter", f"--net=/run/netns/{netns}", "--", "iptables", "-t", "mangle", "-S"],
                           capture_output=True, text=True).stdout
    return "netem" in qdiscs or "NFQUEUE" in rules


def network_left(c: LocalCluster) -> list[str]:
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    names = [line.split(":")[1].strip().split("@")[0] for line in links.splitlines()]
    return ([f"netns {line.split()[0]}" for line in netns.splitlines() if line.startswith(c.prefix)]
            + [f"link {n}" for n in names if n == c.bridge or n.startswith(c.bridge[:8] + "n")])


def leftovers(c: LocalCluster, ids: set[str]) -> list[str]:
    """Processes, container processes and cgroups, mounts, namespaces, links
    and nft tables of the cluster, and its directories."""
    paths = (str(c.state), str(c.run))
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        with contextlib.suppress(OSError):
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if any(p in cmd for p in paths) and live(int(entry)):
                out.append(f"process {entry}: {cmd[:120]}")
    procs = container_processes()
    out += [f"container process {pid}" for cid in ids for pid in procs.get(cid, [])]
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if any(fields[4].startswith(p) for p in paths):
            out.append(f"mount {fields[4]}")
        if fields[fields.index("-") + 1] in ("cgroup", "cgroup2"):
            out += [f"cgroup {fields[4]}/orch/{i}" for i in ids if os.path.isdir(f"{fields[4]}/orch/{i}")]
    out += network_left(c)
    tables = subprocess.run(["nft", "list", "ruleset"], capture_output=True, text=True).stdout
    out += [f"nft: {line.strip()}" for line in tables.splitlines() if c.bridge in line or c.prefix in line]
    out += [f"directory {p}" for p in paths if os.path.exists(p)]
    return out
